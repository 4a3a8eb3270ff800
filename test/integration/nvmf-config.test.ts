// save_config → --json → save_config gives the same nvmf section (replay of the
// default config on a free port).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChildTarget, freePort } from '../lib/index.ts';

const DEFAULT_CONFIG = new URL('../../config/default.json', import.meta.url).pathname;

/** Start nvmf_tgt with `config`, return its save_config, stop it. */
async function saveConfigOf(
  config: string,
): Promise<{ subsystems: { subsystem: string; config: unknown[] }[] }> {
  const t = await ChildTarget.start({ cores: '0x3', configFile: config, startTimeoutMs: 20_000 });
  try {
    return await t.call('save_config');
  } finally {
    await t.stop();
  }
}

test('default config: save_config → --json → save_config keeps the nvmf section', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-cfg-'));
  try {
    const port = String(await freePort());
    const first = join(dir, 'first.json');
    writeFileSync(first, readFileSync(DEFAULT_CONFIG, 'utf8').replaceAll('"4420"', `"${port}"`));
    const a = await saveConfigOf(first);
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
    const b = await saveConfigOf(second);
    assert.deepEqual(
      b.subsystems.find((s) => s.subsystem === 'nvmf'),
      nvmfA,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
