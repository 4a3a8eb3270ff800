// The DH-HMAC-CHAP computations (src/auth) against known answers computed
// independently (Python's hmac/hashlib over the formulas of NVMe base spec 2.0
// §8.13.5 as the Linux host and nvmet apply them: the secret transformed with
// its owner's NQN and "NVMe-over-Fabrics", the challenge augmented with the hash
// of the DH shared secret, the responses over C, seqnum (LE32), T_ID (LE16), SC_C,
// "HostHost"/"Controller" and the two NQNs), the RFC 7919 primes against the
// ones OpenSSL 3 carries (SHA-256 of their hex), and Diffie-Hellman against a
// BigInt modular exponentiation.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  augmentChallenge,
  controllerResponse,
  DHCHAP_DHGROUP_NAMES,
  DHCHAP_DIGEST_NAMES,
  deriveDhSecret,
  dhchapHashId,
  dhchapHashLength,
  dhGroupId,
  dhPeerValueProblem,
  ffdheGroup,
  generateDhKeyPair,
  hostResponse,
  isFfdheGroup,
  responsesMatch,
  transformSecret,
} from '../../../src/auth/index.ts';
import { DhchapHashId, DhGroupId } from '../../../src/wire/auth.ts';

const HOST = 'nqn.2014-08.org.nvmexpress:uuid:6f1c2b3a-0000-4000-8000-00000000cafe';
const SUB = 'nqn.2016-06.io.spdk:cnode1';
const bytes = (n: number, f: (i: number) => number) =>
  Buffer.from(Array.from({ length: n }, (_, i) => f(i) & 0xff));

test('names and ids: SPDK names, Linux hmac() names, hash lengths', () => {
  assert.deepEqual(DHCHAP_DIGEST_NAMES, ['sha256', 'sha384', 'sha512']);
  assert.deepEqual(DHCHAP_DHGROUP_NAMES, [
    'null',
    'ffdhe2048',
    'ffdhe3072',
    'ffdhe4096',
    'ffdhe6144',
    'ffdhe8192',
  ]);
  assert.equal(dhchapHashId('hmac(sha384)'), DhchapHashId.SHA384);
  assert.equal(dhchapHashId('md5'), undefined);
  assert.equal(dhGroupId('ffdhe8192'), DhGroupId.FFDHE8192);
  assert.equal(dhGroupId('ffdhe1024'), undefined);
  assert.deepEqual([1, 2, 3, 4].map(dhchapHashLength), [32, 48, 64, 0]);
  assert.equal(isFfdheGroup(DhGroupId.NULL), false);
  assert.equal(isFfdheGroup(DhGroupId.FFDHE2048), true);
});

test('secret transformation: hash 00 as is, else HMAC with the owner NQN (known answers)', () => {
  const k1 = bytes(32, (i) => i);
  assert.equal(
    transformSecret({ hash: 1, key: k1 }, HOST).toString('hex'),
    '6af62efca38ef10ba43323e721e0837a5df6bb1b43097cc87891342ff49fd368',
  );
  const k2 = bytes(48, (i) => i * 3);
  assert.equal(
    transformSecret({ hash: 2, key: k2 }, SUB).toString('hex'),
    '83d8f296d8039c42fbfef4dd235f6378746fda139e66ced605384f91da8249e692babb8a40757780f334658e21bc1418',
  );
  assert.ok(transformSecret({ hash: 0, key: k1 }, HOST).equals(k1));
});

test('host response R1: sha256 without DH, sha512 with a DH session key (known answers)', () => {
  const r = hostResponse({
    hashId: DhchapHashId.SHA256,
    secret: { hash: 1, key: bytes(32, (i) => i) },
    hostnqn: HOST,
    subnqn: SUB,
    challenge: bytes(32, (i) => 0x40 + i),
    seqnum: 0x01020304,
    tid: 0x0506,
    sessionKey: null,
  });
  assert.equal(r.toString('hex'), '7bbe5676f3b92047221e1fb5cd5c8305a4ecd961207a208c939fd6873d1266e1');

  const skey = Buffer.alloc(256, 0x11);
  const c = bytes(64, (i) => 0x80 + i);
  assert.equal(
    augmentChallenge(DhchapHashId.SHA512, c, skey).toString('hex'),
    'cd4f38a726c5bfccaf1647e9f4cd8d1b8747a9542482b6b8a979db4b69e755270560f8cea6e0fbdb570135bc5a4b4edf366391f78977d90df55a9a48cde450e7',
  );
  const r512 = hostResponse({
    hashId: DhchapHashId.SHA512,
    secret: { hash: 3, key: bytes(64, (i) => i * 7) },
    hostnqn: HOST,
    subnqn: SUB,
    challenge: c,
    seqnum: 0xfffffffe,
    tid: 0xffff,
    sessionKey: skey,
  });
  assert.equal(
    r512.toString('hex'),
    '5dbf35ad234cdb0452c2701dc748c144e6a534521cf515f04beca976aa5898b5c113046edaf9d825c7f18012f8c0dc15f687ce2285d81a2ecf5a0e7d350dd670',
  );
});

