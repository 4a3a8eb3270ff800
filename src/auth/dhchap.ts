// The DH-HMAC-CHAP computations (NVMe base spec 2.0 §8.13.5), one copy that
// the target (src/nvmf) and the host library (src/nvme) both use, so what one
// side computes is what the other checks:
// - the secret's transformation: a secret whose hash id is not 00 is first
//   turned into HMAC(H, secret, NQN ‖ "NVMe-over-Fabrics"), H being the hash the
//   id names and NQN its owner's (the host's NQN for the host secret, the
//   subsystem's for the controller secret);
// - with a DH exchange, the challenge is augmented: Ca = HMAC(H, H(Z), C), Z the
//   shared secret, H the negotiated hash;
// - the response: HMAC(H, transformed secret, Ca ‖ seqnum (LE32) ‖ T_ID (LE16) ‖
//   SC_C (1 byte) ‖ "HostHost" ‖ host NQN ‖ 0x00 ‖ subsystem NQN) for the host,
//   and the same with "Controller" and the NQNs swapped for the controller.
// Names and ids are SPDK's (sha256…, null, ffdhe2048…) and the wire's.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { DhchapSecret } from '../keyring/index.ts';
import { DhchapHashId, DhGroupId } from '../wire/auth.ts';

interface HashDef {
  id: DhchapHashId;
  /** SPDK's name (nvmf_set_config --dhchap-digests), also node:crypto's */
  name: string;
  /** Linux's name (nvmet's dhchap_hash, dmesg) */
  hmacName: string;
  length: number;
}

const HASHES: HashDef[] = [
  { id: DhchapHashId.SHA256, name: 'sha256', hmacName: 'hmac(sha256)', length: 32 },
  { id: DhchapHashId.SHA384, name: 'sha384', hmacName: 'hmac(sha384)', length: 48 },
  { id: DhchapHashId.SHA512, name: 'sha512', hmacName: 'hmac(sha512)', length: 64 },
];

const DHGROUPS: Array<{ id: DhGroupId; name: string }> = [
  { id: DhGroupId.NULL, name: 'null' },
  { id: DhGroupId.FFDHE2048, name: 'ffdhe2048' },
  { id: DhGroupId.FFDHE3072, name: 'ffdhe3072' },
  { id: DhGroupId.FFDHE4096, name: 'ffdhe4096' },
  { id: DhGroupId.FFDHE6144, name: 'ffdhe6144' },
  { id: DhGroupId.FFDHE8192, name: 'ffdhe8192' },
];

/** Every digest and DH group name, in id order (SPDK's defaults: all of them). */
export const DHCHAP_DIGEST_NAMES = HASHES.map((h) => h.name);
export const DHCHAP_DHGROUP_NAMES = DHGROUPS.map((g) => g.name);

function hashDef(id: number): HashDef | undefined {
  return HASHES.find((h) => h.id === id);
}

/** The hash's output length in bytes (HL), 0 for an unknown id. */
export function dhchapHashLength(id: number): number {
  return hashDef(id)?.length ?? 0;
}

/** 'sha256' … for a hash id, undefined for an unknown one. */
export function dhchapHashName(id: number): string | undefined {
  return hashDef(id)?.name;
}

/** The hash id of 'sha256' … (also accepts Linux's 'hmac(sha256)'), undefined if unknown. */
export function dhchapHashId(name: string): DhchapHashId | undefined {
  return HASHES.find((h) => h.name === name || h.hmacName === name)?.id;
}

/** 'null', 'ffdhe2048' … for a group id, undefined for an unknown one. */
export function dhGroupName(id: number): string | undefined {
  return DHGROUPS.find((g) => g.id === id)?.name;
}

export function dhGroupId(name: string): DhGroupId | undefined {
  return DHGROUPS.find((g) => g.name === name)?.id;
}

function hmac(hashId: number, key: Buffer, ...parts: Buffer[]): Buffer {
  const name = dhchapHashName(hashId);
  if (name === undefined) throw new RangeError(`DH-HMAC-CHAP hash id ${hashId} is unknown`);
  const h = createHmac(name, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

const FABRICS_LABEL = Buffer.from('NVMe-over-Fabrics', 'latin1');

/** The secret as used as an HMAC key: transformed with its own hash and its owner's NQN, or as is (id 00). */
export function transformSecret(secret: DhchapSecret, nqn: string): Buffer {
  if (secret.hash === 0) return Buffer.from(secret.key);
  return hmac(secret.hash, secret.key, Buffer.from(nqn, 'utf8'), FABRICS_LABEL);
}

/** C augmented with the DH shared secret Z: HMAC(H, H(Z), C). */
export function augmentChallenge(hashId: number, challenge: Buffer, sessionKey: Buffer): Buffer {
  const name = dhchapHashName(hashId);
  if (name === undefined) throw new RangeError(`DH-HMAC-CHAP hash id ${hashId} is unknown`);
  const hashedKey = createHash(name).update(sessionKey).digest();
  return hmac(hashId, hashedKey, challenge);
}

export interface DhchapResponseInput {
  /** the negotiated hash */
  hashId: number;
  /** the secret of the side that answers (the host's for R1, the controller's for R2) */
  secret: DhchapSecret;
  hostnqn: string;
  subnqn: string;
  /** the challenge being answered (C1 for the host, C2 for the controller) */
  challenge: Buffer;
  /** its sequence number (S1 / S2) */
  seqnum: number;
  tid: number;
  /** SC_C of the negotiation (0: no secure channel concatenation) */
  scc?: number;
  /** the DH shared secret, null with the null group */
  sessionKey: Buffer | null;
}

function response(
  role: 'HostHost' | 'Controller',
  nqn1: string,
  nqn2: string,
  r: DhchapResponseInput,
): Buffer {
  const key = transformSecret(r.secret, nqn1);
  const c = r.sessionKey === null ? r.challenge : augmentChallenge(r.hashId, r.challenge, r.sessionKey);
  const fixed = Buffer.alloc(7);
  fixed.writeUInt32LE(r.seqnum >>> 0, 0);
  fixed.writeUInt16LE(r.tid & 0xffff, 4);
  fixed[6] = r.scc ?? 0;
  return hmac(
    r.hashId,
    key,
    c,
    fixed,
    Buffer.from(role, 'latin1'),
    Buffer.from(nqn1, 'utf8'),
    Buffer.from([0]),
    Buffer.from(nqn2, 'utf8'),
  );
}

/** R1: the host's response to the controller's challenge C1 (the controller computes it too, to check). */
export function hostResponse(r: DhchapResponseInput): Buffer {
  return response('HostHost', r.hostnqn, r.subnqn, r);
}

/** R2: the controller's response to the host's challenge C2 (the host computes it too, to check). */
export function controllerResponse(r: DhchapResponseInput): Buffer {
  return response('Controller', r.subnqn, r.hostnqn, r);
}

/** Constant-time comparison of a received response with the expected one. */
export function responsesMatch(received: Buffer, expected: Buffer): boolean {
  return received.length === expected.length && timingSafeEqual(received, expected);
}
