// NVMe in-band authentication on the wire (NVMe base spec 2.0 §8.13 and the
// Fabrics Authentication Send / Receive commands; TP 8006): the two commands'
// SQE fields, the AUTH_Negotiate, DH-HMAC-CHAP_Challenge, _Reply, _Success1,
// _Success2 and AUTH_Failure1/2 messages (encode for the side that sends each,
// decode for the side that receives it; both sides use the same table), the
// identifiers they carry, and the AUTHREQ bits of a Connect response.
// Layouts as SPDK's include/spdk/nvmf_spec.h and Linux's include/linux/nvme.h
// declare them. Multi-byte fields are little endian.

import { ConnectRsp } from './fabrics.ts';
import { FABRICS_OPCODE, FabricsCommandType, initSqe, Sqe } from './nvme.ts';

/** Authentication Send / Receive SQE fields (bytes 40..47). */
export const AuthSqe = {
  SPSP0: 41,
  SPSP1: 42,
  SECP: 43,
  /** Send: Transfer Length; Receive: Allocation Length (bytes) */
  LENGTH: 44,
} as const;

/** Security protocol of NVMe in-band authentication (SECP), and the SPSP bytes DH-HMAC-CHAP uses. */
export const AUTH_SECP_NVME = 0xe9;
export const AUTH_SPSP0 = 0x01;
export const AUTH_SPSP1 = 0x01;

/** AUTH_TYPE: which family a message belongs to. */
export const AuthType = { COMMON: 0x00, DHCHAP: 0x01 } as const;

/** AUTH_ID: the message within its family. */
export const AuthMessageId = {
  NEGOTIATE: 0x00,
  DHCHAP_CHALLENGE: 0x01,
  DHCHAP_REPLY: 0x02,
  DHCHAP_SUCCESS1: 0x03,
  DHCHAP_SUCCESS2: 0x04,
  FAILURE2: 0xf0,
  FAILURE1: 0xf1,
} as const;

/** Authentication protocol identifier of a negotiate descriptor (AUTHID). */
export const AUTH_PROTOCOL_DHCHAP = 0x01;

/** HMAC hash function identifiers (HashID). */
export const DhchapHashId = { SHA256: 0x01, SHA384: 0x02, SHA512: 0x03 } as const;
export type DhchapHashId = (typeof DhchapHashId)[keyof typeof DhchapHashId];

/** Diffie-Hellman group identifiers (DHgID): null (no exchange) and the RFC 7919 groups. */
export const DhGroupId = {
  NULL: 0x00,
  FFDHE2048: 0x01,
  FFDHE3072: 0x02,
  FFDHE4096: 0x03,
  FFDHE6144: 0x04,
  FFDHE8192: 0x05,
} as const;
export type DhGroupId = (typeof DhGroupId)[keyof typeof DhGroupId];

/** Secure channel concatenation (SC_C of AUTH_Negotiate). */
export const AuthScc = { NONE: 0x00, NEW_TLS_PSK: 0x01, REPLACE_TLS_PSK: 0x02 } as const;

/** AUTH_Failure reason code (RC): the only one defined. */
export const AUTH_FAILURE_REASON = 0x01;

/** AUTH_Failure reason code explanations (RCE). */
export const AuthFailure = {
  FAILED: 0x01,
  PROTOCOL_UNUSABLE: 0x02,
  SCC_MISMATCH: 0x03,
  HASH_UNUSABLE: 0x04,
  DHGROUP_UNUSABLE: 0x05,
  INCORRECT_PAYLOAD: 0x06,
  INCORRECT_PROTOCOL_MESSAGE: 0x07,
} as const;
export type AuthFailure = (typeof AuthFailure)[keyof typeof AuthFailure];

const FAILURE_NAMES: Record<number, string> = {
  [AuthFailure.FAILED]: 'authentication failed',
  [AuthFailure.PROTOCOL_UNUSABLE]: 'authentication protocol not usable',
  [AuthFailure.SCC_MISMATCH]: 'secure channel concatenation mismatch',
  [AuthFailure.HASH_UNUSABLE]: 'hash function not usable',
  [AuthFailure.DHGROUP_UNUSABLE]: 'DH group not usable',
  [AuthFailure.INCORRECT_PAYLOAD]: 'incorrect payload',
  [AuthFailure.INCORRECT_PROTOCOL_MESSAGE]: 'incorrect protocol message',
};

/** A reason code explanation in words. */
export function authFailureName(rce: number): string {
  return FAILURE_NAMES[rce] ?? `reason 0x${rce.toString(16)}`;
}

