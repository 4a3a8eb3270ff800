// The standard set, the one command behind the figures in docs/performance.md:
// 4 KiB randread QD32, 4 KiB randwrite QD32, 128 KiB read QD16, 128 KiB write
// QD16 and 4 KiB randread QD1 against a target pinned to one core (taskset)
// with the client pinned to another, one target at a time. Per workload: IOPS,
// MiB/s, latency (average, min, max, p50, p99, p99.9) and the target's CPU
// time per I/O (user + system of every thread, from /proc). With SPDK_DIR set
// (an SPDK build: build/bin/nvmf_tgt), SPDK's target runs on the same core
// with the same bdev, transport options and client, in turn with ours, and
// the ratios are printed (SPDK polls its core, so its CPU per I/O is the
// core's time over the I/Os, not a cost). --tgt more than once compares
// checkouts of nvmf-ts the same way (A/B). Never gates CI.
//
// The client is nvmf-perf, or with --client spdk SPDK's spdk_nvme_perf
// (SPDK_DIR/build/bin/spdk_nvme_perf, with its latency histogram -LL for the
// percentiles); SPDK's processes run without hugepages (--no-huge and a fixed
// DPDK heap) unless --spdk-hugepages says the machine has them.
//
//   npm run bench:standard -- [--time 5] [--warmup 1] [--rounds 1] [--only 4k-randread-qd32,...]
//     [--tgt bin/nvmf_tgt.mjs ...] [--tgt-arg=--poll-window-us=0 ...] [--bdev malloc|null] [--target-core 0] [--client-cores 1]
//     [--client nvmf-perf|spdk] [--spdk-hugepages] [--zcopy] [--json]
//   SPDK_DIR=/path/to/spdk npm run bench:standard -- [--client spdk]

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseSpdkPerf } from './lib/spdk-perf.ts';

const { values } = parseArgs({
  options: {
    tgt: { type: 'string', multiple: true },
    'tgt-arg': { type: 'string', multiple: true },
    time: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '1' },
    only: { type: 'string' },
    bdev: { type: 'string', default: 'malloc' },
    'target-core': { type: 'string', default: '0' },
    'client-cores': { type: 'string', default: '1' },
    client: { type: 'string', default: 'nvmf-perf' },
    'spdk-hugepages': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    zcopy: { type: 'boolean', default: false },
  },
});

interface Workload {
  name: string;
  pattern: string;
  size: number;
  depth: number;
}

const STANDARD: Workload[] = [
  { name: '4k-randread-qd32', pattern: 'randread', size: 4096, depth: 32 },
  { name: '4k-randwrite-qd32', pattern: 'randwrite', size: 4096, depth: 32 },
  { name: '128k-read-qd16', pattern: 'read', size: 131072, depth: 16 },
  { name: '128k-write-qd16', pattern: 'write', size: 131072, depth: 16 },
  { name: '4k-randread-qd1', pattern: 'randread', size: 4096, depth: 1 },
];

const NODE = process.execPath;
const PERF = fileURLToPath(new URL('../bin/nvmf-perf.mjs', import.meta.url));
const OWN_TGT = fileURLToPath(new URL('../bin/nvmf_tgt.mjs', import.meta.url));
const NQN = 'nqn.2016-06.io.spdk:cnode1';
const CLOCK_TICKS = 100; // USER_HZ on Linux
const TARGET_CORE = values['target-core'] ?? '0';
const CLIENT_CORES = (values['client-cores'] ?? '1').split(',').map(Number);
const SPDK_DIR = process.env.SPDK_DIR || undefined;
const CLIENT = values.client ?? 'nvmf-perf';
if (CLIENT !== 'nvmf-perf' && CLIENT !== 'spdk')
  throw new Error(`--client: nvmf-perf or spdk, not ${CLIENT}`);
if (CLIENT === 'spdk' && SPDK_DIR === undefined)
  throw new Error('--client spdk needs SPDK_DIR (an SPDK build with build/bin/spdk_nvme_perf)');
const CLIENT_LABEL = CLIENT === 'spdk' ? 'spdk_nvme_perf' : 'nvmf-perf';
const TIME_SEC = Number(values.time);
const WARMUP_SEC = Number(values.warmup);
/** the bdev both targets serve: SPDK's malloc (or null) with the same geometry */
const BDEV =
  values.bdev === 'null'
    ? { method: 'bdev_null_create', params: { name: 'Bdev0', num_blocks: 262144, block_size: 4096 } }
    : { method: 'bdev_malloc_create', params: { name: 'Bdev0', num_blocks: 65536, block_size: 4096 } };
