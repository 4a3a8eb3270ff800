// The librados settings an rbd connection gets (nvmf-ts's defaults unless the
// caller or the config file names them) and SPDK's core mask forms.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  connectionSettings,
  parseCoreMask,
  RBD_DEFAULT_SETTINGS,
} from '../../../src/modules/bdev/rbd/rbd.ts';

const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-rbd-conf-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function pairs(list: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < list.length; i += 2) out.push([list[i], list[i + 1]]);
  return out;
}

test('defaults first, then the caller config in order, then the keyring', () => {
  const s = pairs(
    connectionSettings({
      configFile: null,
      readDefault: false,
      config: { mon_host: '127.0.0.1:3300', key: 'AQ==' },
      keyFile: '/k',
    }),
  );
  assert.deepEqual(s, [
    ...RBD_DEFAULT_SETTINGS.map(([k, v]) => [k, v]),
    ['mon_host', '127.0.0.1:3300'],
    ['key', 'AQ=='],
    ['keyring', '/k'],
  ]);
  assert.deepEqual(
    RBD_DEFAULT_SETTINGS.map(([k]) => k),
    [
      'rbd_cache',
      'rbd_skip_partial_discard',
      'rados_osd_op_timeout',
      'rados_mon_op_timeout',
      'client_mount_timeout',
    ],
  );
});

test('a default the caller or the config file names (any spelling) is left to them', () => {
  const file = join(dir, 'ceph.conf');
  writeFileSync(
    file,
    '[global]\n  mon host = x\n[client]\nrbd cache = true\n# rados_osd_op_timeout = 1\nrados-mon-op-timeout=7\n',
  );
  const s = pairs(
    connectionSettings({
      configFile: file,
      readDefault: false,
      config: { 'Client Mount Timeout': '3' },
      keyFile: null,
    }),
  );
  assert.deepEqual(s, [
    ['rbd_skip_partial_discard', 'false'],
    ['rados_osd_op_timeout', '30'],
    ['Client Mount Timeout', '3'],
  ]);
});

test('core_mask: hex and list forms; junk is refused', () => {
  assert.deepEqual(parseCoreMask('0x5'), [0, 2]);
  assert.deepEqual(parseCoreMask('[0-2,7]'), [0, 1, 2, 7]);
  assert.throws(() => parseCoreMask('zz'), /invalid core_mask zz/);
  assert.throws(() => parseCoreMask('0x0'), /names no CPU/);
});
