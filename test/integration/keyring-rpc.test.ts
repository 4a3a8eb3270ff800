// SPDK's file-keyring RPCs on a real nvmf_tgt: errors as SPDK answers them, key
// bytes in no answer and no save_config, and a saved configuration that replays.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChildTarget } from '../lib/index.ts';

const PSK = 'NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:';

test('keyring_file_add_key / keyring_get_keys / keyring_file_remove_key, save_config names files only, --json replays it', async () => {
  const t = await ChildTarget.start({ cores: '0x1' });
  let replay: ChildTarget | undefined;
  try {
    const path = join(t.dir, 'key0');
    writeFileSync(path, PSK, { mode: 0o600 });
    const loose = join(t.dir, 'loose');
    writeFileSync(loose, PSK);
    chmodSync(loose, 0o644);
    await assert.rejects(
      t.rpc.call('keyring_file_add_key', { name: 'bad', path: loose }),
      (e: { code: number; message: string }) => {
        assert.equal(e.code, -1);
        assert.match(e.message, /Invalid permissions of key file '.*loose': 0644 required: 0600/);
        return true;
      },
    );
    await assert.rejects(
      t.rpc.call('keyring_file_add_key', { name: 'rel', path: 'key0' }),
      /Non-absolute paths are not allowed/,
    );
    assert.equal(await t.rpc.call('keyring_file_add_key', { name: 'key0', path }), true);
    await assert.rejects(
      t.rpc.call('keyring_file_add_key', { name: 'key0', path }),
      (e: { code: number }) => e.code === -17,
    );
    const keys = await t.rpc.call('keyring_get_keys');
    assert.deepEqual(keys, [
      { name: 'key0', module: 'keyring_file', removed: false, probed: false, refcnt: 0, path },
    ]);
    const saved = JSON.stringify(await t.rpc.call('save_config'));
    assert.ok(!saved.includes('VRLbtn') && !saved.includes(PSK), 'save_config holds no key bytes');
    const cfg = JSON.parse(saved) as { subsystems: { subsystem: string; config: unknown[] }[] };
    const names = cfg.subsystems.map((s) => s.subsystem);
    assert.ok(
      names.indexOf('keyring') > names.indexOf('iobuf') && names.indexOf('keyring') < names.indexOf('accel'),
    );
    assert.deepEqual(cfg.subsystems.find((s) => s.subsystem === 'keyring')?.config, [
      { method: 'keyring_file_add_key', params: { name: 'key0', path } },
    ]);
    const configFile = join(t.dir, 'saved.json');
    // the keyring section alone (the rest names this target's own port)
    writeFileSync(
      configFile,
      JSON.stringify({ subsystems: cfg.subsystems.filter((s) => s.subsystem === 'keyring') }),
    );
    replay = await ChildTarget.start({ cores: '0x1', configFile });
    assert.deepEqual(
      ((await replay.rpc.call('keyring_get_keys')) as { name: string }[]).map((k) => k.name),
      ['key0'],
    );
    assert.ok(!replay.log().includes('VRLbtn'), 'the key never reaches the log');
    assert.equal(await t.rpc.call('keyring_file_remove_key', { name: 'key0' }), true);
    assert.deepEqual(await t.rpc.call('keyring_get_keys'), []);
    await assert.rejects(
      t.rpc.call('keyring_file_remove_key', { name: 'key0' }),
      (e: { code: number }) => e.code === -19,
    );
  } finally {
    await replay?.stop();
    await t.stop();
  }
});
