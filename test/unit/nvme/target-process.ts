// Our nvmf_tgt as a child process for host-library tests: started from a JSON
// config on 127.0.0.1, an RPC client on its socket, stopped (or killed) by pid.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcClient } from '../../../src/jsonrpc/index.ts';

const NODE = new URL('../../../node_modules/.bin/node', import.meta.url).pathname;
const TGT = new URL('../../../bin/nvmf_tgt.mjs', import.meta.url).pathname;

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

export function listenParams(nqn: string, port: number | string) {
  return {
    method: 'nvmf_subsystem_add_listener',
    params: {
      nqn,
      listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
    },
  };
}

export class TargetProcess {
  readonly dir: string;
  readonly config: unknown;
  private child: ChildProcess | null = null;
  rpc: RpcClient | null = null;
  log = '';

  constructor(config: unknown) {
    this.dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-host-'));
    this.config = config;
  }

  /** Start (or start again after kill) and wait for "all subsystems initialized" (bounded). */
  async start(cpumask = '0x1'): Promise<void> {
    writeFileSync(join(this.dir, 'config.json'), JSON.stringify(this.config));
    const sock = join(this.dir, 'rpc.sock');
    rmSync(sock, { force: true });
    this.log = '';
    const child = spawn(NODE, [TGT, '-m', cpumask, '-r', sock, '--json', join(this.dir, 'config.json')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    const deadline = Date.now() + 30_000;
    while (!this.log.includes('all subsystems initialized')) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`nvmf_tgt did not start:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    this.rpc = await RpcClient.connect(sock, 5000);
  }

  api(): RpcClient {
    if (this.rpc === null) throw new Error('target not started');
    return this.rpc;
  }

  /** SIGKILL: the target vanishes without closing anything politely. */
  async kill(): Promise<void> {
    await this.end('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.end('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    this.rpc?.close();
    this.rpc = null;
    const child = this.child;
    this.child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
