// A real nvmf_tgt child process for tests. `spawnTarget` starts one and
// collects its output (for tests of start-up itself: bad arguments, exit
// codes, --wait-for-rpc); `ChildTarget.start` waits until its subsystems are
// initialized and its RPC socket answers, with a configuration (by default a
// malloc bdev exported as a namespace of cnode1 on an ephemeral port), and
// offers its log, liveness, memory and the nvmf_get_stats counters. Every test
// that runs a target goes through one of the two.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcClient } from '../../src/jsonrpc/index.ts';
import { waitFor, waitForValue } from './wait.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const TGT = new URL('../../bin/nvmf_tgt.mjs', import.meta.url).pathname;

export const TEST_NQN = 'nqn.2016-06.io.spdk:cnode1';
/** the malloc bdev behind namespace 1 of TEST_NQN in the default config */
export const TEST_BDEV = 'Malloc0';
export const TEST_BLOCK_SIZE = 512;
export const TEST_NUM_BLOCKS = 32768;

export interface TargetExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** core mask (-m); left out when undefined */
  cores?: string;
  /** RPC socket path (-r) */
  rpcPath: string;
  /** --json config file */
  configPath?: string;
  /** node flags before the script, e.g. --expose-gc */
  nodeArgs?: string[];
  /** extra nvmf_tgt arguments */
  args?: string[];
  /** environment (default: this process's) */
  env?: NodeJS.ProcessEnv;
}

export interface SpawnedTarget {
  child: ChildProcess;
  rpcPath: string;
  /** resolves when the process has exited */
  exit: Promise<TargetExit>;
  /** everything the target wrote to stdout/stderr so far */
  log(): string;
  /** the process is still running */
  alive(): boolean;
  /** wait (bounded) until the log holds `text`; fails with the log if the process exits first */
  waitForLog(text: string, timeoutMs: number): Promise<void>;
  /** an RPC client once the socket answers (bounded); fails with the log if the process exits first */
  connectRpc(timeoutMs: number, callTimeoutMs?: number): Promise<RpcClient>;
  /** send `signal`, wait up to `timeoutMs` for the exit, then SIGKILL; resolves with the exit */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<TargetExit>;
}

/** Spawn nvmf_tgt and collect its output; nothing is awaited. */
export function spawnTarget(o: SpawnOptions): SpawnedTarget {
  const args = [...(o.nodeArgs ?? []), TGT];
  if (o.cores !== undefined) args.push('-m', o.cores);
  args.push('-r', o.rpcPath);
  if (o.configPath !== undefined) args.push('--json', o.configPath);
  const child = spawn(NODE, [...args, ...(o.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'], env: o.env });
  let logText = '';
  const collect = (d: Buffer) => {
    logText += d.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exit = new Promise<TargetExit>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const alive = () => child.exitCode === null && child.signalCode === null;
  const exitedEarly = (what: string) =>
    new Error(
      `nvmf_tgt exited (code ${child.exitCode}, signal ${child.signalCode}) before ${what}:\n${logText}`,
    );
  return {
    child,
    rpcPath: o.rpcPath,
    exit,
    log: () => logText,
    alive,
    async waitForLog(text, timeoutMs) {
      await waitFor(
        `"${text}" from nvmf_tgt`,
        () => {
          if (logText.includes(text)) return true;
          if (!alive()) throw exitedEarly(`it logged "${text}"`);
          return false;
        },
        { timeoutMs, detail: () => logText },
      );
    },
    connectRpc(timeoutMs, callTimeoutMs = 30_000) {
      return waitForValue(
        'the RPC socket of nvmf_tgt to answer',
        async () => {
          if (!alive()) throw exitedEarly('its RPC socket answered');
          return RpcClient.connect(o.rpcPath, callTimeoutMs).catch(() => undefined);
        },
        { timeoutMs, intervalMs: 50, detail: () => logText },
      );
    },
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (alive()) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exit;
        clearTimeout(timer);
      }
      return exit;
    },
  };
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

/** The config entry that adds a TCP listener on 127.0.0.1:`port` to subsystem `nqn`. */
export function listenerEntry(nqn: string, port: number | string) {
  return {
    method: 'nvmf_subsystem_add_listener',
    params: {
      nqn,
      listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
    },
  };
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
          listenerEntry(TEST_NQN, port),
        ],
      },
    ],
  };
}

