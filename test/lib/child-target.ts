// A real nvmf_tgt child process for tests: `launchTarget` spawns one and waits
// for it (every test harness that starts a target goes through it), and
// `startChildTarget` wraps it with a default config (malloc bdev exported as a
// namespace of cnode1 on an ephemeral port), its log, liveness and memory.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcClient } from '../../src/jsonrpc/index.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const TGT = new URL('../../bin/nvmf_tgt.mjs', import.meta.url).pathname;

export const TEST_NQN = 'nqn.2016-06.io.spdk:cnode1';
/** the malloc bdev behind namespace 1 of TEST_NQN in the default config */
export const TEST_BDEV = 'Malloc0';
export const TEST_BLOCK_SIZE = 512;
export const TEST_NUM_BLOCKS = 32768;

export interface ChildTargetOptions {
  /** core mask (default 0x3: two reactors, two poll groups) */
  cores?: string;
  /** full config to load instead of the default (the listener port is filled in where trsvcid is '$PORT') */
  config?: unknown;
  /** extra nvmf_create_transport params for the default config */
  transport?: Record<string, unknown>;
  /** extra command-line arguments */
  args?: string[];
  /** ms to wait for start-up (default 30 s: the machine is shared) */
  startTimeoutMs?: number;
}

export interface ChildTarget {
  /** TCP port of the listener (as a string, like trsvcid) */
  port: string;
  rpcPath: string;
  rpc: RpcClient;
  child: ChildProcess;
  pid: number;
  /** everything the target wrote to stdout/stderr so far */
  log(): string;
  /** the process is still running */
  alive(): boolean;
  /** log lines of exceptions that escaped a message handler or poller (must stay empty) */
  uncaughtErrors(): string[];
  /** resident set size of the target process in bytes (0 when gone) */
  rssBytes(): number;
  /** SIGTERM, wait (bounded), SIGKILL if needed, remove the temp dir; returns the exit code */
  stop(): Promise<number | null>;
}

export interface LaunchOptions {
  /** core mask */
  cores: string;
  rpcPath: string;
  /** --json config file */
  configPath?: string;
  /** node flags before the script, e.g. --expose-gc */
  nodeArgs?: string[];
  /** extra nvmf_tgt arguments */
  args?: string[];
  /** ms to wait for start-up */
  startTimeoutMs: number;
}

export interface LaunchedTarget {
  child: ChildProcess;
  rpc: RpcClient;
  /** everything the target wrote to stdout/stderr so far */
  log(): string;
}

/**
 * Spawn nvmf_tgt, collect its output, wait (bounded) for "all subsystems
 * initialized" and connect an RPC client. On failure the child is killed and
 * the error carries its log.
 */
export async function launchTarget(o: LaunchOptions): Promise<LaunchedTarget> {
  const args = [...(o.nodeArgs ?? []), TGT, '-m', o.cores, '-r', o.rpcPath];
  if (o.configPath !== undefined) args.push('--json', o.configPath);
  const child = spawn(NODE, [...args, ...(o.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logText = '';
  const collect = (d: Buffer) => {
    logText += d.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const deadline = Date.now() + o.startTimeoutMs;
  while (!logText.includes('all subsystems initialized')) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`nvmf_tgt did not start:\n${logText}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const rpc = await RpcClient.connect(o.rpcPath, 30_000);
  return { child, rpc, log: () => logText };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** The default configuration: Malloc0 (16 MiB, 512-byte blocks) as nsid 1 of cnode1, any host. */
export function defaultConfig(port: string, transport: Record<string, unknown> = {}): unknown {
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          {
            method: 'bdev_malloc_create',
            params: { name: TEST_BDEV, num_blocks: TEST_NUM_BLOCKS, block_size: TEST_BLOCK_SIZE },
          },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP', ...transport } },
          {
            method: 'nvmf_create_subsystem',
            params: { nqn: TEST_NQN, allow_any_host: true, serial_number: 'SPDK00000000000001' },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: TEST_NQN, namespace: { nsid: 1, bdev_name: TEST_BDEV } },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: {
              nqn: TEST_NQN,
              listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: port },
            },
          },
        ],
      },
    ],
  };
}

/** Start nvmf_tgt and wait until its subsystems are initialized and its RPC socket answers. */
export async function startChildTarget(opts: ChildTargetOptions = {}): Promise<ChildTarget> {
  const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-rel-'));
  const port = String(await freePort());
  const config =
    opts.config === undefined
      ? defaultConfig(port, opts.transport)
      : JSON.parse(JSON.stringify(opts.config).replaceAll('"$PORT"', JSON.stringify(port)));
  const cfgPath = join(dir, 'config.json');
  writeFileSync(cfgPath, JSON.stringify(config));
  const rpcPath = join(dir, 'rpc.sock');
  let launched: LaunchedTarget;
  try {
    launched = await launchTarget({
      cores: opts.cores ?? '0x3',
      rpcPath,
      configPath: cfgPath,
      args: opts.args,
      startTimeoutMs: opts.startTimeoutMs ?? 30_000,
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const { child, rpc, log } = launched;
  // never leave a target behind when this process ends without stopping it
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const cleanup = () => {
    process.off('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true });
  };
  const pid = child.pid ?? 0;
  return {
    port,
    rpcPath,
    rpc,
    child,
    pid,
    log,
    alive: () => child.exitCode === null && child.signalCode === null,
    uncaughtErrors: () =>
      log()
        .split('\n')
        .filter((l) => /uncaught error|Unhandled|uncaughtException/i.test(l)),
    rssBytes() {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
        return m ? Number(m[1]) * 1024 : 0;
      } catch {
        return 0;
      }
    },
    async stop() {
      rpc.close();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
        }
      }
      cleanup();
      return child.exitCode;
    },
  };
}
