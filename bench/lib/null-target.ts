// What the benches that measure against a target child process share (perf-null.ts,
// target-cpu.ts, metrics-cost.ts, target-instructions.ts): an nvmf_tgt of any checkout (under a
// wrapper such as valgrind if asked) with null bdevs (they do no work per I/O) exported as the
// namespaces of one subsystem on a free 127.0.0.1 port, a process's CPU time from /proc, and a
// run of this checkout's nvmf-perf --json.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/lib/child-target.ts';

export const NULL_NQN = 'nqn.2016-06.io.spdk:null';
const NODE = process.execPath;
/** this checkout's nvmf_tgt */
export const OWN_TGT = fileURLToPath(new URL('../../bin/nvmf_tgt.mjs', import.meta.url));
const PERF = fileURLToPath(new URL('../../bin/nvmf-perf.mjs', import.meta.url));
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** utime + stime of a live process (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export interface NullTargetOptions {
  /** the checkout's bin/nvmf_tgt.mjs (default this checkout's) */
  path?: string;
  /** core mask (-m) */
  cores: string;
  /** more nvmf_tgt arguments */
  args?: string[];
  /** null bdevs Null0… of 4 KiB blocks, namespaces 1… of NULL_NQN (default 1) */
  namespaces?: number;
  /** blocks of each (default 262144: 1 GiB) */
  numBlocks?: number;
  /** a command the target runs under (e.g. valgrind and its options), node its argument */
  wrapper?: string[];
  /** node options before the target's script */
  nodeArgs?: string[];
  /** how long it may take to start (default 10 s) */
  startTimeoutMs?: number;
}

export interface NullTarget {
  path: string;
  proc: ChildProcess;
  port: number;
  /** its transport ID for nvmf-perf and the host library */
  trid: string;
  /** the temporary folder of its config and RPC socket */
  dir: string;
  /** what it printed so far */
  log(): string;
}

/** Starts the target; resolves once its subsystems are initialized (startTimeoutMs at most). */
export async function startNullTarget(o: NullTargetOptions): Promise<NullTarget> {
  const path = o.path ?? OWN_TGT;
  const dir = mkdtempSync(join(tmpdir(), 'null-target-'));
  const port = await freePort();
  const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
  const bdevs = Array.from({ length: o.namespaces ?? 1 }, (_v, i) => `Null${i}`);
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      subsystems: [
        {
          subsystem: 'bdev',
          config: bdevs.map((name) => ({
            method: 'bdev_null_create',
            params: { name, num_blocks: o.numBlocks ?? 262144, block_size: 4096 },
          })),
        },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            { method: 'nvmf_create_subsystem', params: { nqn: NULL_NQN, allow_any_host: true } },
            ...bdevs.map((name, i) => ({
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: NULL_NQN, namespace: { nsid: i + 1, bdev_name: name } },
            })),
            { method: 'nvmf_subsystem_add_listener', params: { nqn: NULL_NQN, listen_address: listen } },
          ],
        },
      ],
    }),
  );
  let log = '';
  const command = [
    ...(o.wrapper ?? []),
    NODE,
    ...(o.nodeArgs ?? []),
    path,
    '-m',
    o.cores,
    '-r',
    join(dir, 'sock'),
    '--json',
    join(dir, 'config.json'),
    ...(o.args ?? []),
  ];
  const proc = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.on('data', (d) => {
    log += d;
  });
  proc.stderr?.on('data', (d) => {
    log += d;
  });
  const deadline = Date.now() + (o.startTimeoutMs ?? 10000);
  while (Date.now() < deadline && !/all subsystems initialized/.test(log) && proc.exitCode === null)
    await new Promise((r) => setTimeout(r, 50));
  if (!/all subsystems initialized/.test(log)) {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`target ${path} did not start:\n${log}`);
  }
  const trid = `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NULL_NQN}`;
  return { path, proc, port, trid, dir, log: () => log };
}

/** SIGTERM (SIGKILL after `killAfterMs`, default 10 s), then its folder removed. */
export async function stopNullTarget(t: NullTarget, killAfterMs = 10000): Promise<void> {
  const exited = new Promise((r) => t.proc.once('exit', r));
  t.proc.kill('SIGTERM');
  const timer = setTimeout(() => t.proc.kill('SIGKILL'), killAfterMs);
  await exited;
  clearTimeout(timer);
  rmSync(t.dir, { recursive: true, force: true });
}

/** What the benches read of nvmf-perf --json. */
export interface PerfJson {
  total: { iops: number; mib_per_sec: number; avg_lat_us: number; p99_us: number; errors: number };
  perf_cpu: { user_sec: number; system_sec: number; wall_sec: number; us_per_io: number };
}

/** One run of this checkout's nvmf-perf with `args` and --json (`timeoutMs`, default 2 min, at most). */
export function runPerf(args: string[], timeoutMs = 120000): Promise<PerfJson> {
  return new Promise((resolve, reject) => {
    execFile(NODE, [PERF, ...args, '--json'], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nvmf-perf ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout) as PerfJson);
    });
  });
}