/** written out so both targets run the same transport whatever their defaults (these are SPDK's) */
const TRANSPORT = {
  trtype: 'TCP',
  max_queue_depth: 128,
  in_capsule_data_size: 4096,
  max_io_size: 131072,
  io_unit_size: 131072,
  // --zcopy: both targets' zero-copy option (ours: a larger write lands in the malloc bdev)
  zcopy: values.zcopy,
};
/** DPDK heap of SPDK's processes without hugepages, MiB: the target holds the 256 MiB malloc bdev
 * and its buffer pools, the client only its I/O buffers */
const SPDK_TGT_MEM_MB = 1024;
const SPDK_PERF_MEM_MB = 512;

const only = values.only?.split(',');
const workloads = only === undefined ? STANDARD : STANDARD.filter((w) => only.includes(w.name));
if (workloads.length === 0)
  throw new Error(`--only: none of ${only} (known: ${STANDARD.map((w) => w.name)})`);

function spdkBin(name: string): string {
  const bin = join(SPDK_DIR ?? '', 'build/bin', name);
  if (!existsSync(bin)) throw new Error(`SPDK_DIR: no ${bin}`);
  return bin;
}

/** DPDK memory options: without hugepages (the default) DPDK needs a fixed heap size */
function spdkMemArgs(mb: number): string[] {
  return values['spdk-hugepages'] ? [] : ['--no-huge', '-s', String(mb)];
}

/** DPDK leaves its runtime directory (file prefix spdk_pid<pid>) behind, even after a clean exit */
function removeDpdkRuntimeDir(pid: number | undefined): void {
  if (pid === undefined) return;
  const base = process.getuid?.() === 0 ? '/var/run' : (process.env.XDG_RUNTIME_DIR ?? '/tmp');
  rmSync(join(base, 'dpdk', `spdk_pid${pid}`), { recursive: true, force: true });
}

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

/** utime + stime (total) and utime (user) of a live process (all its threads), in seconds. */
function cpuSeconds(pid: number): CpuSeconds {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const user = Number(fields[11]) / CLOCK_TICKS;
  return { total: user + Number(fields[12]) / CLOCK_TICKS, user };
}

interface CpuSeconds {
  total: number;
  user: number;
}

interface TargetKind {
  label: string;
  /** the command that runs it on TARGET_CORE, given its RPC socket and config file */
  command(sock: string, config: string): string[];
  ready: RegExp;
  spdk: boolean;
}

interface Target {
  kind: TargetKind;
  proc: ChildProcess;
  port: number;
  dir: string;
}

function nvmfTsTarget(path: string, label: string): TargetKind {
  return {
    label,
    command: (sock, config) => [
      'taskset',
      '-c',
      TARGET_CORE,
      NODE,
      path,
      '-m',
      '0x1',
      '-r',
      sock,
      '--json',
      config,
      ...(values['tgt-arg'] ?? []),
    ],
    ready: /all subsystems initialized/,
    spdk: false,
  };
}

function spdkTarget(): TargetKind {
  const bin = spdkBin('nvmf_tgt');
  return {
    label: 'SPDK',
    // the reactor on TARGET_CORE, and under taskset DPDK's other threads on it too, as Node's are for ours
    command: (sock, config) => [
      'taskset',
      '-c',
      TARGET_CORE,
      bin,
      '-m',
      `[${TARGET_CORE}]`,
      ...spdkMemArgs(SPDK_TGT_MEM_MB),
      '-r',
      sock,
      '--json',
      config,
    ],
    ready: /NVMe\/TCP Target Listening/,
    spdk: true,
  };
}

