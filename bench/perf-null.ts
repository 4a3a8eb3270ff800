// The ceiling of nvmf-perf on this machine: our target (a child process) with
// a null bdev, which does no work per I/O, driven by nvmf-perf (a child too)
// at 4 KiB randread, QD 32 and 128, with 1 and 2 workers. Prints IOPS,
// latency, and nvmf-perf's own CPU cost per I/O (its ceiling per core is
// 1e6 / that figure). Never gates CI.
//
//   node bench/perf-null.ts [--time 5] [--tgt-mask 0x1] [--json]

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    time: { type: 'string', default: '5' },
    'tgt-mask': { type: 'string', default: '0x1' },
    json: { type: 'boolean', default: false },
  },
});

const NODE = process.execPath;
const TGT = fileURLToPath(new URL('../bin/nvmf_tgt.mjs', import.meta.url));
const PERF = fileURLToPath(new URL('../bin/nvmf-perf.mjs', import.meta.url));
const NQN = 'nqn.2016-06.io.spdk:null';
const CLOCK_TICKS = 100; // USER_HZ on Linux

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}

/** utime + stime of a live process, in seconds (Linux /proc). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

const dir = mkdtempSync(join(tmpdir(), 'perf-null-'));
const port = await freePort();
const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
writeFileSync(
  join(dir, 'config.json'),
  JSON.stringify({
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
  }),
);

let log = '';
const tgt: ChildProcess = spawn(
  NODE,
  [TGT, '-m', values['tgt-mask'] ?? '0x1', '-r', join(dir, 'sock'), '--json', join(dir, 'config.json')],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
tgt.stdout?.on('data', (d) => {
  log += d;
});
tgt.stderr?.on('data', (d) => {
  log += d;
});
for (let i = 0; i < 200 && !/all subsystems initialized/.test(log); i++)
  await new Promise((r) => setTimeout(r, 50));
if (!/all subsystems initialized/.test(log)) {
  tgt.kill('SIGKILL');
  throw new Error(`target did not start:\n${log}`);
}

interface PerfJson {
  total: { iops: number; mib_per_sec: number; avg_lat_us: number; p99_us: number; errors: number };
  perf_cpu: { user_sec: number; system_sec: number; wall_sec: number; us_per_io: number };
}

function runPerf(args: string[]): Promise<PerfJson> {
  return new Promise((resolve, reject) => {
    execFile(NODE, [PERF, ...args, '--json'], { timeout: 120000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nvmf-perf ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout) as PerfJson);
    });
  });
}

const trid = `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`;
const rows = [];
try {
  for (const [depth, mask, workers] of [
    [32, '0x1', 1],
    [128, '0x1', 1],
    [32, '0x3', 2],
    [128, '0x3', 2],
  ] as const) {
    const tgtCpuBefore = cpuSeconds(tgt.pid!);
    const r = await runPerf([
      '-r',
      trid,
      '-q',
      String(depth),
      '-o',
      '4096',
      '-w',
      'randread',
      '-t',
      values.time ?? '5',
      '-c',
      mask,
    ]);
    const tgtCpu = cpuSeconds(tgt.pid!) - tgtCpuBefore;
    const row = {
      workload: '4k randread',
      depth,
      workers,
      iops: Math.round(r.total.iops),
      mib_per_sec: Number(r.total.mib_per_sec.toFixed(1)),
      avg_lat_us: Number(r.total.avg_lat_us.toFixed(1)),
      p99_us: Number(r.total.p99_us.toFixed(1)),
      errors: r.total.errors,
      perf_cpu_sec: Number((r.perf_cpu.user_sec + r.perf_cpu.system_sec).toFixed(2)),
      perf_us_per_io: Number(r.perf_cpu.us_per_io.toFixed(2)),
      target_cpu_sec: Number(tgtCpu.toFixed(2)),
      wall_sec: Number(r.perf_cpu.wall_sec.toFixed(2)),
    };
    rows.push(row);
    if (!values.json)
      console.log(
        `4k randread QD${String(depth).padEnd(3)} workers ${workers}: ${String(row.iops).padStart(7)} IOPS ${String(row.mib_per_sec).padStart(7)} MiB/s  avg ${row.avg_lat_us} us  p99 ${row.p99_us} us  | nvmf-perf ${row.perf_cpu_sec} s CPU (${row.perf_us_per_io} us/IO), target ${row.target_cpu_sec} s CPU, over ${row.wall_sec} s`,
      );
  }
} finally {
  const exited = new Promise((r) => tgt.once('exit', r));
  tgt.kill('SIGTERM');
  const timer = setTimeout(() => tgt.kill('SIGKILL'), 10000);
  await exited;
  clearTimeout(timer);
  rmSync(dir, { recursive: true, force: true });
}
if (values.json) console.log(JSON.stringify({ target_mask: values['tgt-mask'], rows }, null, 2));
