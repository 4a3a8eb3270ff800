// The NVMe/TCP TLS PSK: from a configured PSK (the interchange key) to the
// identity a host offers in its ClientHello and the PSK TLS 1.3 uses with it
// (NVMe/TCP transport specification §3.6.1.3, TP 8011 and TP 8018), computed
// as SPDK (include/spdk_internal/nvme_tcp.h) and Linux (drivers/nvme/common)
// compute them. The target and the host library both use this module, so what
// one side derives the other derives the same way.
//
// - Retained PSK: the configured PSK itself when the interchange hash id is 00,
//   else HKDF (extract with an empty salt, expand) with the hash id's hash over
//   the TLS 1.3 HkdfLabel ("tls13 HostNQN", context the host NQN).
// - Cipher suite: the configured PSK's length picks it, as in SPDK: 32 bytes
//   TLS_AES_128_GCM_SHA256 (identity hash "01"), 48 bytes TLS_AES_256_GCM_SHA384
//   ("02"). The TLS PSK has that hash's length.
// - Identity version 0 (SPDK, and what Linux up to at least 6.12 looks up):
//   "NVMe0R<hh> <hostnqn> <subnqn>"; TLS PSK = HKDF over the HkdfLabel
//   "tls13 nvme-tls-psk" whose context is the identity.
// - Identity version 1 (TP 8018; Linux 6.14+ for generated keys):
//   "NVMe1R<hh> <hostnqn> <subnqn> <digest>", digest = base64(HMAC(retained PSK,
//   "<hostnqn> <subnqn> NVMe-over-Fabrics")); TLS PSK = the same HKDF with the
//   context "<hh> <digest>".
// The HkdfLabel's length field is the output length. Node's hkdfSync and
// createHmac do the hashing; nothing here logs or prints key bytes.

import { createHmac, hkdfSync } from 'node:crypto';
import { InvalidArgumentError } from '../util/errors.ts';
import { PskHash, type PskInterchange } from './formats.ts';

/** The hash of a TLS PSK and of its cipher suite; the number is the identity's "<hh>". */
export const TlsPskHash = { SHA256: 1, SHA384: 2 } as const;
export type TlsPskHash = (typeof TlsPskHash)[keyof typeof TlsPskHash];

/** TLS 1.3 cipher suite (OpenSSL's name) of each hash. */
export const TLS_CIPHER_SUITE: Record<TlsPskHash, string> = {
  [TlsPskHash.SHA256]: 'TLS_AES_128_GCM_SHA256',
  [TlsPskHash.SHA384]: 'TLS_AES_256_GCM_SHA384',
};

const DIGEST_NAME: Record<number, 'sha256' | 'sha384'> = { 1: 'sha256', 2: 'sha384' };

/** An HkdfLabel's label and context are at most 255 bytes (one length byte each). */
const MAX_LABEL_PART = 255;

/** RFC 8446's HkdfLabel: output length, "tls13 " + label, context, each part length-prefixed. */
function hkdfLabel(length: number, label: string, context: string): Buffer {
  const l = Buffer.from(`tls13 ${label}`, 'latin1');
  const c = Buffer.from(context, 'utf8');
  if (c.length > MAX_LABEL_PART)
    throw new InvalidArgumentError(
      `TLS PSK: the HKDF context of "${label}" is ${c.length} bytes, more than 255 (NQNs too long for TLS)`,
    );
  const info = Buffer.alloc(2 + 1 + l.length + 1 + c.length);
  info.writeUInt16BE(length, 0);
  info[2] = l.length;
  l.copy(info, 3);
  info[3 + l.length] = c.length;
  c.copy(info, 4 + l.length);
  return info;
}

/** HKDF-Extract (empty salt, i.e. HashLen zeros) then HKDF-Expand over an HkdfLabel. */
function hkdf(hash: number, key: Buffer, label: string, context: string, length: number): Buffer {
  const info = hkdfLabel(length, label, context);
  return Buffer.from(hkdfSync(DIGEST_NAME[hash], key, Buffer.alloc(0), info, length));
}

/** The cipher suite hash a configured PSK binds, from its length (SPDK's rule). */
export function tlsPskHashOf(key: PskInterchange): TlsPskHash {
  return key.key.length === 48 ? TlsPskHash.SHA384 : TlsPskHash.SHA256;
}

/** The retained PSK of a configured PSK for one host. */
export function retainedPsk(key: PskInterchange, hostnqn: string): Buffer {
  if (key.hash === PskHash.NONE) return Buffer.from(key.key);
  return hkdf(key.hash, key.key, 'HostNQN', hostnqn, key.key.length);
}

/** The PSK digest of identity version 1: base64 of HMAC(retained, "<hostnqn> <subnqn> NVMe-over-Fabrics"). */
export function pskDigest(hash: TlsPskHash, retained: Buffer, hostnqn: string, subnqn: string): string {
  return createHmac(DIGEST_NAME[hash], retained)
    .update(`${hostnqn} ${subnqn} NVMe-over-Fabrics`, 'utf8')
    .digest('base64');
}

/** A PSK identity's parts (its text: `formatPskIdentity`). */
export interface PskIdentity {
  version: 0 | 1;
  hash: TlsPskHash;
  hostnqn: string;
  subnqn: string;
  /** version 1 only: the PSK digest (base64) */
  digest?: string;
}

export function formatPskIdentity(id: PskIdentity): string {
  const base = `NVMe${id.version}R0${id.hash} ${id.hostnqn} ${id.subnqn}`;
  return id.version === 1 ? `${base} ${id.digest ?? ''}` : base;
}

/**
 * The parts of an identity a host offered, null when it is not an NVMe retained-PSK
 * identity ("NVMe0R01 h s", "NVMe0R02 h s", "NVMe1R0x h s digest"). NQNs hold no spaces.
 */
export function parsePskIdentity(text: string): PskIdentity | null {
  const m = /^NVMe([01])R0([12]) (\S+) (\S+)(?: (\S+))?$/.exec(text);
  if (m === null) return null;
  const version = m[1] === '1' ? 1 : 0;
  if ((version === 1) !== (m[5] !== undefined)) return null;
  const id: PskIdentity = {
    version,
    hash: m[2] === '2' ? TlsPskHash.SHA384 : TlsPskHash.SHA256,
    hostnqn: m[3],
    subnqn: m[4],
  };
  if (version === 1) id.digest = m[5];
  return id;
}

/** One identity and the TLS PSK that goes with it. */
export interface TlsPsk {
  identity: string;
  hash: TlsPskHash;
  /** the external PSK TLS 1.3 uses (32 or 48 bytes) */
  psk: Buffer;
}

/** The TLS PSK of one identity version for a host and a subsystem. */
export function tlsPsk(key: PskInterchange, hostnqn: string, subnqn: string, version: 0 | 1 = 0): TlsPsk {
  const hash = tlsPskHashOf(key);
  const retained = retainedPsk(key, hostnqn);
  const length = retained.length;
  if (version === 0) {
    const identity = formatPskIdentity({ version, hash, hostnqn, subnqn });
    return { identity, hash, psk: hkdf(hash, retained, 'nvme-tls-psk', identity, length) };
  }
  const digest = pskDigest(hash, retained, hostnqn, subnqn);
  const identity = formatPskIdentity({ version, hash, hostnqn, subnqn, digest });
  return { identity, hash, psk: hkdf(hash, retained, 'nvme-tls-psk', `0${hash} ${digest}`, length) };
}
