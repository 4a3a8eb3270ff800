// The example module loaded by configuration: NVMF_TS_BDEV_MODULES names its
// file; nvmf_tgt registers it in every realm, nvmf-rpc knows its methods,
// save_config writes it and --json brings it back.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { ChildTarget } from '../lib/index.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const CLI = new URL('../../bin/nvmf-rpc.mjs', import.meta.url).pathname;
const MODULE = new URL('../../examples/sparse-bdev/sparse.ts', import.meta.url).pathname;
const env = { ...process.env, NVMF_TS_BDEV_MODULES: MODULE };
const dir = mkdtempSync(join(tmpdir(), 'nvmf-bdev-ex-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('example sparse module: loaded by configuration, created by the CLI, saved and replayed', async () => {
  const t = await ChildTarget.start({ cores: '0x3', config: null, env });
  const sock = t.rpcPath;
  let t2: ChildTarget | null = null;
  try {
    const c = t.rpc;
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
    assert.equal(await t.stop(), 0);

    t2 = await ChildTarget.start({ cores: '0x3', configFile: join(dir, 'cfg.json'), env });
    const again = (await t2.call('bdev_get_bdevs', { name: 'Sparse0' })) as Array<{ uuid: string }>;
    assert.equal(again[0].uuid, b.uuid);
    assert.equal(await t2.stop(), 0);
  } finally {
    await t.dispose();
    await t2?.dispose();
  }
});
