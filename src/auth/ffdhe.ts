// The finite-field Diffie-Hellman groups of RFC 7919 (ffdhe2048 … ffdhe8192),
// which DH-HMAC-CHAP uses. Their primes are defined by a formula (RFC 7919
// appendix A): p = 2^b − 2^(b−64) + (⌊2^(b−130)·e⌋ + X)·2^64 − 1, where e is
// Euler's number and X the smallest offset that makes p a safe prime; the RFC
// gives X for each group. The prime is computed here from that formula on first
// use (a few milliseconds for the five) and kept; the generator is 2.
// test/unit/auth checks them against the primes OpenSSL 3 carries.

import { DhGroupId } from '../wire/auth.ts';

interface GroupDef {
  name: string;
  bits: number;
  /** the RFC's X for this group */
  offset: bigint;
}

const GROUPS: Record<number, GroupDef> = {
  [DhGroupId.FFDHE2048]: { name: 'ffdhe2048', bits: 2048, offset: 560316n },
  [DhGroupId.FFDHE3072]: { name: 'ffdhe3072', bits: 3072, offset: 2625351n },
  [DhGroupId.FFDHE4096]: { name: 'ffdhe4096', bits: 4096, offset: 5736041n },
  [DhGroupId.FFDHE6144]: { name: 'ffdhe6144', bits: 6144, offset: 15705020n },
  [DhGroupId.FFDHE8192]: { name: 'ffdhe8192', bits: 8192, offset: 10965728n },
};

export const FFDHE_GENERATOR = 2;

/** ⌊e · 2^bits⌋ from the series Σ 1/k!, with guard bits so the truncated terms cannot carry. */
function eTimesPowerOfTwo(bits: number): bigint {
  const guard = 64n;
  let term = 1n << (BigInt(bits) + guard);
  let sum = 0n;
  for (let k = 1n; term > 0n; k++) {
    sum += term;
    term /= k;
  }
  return sum >> guard;
}

export interface FfdheGroup {
  id: DhGroupId;
  name: string;
  bits: number;
  /** the prime as a number and as `bits / 8` big-endian bytes */
  p: bigint;
  prime: Buffer;
}

const computed = new Map<number, FfdheGroup>();

/** Whether `id` names one of the RFC 7919 groups (the null group is not one). */
export function isFfdheGroup(id: number): boolean {
  return GROUPS[id] !== undefined;
}

/** The RFC 7919 group `id` (computed once per realm). Throws for the null group or an unknown id. */
export function ffdheGroup(id: number): FfdheGroup {
  const have = computed.get(id);
  if (have !== undefined) return have;
  const def = GROUPS[id];
  if (def === undefined) throw new RangeError(`DH group id ${id} is not an RFC 7919 group`);
  const b = BigInt(def.bits);
  const p = (1n << b) - (1n << (b - 64n)) + ((eTimesPowerOfTwo(def.bits - 130) + def.offset) << 64n) - 1n;
  const prime = Buffer.from(p.toString(16).padStart(def.bits / 4, '0'), 'hex');
  const g: FfdheGroup = { id: id as DhGroupId, name: def.name, bits: def.bits, p, prime };
  computed.set(id, g);
  return g;
}