/** One poll group in nvmf_get_stats: the counters the tests read. */
export interface PollGroupStats {
  name: string;
  current_admin_qpairs: number;
  current_io_qpairs: number;
  current_qpairs: number;
  controllers: number;
  pending_bdev_io: number;
  outstanding_requests: number;
  queued_requests: number;
  completed_nvme_io: number;
  memory: { heap_used: number; heap_total: number; rss: number; external: number; array_buffers: number };
  handles: number;
}

type Counter = {
  [K in keyof PollGroupStats]: PollGroupStats[K] extends number ? K : never;
}[keyof PollGroupStats];

export interface ChildTargetOptions {
  /** core mask (default 0x3: two reactors, two poll groups) */
  cores?: string;
  /**
   * the configuration to load (a '$PORT' trsvcid becomes `port`); default: defaultConfig;
   * null: none at all
   */
  config?: unknown;
  /** a config file to start from instead (e.g. a save_config output) */
  configFile?: string;
  /** extra nvmf_create_transport params for the default config */
  transport?: Record<string, unknown>;
  /** run in this directory (a restart with the same files); stop() leaves it */
  dir?: string;
  /** node flags before the script, e.g. --expose-gc */
  nodeArgs?: string[];
  /** extra command-line arguments */
  args?: string[];
  /** environment (default: this process's) */
  env?: NodeJS.ProcessEnv;
  /** ms to wait for start-up (default 30 s: the machine is shared) */
  startTimeoutMs?: number;
}

/** A running nvmf_tgt: started, initialized, its RPC client connected. */
export class ChildTarget {
  /** the port a '$PORT' in the configuration became (the default config's listener) */
  readonly port: string;
  readonly dir: string;
  readonly rpcPath: string;
  rpc!: RpcClient;
  child!: ChildProcess;
  pid = 0;
  /** resolves when the current process has exited */
  exit!: Promise<TargetExit>;
  private spawned!: SpawnedTarget;
  private readonly opts: ChildTargetOptions;
  private readonly configPath: string | undefined;
  private readonly ownsDir: boolean;
  private readonly killOnExit = () => this.child.kill('SIGKILL');

  private constructor(o: ChildTargetOptions, port: string) {
    this.opts = o;
    this.port = port;
    this.ownsDir = o.dir === undefined;
    this.dir = o.dir ?? mkdtempSync(join(tmpdir(), 'nvmf-ts-tgt-'));
    this.rpcPath = join(this.dir, 'rpc.sock');
    this.configPath = o.configFile;
    if (this.configPath === undefined && o.config !== null) {
      const config = o.config === undefined ? defaultConfig(port, o.transport) : o.config;
      this.configPath = join(this.dir, 'config.json');
      writeFileSync(this.configPath, JSON.stringify(config).replaceAll('"$PORT"', JSON.stringify(port)));
    }
  }

  /** Start nvmf_tgt and wait until its subsystems are initialized and its RPC socket answers. */
  static async start(o: ChildTargetOptions = {}): Promise<ChildTarget> {
    const t = new ChildTarget(o, String(await freePort()));
    try {
      await t.launch();
    } catch (e) {
      if (t.ownsDir) rmSync(t.dir, { recursive: true, force: true });
      throw e;
    }
    return t;
  }