async function startTarget(kind: TargetKind): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-standard-'));
  const port = await freePort();
  const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
  const config = join(dir, 'config.json');
  // the layout of SPDK's save_config, which both targets load
  writeFileSync(
    config,
    JSON.stringify({
      subsystems: [
        { subsystem: 'bdev', config: [BDEV] },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: TRANSPORT },
            { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Bdev0' } },
            },
            { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address: listen } },
          ],
        },
      ],
    }),
  );
  const [cmd, ...args] = kind.command(join(dir, 'sock'), config);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout?.on('data', (d) => {
    log += d;
  });
  proc.stderr?.on('data', (d) => {
    log += d;
  });
  const t: Target = { kind, proc, port, dir };
  // ready once it says so and the listener accepts (30 s: DPDK's start is slow on a loaded machine)
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) break;
    if (kind.ready.test(log) && (await canConnect(port))) return t;
    await new Promise((r) => setTimeout(r, 50));
  }
  await stopTarget(t);
  throw new Error(`${kind.label} did not start:\n${log}`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

async function stopTarget(t: Target): Promise<void> {
  if (t.proc.exitCode === null && t.proc.signalCode === null) {
    const exited = new Promise((r) => t.proc.once('exit', r));
    // both shut down cleanly on SIGTERM (SPDK's takes a few seconds)
    t.proc.kill('SIGTERM');
    const timer = setTimeout(() => t.proc.kill('SIGKILL'), 20000);
    await exited;
    clearTimeout(timer);
  }
  if (t.kind.spdk) removeDpdkRuntimeDir(t.proc.pid);
  rmSync(t.dir, { recursive: true, force: true });
}

/** what either client reports for one workload; a percentile is null when the client gave none */
interface ClientRow {
  iops: number;
  mib_per_sec: number;
  avg_lat_us: number;
  min_lat_us: number;
  max_lat_us: number;
  p50_us: number | null;
  p99_us: number | null;
  p99_9_us: number | null;
}

interface Sample {
  row: ClientRow;
  /** target CPU µs per I/O (nvmf-perf: over its whole run, warm-up and drain included on both sides
   * of the ratio; spdk_nvme_perf: over its measured window) */
  cpuUsPerIo: number;
  /** the user-space part of it (the rest is the kernel's: copies, TCP, syscalls) */
  userUsPerIo: number;
}

interface NvmfPerfJson {
  total: ClientRow & { errors: number };
  perf_cpu: { user_sec: number; system_sec: number; us_per_io: number };
}

function trid(t: Target): string {
  return `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${t.port} subnqn:${NQN}`;
}

async function measureWithNvmfPerf(t: Target, w: Workload): Promise<Sample> {
  const pid = t.proc.pid as number;
  const mask = `[${CLIENT_CORES.map((_, i) => i).join(',')}]`;
  const args = [
    '-c',
    CLIENT_CORES.join(','),
    NODE,
    PERF,
    '-r',
    trid(t),
    '-q',
    String(w.depth),
    '-o',
    String(w.size),
    '-w',
    w.pattern,
    '-t',
    String(TIME_SEC),
    '-a',
    String(WARMUP_SEC),
    '-c',
    mask,
    '--json',
  ];
  const before = cpuSeconds(pid);
  const r = await new Promise<NvmfPerfJson>((res, rej) => {
    execFile('taskset', args, { timeout: 300000 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`nvmf-perf ${w.name} against ${t.kind.label}: ${stderr || err.message}`));
      else res(JSON.parse(stdout) as NvmfPerfJson);
    });
  });
  const after = cpuSeconds(pid);
  if (r.total.errors > 0) throw new Error(`${t.kind.label} ${w.name}: ${r.total.errors} I/O errors`);
  const completed = ((r.perf_cpu.user_sec + r.perf_cpu.system_sec) * 1e6) / r.perf_cpu.us_per_io;
  return {
    row: r.total,
    cpuUsPerIo: ((after.total - before.total) * 1e6) / completed,
    userUsPerIo: ((after.user - before.user) * 1e6) / completed,
  };
}

function coreMask(cores: number[]): string {
  return `0x${cores.reduce((m, c) => m | (1n << BigInt(c)), 0n).toString(16)}`;
}

/** spdk_nvme_perf pinned to the client cores; the target's CPU is read at the start and the end of
 * its measured window (timed from its "Launching workers" line, its stdout line-buffered) */