/** Byte offsets of the header every message starts with. */
export const AuthHeader = { AUTH_TYPE: 0, AUTH_ID: 1, T_ID: 4 } as const;

/** AUTH_Negotiate: 8-byte header, then NAPD 64-byte protocol descriptors. */
export const AuthNegotiate = {
  SC_C: 6,
  NAPD: 7,
  DESCRIPTORS: 8,
  HEADER_SIZE: 8,
  DESCRIPTOR_SIZE: 64,
  // within a descriptor
  D_AUTHID: 0,
  D_HALEN: 2,
  D_DHLEN: 3,
  D_HASH_IDS: 4,
  D_DHGROUP_IDS: 34,
  /** room for ids in each list */
  MAX_IDS: 30,
} as const;

/** DH-HMAC-CHAP_Challenge: 16-byte header, then C1 (HL bytes) and the DH value (DHVLEN bytes). */
export const DhchapChallenge = {
  HL: 6,
  HASH_ID: 8,
  DHGROUP_ID: 9,
  DHVLEN: 10,
  SEQNUM: 12,
  CVAL: 16,
  HEADER_SIZE: 16,
} as const;

/** DH-HMAC-CHAP_Reply: 16-byte header, then R1 and C2 (HL bytes each) and the DH value. */
export const DhchapReply = {
  HL: 6,
  CVALID: 8,
  DHVLEN: 10,
  SEQNUM: 12,
  RVAL: 16,
  HEADER_SIZE: 16,
} as const;

/** DH-HMAC-CHAP_Success1: 16-byte header, then R2 (HL bytes) when RVALID. */
export const DhchapSuccess1 = { HL: 6, RVALID: 8, RVAL: 16, HEADER_SIZE: 16 } as const;

/** DH-HMAC-CHAP_Success2: the 16-byte header alone. */
export const DHCHAP_SUCCESS2_SIZE = 16;

/** AUTH_Failure1 / AUTH_Failure2. */
export const AuthFailureMsg = { RC: 6, RCE: 7, SIZE: 8 } as const;

/** Connect response AUTHREQ bits (DW0 bits 31:16): authentication transaction required, and secure channel too. */
export const ConnectAuthReq = { ATR: 0x0002, ASCR: 0x0004 } as const;

// ------------------------------------------------------------ the two commands

export interface AuthCommand {
  fctype: number;
  secp: number;
  spsp0: number;
  spsp1: number;
  /** TL (Send) or AL (Receive) */
  length: number;
}

/** Fills an Authentication Send SQE for a `tl`-byte message (CID and SGL are the transport's). */
export function writeAuthSend(sqe: Buffer, tl: number): void {
  initSqe(sqe, FABRICS_OPCODE);
  sqe[Sqe.FCTYPE] = FabricsCommandType.AUTHENTICATION_SEND;
  sqe[AuthSqe.SPSP0] = AUTH_SPSP0;
  sqe[AuthSqe.SPSP1] = AUTH_SPSP1;
  sqe[AuthSqe.SECP] = AUTH_SECP_NVME;
  sqe.writeUInt32LE(tl >>> 0, AuthSqe.LENGTH);
}

/** Fills an Authentication Receive SQE that takes at most `al` bytes. */
export function writeAuthReceive(sqe: Buffer, al: number): void {
  initSqe(sqe, FABRICS_OPCODE);
  sqe[Sqe.FCTYPE] = FabricsCommandType.AUTHENTICATION_RECV;
  sqe[AuthSqe.SPSP0] = AUTH_SPSP0;
  sqe[AuthSqe.SPSP1] = AUTH_SPSP1;
  sqe[AuthSqe.SECP] = AUTH_SECP_NVME;
  sqe.writeUInt32LE(al >>> 0, AuthSqe.LENGTH);
}

export function readAuthCommand(sqe: Buffer): AuthCommand {
  return {
    fctype: sqe[Sqe.FCTYPE],
    secp: sqe[AuthSqe.SECP],
    spsp0: sqe[AuthSqe.SPSP0],
    spsp1: sqe[AuthSqe.SPSP1],
    length: sqe.readUInt32LE(AuthSqe.LENGTH),
  };
}

// ------------------------------------------------------------ the Connect response

/** A successful Connect's completion: the AUTHREQ bits (ConnectAuthReq) in DW0 bits 31:16. */
export function setConnectAuthReq(rsp: Buffer, bits: number): void {
  rsp.writeUInt16LE(bits & 0xffff, ConnectRsp.AUTHREQ);
}

