// nvmf-perf against a real nvmf_tgt process (a malloc and a null namespace):
// short runs of each workload with --json, several queues and workers,
// digests, and the exit codes.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ChildTarget, freePort, startChildTarget, waitFor } from '../lib/index.ts';

const NODE = process.execPath;
const PERF = fileURLToPath(new URL('../../bin/nvmf-perf.mjs', import.meta.url));
const NQN = 'nqn.2016-06.io.spdk:cnode1';
const dir = mkdtempSync(join(tmpdir(), 'nvmf-perf-'));
let target: ChildTarget;
let port = 0;
/** the host identity (hostnqn/hostid) is kept under the temp dir, not in ~/.config */
const HOST_ENV = { ...process.env, XDG_CONFIG_HOME: dir };

/** the target's configuration; startChildTarget fills in the port for '$PORT' */
function targetConfig(): unknown {
  const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '$PORT' };
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 16384, block_size: 512 } },
          { method: 'bdev_null_create', params: { name: 'Null0', num_blocks: 65536, block_size: 4096 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 2, bdev_name: 'Null0' } },
          },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address: listen } },
        ],
      },
    ],
  };
}

interface Row {
  name: string;
  worker: number;
  core: number;
  nsid: number;
  queues: number;
  ios: number;
  read_ios: number;
  write_ios: number;
  errors: number;
  iops: number;
  mib_per_sec: number;
  avg_lat_us: number;
  min_lat_us: number;
  max_lat_us: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p99_9_us: number;
  histogram?: Array<{ from_us: number; to_us: number; count: number }>;
}
interface Report {
  config: Record<string, unknown>;
  devices: Row[];
  total: Row;
  errors: number;
  perf_cpu: { wall_sec: number; user_sec: number; system_sec: number; us_per_io: number };
}

function perf(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [PERF, ...args], { timeout: 60000, env: HOST_ENV }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout, stderr });
    });
  });
}

const trid = (extra = '') =>
  `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}${extra ? ` ${extra}` : ''}`;

async function run(args: string[]): Promise<Report> {
  const r = await perf([...args, '--json']);
  assert.equal(
    r.code,
    0,
    `nvmf-perf ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n--- target log ---\n${target.log()}`,
  );
  return JSON.parse(r.stdout) as Report;
}

/** Every row did I/O, none failed, and its latencies are ordered. */
function checkRows(report: Report): void {
  assert.equal(report.errors, 0);
  for (const row of [...report.devices, report.total]) {
    const where = row.name ?? 'total';
    assert.ok(row.ios > 0, `${where}: no I/O`);
    assert.equal(row.errors, 0, where);
    assert.ok(row.iops > 0 && row.mib_per_sec > 0, where);
    assert.ok(row.min_lat_us > 0, `${where}: min ${row.min_lat_us}`);
    const order = [row.min_lat_us, row.p50_us, row.p90_us, row.p99_us, row.p99_9_us, row.max_lat_us];
    for (let i = 1; i < order.length; i++)
      assert.ok(order[i - 1] <= order[i], `${where}: latencies out of order ${order.join(' ')}`);
    assert.ok(row.min_lat_us <= row.avg_lat_us && row.avg_lat_us <= row.max_lat_us, where);
  }
  assert.ok(report.perf_cpu.us_per_io > 0, 'nvmf-perf states its own CPU cost');
  const sum = report.devices.reduce((n, d) => n + d.ios, 0);
  assert.equal(report.total.ios, sum);
}

before(async () => {
  target = await startChildTarget({ cores: '0x1', config: targetConfig() });
  port = Number(target.port);
});