function measureWithSpdkPerf(t: Target, w: Workload): Promise<Sample> {
  const pid = t.proc.pid as number;
  const args = [
    '-c',
    CLIENT_CORES.join(','),
    'stdbuf',
    '-oL',
    spdkBin('spdk_nvme_perf'),
    ...spdkMemArgs(SPDK_PERF_MEM_MB),
    '-r',
    trid(t),
    '-q',
    String(w.depth),
    '-o',
    String(w.size),
    '-w',
    w.pattern,
    '-t',
    String(TIME_SEC),
    '-a',
    String(WARMUP_SEC),
    '-c',
    coreMask(CLIENT_CORES),
    '-LL',
  ];
  return new Promise((res, rej) => {
    const proc = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let cpuStart: CpuSeconds | undefined;
    let cpuEnd: CpuSeconds | undefined;
    const timers: NodeJS.Timeout[] = [];
    const killer = setTimeout(() => proc.kill('SIGKILL'), (WARMUP_SEC + TIME_SEC + 120) * 1000);
    proc.stdout.on('data', (d) => {
      const launched = out.includes('Launching workers');
      out += d;
      if (launched || !out.includes('Launching workers')) return;
      timers.push(setTimeout(() => (cpuStart = cpuSeconds(pid)), WARMUP_SEC * 1000));
      timers.push(setTimeout(() => (cpuEnd = cpuSeconds(pid)), (WARMUP_SEC + TIME_SEC) * 1000));
    });
    proc.stderr.on('data', (d) => {
      err += d;
    });
    proc.once('error', rej);
    proc.once('close', (code, signal) => {
      clearTimeout(killer);
      for (const timer of timers) clearTimeout(timer);
      removeDpdkRuntimeDir(proc.pid);
      const what = `spdk_nvme_perf ${w.name} against ${t.kind.label}`;
      // a failed I/O makes it exit non-zero ("errors occurred")
      if (code !== 0) return rej(new Error(`${what}: exit ${code ?? signal}\n${out}${err}`));
      if (cpuStart === undefined) return rej(new Error(`${what}: ended before its measured window`));
      cpuEnd ??= cpuSeconds(pid);
      try {
        const row = parseSpdkPerf(out);
        const ios = row.iops * TIME_SEC;
        res({
          row,
          cpuUsPerIo: ((cpuEnd.total - cpuStart.total) * 1e6) / ios,
          userUsPerIo: ((cpuEnd.user - cpuStart.user) * 1e6) / ios,
        });
      } catch (e) {
        rej(e);
      }
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** the median of a percentile over runs; null when a run has none */
function medianOrNull(xs: (number | null)[]): number | null {
  return xs.some((x) => x === null) ? null : median(xs as number[]);
}

const kinds: TargetKind[] = (values.tgt ?? [OWN_TGT]).map((p, i, all) =>
  nvmfTsTarget(resolve(p), all.length === 1 ? 'nvmf-ts' : `nvmf-ts ${String.fromCharCode(65 + i)}`),
);
if (SPDK_DIR !== undefined) kinds.push(spdkTarget());
if (CLIENT === 'spdk') spdkBin('spdk_nvme_perf');
const measure = CLIENT === 'spdk' ? measureWithSpdkPerf : measureWithNvmfPerf;

const rounds = Number(values.rounds);
const samples = new Map<string, Sample[]>();
for (let round = 0; round < rounds; round++) {
  // one target at a time; the order flips every round so neither always runs first
  const order = round % 2 === 0 ? kinds : [...kinds].reverse();
  for (const kind of order) {
    const t = await startTarget(kind);
    try {
      for (const w of workloads) {
        const s = await measure(t, w);
        const key = `${kind.label}|${w.name}`;
        samples.set(key, [...(samples.get(key) ?? []), s]);
        if (!values.json)
          console.error(
            `round ${round + 1} ${kind.label.padEnd(10)} ${w.name.padEnd(18)} ${Math.round(s.row.iops)} IOPS, ` +
              `avg ${s.row.avg_lat_us.toFixed(1)} us, target ${s.cpuUsPerIo.toFixed(2)} us CPU/IO ` +
              `(user ${s.userUsPerIo.toFixed(2)})`,
          );
      }
    } finally {
      await stopTarget(t);
    }
  }
}

interface Result {
  target: string;
  workload: string;
  client: string;
  runs: number;
  iops: number;
  mib_per_sec: number;
  avg_lat_us: number;
  min_lat_us: number;
  max_lat_us: number;
  p50_us: number | null;
  p99_us: number | null;
  p99_9_us: number | null;
  /** SPDK's is its core's time (it polls), not a cost */
  target_cpu_us_per_io: number;
  /** its user-space part */
  target_user_us_per_io: number;
  /** the best round's IOPS: the host's slow spells (every 128 KiB round either fast or slow, for
   * any target) move the median with which target drew them, not the best */
  best_iops: number;
  /** ours / SPDK's: IOPS, and SPDK's average latency over ours for QD1 (higher is better in both) */
  iops_vs_spdk?: number;
  /** ours / SPDK's best round (issue 13's first figures were best of alternating rounds) */
  best_iops_vs_spdk?: number;
  avg_lat_vs_spdk?: number;
}

const round1 = (x: number) => Number(x.toFixed(1));
const results: Result[] = [];
for (const w of workloads) {
  const spdk = samples.get(`SPDK|${w.name}`);
  for (const kind of kinds) {
    const s = samples.get(`${kind.label}|${w.name}`);
    if (s === undefined) continue;
    const pick = (f: (x: Sample) => number) => median(s.map(f));
    const pickPercentile = (f: (x: Sample) => number | null) => {
      const m = medianOrNull(s.map(f));
      return m === null ? null : round1(m);
    };
    const r: Result = {
      target: kind.label,
      workload: w.name,
      client: CLIENT_LABEL,
      runs: s.length,
      iops: Math.round(pick((x) => x.row.iops)),
      best_iops: Math.round(Math.max(...s.map((x) => x.row.iops))),
      mib_per_sec: round1(pick((x) => x.row.mib_per_sec)),
      avg_lat_us: round1(pick((x) => x.row.avg_lat_us)),
      min_lat_us: round1(pick((x) => x.row.min_lat_us)),
      max_lat_us: round1(pick((x) => x.row.max_lat_us)),
      p50_us: pickPercentile((x) => x.row.p50_us),
      p99_us: pickPercentile((x) => x.row.p99_us),
      p99_9_us: pickPercentile((x) => x.row.p99_9_us),
      target_cpu_us_per_io: Number(pick((x) => x.cpuUsPerIo).toFixed(2)),
      target_user_us_per_io: Number(pick((x) => x.userUsPerIo).toFixed(2)),
    };
    if (spdk !== undefined && !kind.spdk) {
      r.iops_vs_spdk = Number((r.iops / median(spdk.map((x) => x.row.iops))).toFixed(2));
      r.avg_lat_vs_spdk = Number((median(spdk.map((x) => x.row.avg_lat_us)) / r.avg_lat_us).toFixed(2));
      r.best_iops_vs_spdk = Number((r.best_iops / Math.max(...spdk.map((x) => x.row.iops))).toFixed(2));
    }
    results.push(r);
  }
}

if (values.json) console.log(JSON.stringify(results, null, 2));
else {
  const us = (x: number | null) => (x === null ? 'n/a' : x.toFixed(1));
  const cols: [string, (r: Result) => string][] = [
    ['workload', (r) => r.workload],
    ['target', (r) => r.target],
    ['IOPS', (r) => String(r.iops)],
    ['MiB/s', (r) => r.mib_per_sec.toFixed(1)],
    ['avg us', (r) => r.avg_lat_us.toFixed(1)],
    ['min', (r) => r.min_lat_us.toFixed(1)],
    ['max', (r) => r.max_lat_us.toFixed(1)],
    ['p50', (r) => us(r.p50_us)],
    ['p99', (r) => us(r.p99_us)],
    ['p99.9', (r) => us(r.p99_9_us)],
    ['tgt CPU us/IO', (r) => r.target_cpu_us_per_io.toFixed(2)],
    ['user', (r) => r.target_user_us_per_io.toFixed(2)],
    ['IOPS/SPDK', (r) => (r.iops_vs_spdk === undefined ? '' : `${r.iops_vs_spdk}x`)],
    ['lat SPDK/ours', (r) => (r.avg_lat_vs_spdk === undefined ? '' : `${r.avg_lat_vs_spdk}x`)],
    ['best IOPS', (r) => String(r.best_iops)],
    ['best/SPDK', (r) => (r.best_iops_vs_spdk === undefined ? '' : `${r.best_iops_vs_spdk}x`)],
  ];
  const table = [cols.map((c) => c[0]), ...results.map((r) => cols.map((c) => c[1](r)))];
  const widths = cols.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const spdkMemory =
    SPDK_DIR === undefined ? '' : `; SPDK ${values['spdk-hugepages'] ? 'on hugepages' : 'with --no-huge'}`;
  console.log(
    `target on core ${TARGET_CORE}, ${CLIENT_LABEL} on ${CLIENT_CORES.join(',')}, ${values.bdev} bdev, ` +
      `${values.time} s per workload (+${values.warmup} s warm-up), median of ${rounds} round(s)${spdkMemory}`,
  );
  if (SPDK_DIR !== undefined)
    console.log(
      'SPDK polls its core: its CPU per I/O is the core over its I/Os; the ratios are IOPS and latency',
    );
  for (const row of table) console.log(row.map((c, i) => c.padStart(widths[i])).join('  '));
}
