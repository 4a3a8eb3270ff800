// Without librbd's headers at install the addon is not built, the install
// still succeeds, the target runs, and the rbd RPCs answer what is missing
// and what to do (packages, then npm rebuild). The install hook is run with
// the headers' folder pointed elsewhere and its output in a temp folder, so
// the real build is left alone.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { RpcError } from '../../src/jsonrpc/index.ts';
import { ChildTarget } from '../lib/index.ts';

const SCRIPT = new URL('../../scripts/build-native.sh', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-rbd-missing-'));
const build = join(dir, 'build');

after(() => rmSync(dir, { recursive: true, force: true }));

test('install without librbd-dev: exit 0, the reason written, the target runs and bdev_rbd_create names the fix', async () => {
  const out = await new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(
      'bash',
      [SCRIPT],
      {
        env: {
          ...process.env,
          NVMF_TS_RBD_INCLUDEDIR: join(dir, 'no-include'),
          NVMF_TS_RBD_BUILD_DIR: build,
        },
      },
      (err, _stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }),
    );
  });
  assert.equal(out.code, 0, 'the install still succeeds');
  assert.match(out.stderr, /missing librbd-dev .*librados-dev/);
  assert.ok(!existsSync(join(build, 'Release', 'nvmf_rbd.node')));
  assert.match(readFileSync(join(build, 'MISSING'), 'utf8'), /npm rebuild/);

  const t = await ChildTarget.start({ config: null, env: { ...process.env, NVMF_TS_RBD_ADDON_DIR: build } });
  try {
    for (const [method, params] of [
      ['bdev_rbd_create', { pool_name: 'rbd', rbd_name: 'img0', block_size: 4096 }],
      ['bdev_rbd_register_cluster', { name: 'c0' }],
    ] as const) {
      await assert.rejects(t.call(method, params), (e: unknown) => {
        assert.ok(e instanceof RpcError);
        assert.equal(e.code, -95);
        assert.match(e.message, /Ceph RBD is not available: .*missing librbd-dev .*librados-dev/);
        assert.match(e.message, /apt-get install -y librbd-dev librados-dev .*then run npm rebuild/);
        return true;
      });
    }
    // the rest of the target is unaffected
    assert.equal(await t.call('bdev_malloc_create', { name: 'M0', num_blocks: 64, block_size: 512 }), 'M0');
    assert.equal(t.alive(), true);
  } finally {
    await t.stop();
  }
});
