// Diffie-Hellman over the RFC 7919 groups with node:crypto, off the calling
// thread: key generation and the shared secret run in libuv's thread pool
// (crypto.generateKeyPair / crypto.diffieHellman with a callback), so a
// reactor waits for an ffdhe8192 exchange without computing it.
// (crypto.createDiffieHellman would check the prime's safety at every
// construction: seconds for the large groups.)
//
// Node takes a DH public key only as a SubjectPublicKeyInfo structure, so the
// peer's value is wrapped in one (DER: the dhKeyAgreement algorithm with the
// group's p and g, and the value as an INTEGER), and our own value is read back
// out of the SPKI Node exports. Public values and the shared secret travel
// left-padded to the prime's length, as the Linux host and SPDK send and use them.

import { createPublicKey, diffieHellman, generateKeyPair, type KeyObject } from 'node:crypto';
import { InvalidArgumentError } from '../util/errors.ts';
import { FFDHE_GENERATOR, type FfdheGroup, ffdheGroup } from './ffdhe.ts';

/** OID 1.2.840.113549.1.3.1 (PKCS #3 dhKeyAgreement), DER-encoded with its tag and length. */
const DH_KEY_AGREEMENT_OID = Buffer.from('06092a864886f70d010301', 'hex');

const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_SEQUENCE = 0x30;

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

/** A non-negative big-endian integer as a DER INTEGER (minimal, with a 0 byte if its top bit is set). */
function derUnsigned(value: Buffer): Buffer {
  let i = 0;
  while (i < value.length - 1 && value[i] === 0) i++;
  const v = value.subarray(i);
  return der(TAG_INTEGER, v[0] & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

/** The element at `off`: its tag and where its content starts and ends. */
function derElement(buf: Buffer, off: number): { tag: number; start: number; end: number } {
  const tag = buf[off];
  let len = buf[off + 1];
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i];
    start += n;
  }
  if (start + len > buf.length) throw new InvalidArgumentError('DER element runs past its buffer');
  return { tag, start, end: start + len };
}

/** The public value y of a DH key exported as SPKI DER, left-padded to `size` bytes. */
function publicValueFromSpki(spki: Buffer, size: number): Buffer {
  const outer = derElement(spki, 0);
  const algorithm = derElement(spki, outer.start);
  const bits = derElement(spki, algorithm.end);
  if (outer.tag !== TAG_SEQUENCE || bits.tag !== TAG_BIT_STRING)
    throw new InvalidArgumentError('not a SubjectPublicKeyInfo');
  // the BIT STRING's first byte counts its unused bits (0); an INTEGER follows
  const int = derElement(spki, bits.start + 1);
  let v = spki.subarray(int.start, int.end);
  while (v.length > size && v[0] === 0) v = v.subarray(1);
  const out = Buffer.alloc(size);
  v.copy(out, size - v.length);
  return out;
}

function spkiOf(group: FfdheGroup, y: Buffer): Buffer {
  const params = der(TAG_SEQUENCE, derUnsigned(group.prime), derUnsigned(Buffer.from([FFDHE_GENERATOR])));
  const algorithm = der(TAG_SEQUENCE, DH_KEY_AGREEMENT_OID, params);
  return der(TAG_SEQUENCE, algorithm, der(TAG_BIT_STRING, Buffer.from([0]), derUnsigned(y)));
}

/** One side's ephemeral key: the private key (never leaves this realm) and the public value to send. */
export interface DhKeyPair {
  group: FfdheGroup;
  privateKey: KeyObject;
  /** g^x mod p, big-endian, `group.bits / 8` bytes */
  publicValue: Buffer;
}

/** A fresh key pair of RFC 7919 group `groupId`, generated in the thread pool. */
export function generateDhKeyPair(groupId: number): Promise<DhKeyPair> {
  const group = ffdheGroup(groupId);
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'dh',
      { prime: group.prime, generator: FFDHE_GENERATOR },
      (err, publicKey, privateKey) => {
        if (err) {
          reject(err);
          return;
        }
        try {
          const spki = publicKey.export({ type: 'spki', format: 'der' });
          resolve({ group, privateKey, publicValue: publicValueFromSpki(spki, group.bits / 8) });
        } catch (e) {
          reject(e);
        }
      },
    );
  });
}

/**
 * Why the peer's public value `y` cannot be used (null when it can): it must be 1 < y < p − 1
 * (0, 1 and p − 1 would make the shared secret guessable) and fit the group's size.
 */
export function dhPeerValueProblem(group: FfdheGroup, y: Buffer): string | null {
  if (y.length === 0) return 'empty DH value';
  if (y.length > group.bits / 8) return `DH value of ${y.length} bytes for a ${group.bits}-bit group`;
  const v = BigInt(`0x${y.toString('hex')}`);
  if (v <= 1n || v >= group.p - 1n) return 'DH value out of range (must be 1 < y < p-1)';
  return null;
}

/** The shared secret g^(xy) mod p with the peer's public value, left-padded to the prime's length. */
export function deriveDhSecret(pair: DhKeyPair, peerValue: Buffer): Promise<Buffer> {
  const problem = dhPeerValueProblem(pair.group, peerValue);
  if (problem !== null) return Promise.reject(new InvalidArgumentError(problem));
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spkiOf(pair.group, peerValue), format: 'der', type: 'spki' });
  } catch (e) {
    return Promise.reject(e);
  }
  const size = pair.group.bits / 8;
  return new Promise((resolve, reject) => {
    diffieHellman({ privateKey: pair.privateKey, publicKey }, (err, secret) => {
      if (err) reject(err);
      else if (secret.length >= size) resolve(secret);
      else {
        const padded = Buffer.alloc(size);
        secret.copy(padded, size - secret.length);
        resolve(padded);
      }
    });
  });
}
