// Text formats of NVMe secrets, with their CRC checked:
// - the TLS PSK interchange format (NVMe/TCP TP 8011 §3.6.1.5):
//   `NVMeTLSkey-1:HH:<base64(PSK ‖ CRC-32(PSK) LE)>:` where HH is 01 (SHA-256,
//   32-byte PSK) or 02 (SHA-384, 48-byte PSK) — the hash of the retained-PSK HKDF —
//   or 00 (no HKDF: the configured PSK, 32 or 48 bytes, is the retained PSK, as SPDK
//   accepts it);
// - DH-HMAC-CHAP secrets (NVMe base spec 2.0 §8.13.5.8):
//   `DHHC-1:HH:<base64(secret ‖ CRC-32(secret) LE)>:` where HH says how the
//   secret is transformed before use: 00 none, 01 SHA-256, 02 SHA-384, 03 SHA-512;
//   the secret is 32, 48 or 64 bytes whatever the hash (as the Linux host
//   accepts them).
// CRC-32 is zlib's (ISO 3309). Parsers never put key bytes in their error messages.

import { crc32 } from 'node:zlib';
import { NvmfTsError } from '../util/errors.ts';

/** Hash ids of the PSK interchange format. */
export const PskHash = { NONE: 0, SHA256: 1, SHA384: 2 } as const;
export type PskHash = (typeof PskHash)[keyof typeof PskHash];

/** Hash ids of a DH-HMAC-CHAP secret (the transformation applied to it). */
export const DhchapSecretHash = { NONE: 0, SHA256: 1, SHA384: 2, SHA512: 3 } as const;
export type DhchapSecretHash = (typeof DhchapSecretHash)[keyof typeof DhchapSecretHash];

export interface PskInterchange {
  hash: PskHash;
  /** the configured PSK */
  key: Buffer;
}

export interface DhchapSecret {
  hash: DhchapSecretHash;
  key: Buffer;
}

/** The key text is not in a format we accept; the message names the problem, never the key. */
export class KeyFormatError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_KEY_FORMAT';
  constructor(message: string) {
    super('NVMF_ERR_KEY_FORMAT', message);
  }
}

const PSK_LENGTHS: Record<number, number[]> = {
  [PskHash.NONE]: [32, 48],
  [PskHash.SHA256]: [32],
  [PskHash.SHA384]: [48],
};
const DHCHAP_LENGTHS = [32, 48, 64];

/** Splits `PREFIX:HH:BASE64:` and checks the CRC; returns the hash id and the key. */
function parseFramed(text: string, prefix: string, what: string): { hash: number; key: Buffer } {
  const t = text.trim();
  const m = /^([^:]+):([0-9]{2}):([A-Za-z0-9+/=]+):$/.exec(t);
  if (m === null || m[1] !== prefix)
    throw new KeyFormatError(`${what} must look like ${prefix}:HH:<base64>:`);
  const raw = Buffer.from(m[3], 'base64');
  // base64 that does not round-trip had stray characters or bad padding
  if (raw.toString('base64') !== m[3]) throw new KeyFormatError(`${what}: the base64 part is malformed`);
  if (raw.length < 5) throw new KeyFormatError(`${what}: too short`);
  const key = raw.subarray(0, raw.length - 4);
  if (crc32(key) >>> 0 !== raw.readUInt32LE(raw.length - 4))
    throw new KeyFormatError(`${what}: CRC-32 mismatch (the key was mistyped or truncated)`);
  return { hash: Number(m[2]), key: Buffer.from(key) };
}

function frame(prefix: string, hash: number, key: Buffer): string {
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(key) >>> 0, 0);
  return `${prefix}:${hash.toString().padStart(2, '0')}:${Buffer.concat([key, crc]).toString('base64')}:`;
}

export function parsePskInterchange(text: string): PskInterchange {
  const { hash, key } = parseFramed(text, 'NVMeTLSkey-1', 'TLS PSK');
  const lengths = PSK_LENGTHS[hash];
  if (lengths === undefined)
    throw new KeyFormatError(`TLS PSK: hash id ${hash} is not 00 (none), 01 (SHA-256) or 02 (SHA-384)`);
  if (!lengths.includes(key.length))
    throw new KeyFormatError(
      `TLS PSK: hash id ${hash} needs a ${lengths.join(' or ')}-byte key, not ${key.length}`,
    );
  return { hash: hash as PskHash, key };
}

export function formatPskInterchange(p: PskInterchange): string {
  return frame('NVMeTLSkey-1', p.hash, p.key);
}

export function parseDhchapSecret(text: string): DhchapSecret {
  const { hash, key } = parseFramed(text, 'DHHC-1', 'DH-HMAC-CHAP secret');
  if (hash > DhchapSecretHash.SHA512)
    throw new KeyFormatError(`DH-HMAC-CHAP secret: hash id ${hash} is not 00, 01, 02 or 03`);
  if (!DHCHAP_LENGTHS.includes(key.length))
    throw new KeyFormatError(`DH-HMAC-CHAP secret: ${key.length} bytes (32, 48 or 64 expected)`);
  return { hash: hash as DhchapSecretHash, key };
}

export function formatDhchapSecret(s: DhchapSecret): string {
  return frame('DHHC-1', s.hash, s.key);
}