/** The AUTHREQ bits of a successful Connect's completion DW0. */
export function connectAuthReq(dw0: number): number {
  return (dw0 >>> 16) & 0xffff;
}

// ------------------------------------------------------------ messages

/** The header fields every message has. */
export interface AuthMessageHeader {
  authType: number;
  authId: number;
  tid: number;
}

/** The common header, or null when `buf` is too short for one. */
export function readAuthHeader(buf: Buffer): AuthMessageHeader | null {
  if (buf.length < 6) return null;
  return { authType: buf[AuthHeader.AUTH_TYPE], authId: buf[AuthHeader.AUTH_ID], tid: buf.readUInt16LE(4) };
}

function writeHeader(buf: Buffer, authType: number, authId: number, tid: number, size: number): void {
  buf.fill(0, 0, size);
  buf[AuthHeader.AUTH_TYPE] = authType;
  buf[AuthHeader.AUTH_ID] = authId;
  buf.writeUInt16LE(tid & 0xffff, AuthHeader.T_ID);
}

export interface AuthProtocolDescriptor {
  authId: number;
  hashIds: number[];
  dhGroupIds: number[];
}

export interface AuthNegotiateMessage {
  tid: number;
  scC: number;
  /** NAPD as sent */
  napd: number;
  /** the descriptors present in the buffer (at most NAPD; a short buffer holds fewer) */
  protocols: AuthProtocolDescriptor[];
  /** HALEN / DHLEN over 30 in some descriptor: a malformed list (the ids read are cut at 30) */
  listTooLong: boolean;
}

/** Size of an AUTH_Negotiate with `napd` descriptors. */
export function authNegotiateSize(napd: number): number {
  return AuthNegotiate.HEADER_SIZE + napd * AuthNegotiate.DESCRIPTOR_SIZE;
}

/** Writes AUTH_Negotiate (host); returns its length. Lists longer than 30 ids are cut. */
export function writeAuthNegotiate(
  buf: Buffer,
  m: { tid: number; scC: number; protocols: AuthProtocolDescriptor[] },
): number {
  const size = authNegotiateSize(m.protocols.length);
  writeHeader(buf, AuthType.COMMON, AuthMessageId.NEGOTIATE, m.tid, size);
  buf[AuthNegotiate.SC_C] = m.scC;
  buf[AuthNegotiate.NAPD] = m.protocols.length;
  m.protocols.forEach((p, i) => {
    const d = AuthNegotiate.DESCRIPTORS + i * AuthNegotiate.DESCRIPTOR_SIZE;
    const hashes = p.hashIds.slice(0, AuthNegotiate.MAX_IDS);
    const groups = p.dhGroupIds.slice(0, AuthNegotiate.MAX_IDS);
    buf[d + AuthNegotiate.D_AUTHID] = p.authId;
    buf[d + AuthNegotiate.D_HALEN] = hashes.length;
    buf[d + AuthNegotiate.D_DHLEN] = groups.length;
    hashes.forEach((h, j) => {
      buf[d + AuthNegotiate.D_HASH_IDS + j] = h;
    });
    groups.forEach((g, j) => {
      buf[d + AuthNegotiate.D_DHGROUP_IDS + j] = g;
    });
  });
  return size;
}

/** Reads AUTH_Negotiate (target); `buf` holds the message as received (at least 8 bytes). */
export function readAuthNegotiate(buf: Buffer): AuthNegotiateMessage {
  const napd = buf[AuthNegotiate.NAPD];
  const protocols: AuthProtocolDescriptor[] = [];
  let listTooLong = false;
  for (let i = 0; i < napd; i++) {
    const d = AuthNegotiate.DESCRIPTORS + i * AuthNegotiate.DESCRIPTOR_SIZE;
    if (d + AuthNegotiate.DESCRIPTOR_SIZE > buf.length) break;
    const halen = buf[d + AuthNegotiate.D_HALEN];
    const dhlen = buf[d + AuthNegotiate.D_DHLEN];
    if (halen > AuthNegotiate.MAX_IDS || dhlen > AuthNegotiate.MAX_IDS) listTooLong = true;
    const hashIds: number[] = [];
    const dhGroupIds: number[] = [];
    for (let j = 0; j < Math.min(halen, AuthNegotiate.MAX_IDS); j++)
      hashIds.push(buf[d + AuthNegotiate.D_HASH_IDS + j]);
    for (let j = 0; j < Math.min(dhlen, AuthNegotiate.MAX_IDS); j++)
      dhGroupIds.push(buf[d + AuthNegotiate.D_DHGROUP_IDS + j]);
    protocols.push({ authId: buf[d + AuthNegotiate.D_AUTHID], hashIds, dhGroupIds });
  }
  return {
    tid: buf.readUInt16LE(AuthHeader.T_ID),
    scC: buf[AuthNegotiate.SC_C],
    napd,
    protocols,
    listTooLong,
  };
}

