// `nvmf top`: a terminal view of a running nvmf_tgt over its RPC socket, in the
// spirit of spdk_top: reactors, threads, pollers, subsystems and queues,
// refreshed every --delay seconds. Loads are over the last interval (since
// start on the first screen). --once prints one screen without clearing.

import { parseArgs } from 'node:util';
import { RpcClient } from '../../jsonrpc/index.ts';
import { UsageError } from '../../util/errors.ts';

export const TOP_USAGE = `usage: nvmf top [-r SOCKET] [-d SECONDS] [-n ITERATIONS] [--once]

A live view of a running nvmf_tgt over its RPC socket: reactors, threads,
pollers, subsystems and queues.

options:
  -r, --rpc-socket PATH  the target's RPC socket (default /var/tmp/spdk.sock)
  -d, --delay SECONDS    refresh period (default 1)
  -n, --iterations N     stop after N screens (default: until Ctrl-C)
      --once             one screen, no screen clearing (same as -n 1 for scripts)
  -h, --help             this text
`;

type Reactors = {
  tick_rate: number;
  reactors: Array<{ lcore: number; busy: number; idle: number; lw_threads: unknown[] }>;
};
type PollerInfo = {
  name: string;
  id: number;
  state: string;
  run_count: number;
  busy_count: number;
  period_ticks?: number;
};
type Threads = {
  threads: Array<{
    name: string;
    id: number;
    cpumask: string;
    busy: number;
    idle: number;
    active_pollers_count: number;
    timed_pollers_count: number;
    paused_pollers_count: number;
  }>;
};
type Pollers = {
  threads: Array<{
    name: string;
    active_pollers: PollerInfo[];
    timed_pollers: PollerInfo[];
    paused_pollers: PollerInfo[];
  }>;
};
type Subsystem = {
  nqn: string;
  subtype: string;
  namespaces?: Array<{ nsid: number; bdev_name: string }>;
  listen_addresses: Array<{ traddr: string; trsvcid: string }>;
};
type Qpair = {
  cntlid: number;
  qid: number;
  thread: string;
  hostnqn: string;
  peer_address: { traddr: string; trsvcid: string };
};

export interface TopSample {
  reactors: Reactors;
  threads: Threads;
  pollers: Pollers;
  subsystems: Subsystem[];
  qpairs: Map<string, Qpair[]>;
}

async function sample(rpc: RpcClient): Promise<TopSample> {
  const [reactors, threads, pollers, subsystems] = (await Promise.all([
    rpc.call('framework_get_reactors'),
    rpc.call('thread_get_stats'),
    rpc.call('thread_get_pollers'),
    rpc.call('nvmf_get_subsystems'),
  ])) as [Reactors, Threads, Pollers, Subsystem[]];
  const qpairs = new Map<string, Qpair[]>();
  for (const s of subsystems) {
    qpairs.set(s.nqn, (await rpc.call('nvmf_subsystem_get_qpairs', { nqn: s.nqn })) as Qpair[]);
  }
  return { reactors, threads, pollers, subsystems, qpairs };
}

function pct(busy: number, total: number): string {
  return total > 0 ? `${((busy * 100) / total).toFixed(1)}%` : '-';
}

function table(title: string, head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const body = rows.length === 0 ? ['  (none)'] : rows.map((r) => `  ${line(r)}`);
  return [`${title}`, `  ${line(head)}`, ...body, ''].join('\n');
}

