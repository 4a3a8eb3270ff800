// Instructions per I/O of the real target in user space (our code, Node's streams, libuv, V8),
// counted by valgrind, so the figure does not move with the load of a shared machine as CPU
// time does. Each checkout's bin/nvmf_tgt.mjs runs under cachegrind (null bdev, -m 0x1, poll
// window 0) while this checkout's nvmf-perf drives it (4 KiB, QD 32 by default) for --short
// and then, in a second target, --long seconds; the difference of the two instruction counts
// over the difference of the I/Os completed leaves out start-up, JIT warm-up and shutdown.
// Under valgrind the target is some 50 times slower than its client, so it always finds a full
// queue's worth of commands per read: the figure is the cost per I/O at full batches. The
// kernel's share (copies into socket buffers, TCP) is not counted. Never gates CI.
//
//   node bench/target-instructions.ts --tgt /tmp/before/bin/nvmf_tgt.mjs --tgt bin/nvmf_tgt.mjs \
//     [--rw randread,randwrite] [--depth 32] [--short 5] [--long 25] [--rounds 1]
//
// Runs of one tree agreed within 1 % on a quiet machine; under load the client gets less CPU,
// the batches shrink and the figure moved by up to 5 %: compare medians of several --rounds.
// --short must end past the JIT's warm-up (3 s did not, under load).

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    tgt: { type: 'string', multiple: true },
    rw: { type: 'string', default: 'randread,randwrite' },
    depth: { type: 'string', default: '32' },
    short: { type: 'string', default: '5' },
    long: { type: 'string', default: '25' },
    rounds: { type: 'string', default: '1' },
  },
});

const NODE = process.execPath;
const PERF = fileURLToPath(new URL('../bin/nvmf-perf.mjs', import.meta.url));
const NQN = 'nqn.2016-06.io.spdk:null';
const tgtPaths = (values.tgt ?? [fileURLToPath(new URL('../bin/nvmf_tgt.mjs', import.meta.url))]).map((p) =>
  resolve(p),
);

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = net.createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => res(p));
    });
  });
}

function config(port: number): string {
  const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
  return JSON.stringify({
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_null_create', params: { name: 'Null0', num_blocks: 262144, block_size: 4096 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Null0' } },
          },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address: listen } },
        ],
      },
    ],
  });
}

function exited(p: ChildProcess): Promise<void> {
  return new Promise((r) => p.once('exit', () => r()));
}

/** One target under cachegrind driven for `seconds`: its instruction count and the I/Os completed. */
async function countRun(tgt: string, rw: string, seconds: string): Promise<{ instr: number; ios: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'target-instr-'));
  const port = await freePort();
  writeFileSync(join(dir, 'config.json'), config(port));
  let log = '';
  const proc = spawn(
    'valgrind',
    [
      '--tool=cachegrind',
      '--cache-sim=no',
      '--cachegrind-out-file=/dev/null',
      NODE,
      '--predictable',
      '--hash-seed=1',
      '--random-seed=1',
      tgt,
      '-m',
      '0x1',
      '-r',
      join(dir, 'sock'),
      '--json',
      join(dir, 'config.json'),
      '--poll-window-us',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout?.on('data', (d) => {
    log += d;
  });
  proc.stderr?.on('data', (d) => {
    log += d;
  });
  const done = exited(proc);
  try {
    for (let i = 0; i < 1200 && !/all subsystems initialized/.test(log); i++)
      await new Promise((r) => setTimeout(r, 100));
    if (!/all subsystems initialized/.test(log)) throw new Error(`target ${tgt} did not start:\n${log}`);
    const trid = `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`;
    const out = await new Promise<string>((res, rej) =>
      execFile(
        NODE,
        [PERF, '-r', trid, '-q', values.depth ?? '32', '-o', '4096', '-w', rw, '-t', seconds, '--json'],
        { timeout: (Number(seconds) + 120) * 1000 },
        (err, stdout, stderr) => (err ? rej(new Error(`nvmf-perf: ${stderr || err.message}`)) : res(stdout)),
      ),
    );
    const r = JSON.parse(out) as { total: { errors: number }; perf_cpu: Record<string, number> };
    if (r.total.errors > 0) throw new Error(`${tgt}: ${r.total.errors} I/O errors`);
    const c = r.perf_cpu;
    const ios = Math.round(((c.user_sec + c.system_sec) * 1e6) / c.us_per_io);
    proc.kill('SIGINT');
    await done;
    const m = /I\s+refs:\s+([\d,]+)/.exec(log);
    if (m === null) throw new Error(`no instruction count from valgrind:\n${log.slice(-2000)}`);
    return { instr: Number(m[1].replaceAll(',', '')), ios };
  } finally {
    if (proc.exitCode === null) {
      proc.kill('SIGKILL');
      await done;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = new Map<string, number[]>();
for (let round = 0; round < Number(values.rounds); round++) {
  for (const rw of (values.rw ?? 'randread').split(',')) {
    for (const tgt of tgtPaths) {
      const a = await countRun(tgt, rw, values.short ?? '5');
      const b = await countRun(tgt, rw, values.long ?? '25');
      const perIo = (b.instr - a.instr) / (b.ios - a.ios);
      const key = `${rw}|${tgt}`;
      results.set(key, [...(results.get(key) ?? []), perIo]);
      console.log(
        `round ${round + 1} ${rw.padEnd(9)} ${tgt}: ${Math.round(perIo)} instructions per I/O (${a.ios} and ${b.ios} I/Os)`,
      );
    }
  }
}
console.log('');
for (const [key, v] of results) {
  const [rw, tgt] = key.split('|');
  console.log(`4k ${rw} QD${values.depth} ${tgt}: ${v.map((x) => Math.round(x)).join(', ')}`);
}