export interface DhchapChallengeMessage {
  tid: number;
  hashId: number;
  dhGroupId: number;
  seqnum: number;
  /** C1: HL bytes */
  challenge: Buffer;
  /** the controller's DH public value (empty for the null group) */
  dhValue: Buffer;
}

/** Size of a challenge with an `hl`-byte C1 and a `dhvlen`-byte DH value. */
export function dhchapChallengeSize(hl: number, dhvlen: number): number {
  return DhchapChallenge.HEADER_SIZE + hl + dhvlen;
}

/** Writes DH-HMAC-CHAP_Challenge (controller); returns its length. */
export function writeDhchapChallenge(buf: Buffer, m: DhchapChallengeMessage): number {
  const hl = m.challenge.length;
  const size = dhchapChallengeSize(hl, m.dhValue.length);
  writeHeader(buf, AuthType.DHCHAP, AuthMessageId.DHCHAP_CHALLENGE, m.tid, size);
  buf[DhchapChallenge.HL] = hl;
  buf[DhchapChallenge.HASH_ID] = m.hashId;
  buf[DhchapChallenge.DHGROUP_ID] = m.dhGroupId;
  buf.writeUInt16LE(m.dhValue.length, DhchapChallenge.DHVLEN);
  buf.writeUInt32LE(m.seqnum >>> 0, DhchapChallenge.SEQNUM);
  m.challenge.copy(buf, DhchapChallenge.CVAL);
  m.dhValue.copy(buf, DhchapChallenge.CVAL + hl);
  return size;
}

/** The challenge's fixed fields (HL, DHVLEN) without the variable part, to check sizes first. */
export function readDhchapChallengeLengths(buf: Buffer): { hl: number; dhvlen: number } {
  return { hl: buf[DhchapChallenge.HL], dhvlen: buf.readUInt16LE(DhchapChallenge.DHVLEN) };
}

/** Reads DH-HMAC-CHAP_Challenge (host); `buf` must hold 16 + HL + DHVLEN bytes (copies are returned). */
export function readDhchapChallenge(buf: Buffer): DhchapChallengeMessage {
  const { hl, dhvlen } = readDhchapChallengeLengths(buf);
  return {
    tid: buf.readUInt16LE(AuthHeader.T_ID),
    hashId: buf[DhchapChallenge.HASH_ID],
    dhGroupId: buf[DhchapChallenge.DHGROUP_ID],
    seqnum: buf.readUInt32LE(DhchapChallenge.SEQNUM),
    challenge: Buffer.from(buf.subarray(DhchapChallenge.CVAL, DhchapChallenge.CVAL + hl)),
    dhValue: Buffer.from(buf.subarray(DhchapChallenge.CVAL + hl, DhchapChallenge.CVAL + hl + dhvlen)),
  };
}

export interface DhchapReplyMessage {
  tid: number;
  /** R1: the host's response, HL bytes */
  response: Buffer;
  /** CVALID: the host asks the controller to authenticate itself with C2 */
  cvalid: number;
  /** S2 (0 when cvalid is 0) */
  seqnum: number;
  /** C2: HL bytes, zeros when cvalid is 0 (always on the wire) */
  challenge: Buffer;
  /** the host's DH public value */
  dhValue: Buffer;
}

/** Size of a reply with `hl`-byte values and a `dhvlen`-byte DH value (R1 and C2 are always there). */
export function dhchapReplySize(hl: number, dhvlen: number): number {
  return DhchapReply.HEADER_SIZE + 2 * hl + dhvlen;
}

/** Writes DH-HMAC-CHAP_Reply (host); returns its length. */
export function writeDhchapReply(buf: Buffer, m: DhchapReplyMessage): number {
  const hl = m.response.length;
  const size = dhchapReplySize(hl, m.dhValue.length);
  writeHeader(buf, AuthType.DHCHAP, AuthMessageId.DHCHAP_REPLY, m.tid, size);
  buf[DhchapReply.HL] = hl;
  buf[DhchapReply.CVALID] = m.cvalid;
  buf.writeUInt16LE(m.dhValue.length, DhchapReply.DHVLEN);
  buf.writeUInt32LE(m.seqnum >>> 0, DhchapReply.SEQNUM);
  m.response.copy(buf, DhchapReply.RVAL);
  m.challenge.copy(buf, DhchapReply.RVAL + hl, 0, hl);
  m.dhValue.copy(buf, DhchapReply.RVAL + 2 * hl);
  return size;
}