/** One screen from the sample now and the one before (null: loads since start). */
export function renderTop(now: TopSample, prev: TopSample | null, target: string): string {
  const out: string[] = [];
  out.push(
    `nvmf top — ${target} — ${new Date().toISOString()}${prev === null ? ' (loads since start)' : ''}\n`,
  );

  out.push(
    table(
      'REACTORS',
      ['core', 'busy', 'threads'],
      now.reactors.reactors.map((r) => {
        const p = prev?.reactors.reactors.find((x) => x.lcore === r.lcore);
        const busy = r.busy - (p?.busy ?? 0);
        return [String(r.lcore), pct(busy, busy + r.idle - (p?.idle ?? 0)), String(r.lw_threads.length)];
      }),
    ),
  );

  out.push(
    table(
      'THREADS',
      ['name', 'id', 'cpumask', 'busy', 'active', 'timed', 'paused'],
      now.threads.threads.map((t) => {
        const p = prev?.threads.threads.find((x) => x.id === t.id);
        const busy = t.busy - (p?.busy ?? 0);
        return [
          t.name,
          String(t.id),
          t.cpumask,
          pct(busy, busy + t.idle - (p?.idle ?? 0)),
          String(t.active_pollers_count),
          String(t.timed_pollers_count),
          String(t.paused_pollers_count),
        ];
      }),
    ),
  );

  const pollerRows: string[][] = [];
  for (const t of now.pollers.threads) {
    const before = prev?.pollers.threads.find((x) => x.name === t.name);
    const all = [
      ...t.active_pollers.map((p) => ['active', p] as const),
      ...t.timed_pollers.map((p) => ['timed', p] as const),
      ...t.paused_pollers.map((p) => ['paused', p] as const),
    ];
    for (const [kind, p] of all) {
      const old = before
        ? [...before.active_pollers, ...before.timed_pollers, ...before.paused_pollers].find(
            (x) => x.id === p.id,
          )
        : undefined;
      pollerRows.push([
        p.name,
        t.name,
        kind,
        p.period_ticks === undefined ? '-' : `${p.period_ticks}us`,
        String(p.run_count - (old?.run_count ?? 0)),
        String(p.busy_count - (old?.busy_count ?? 0)),
      ]);
    }
  }
  out.push(table('POLLERS', ['name', 'thread', 'type', 'period', 'runs', 'busy'], pollerRows));

  out.push(
    table(
      'SUBSYSTEMS',
      ['nqn', 'type', 'namespaces', 'listeners', 'queues'],
      now.subsystems.map((s) => [
        s.nqn,
        s.subtype,
        (s.namespaces ?? []).map((n) => `${n.nsid}:${n.bdev_name}`).join(' ') || '-',
        s.listen_addresses.map((l) => `${l.traddr}:${l.trsvcid}`).join(' ') || '-',
        String(now.qpairs.get(s.nqn)?.length ?? 0),
      ]),
    ),
  );

  const qRows: string[][] = [];
  for (const [nqn, qs] of now.qpairs) {
    for (const q of qs) {
      qRows.push([
        nqn,
        q.hostnqn,
        String(q.cntlid),
        String(q.qid),
        q.thread,
        `${q.peer_address.traddr}:${q.peer_address.trsvcid}`,
      ]);
    }
  }
  out.push(table('QPAIRS', ['subsystem', 'host', 'cntlid', 'qid', 'thread', 'peer'], qRows));
  return out.join('\n');
}

/** `nvmf top ARGS`: exit status (0, 1 when the target cannot be reached, 2 bad arguments). */
export async function runTop(
  argv: string[],
  write: (s: string) => void = (s) => process.stdout.write(s),
): Promise<number> {
  let v: { 'rpc-socket': string; delay: string; iterations?: string; once: boolean; help: boolean };
  try {
    v = parseArgs({
      args: argv,
      options: {
        'rpc-socket': { type: 'string', short: 'r', default: '/var/tmp/spdk.sock' },
        delay: { type: 'string', short: 'd', default: '1' },
        iterations: { type: 'string', short: 'n' },
        once: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values as typeof v;
    if (v.help) {
      write(TOP_USAGE);
      return 0;
    }
    if (!/^\d+(\.\d+)?$/.test(v.delay) || Number(v.delay) <= 0)
      throw new UsageError(`--delay: '${v.delay}' is not a positive number`);
    if (v.iterations !== undefined && !/^[1-9]\d*$/.test(v.iterations)) {
      throw new UsageError(`--iterations: '${v.iterations}' is not a positive integer`);
    }
  } catch (e) {
    process.stderr.write(`nvmf top: ${(e as Error).message}\n\n${TOP_USAGE}`);
    return 2;
  }
  const iterations = v.once
    ? 1
    : v.iterations === undefined
      ? Number.POSITIVE_INFINITY
      : Number(v.iterations);
  const clear = !v.once && process.stdout.isTTY === true;
  let rpc: RpcClient;
  try {
    rpc = await RpcClient.connect(v['rpc-socket'], 10_000);
  } catch (e) {
    process.stderr.write(
      `nvmf top: cannot reach the target at ${v['rpc-socket']}: ${(e as Error).message}\n`,
    );
    return 1;
  }
  let stopped = false;
  const onSigint = () => {
    stopped = true;
  };
  process.once('SIGINT', onSigint);
  try {
    let prev: TopSample | null = null;
    for (let i = 0; i < iterations && !stopped; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, Number(v.delay) * 1000));
      const now = await sample(rpc);
      write(`${clear ? '\x1b[H\x1b[2J' : ''}${renderTop(now, prev, v['rpc-socket'])}`);
      prev = now;
    }
    return 0;
  } catch (e) {
    process.stderr.write(`nvmf top: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    rpc.close();
  }
}
