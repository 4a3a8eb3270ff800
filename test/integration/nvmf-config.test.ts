// save_config → --json → save_config gives the same nvmf section (replay of the
// default config on a free port).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RpcClient } from '../../src/jsonrpc/index.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const TGT = new URL('../../bin/nvmf_tgt.mjs', import.meta.url).pathname;
const DEFAULT_CONFIG = new URL('../../config/default.json', import.meta.url).pathname;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Start nvmf_tgt with `config`, return its save_config, stop it. */
async function saveConfigOf(
  dir: string,
  config: string,
): Promise<{ subsystems: { subsystem: string; config: unknown[] }[] }> {
  const sock = join(dir, 'rpc.sock');
  const child = spawn(NODE, [TGT, '-m', '0x3', '-r', sock, '--json', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d: Buffer) => {
    log += d.toString();
  });
  child.stdout.on('data', (d: Buffer) => {
    log += d.toString();
  });
  try {
    const deadline = Date.now() + 20_000;
    while (!log.includes('all subsystems initialized')) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`nvmf_tgt did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const rpc = await RpcClient.connect(sock, 5000);
    try {
      return (await rpc.call('save_config')) as { subsystems: { subsystem: string; config: unknown[] }[] };
    } finally {
      rpc.close();
    }
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

test('default config: save_config → --json → save_config keeps the nvmf section', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-cfg-'));
  try {
    const port = String(await freePort());
    const first = join(dir, 'first.json');
    writeFileSync(first, readFileSync(DEFAULT_CONFIG, 'utf8').replaceAll('"4420"', `"${port}"`));
    const a = await saveConfigOf(dir, first);
    const nvmfA = a.subsystems.find((s) => s.subsystem === 'nvmf');
    assert.ok(nvmfA);
    const methods = (nvmfA.config as { method: string }[]).map((e) => e.method);
    assert.deepEqual(methods, [
      'nvmf_set_config',
      'nvmf_set_max_subsystems',
      'nvmf_set_crdt',
      'nvmf_create_transport',
      'nvmf_create_subsystem',
      'nvmf_subsystem_add_ns',
      'nvmf_subsystem_add_listener',
      'nvmf_subsystem_add_listener',
    ]);
    const second = join(dir, 'second.json');
    writeFileSync(second, JSON.stringify(a));
    const b = await saveConfigOf(dir, second);
    assert.deepEqual(
      b.subsystems.find((s) => s.subsystem === 'nvmf'),
      nvmfA,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
