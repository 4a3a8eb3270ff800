// Our nvmf_tgt as a child process for host-library tests: started from a JSON
// config on 127.0.0.1, an RPC client on its socket, stopped (or killed) by pid.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RpcClient } from '../../../src/jsonrpc/index.ts';
import { launchTarget } from '../../lib/index.ts';

export { freePort } from '../../lib/index.ts';

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
  private output: () => string = () => '';

  constructor(config: unknown) {
    this.dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-host-'));
    this.config = config;
  }

  /** Start (or start again after kill) and wait for "all subsystems initialized" (bounded). */
  async start(cpumask = '0x1'): Promise<void> {
    const configPath = join(this.dir, 'config.json');
    writeFileSync(configPath, JSON.stringify(this.config));
    const rpcPath = join(this.dir, 'rpc.sock');
    rmSync(rpcPath, { force: true });
    const launched = await launchTarget({ cores: cpumask, rpcPath, configPath, startTimeoutMs: 30_000 });
    this.child = launched.child;
    this.rpc = launched.rpc;
    this.output = launched.log;
  }

  /** what the running (or last) target wrote */
  get log(): string {
    return this.output();
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