/** The reply's fixed fields, to check sizes before reading the variable part. */
export function readDhchapReplyLengths(buf: Buffer): { hl: number; dhvlen: number } {
  return { hl: buf[DhchapReply.HL], dhvlen: buf.readUInt16LE(DhchapReply.DHVLEN) };
}

/** Reads DH-HMAC-CHAP_Reply (controller); `buf` must hold 16 + 2 HL + DHVLEN bytes. */
export function readDhchapReply(buf: Buffer): DhchapReplyMessage {
  const { hl, dhvlen } = readDhchapReplyLengths(buf);
  const r = DhchapReply.RVAL;
  return {
    tid: buf.readUInt16LE(AuthHeader.T_ID),
    response: Buffer.from(buf.subarray(r, r + hl)),
    cvalid: buf[DhchapReply.CVALID],
    seqnum: buf.readUInt32LE(DhchapReply.SEQNUM),
    challenge: Buffer.from(buf.subarray(r + hl, r + 2 * hl)),
    dhValue: Buffer.from(buf.subarray(r + 2 * hl, r + 2 * hl + dhvlen)),
  };
}

export interface DhchapSuccess1Message {
  tid: number;
  /** HL: the hash length, set even without a response (the Linux host checks it) */
  hl: number;
  /** R2, the controller's response to C2; null when the host asked for none (RVALID 0) */
  response: Buffer | null;
}

/** Size of a success1 carrying a response of `rl` bytes (0: none). */
export function dhchapSuccess1Size(rl: number): number {
  return DhchapSuccess1.HEADER_SIZE + rl;
}

/** Writes DH-HMAC-CHAP_Success1 (controller); returns its length. */
export function writeDhchapSuccess1(buf: Buffer, m: DhchapSuccess1Message): number {
  const rl = m.response?.length ?? 0;
  const size = dhchapSuccess1Size(rl);
  writeHeader(buf, AuthType.DHCHAP, AuthMessageId.DHCHAP_SUCCESS1, m.tid, size);
  buf[DhchapSuccess1.HL] = m.hl;
  buf[DhchapSuccess1.RVALID] = m.response !== null ? 1 : 0;
  m.response?.copy(buf, DhchapSuccess1.RVAL);
  return size;
}

/** Reads DH-HMAC-CHAP_Success1 (host); with RVALID the response is HL bytes (null if the buffer is short). */
export function readDhchapSuccess1(buf: Buffer): DhchapSuccess1Message & { rvalid: number } {
  const hl = buf[DhchapSuccess1.HL];
  const rvalid = buf[DhchapSuccess1.RVALID];
  const end = DhchapSuccess1.RVAL + hl;
  return {
    tid: buf.readUInt16LE(AuthHeader.T_ID),
    hl,
    rvalid,
    response: rvalid !== 0 && end <= buf.length ? Buffer.from(buf.subarray(DhchapSuccess1.RVAL, end)) : null,
  };
}

/** Writes DH-HMAC-CHAP_Success2 (host); returns its length. */
export function writeDhchapSuccess2(buf: Buffer, tid: number): number {
  writeHeader(buf, AuthType.DHCHAP, AuthMessageId.DHCHAP_SUCCESS2, tid, DHCHAP_SUCCESS2_SIZE);
  return DHCHAP_SUCCESS2_SIZE;
}

export interface AuthFailureMessage {
  tid: number;
  /** RC: AUTH_FAILURE_REASON */
  rc: number;
  /** RCE: an AuthFailure explanation */
  rce: number;
}

/** Writes AUTH_Failure1 (controller) or AUTH_Failure2 (host); returns its length. */
export function writeAuthFailure(buf: Buffer, which: 1 | 2, m: AuthFailureMessage): number {
  const id = which === 1 ? AuthMessageId.FAILURE1 : AuthMessageId.FAILURE2;
  writeHeader(buf, AuthType.COMMON, id, m.tid, AuthFailureMsg.SIZE);
  buf[AuthFailureMsg.RC] = m.rc;
  buf[AuthFailureMsg.RCE] = m.rce;
  return AuthFailureMsg.SIZE;
}

/** Reads AUTH_Failure1/2 (8 bytes). */
export function readAuthFailure(buf: Buffer): AuthFailureMessage {
  return {
    tid: buf.readUInt16LE(AuthHeader.T_ID),
    rc: buf[AuthFailureMsg.RC],
    rce: buf[AuthFailureMsg.RCE],
  };
}
