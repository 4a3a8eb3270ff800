// The target's CPU cost per I/O, A/B: one nvmf_tgt per checkout given (each a
// child process on one core with a null bdev, so the bdev does no work),
// driven in turn by this checkout's nvmf-perf (4 KiB, QD 32 by default, one
// worker). For each run the target's CPU time (user + system, every thread,
// from /proc) over the I/Os nvmf-perf completed. Targets alternate in
// A B B A order round after round, so a slow spell on a shared machine falls
// on both; the medians per target and workload are printed at the end.
// The targets' start order still shows: on a shared 2-core machine the one
// started second was measured 18-30 % dearer on randwrite whichever code it
// ran, so compare with the --tgt order swapped too. Never gates CI.
//
//   node bench/target-cpu.ts --tgt ../old/bin/nvmf_tgt.mjs --tgt bin/nvmf_tgt.mjs \
//     [--rw randread,randwrite] [--depth 32] [--time 5] [--rounds 5] [--json]

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    time: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});

const NODE = process.execPath;
const PERF = fileURLToPath(new URL('../bin/nvmf-perf.mjs', import.meta.url));
const OWN_TGT = fileURLToPath(new URL('../bin/nvmf_tgt.mjs', import.meta.url));
const NQN = 'nqn.2016-06.io.spdk:null';
const CLOCK_TICKS = 100; // USER_HZ on Linux

const tgtPaths = (values.tgt ?? [OWN_TGT]).map((p) => resolve(p));
const workloads = (values.rw ?? 'randread').split(',');
const rounds = Number(values.rounds);

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

/** utime + stime of a live process (all its threads), in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

interface Target {
  path: string;
  proc: ChildProcess;
  port: number;
  dir: string;
}

async function startTarget(path: string): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'target-cpu-'));
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
  const proc = spawn(NODE, [path, '-m', '0x1', '-r', join(dir, 'sock'), '--json', join(dir, 'config.json')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (d) => {
    log += d;
  });
  proc.stderr?.on('data', (d) => {
    log += d;
  });
  for (let i = 0; i < 200 && !/all subsystems initialized/.test(log); i++)
    await new Promise((r) => setTimeout(r, 50));
  if (!/all subsystems initialized/.test(log)) {
    proc.kill('SIGKILL');
    throw new Error(`target ${path} did not start:\n${log}`);
  }
  return { path, proc, port, dir };
}

async function stopTarget(t: Target): Promise<void> {
  const exited = new Promise((r) => t.proc.once('exit', r));
  t.proc.kill('SIGTERM');
  const timer = setTimeout(() => t.proc.kill('SIGKILL'), 10000);
  await exited;
  clearTimeout(timer);
  rmSync(t.dir, { recursive: true, force: true });
}

interface PerfJson {
  total: { iops: number; errors: number };
  perf_cpu: { user_sec: number; system_sec: number; us_per_io: number };
}

function runPerf(args: string[]): Promise<PerfJson> {
  return new Promise((res, rej) => {
    execFile(NODE, [PERF, ...args, '--json'], { timeout: 120000 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`nvmf-perf ${args.join(' ')}: ${stderr || err.message}`));
      else res(JSON.parse(stdout) as PerfJson);
    });
  });
}

/** One nvmf-perf run against `t`: the target's CPU microseconds per completed I/O, and IOPS. */
async function measure(t: Target, rw: string): Promise<{ usPerIo: number; iops: number }> {
  const trid = `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${t.port} subnqn:${NQN}`;
  const pid = t.proc.pid as number;
  const before = cpuSeconds(pid);
  const r = await runPerf([
    '-r',
    trid,
    '-q',
    values.depth ?? '32',
    '-o',
    '4096',
    '-w',
    rw,
    '-t',
    values.time ?? '5',
  ]);
  const cpu = cpuSeconds(pid) - before;
  if (r.total.errors > 0) throw new Error(`${t.path}: ${r.total.errors} I/O errors`);
  // nvmf-perf's figure covers every I/O it completed (warm-up and drain too), as does ours
  const completed = ((r.perf_cpu.user_sec + r.perf_cpu.system_sec) * 1e6) / r.perf_cpu.us_per_io;
  return { usPerIo: (cpu * 1e6) / completed, iops: r.total.iops };
}

/** A, B, … in the order the targets were given. */
function letter(i: number): string {
  return String.fromCharCode(65 + i);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const targets: Target[] = [];
const samples = new Map<string, { usPerIo: number[]; iops: number[] }>();
try {
  for (const p of tgtPaths) targets.push(await startTarget(p));
  for (let round = 0; round < rounds; round++) {
    for (const rw of workloads) {
      // A B then B A: each target runs first as often as last
      const ab = [...targets.keys()];
      const ba = [...ab].reverse();
      const pass = round % 2 === 0 ? [...ab, ...ba] : [...ba, ...ab];
      for (const i of pass) {
        const m = await measure(targets[i], rw);
        const key = `${i}|${rw}`;
        const s = samples.get(key) ?? { usPerIo: [], iops: [] };
        s.usPerIo.push(m.usPerIo);
        s.iops.push(m.iops);
        samples.set(key, s);
        if (!values.json)
          console.log(
            `round ${round + 1} ${rw.padEnd(9)} target ${letter(i)}: ${m.usPerIo.toFixed(2)} us CPU/IO, ${Math.round(m.iops)} IOPS`,
          );
      }
    }
  }
} finally {
  for (const t of targets) await stopTarget(t);
}

const rows = [];
for (const rw of workloads) {
  for (let i = 0; i < tgtPaths.length; i++) {
    const s = samples.get(`${i}|${rw}`);
    if (s === undefined) continue;
    rows.push({
      label: letter(i),
      target: tgtPaths[i],
      workload: `4k ${rw} QD${values.depth}`,
      runs: s.usPerIo.length,
      median_us_cpu_per_io: Number(median(s.usPerIo).toFixed(2)),
      min_us_cpu_per_io: Number(Math.min(...s.usPerIo).toFixed(2)),
      max_us_cpu_per_io: Number(Math.max(...s.usPerIo).toFixed(2)),
      median_iops: Math.round(median(s.iops)),
    });
  }
}
if (values.json) console.log(JSON.stringify(rows, null, 2));
else {
  console.log('');
  tgtPaths.forEach((p, i) => {
    console.log(`target ${letter(i)}: ${p}`);
  });
  for (const r of rows)
    console.log(
      `${r.workload.padEnd(20)} ${r.label}: median ${r.median_us_cpu_per_io} us CPU/IO (min ${r.min_us_cpu_per_io}, max ${r.max_us_cpu_per_io}, ${r.runs} runs), median ${r.median_iops} IOPS`,
    );
}