  private async launch(): Promise<void> {
    const o = this.opts;
    const s = spawnTarget({
      cores: o.cores ?? '0x3',
      rpcPath: this.rpcPath,
      configPath: this.configPath,
      nodeArgs: o.nodeArgs,
      args: o.args,
      env: o.env,
    });
    this.spawned = s;
    this.child = s.child;
    this.pid = s.child.pid ?? 0;
    this.exit = s.exit;
    // never leave a target behind when this process ends without stopping it
    process.once('exit', this.killOnExit);
    try {
      const timeoutMs = o.startTimeoutMs ?? 30_000;
      await s.waitForLog('all subsystems initialized', timeoutMs);
      this.rpc = await s.connectRpc(timeoutMs);
    } catch (e) {
      await s.stop('SIGKILL');
      process.off('exit', this.killOnExit);
      throw e;
    }
  }

  // bound: tests hand these over as plain functions (e.g. a fuzz property's liveness check)

  /** everything the current process wrote to stdout/stderr so far */
  readonly log = (): string => this.spawned.log();

  /** the process is still running */
  readonly alive = (): boolean => this.spawned.alive();

  /** log lines of exceptions that escaped a message handler or poller (must stay empty) */
  readonly uncaughtErrors = (): string[] =>
    this.log()
      .split('\n')
      .filter((l) => /uncaught error|Unhandled|uncaughtException/i.test(l));

  /** resident set size of the target process in bytes (0 when gone) */
  readonly rssBytes = (): number => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'latin1'));
      return m ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  };

  call<T = unknown>(method: string, params?: unknown): Promise<T> {
    return this.rpc.call(method, params) as Promise<T>;
  }

  async pollGroups(): Promise<PollGroupStats[]> {
    return (await this.call<{ poll_groups: PollGroupStats[] }>('nvmf_get_stats')).poll_groups;
  }

  /** One nvmf_get_stats counter summed over every poll group. */
  async total(counter: Counter): Promise<number> {
    return (await this.pollGroups()).reduce((n, g) => n + g[counter], 0);
  }

  /** Wait until the leak counters are all back to zero (bounded); returns the last sample. */
  async settled(timeoutMs = 15_000): Promise<PollGroupStats[]> {
    let gs: PollGroupStats[] = [];
    await waitFor(
      'the leak counters back to zero',
      async () => {
        gs = await this.pollGroups();
        return !gs.some(
          (g) =>
            g.current_qpairs !== 0 ||
            g.current_admin_qpairs !== 0 ||
            g.current_io_qpairs !== 0 ||
            g.controllers !== 0 ||
            g.pending_bdev_io !== 0 ||
            g.outstanding_requests !== 0 ||
            g.queued_requests !== 0,
        );
      },
      { timeoutMs, intervalMs: 50, detail: () => `leak counters not back to zero: ${JSON.stringify(gs)}` },
    );
    return gs;
  }

  /**
   * Signal the target and wait for its exit (SIGKILL after `timeoutMs`). The directory stays:
   * restart() can follow.
   */
  async kill(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 10_000): Promise<TargetExit> {
    this.rpc.close();
    const r = await this.spawned.stop(signal, timeoutMs);
    process.off('exit', this.killOnExit);
    return r;
  }

  /** Start again (after kill()) in the same directory with the same configuration. */
  async restart(): Promise<void> {
    if (this.alive()) throw new Error('the target is still running');
    await this.launch();
  }

  /** SIGTERM, wait (bounded), SIGKILL if needed, remove the directory it made; the exit code. */
  async stop(): Promise<number | null> {
    const r = await this.kill('SIGTERM');
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
    return r.code;
  }

  /** SIGKILL and remove the directory it made: the quick end of a test's target. */
  async dispose(): Promise<void> {
    await this.kill('SIGKILL');
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Start nvmf_tgt and wait until its subsystems are initialized and its RPC socket answers. */
export function startChildTarget(opts: ChildTargetOptions = {}): Promise<ChildTarget> {
  return ChildTarget.start(opts);
}
