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

test('masking, PTPL files and cap_css_iocs: save_config writes them, a replay restores them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-cfg-'));
  const nqn = 'nqn.2016-06.io.spdk:cnode1';
  const host = 'nqn.2014-08.org.nvmexpress:uuid:12345678-1234-4321-8765-123456789abc';
  try {
    const port = String(await freePort());
    const first = join(dir, 'first.json');
    const ptplFile = join(dir, 'ns1.ptpl');
    writeFileSync(
      first,
      JSON.stringify({
        subsystems: [
          {
            subsystem: 'bdev',
            config: [
              {
                method: 'bdev_malloc_create',
                params: { name: 'Malloc0', num_blocks: 2048, block_size: 512 },
              },
              {
                method: 'bdev_malloc_create',
                params: { name: 'Malloc1', num_blocks: 2048, block_size: 512 },
              },
            ],
          },
          {
            subsystem: 'nvmf',
            config: [
              { method: 'nvmf_set_config', params: { cap_css_iocs: true } },
              { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
              { method: 'nvmf_create_subsystem', params: { nqn, allow_any_host: true } },
              {
                method: 'nvmf_subsystem_add_ns',
                params: { nqn, namespace: { nsid: 1, bdev_name: 'Malloc0', ptpl_file: ptplFile } },
              },
              {
                method: 'nvmf_subsystem_add_ns',
                params: { nqn, namespace: { nsid: 2, bdev_name: 'Malloc1', no_auto_visible: true } },
              },
              { method: 'nvmf_ns_add_host', params: { nqn, nsid: 2, host } },
              {
                method: 'nvmf_subsystem_add_listener',
                params: { nqn, listen_address: { trtype: 'TCP', traddr: '127.0.0.1', trsvcid: port } },
              },
            ],
          },
        ],
      }),
    );
    const a = await saveConfigOf(first);
    const nvmfA = a.subsystems.find((s) => s.subsystem === 'nvmf');
    assert.ok(nvmfA);
    const entries = nvmfA.config as { method: string; params: Record<string, unknown> }[];
    assert.equal(entries.find((e) => e.method === 'nvmf_set_config')?.params.cap_css_iocs, true);
    const ns = entries.filter((e) => e.method === 'nvmf_subsystem_add_ns').map((e) => e.params.namespace);
    assert.deepEqual(
      ns.map((n) => {
        const o = n as Record<string, unknown>;
        return [o.nsid, o.ptpl_file, o.no_auto_visible];
      }),
      [
        [1, ptplFile, false],
        [2, undefined, true],
      ],
    );
    // SPDK's order: the namespaces, then who sees the masked ones, then the listeners
    const methods = entries.map((e) => e.method);
    assert.ok(methods.lastIndexOf('nvmf_subsystem_add_ns') < methods.indexOf('nvmf_ns_add_host'));
    assert.ok(methods.indexOf('nvmf_ns_add_host') < methods.indexOf('nvmf_subsystem_add_listener'));
    assert.deepEqual(entries.find((e) => e.method === 'nvmf_ns_add_host')?.params, { nqn, nsid: 2, host });
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
