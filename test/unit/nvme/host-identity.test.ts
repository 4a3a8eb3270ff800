import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  configDir,
  defaultHostIdentity,
  formatTransportId,
  isInactiveNamespace,
  parseNamespace,
  parseTransportId,
  uuidOfHostNqn,
} from '../../../src/nvme/index.ts';

const root = mkdtempSync(join(tmpdir(), 'nvmf-ts-hostid-'));
after(() => rmSync(root, { recursive: true, force: true }));

function fresh(name: string) {
  const xdg = join(root, name, 'xdg');
  const etc = join(root, name, 'etc'); // exists but empty: no system identity
  mkdirSync(etc, { recursive: true });
  return { xdg, etc, env: { XDG_CONFIG_HOME: xdg } as NodeJS.ProcessEnv };
}

test('generated once under $XDG_CONFIG_HOME/nvmf-ts, then kept; NQN and ID share one UUID', () => {
  const { xdg, etc, env } = fresh('gen');
  const first = defaultHostIdentity({ env, etcDir: etc });
  assert.match(first.hostnqn, /^nqn\.2014-08\.org\.nvmexpress:uuid:[0-9a-f-]{36}$/);
  assert.equal(uuidOfHostNqn(first.hostnqn), first.hostid);
  assert.equal(configDir(env), join(xdg, 'nvmf-ts'));
  assert.equal(readFileSync(join(xdg, 'nvmf-ts', 'hostnqn'), 'utf8'), `${first.hostnqn}\n`);
  assert.equal(readFileSync(join(xdg, 'nvmf-ts', 'hostid'), 'utf8'), `${first.hostid}\n`);
  assert.deepEqual(defaultHostIdentity({ env, etcDir: etc }), first, 'the same identity next time');
});

test('/etc/nvme files win over the config dir; env overrides both', () => {
  const { xdg, etc, env } = fresh('etc');
  writeFileSync(
    join(etc, 'hostnqn'),
    'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555\n',
  );
  writeFileSync(join(etc, 'hostid'), '99999999-2222-3333-4444-555555555555\n');
  assert.deepEqual(defaultHostIdentity({ env, etcDir: etc }), {
    hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555',
    hostid: '99999999-2222-3333-4444-555555555555',
  });
  assert.throws(() => readFileSync(join(xdg, 'nvmf-ts', 'hostnqn')), /ENOENT/, 'nothing created');
  const over = defaultHostIdentity({
    env: {
      ...env,
      NVMF_TS_HOSTNQN: 'nqn.2024-01.io.test:host',
      NVMF_TS_HOSTID: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
    },
    etcDir: etc,
  });
  assert.deepEqual(over, {
    hostnqn: 'nqn.2024-01.io.test:host',
    hostid: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
  });
});

test('only a host NQN given: the host ID is derived from its UUID; a malformed hostid file is ignored', () => {
  const { etc, env } = fresh('partial');
  writeFileSync(
    join(etc, 'hostnqn'),
    'nqn.2014-08.org.nvmexpress:uuid:12345678-1234-1234-1234-123456789abc\n',
  );
  writeFileSync(join(etc, 'hostid'), 'not-a-uuid\n');
  const id = defaultHostIdentity({ env, etcDir: etc });
  assert.equal(id.hostid, '12345678-1234-1234-1234-123456789abc');
});

test('an unwritable config dir still gives one identity per process', () => {
  const { etc } = fresh('ro');
  const file = join(root, 'ro', 'not-a-dir');
  writeFileSync(file, 'x'); // XDG_CONFIG_HOME is a file: mkdir fails
  const env = { XDG_CONFIG_HOME: file } as NodeJS.ProcessEnv;
  const a = defaultHostIdentity({ env, etcDir: etc });
  const b = defaultHostIdentity({ env, etcDir: etc });
  assert.deepEqual(a, b);
  assert.equal(uuidOfHostNqn(a.hostnqn), a.hostid);
});

test('transport ID strings: parse and format round-trip', () => {
  const t = parseTransportId('trtype:TCP adrfam:IPv4 traddr:10.0.0.1 trsvcid:4421 subnqn:nqn.x hdgst:true');
  assert.deepEqual(t, { traddr: '10.0.0.1', trsvcid: '4421', subnqn: 'nqn.x', hdgst: true });
  assert.deepEqual(parseTransportId(formatTransportId(t)), t);
  assert.throws(() => parseTransportId('traddr:1.2.3.4 color:blue'), /unknown key "color"/);
});

test('Identify Namespace parsing: sizes, format in use, identifiers; inactive namespaces', () => {
  const idns = Buffer.alloc(4096);
  idns.writeUInt32LE(0x2000, 0); // NSZE
  idns.writeUInt32LE(1, 4); // … above 2^32
  idns.writeUInt32LE(0x1000, 8); // NCAP
  idns[25] = 1; // NLBAF: 2 formats
  idns[26] = 1; // FLBAS: format 1
  idns.writeUInt32LE(9 << 16, 128); // format 0: 512
  idns.writeUInt32LE((12 << 16) | 8, 132); // format 1: 4096 + 8 bytes metadata
  idns.fill(0xab, 104, 120); // NGUID
  const desc = Buffer.alloc(4096);
  desc[0] = 3;
  desc[1] = 16;
  Buffer.from('00112233445566778899aabbccddeeff', 'hex').copy(desc, 4);
  const ns = parseNamespace(5, idns, desc);
  assert.equal(ns.nsid, 5);
  assert.equal(ns.nsze, 0x1_0000_2000);
  assert.equal(ns.numBlocks, ns.nsze);
  assert.equal(ns.ncap, 0x1000);
  assert.equal(ns.lbads, 12);
  assert.equal(ns.blockSize, 4096);
  assert.equal(ns.metadataSize, 8);
  assert.equal(ns.nguid, 'ab'.repeat(16));
  assert.equal(ns.eui64, null);
  assert.equal(ns.uuid, '00112233-4455-6677-8899-aabbccddeeff');
  assert.equal(isInactiveNamespace(idns), false);
  assert.equal(isInactiveNamespace(Buffer.alloc(4096)), true);
  assert.equal(parseNamespace(1, Buffer.alloc(4096)).blockSize, 0, 'an invalid LBADS gives 0, not a guess');
});