after(async () => {
  await target?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('randread 4 KiB: both namespaces, JSON fields, ordered latencies', async () => {
  const r = await run(['-r', trid(), '-q', '16', '-o', '4096', '-w', 'randread', '-t', '1']);
  checkRows(r);
  assert.deepEqual(
    r.devices.map((d) => d.nsid),
    [1, 2],
  );
  assert.equal(r.total.write_ios, 0);
  assert.equal(r.config.io_pattern, 'randread');
  assert.match(
    r.devices[0].name,
    /^TCP \(addr:127\.0\.0\.1 subnqn:nqn\.2016-06\.io\.spdk:cnode1\) NSID 1 from core {2}0$/,
  );
});

test('randwrite and rw -M 70 (with warm-up); the table without --json', async () => {
  const w = await run(['-r', trid(), '-q', '8', '-o', '8192', '-w', 'randwrite', '-t', '1', '-L']);
  checkRows(w);
  // -L: every row carries its non-empty buckets, ascending, counting every I/O
  for (const row of [...w.devices, w.total]) {
    const buckets = row.histogram ?? [];
    assert.equal(
      buckets.reduce((n, b) => n + b.count, 0),
      row.ios,
    );
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i - 1].to_us < buckets[i].from_us);
    assert.ok(
      buckets[0].from_us <= row.min_lat_us && row.max_lat_us <= buckets[buckets.length - 1].to_us + 0.001,
    ); // buckets hold whole ns
  }
  assert.equal(w.total.read_ios, 0);
  assert.equal(w.total.write_ios, w.total.ios);

  const rw = await run(['-r', trid(), '-q', '8', '-o', '4096', '-w', 'rw', '-M', '70', '-t', '1', '-a', '1']);
  checkRows(rw);
  assert.ok(rw.total.read_ios > 0 && rw.total.write_ios > 0);
  const readShare = rw.total.read_ios / rw.total.ios;
  assert.ok(readShare > 0.5 && readShare < 0.9, `read share ${readShare}`);

  const table = await perf(['-r', trid(), '-q', '4', '-w', 'randrw', '-t', '1', '-L']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(
    table.stdout,
    /Device Information +: +IOPS +MiB\/s +Average +min +max +p50 +p90 +p99 +p99\.9\n/,
  );
  assert.match(table.stdout, /\nTotal +: +\d+\.\d\d/);
  assert.doesNotMatch(table.stdout, /\r/, 'no progress line when stdout is not a terminal');
  assert.match(table.stdout, /\nLatency histogram for Total\n=+\n +Range in us +Cumulative +IO count\n/);
  assert.match(table.stdout, /100\.0000% {2}\( +\d+\)\n\nnvmf-perf CPU: /);
});

test('-P 2 -c 0x3: two workers, two queues per namespace each', async () => {
  const r = await run([
    '-r',
    trid(),
    '-q',
    '8',
    '-o',
    '4096',
    '-w',
    'randrw',
    '-M',
    '50',
    '-t',
    '1',
    '-P',
    '2',
    '-c',
    '0x3',
  ]);
  checkRows(r);
  assert.deepEqual(
    r.devices.map((d) => [d.worker, d.core, d.nsid, d.queues]),
    [
      [0, 0, 1, 2],
      [1, 1, 2, 2],
    ],
  );
  assert.deepEqual(r.config.cores, [0, 1]);
});

test('sequential read, two controllers (-r twice): a row per controller and namespace', async () => {
  const r = await run(['-r', trid(), '-r', trid(), '-q', '4', '-o', '4096', '-w', 'read', '-t', '1']);
  checkRows(r);
  assert.equal(r.devices.length, 4);
  assert.deepEqual(
    r.devices.map((d) => d.nsid),
    [1, 2, 1, 2],
  );
  assert.equal(r.total.read_ios, r.total.ios);
  assert.equal((r.config.transport_ids as string[]).length, 2);
});

test('header and data digests through the transport ID', async () => {
  const r = await run([
    '-r',
    trid('hdgst:true ddgst:true'),
    '-q',
    '8',
    '-o',
    '16384',
    '-w',
    'randrw',
    '-t',
    '1',
  ]);
  checkRows(r);
  assert.ok(r.total.read_ios > 0 && r.total.write_ios > 0);
});

test('bad arguments exit 2; an unreachable target exits 1', async () => {
  for (const args of [
    ['-w', 'randread'], // no -r
    ['-r', trid(), '-w', 'sideways'],
    ['-r', trid(), '-w', 'randread', '-M', '50'],
    ['-r', trid(), '-q', '0'],
    ['-r', trid(), '-o', '1000'],
    ['-r', `${trid()} bogus:1`],
    ['-r', trid(), '-c', 'zz'],
  ]) {
    const r = await perf(args);
    assert.equal(r.code, 2, `nvmf-perf ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /usage: nvmf-perf/);
  }
  const help = await perf(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /cannot pin a thread to a core/);

  const closed = await freePort();
  const r = await perf(['-r', `traddr:127.0.0.1 trsvcid:${closed} subnqn:${NQN}`, '-t', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^nvmf-perf: .*ECONNREFUSED/);
});

// last: it stops the shared target
test('the target killed during a run: the lost connections are named, the failed I/O counted, exit 1', async () => {
  const child = execFile(NODE, [PERF, '-r', trid(), '-q', '8', '-w', 'randread', '-t', '8', '--json'], {
    timeout: 60000,
    env: HOST_ENV,
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  // wait until the run is under way: its I/O queues show on the target (bounded)
  const completedBefore = await target.total('completed_nvme_io');
  await waitFor(
    'nvmf-perf to connect its I/O queues',
    async () => {
      const qpairs = (await target.rpc.call('nvmf_subsystem_get_qpairs', { nqn: NQN })) as Array<{
        qid?: number;
      }>;
      return qpairs.some((q) => (q.qid ?? 0) > 0);
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  // some I/O done: the target completed a good number of commands for it
  await waitFor(
    'I/O of the run completed at the target',
    async () => (await target.total('completed_nvme_io')) >= completedBefore + 1000,
    {
      timeoutMs: 15_000,
      intervalMs: 50,
    },
  );
  const tgtExited = new Promise((r) => target.child.once('exit', r));
  target.child.kill('SIGKILL');
  await tgtExited;
  const code = await exited;
  assert.equal(code, 1, stderr);
  assert.match(
    stderr,
    /nvmf-perf: connection lost: TCP \(addr:127\.0\.0\.1 subnqn:nqn\.2016-06\.io\.spdk:cnode1\) NSID \d qid \d+: /,
  );
  assert.match(stderr, /nvmf-perf: \d+ I\/O failed/);
  const report = JSON.parse(stdout) as Report;
  assert.ok(report.errors > 0);
  assert.ok(report.total.ios > 0, 'I/O was done before the target went away');
});
