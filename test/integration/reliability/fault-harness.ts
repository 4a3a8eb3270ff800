// Shared by the fault-* and load-* tests: an nvmf_tgt child process (its CPU
// apart from the test's), its RPC client, and the leak counters it exposes.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RpcClient } from '../../../src/jsonrpc/index.ts';
import { type LaunchedTarget, launchTarget } from '../../lib/index.ts';

export { freePort } from '../../lib/index.ts';

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

export interface StartOptions {
  /** core mask, default 0x1 */
  mask?: string;
  /** JSON config (SPDK's save_config shape) */
  config?: unknown;
  /** a config file to start from instead (e.g. a save_config output) */
  configFile?: string;
  /** reuse this directory (restart with the same files) */
  dir?: string;
  /** node flags before the script, e.g. --expose-gc */
  nodeArgs?: string[];
}

export class Target {
  readonly dir: string;
  readonly child: ChildProcess;
  readonly rpc: RpcClient;
  readonly ownsDir: boolean;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly output: () => string;

  private constructor(dir: string, launched: LaunchedTarget, ownsDir: boolean) {
    this.dir = dir;
    this.child = launched.child;
    this.rpc = launched.rpc;
    this.output = launched.log;
    this.ownsDir = ownsDir;
    this.exit = new Promise((resolve) =>
      launched.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  /** everything the target wrote so far */
  get log(): string {
    return this.output();
  }

  static async start(o: StartOptions = {}): Promise<Target> {
    const ownsDir = o.dir === undefined;
    const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'nvmf-ts-fault-'));
    let configPath = o.configFile;
    if (configPath === undefined && o.config !== undefined) {
      configPath = join(dir, 'config.json');
      writeFileSync(configPath, JSON.stringify(o.config));
    }
    const launched = await launchTarget({
      cores: o.mask ?? '0x1',
      rpcPath: join(dir, 'rpc.sock'),
      configPath,
      nodeArgs: o.nodeArgs,
      startTimeoutMs: 20_000,
    });
    return new Target(dir, launched, ownsDir);
  }

  call<T = unknown>(method: string, params?: unknown): Promise<T> {
    return this.rpc.call(method, params) as Promise<T>;
  }

  async pollGroups(): Promise<PollGroupStats[]> {
    const s = await this.call<{ poll_groups: PollGroupStats[] }>('nvmf_get_stats');
    return s.poll_groups;
  }

  /** Sum of one counter over every poll group. */
  async total(field: keyof PollGroupStats): Promise<number> {
    let n = 0;
    for (const g of await this.pollGroups()) n += g[field] as number;
    return n;
  }

  /** Wait until the leak counters are all back to zero (bounded); returns the last sample. */
  async settled(timeoutMs = 15_000): Promise<PollGroupStats[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const gs = await this.pollGroups();
      const busy = gs.some(
        (g) =>
          g.current_qpairs !== 0 ||
          g.current_admin_qpairs !== 0 ||
          g.current_io_qpairs !== 0 ||
          g.controllers !== 0 ||
          g.pending_bdev_io !== 0 ||
          g.outstanding_requests !== 0 ||
          g.queued_requests !== 0,
      );
      if (!busy) return gs;
      if (Date.now() > deadline) assert.fail(`leak counters not back to zero: ${JSON.stringify(gs)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Signal the target and wait for its exit (SIGKILL after `timeoutMs`). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000) {
    this.rpc.close();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      const r = await this.exit;
      clearTimeout(timer);
      return r;
    }
    return this.exit;
  }

  /** Stop (if running) and remove the directory this target created. */
  async dispose(): Promise<void> {
    await this.stop('SIGKILL');
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A deterministic block pattern: `seed` identifies the write. */
export function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i += 4) b.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i);
  return b;
}

export function listener(nqn: string, port: number) {
  return {
    method: 'nvmf_subsystem_add_listener',
    params: {
      nqn,
      listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
    },
  };
}

/** A config with one TCP transport and subsystem `nqn` (any host) exporting bdevs as nsid 1.., on `port`. */
export function simpleConfig(
  port: number,
  nqn: string,
  bdevs: Array<{ method: string; params: Record<string, unknown> }>,
  transport: Record<string, unknown> = {},
  /** bdev names exported, in nsid order (default: every bdev in `bdevs`) */
  exported: string[] = bdevs.map((b) => String(b.params.name)),
) {
  return {
    subsystems: [
      { subsystem: 'bdev', config: bdevs },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP', min_kato: 1000, ...transport } },
          {
            method: 'nvmf_create_subsystem',
            params: { nqn, allow_any_host: true, serial_number: 'SPDKFAULT001', max_namespaces: 32 },
          },
          ...exported.map((name) => ({
            method: 'nvmf_subsystem_add_ns',
            params: { nqn, namespace: { bdev_name: name } },
          })),
          listener(nqn, port),
        ],
      },
    ],
  };
}
