// The bdev layer through the project's executables: nvmf_tgt -m 0x3 driven
// by the nvmf-rpc CLI (rpc.py syntax) and by JSON-RPC, then save_config →
// restart with --json → save_config gives the same bdev section.

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
const dir = mkdtempSync(join(tmpdir(), 'nvmf-bdev-rpc-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const run = promisify(execFile);

async function cli(sock: string, ...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run(NODE, [CLI, '-s', sock, ...args]);
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout + x.stderr };
  }
}

type Config = {
  subsystems: Array<{
    subsystem: string;
    config: Array<{ method: string; params?: Record<string, unknown> }>;
  }>;
};

test('bdev RPCs via nvmf-rpc on two reactors; save_config → --json → save_config is stable', async () => {
  const file = join(dir, 'aio.img');
  writeFileSync(file, Buffer.alloc(4 << 20));
  const t = await ChildTarget.start({ cores: '0x3', config: null });
  const c = t.rpc;
  let t2: ChildTarget | null = null;
  try {
    assert.equal(
      (await cli(t.rpcPath, 'bdev_malloc_create', '-b', 'Malloc0', '64', '512')).out.trim(),
      'Malloc0',
    );
    assert.equal((await cli(t.rpcPath, 'bdev_null_create', 'Null0', '16', '4096')).out.trim(), 'Null0');
    assert.equal((await cli(t.rpcPath, 'bdev_aio_create', file, 'Aio0', '4096')).out.trim(), 'Aio0');
    assert.equal(
      (await cli(t.rpcPath, 'bdev_passthru_create', '-b', 'Malloc0', '-p', 'PT0')).out.trim(),
      'PT0',
    );
    assert.equal((await cli(t.rpcPath, 'bdev_error_create', 'Null0')).out.trim(), 'EE_Null0');
    const delay = await cli(
      t.rpcPath,
      'bdev_delay_create',
      '-b',
      'Aio0',
      '-d',
      'Delay0',
      '-r',
      '10',
      '-t',
      '20',
      '-w',
      '30',
      '-n',
      '40',
    );
    assert.equal(delay.out.trim(), 'Delay0');
    assert.equal((await cli(t.rpcPath, 'bdev_set_qos_limit', 'PT0', '--rw-ios-per-sec', '20000')).code, 0);
    assert.equal(
      (await cli(t.rpcPath, 'bdev_error_inject_error', 'EE_Null0', 'write', 'failure', '-n', '2')).code,
      0,
    );
    const dup = await cli(t.rpcPath, 'bdev_malloc_create', '-b', 'Malloc0', '8', '512');
    assert.notEqual(dup.code, 0);
    assert.match(dup.out, /already exists/);
    const bdevs = (await c.call('bdev_get_bdevs')) as Array<{
      name: string;
      num_blocks: number;
      claimed: boolean;
    }>;
    assert.deepEqual(
      bdevs.map((b) => b.name),
      ['Malloc0', 'Null0', 'Aio0', 'PT0', 'EE_Null0', 'Delay0'],
    );
    assert.equal(bdevs[0].num_blocks, 131072);
    assert.equal(bdevs[0].claimed, true);
    const reactors = (await c.call('framework_get_reactors')) as {
      reactors: Array<{ lw_threads: Array<{ name: string }> }>;
    };
    const names = reactors.reactors.flatMap((r) => r.lw_threads.map((x) => x.name));
    assert.ok(names.includes('bdev_realm_0') && names.includes('bdev_realm_1'), names.join(','));
    const cfg1 = (await c.call('save_config')) as Config;
    const bdev1 = cfg1.subsystems.find((s) => s.subsystem === 'bdev')!.config;
    // replay only the bdev section: this test is about bdev (the whole-target round trip is the framework's)
    writeFileSync(
      join(dir, 'cfg.json'),
      JSON.stringify({ subsystems: cfg1.subsystems.filter((s) => s.subsystem === 'bdev') }),
    );
    assert.equal(await t.stop(), 0);

    t2 = await ChildTarget.start({ cores: '0x3', configFile: join(dir, 'cfg.json') });
    const c2 = t2.rpc;
    const cfg2 = (await c2.call('save_config')) as Config;
    const bdev2 = cfg2.subsystems.find((s) => s.subsystem === 'bdev')!.config;
    assert.deepEqual(bdev2, bdev1);
    const iostat = (await c2.call('bdev_get_iostat', { name: 'Delay0' })) as {
      bdevs: Array<{ name: string }>;
    };
    assert.equal(iostat.bdevs[0].name, 'Delay0');
    assert.equal((await cli(t2.rpcPath, 'bdev_malloc_delete', 'Malloc0')).code, 0);
    const left = (await c2.call('bdev_get_bdevs')) as Array<{ name: string }>;
    assert.deepEqual(
      left.map((b) => b.name),
      ['Null0', 'Aio0', 'EE_Null0', 'Delay0'],
      'the passthru on Malloc0 went with it',
    );
    assert.equal(await t2.stop(), 0);
  } finally {
    await t.dispose();
    await t2?.dispose();
  }
});
