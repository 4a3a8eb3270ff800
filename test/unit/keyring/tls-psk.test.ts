// The NVMe/TCP TLS PSK derivation against answers computed by other implementations:
// SPDK's formula (the Python of ../shared/interop/trixie-host/spdk-psk.py, identity
// version 0, SHA-256) and the openssl CLI (`openssl kdf … HKDF` over the HkdfLabel bytes
// and `openssl dgst -mac HMAC` for the version 1 digest), for SHA-256, SHA-384 and hash 00.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatPskIdentity,
  PskHash,
  parsePskIdentity,
  parsePskInterchange,
  retainedPsk,
  TlsPskHash,
  tlsPsk,
} from '../../../src/keyring/index.ts';

// nvme-cli's documented example key
const KEY_01 = 'NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:';
const HOST_A = 'nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6';
const SUB_A = 'nqn.2016-06.io.spdk:cnode1';
// bytes 0..47, and bytes 100..131 with hash 00
const KEY_02 = 'NVMeTLSkey-1:02:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vcSEgBQ==:';
const KEY_00 = 'NVMeTLSkey-1:00:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOeXryU:';
const HOST_B = 'nqn.2014-08.org.nvmexpress:uuid:7a1e0001-0000-4000-8000-000000000002';
const SUB_B = 'nqn.2016-06.io.nvmf-ts:tls';

test("identity version 0, SHA-256: SPDK's retained PSK and TLS PSK", () => {
  const key = parsePskInterchange(KEY_01);
  assert.equal(
    retainedPsk(key, HOST_A).toString('hex'),
    'f0af1bc718d4f23bdd7c1683a3d79bd953ea789d106a0f5207bb574bbe5446ce',
  );
  const t = tlsPsk(key, HOST_A, SUB_A);
  assert.equal(t.identity, `NVMe0R01 ${HOST_A} ${SUB_A}`);
  assert.equal(t.hash, TlsPskHash.SHA256);
  assert.equal(t.psk.toString('hex'), 'b976336237885ee79b7206085ec337726c89d594fc922cd17506a5fbdff9e5e3');
});

test('identity version 1, SHA-256: the digest and the TLS PSK over "<hh> <digest>"', () => {
  const t = tlsPsk(parsePskInterchange(KEY_01), HOST_A, SUB_A, 1);
  assert.equal(t.identity, `NVMe1R01 ${HOST_A} ${SUB_A} 48oJ1gT59ZvCetgoqGzPEddPO3zfkNz9YcvcbAM9NKI=`);
  assert.equal(t.psk.toString('hex'), 'b64fc42422898410ee530e65cb254a3138865334f281bc2d14b2036b7c0b7ba8');
});

test('SHA-384 (a 48-byte key, hash 02): identities "NVMe0R02" / "NVMe1R02" and 48-byte TLS PSKs', () => {
  const key = parsePskInterchange(KEY_02);
  assert.equal(
    retainedPsk(key, HOST_B).toString('hex'),
    '81f710e523124867b5de1483becb45e356961cf4678d2605dcb5a8b4270416fa4a51c7a8a942aabc3318fcb6d391e9dd',
  );
  const v0 = tlsPsk(key, HOST_B, SUB_B);
  assert.equal(v0.identity, `NVMe0R02 ${HOST_B} ${SUB_B}`);
  assert.equal(v0.hash, TlsPskHash.SHA384);
  assert.equal(
    v0.psk.toString('hex'),
    'a6fb70d95d1b0536dd0c8cd96fd7d422c0ed35e85018f07ca7cb6fdef1ef1cc06b822381596b4a1a86221d0de7594ca7',
  );
  const v1 = tlsPsk(key, HOST_B, SUB_B, 1);
  assert.equal(
    v1.identity,
    `NVMe1R02 ${HOST_B} ${SUB_B} cHia8L2inhrP+Z2oYf0ey5zEKNYooxuD+0DfA5bP6srYxw1pdaQNCi0csTrHik+8`,
  );
  assert.equal(
    v1.psk.toString('hex'),
    'e84a56fccafa755eeab3ecb301efed924f3a9766b45f6e62c99874ecc286be819eb62443b980b6bae37157de6febd653',
  );
});

test('hash 00: the configured PSK is the retained PSK (as SPDK takes it)', () => {
  const key = parsePskInterchange(KEY_00);
  assert.equal(key.hash, PskHash.NONE);
  assert.deepEqual(retainedPsk(key, HOST_B), key.key);
  assert.equal(
    tlsPsk(key, HOST_B, SUB_B).psk.toString('hex'),
    '3addd12d1eb3c7e428df36bac6e7cc71480e9740c1144e1a1a5961ea4cd7780b',
  );
});

test('identities parse back; what is not an NVMe retained-PSK identity is refused', () => {
  const v1 = tlsPsk(parsePskInterchange(KEY_01), HOST_A, SUB_A, 1).identity;
  const parsed = parsePskIdentity(v1);
  assert.deepEqual(parsed, {
    version: 1,
    hash: 1,
    hostnqn: HOST_A,
    subnqn: SUB_A,
    digest: '48oJ1gT59ZvCetgoqGzPEddPO3zfkNz9YcvcbAM9NKI=',
  });
  assert.equal(formatPskIdentity(parsed), v1);
  assert.deepEqual(parsePskIdentity(`NVMe0R02 ${HOST_B} ${SUB_B}`), {
    version: 0,
    hash: 2,
    hostnqn: HOST_B,
    subnqn: SUB_B,
  });
  for (const bad of [
    `NVMe0G01 ${HOST_A} ${SUB_A}`, // a generated PSK (secure concatenation)
    `NVMe0R03 ${HOST_A} ${SUB_A}`,
    `NVMe0R01 ${HOST_A} ${SUB_A} extra`,
    `NVMe1R01 ${HOST_A} ${SUB_A}`,
    `NVMe0R01 ${HOST_A}`,
    'Client_identity',
  ]) {
    assert.equal(parsePskIdentity(bad), null, bad);
  }
});

test('NQNs too long for the 255-byte HKDF context are refused by name', () => {
  const long = `nqn.2016-06.io.nvmf-ts:${'x'.repeat(200)}`;
  assert.throws(() => tlsPsk(parsePskInterchange(KEY_01), HOST_A, long), /more than 255/);
});
