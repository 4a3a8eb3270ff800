// The example module loaded by configuration: NVMF_TS_BDEV_MODULES names its
// file; nvmf_tgt registers it in every realm, nvmf-rpc knows its methods,
// save_config writes it and --json brings it back.

import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { RpcClient } from '../../src/jsonrpc/index.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const TGT = new URL('../../bin/nvmf_tgt.mjs', import.meta.url).pathname;
const CLI = new URL('../../bin/nvmf-rpc.mjs', import.meta.url).pathname;
const MODULE = new URL('../../examples/sparse-bdev/sparse.ts', import.meta.url).pathname;
const env = { ...process.env, NVMF_TS_BDEV_MODULES: MODULE };
const dir = mkdtempSync(join(tmpdir(), 'nvmf-bdev-ex-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function start(sock: string, extra: string[]): { proc: ChildProcess; exited: Promise<number | null> } {
  const proc = spawn(NODE, [TGT, '-m', '0x3', '-r', sock, ...extra], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return { proc, exited: new Promise((r) => proc.once('exit', (c) => r(c))) };
}

async function connect(sock: string): Promise<RpcClient> {
  const end = Date.now() + 15_000;
  for (;;) {
    try {
      const c = await RpcClient.connect(sock, 5000);
      await c.call('framework_wait_init');
      return c;
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test('example sparse module: loaded by configuration, created by the CLI, saved and replayed', async () => {
  const sock = join(dir, 'a.sock');
  const t = start(sock, []);
  try {
    const c = await connect(sock);
    const r = await promisify(execFile)(
      NODE,
      [CLI, '-s', sock, 'bdev_sparse_create', '-b', 'Sparse0', '16384', '4096'],
      {
        env,
      },
    );
    assert.equal(r.stdout.trim(), 'Sparse0');
    const [b] = (await c.call('bdev_get_bdevs', { name: 'Sparse0' })) as Array<Record<string, unknown>>;
    assert.equal(b.num_blocks, 16384);
    assert.deepEqual(b.driver_specific, { sparse: { blocks_stored: 0 } });
    const cfg = (await c.call('save_config')) as {
      subsystems: Array<{ subsystem: string; config: unknown[] }>;
    };
    const bdevCfg = cfg.subsystems.find((s) => s.subsystem === 'bdev')!.config as Array<{ method: string }>;
    assert.ok(bdevCfg.some((e) => e.method === 'bdev_sparse_create'));
    writeFileSync(
      join(dir, 'cfg.json'),
      JSON.stringify({ subsystems: cfg.subsystems.filter((s) => s.subsystem === 'bdev') }),
    );
    c.close();
    t.proc.kill('SIGTERM');
    assert.equal(await t.exited, 0);

    const sock2 = join(dir, 'b.sock');
    const t2 = start(sock2, ['--json', join(dir, 'cfg.json')]);
    const c2 = await connect(sock2);
    const again = (await c2.call('bdev_get_bdevs', { name: 'Sparse0' })) as Array<{ uuid: string }>;
    assert.equal(again[0].uuid, b.uuid);
    c2.close();
    t2.proc.kill('SIGTERM');
    assert.equal(await t2.exited, 0);
  } finally {
    t.proc.kill('SIGKILL');
  }
});
