// Key text formats (CRC-checked) and the file keyring's rules.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  DhchapSecretHash,
  formatDhchapSecret,
  formatPskInterchange,
  KeyFormatError,
  Keyring,
  KeyringError,
  PskHash,
  parseDhchapSecret,
  parsePskInterchange,
} from '../../../src/keyring/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-keyring-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function keyFile(name: string, text: string, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, text, { mode });
  chmodSync(p, mode);
  return p;
}

// nvme-cli's documented example keys (CRC checked independently with Python's zlib)
const NVME_CLI_PSK = 'NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:';
const NVME_CLI_DHCHAP = 'DHHC-1:00:ia6zGodOr4SEG0Zzaw398rpY0wqipUWj4jWjUh4HWUz6aQ2n:';

test('PSK interchange: a real key parses; SHA-384 round-trips; wrong CRC, hash id, length and prefix are refused by name', () => {
  const p = parsePskInterchange(`${NVME_CLI_PSK}\n`);
  assert.equal(p.hash, PskHash.SHA256);
  assert.equal(p.key.length, 32);
  assert.equal(formatPskInterchange(p), NVME_CLI_PSK);
  const k48 = { hash: PskHash.SHA384, key: randomBytes(48) };
  assert.deepEqual(parsePskInterchange(formatPskInterchange(k48)), k48);
  const raw = Buffer.from(NVME_CLI_PSK.split(':')[2], 'base64');
  raw[0] ^= 1;
  const flipped = `NVMeTLSkey-1:01:${raw.toString('base64')}:`;
  assert.throws(() => parsePskInterchange(flipped), /CRC-32 mismatch/);
  assert.throws(() => parsePskInterchange(NVME_CLI_PSK.replace(':01:', ':03:')), /hash id 3/);
  assert.throws(() => parsePskInterchange(NVME_CLI_PSK.replace(':01:', ':02:')), /48-byte key, not 32/);
  assert.throws(() => parsePskInterchange(NVME_CLI_DHCHAP), KeyFormatError);
  // hash 00 (no retained-PSK HKDF) takes a 32- or 48-byte key, as SPDK does
  for (const length of [32, 48]) {
    const k00 = { hash: PskHash.NONE, key: randomBytes(length) };
    assert.deepEqual(parsePskInterchange(formatPskInterchange(k00)), k00);
  }
  const k40 = formatPskInterchange({ hash: PskHash.NONE, key: randomBytes(40) });
  assert.throws(() => parsePskInterchange(k40), /hash id 0 needs a 32 or 48-byte key, not 40/);
  assert.throws(() => parsePskInterchange('NVMeTLSkey-1:01:!!!!:'), /must look like/);
  // an error never carries the key text
  try {
    parsePskInterchange(flipped);
  } catch (e) {
    assert.ok(!(e as Error).message.includes(raw.toString('base64')));
  }
});

test('DH-HMAC-CHAP secrets: 32/48/64 bytes with hash 00-03; a 5th hash id, another length or a bad CRC are refused', () => {
  const s = parseDhchapSecret(NVME_CLI_DHCHAP);
  assert.deepEqual([s.hash, s.key.length], [DhchapSecretHash.NONE, 32]);
  assert.equal(formatDhchapSecret(s), NVME_CLI_DHCHAP);
  for (const hash of [DhchapSecretHash.SHA256, DhchapSecretHash.SHA384, DhchapSecretHash.SHA512])
    for (const len of [32, 48, 64]) {
      const secret = { hash, key: randomBytes(len) };
      assert.deepEqual(parseDhchapSecret(formatDhchapSecret(secret)), secret);
    }
  assert.throws(
    () => parseDhchapSecret(formatDhchapSecret({ hash: DhchapSecretHash.NONE, key: randomBytes(40) })),
    /40 bytes/,
  );
  assert.throws(() => parseDhchapSecret(NVME_CLI_DHCHAP.replace(':00:', ':04:')), /hash id 4/);
  assert.throws(() => parseDhchapSecret(`${NVME_CLI_DHCHAP.slice(0, -6)}AAAA:`), KeyFormatError);
});

test('file keyring: absolute path, 0600, the same checks at every read; duplicates and unknown names answer errno', () => {
  const ring = new Keyring();
  const good = keyFile('good', `${NVME_CLI_PSK}\n`);
  assert.throws(
    () => ring.addFileKey('k', 'relative/key'),
    (e: KeyringError) => e.errno === -1 && /Non-absolute/.test(e.message),
  );
  const loose = keyFile('loose', NVME_CLI_PSK, 0o644);
  assert.throws(
    () => ring.addFileKey('k', loose),
    (e: KeyringError) => e.errno === -1 && /Invalid permissions .* 0644 required: 0600/.test(e.message),
  );
  assert.throws(
    () => ring.addFileKey('k', join(dir, 'missing')),
    (e: KeyringError) => e.errno === -2,
  );
  ring.addFileKey('k', good);
  assert.throws(
    () => ring.addFileKey('k', good),
    (e: KeyringError) => e.errno === -17,
  );
  assert.equal(ring.read('k'), NVME_CLI_PSK);
  // a file made readable by others after it was added is refused when used
  chmodSync(good, 0o640);
  assert.throws(() => ring.read('k'), /Invalid permissions/);
  chmodSync(good, 0o600);
  assert.throws(
    () => ring.removeKey('nope'),
    (e: KeyringError) => e.errno === -19,
  );
  const listed = JSON.stringify(ring.list());
  assert.ok(listed.includes(good) && !listed.includes('VRLbtn'), 'names and paths, never key bytes');
});

test('a key removed while referenced stays usable by its holders, is listed as removed, and goes with the last reference', () => {
  const ring = new Keyring();
  ring.addFileKey('k', keyFile('held', NVME_CLI_DHCHAP));
  const ref = ring.get('k');
  ring.removeKey('k');
  assert.equal(ring.has('k'), false);
  assert.throws(() => ring.get('k'), KeyringError, 'new users cannot take it');
  assert.equal(ref.read(), NVME_CLI_DHCHAP);
  assert.deepEqual(
    ring.list().map((k) => [k.name, k.removed, k.refcnt]),
    [['k', true, 1]],
  );
  assert.deepEqual(ring.configEntries(), [], 'save_config no longer names it');
  ref.put();
  assert.deepEqual(ring.list(), []);
  assert.throws(() => ref.read(), /released/);
  // the name can be added again once it is gone
  ring.addFileKey('k', keyFile('again', NVME_CLI_DHCHAP));
  assert.equal(ring.list().length, 1);
});