test('controller response R2: "Controller", the NQNs swapped (known answer); responsesMatch is exact', () => {
  const r2 = controllerResponse({
    hashId: DhchapHashId.SHA384,
    secret: { hash: 0, key: bytes(48, (i) => 255 - i) },
    hostnqn: HOST,
    subnqn: SUB,
    challenge: bytes(48, (i) => 0x20 + i),
    seqnum: 7,
    tid: 42,
    sessionKey: null,
  });
  assert.equal(
    r2.toString('hex'),
    '060afcf539ed6df606b1c2bfd500f4ec25a78135671b4bd5c0adbc9d0cce5975750b3c344ed03a3c4e52095df0b441c6',
  );
  assert.ok(responsesMatch(r2, Buffer.from(r2)));
  const flipped = Buffer.from(r2);
  flipped[47] ^= 1;
  assert.ok(!responsesMatch(r2, flipped));
  assert.ok(!responsesMatch(r2, r2.subarray(0, 32)));
});

test('RFC 7919 primes: the ones OpenSSL 3 carries (SHA-256 of the hex), safe-prime shape', () => {
  const expected: Record<number, string> = {
    [DhGroupId.FFDHE2048]: 'b9fd49b47ad1363ebf1681ab8a5b6c3bb0be15897d0d94aff227ee91b867ab8a',
    [DhGroupId.FFDHE3072]: 'c5288e890a7a8da070e69a9d23fa0e264aeddfaa05e267fbd038c4be1210d6a2',
    [DhGroupId.FFDHE4096]: '3cb2119eb37a64531e61b96555689035640b6d80145f303d321c1a58ce15e936',
    [DhGroupId.FFDHE6144]: '0d49e72527f7d91e8a357aa015594fe4f801c88a9123738af0e2ec4a0ad04a8b',
    [DhGroupId.FFDHE8192]: '461db4b7734852427de4b4289cebd2feb853fa474ea72f9faf84a17fb05e3f0b',
  };
  for (const [id, digest] of Object.entries(expected)) {
    const g = ffdheGroup(Number(id));
    assert.equal(g.prime.length, g.bits / 8);
    assert.equal(createHash('sha256').update(g.prime.toString('hex')).digest('hex'), digest, g.name);
    // top and bottom 64 bits all ones, as the RFC's construction makes them
    assert.equal(g.prime.subarray(0, 8).toString('hex'), 'ff'.repeat(8));
    assert.equal(g.prime.subarray(-8).toString('hex'), 'ff'.repeat(8));
  }
  assert.throws(() => ffdheGroup(DhGroupId.NULL), RangeError);
});

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  let x = b % m;
  for (let k = e; k > 0n; k >>= 1n) {
    if (k & 1n) r = (r * x) % m;
    x = (x * x) % m;
  }
  return r;
}

const toBig = (b: Buffer) => BigInt(`0x${b.toString('hex')}`);

test('Diffie-Hellman: both sides agree; the secret is (their value)^b mod p, left-padded to the prime', async () => {
  const a = await generateDhKeyPair(DhGroupId.FFDHE2048);
  const b = await generateDhKeyPair(DhGroupId.FFDHE2048);
  assert.equal(a.publicValue.length, 256);
  const ab = await deriveDhSecret(a, b.publicValue);
  const ba = await deriveDhSecret(b, a.publicValue);
  assert.equal(ab.length, 256);
  assert.ok(ab.equals(ba));
  // a peer value we make ourselves: y = 2^x mod p; the secret must be A^x mod p
  const g = ffdheGroup(DhGroupId.FFDHE2048);
  const x = 0x1234_5678_9abc_def0_1122_3344n;
  const y = modPow(2n, x, g.p);
  const yBuf = Buffer.from(y.toString(16).padStart(512, '0'), 'hex');
  const z = await deriveDhSecret(a, yBuf);
  assert.equal(toBig(z), modPow(toBig(a.publicValue), x, g.p));
});

test('Diffie-Hellman: peer values 0, 1, p-1, p and oversized are refused', async () => {
  const g = ffdheGroup(DhGroupId.FFDHE2048);
  const pair = await generateDhKeyPair(DhGroupId.FFDHE2048);
  const big = (v: bigint) => Buffer.from(v.toString(16).padStart(512, '0'), 'hex');
  for (const v of [0n, 1n, g.p - 1n, g.p]) {
    assert.notEqual(dhPeerValueProblem(g, big(v)), null, String(v));
    await assert.rejects(deriveDhSecret(pair, big(v)));
  }
  assert.match(dhPeerValueProblem(g, Buffer.alloc(257, 1)) ?? '', /257 bytes/);
  assert.match(dhPeerValueProblem(g, Buffer.alloc(0)) ?? '', /empty/);
  assert.equal(dhPeerValueProblem(g, big(2n)), null);
});
