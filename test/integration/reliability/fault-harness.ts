// Shared by the fault-* and load-* tests: an nvmf_tgt child process (its CPU
// apart from the test's), its RPC client, and the leak counters it exposes.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcClient } from '../../../src/jsonrpc/index.ts';

export const NODE = new URL('../../../node_modules/.bin/node', import.meta.url).pathname;
export const TGT = new URL('../../../bin/nvmf_tgt.mjs', import.meta.url).pathname;

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
  rpc!: RpcClient;
  log = '';
  readonly ownsDir: boolean;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(dir: string, child: ChildProcess, ownsDir: boolean) {
    this.dir = dir;
    this.child = child;
    this.ownsDir = ownsDir;
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.stdout?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
  }

  static async start(o: StartOptions = {}): Promise<Target> {
    const ownsDir = o.dir === undefined;
    const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'nvmf-ts-fault-'));
    const sock = join(dir, 'rpc.sock');
    const args = [...(o.nodeArgs ?? []), TGT, '-m', o.mask ?? '0x1', '-r', sock];
    if (o.configFile !== undefined) args.push('--json', o.configFile);
    else if (o.config !== undefined) {
      const f = join(dir, 'config.json');
      writeFileSync(f, JSON.stringify(o.config));
      args.push('--json', f);
    }
    const child = spawn(NODE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const t = new Target(dir, child, ownsDir);
    const deadline = Date.now() + 20_000;
    while (!t.log.includes('all subsystems initialized')) {
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill('SIGKILL');
        throw new Error(`nvmf_tgt did not start:\n${t.log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    t.rpc = await RpcClient.connect(sock, 5000);
    return t;
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
    this.rpc?.close();
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
