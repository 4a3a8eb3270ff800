// NVMe/RDMA transport binding (NVMe-oF 1.1 §7.3; SPDK include/spdk/nvmf_spec.h): the
// private data of the rdma_cm connect request, accept and reject, and the keyed SGL
// data block descriptor through which a command names host memory (address, length,
// remote key) for the target's RDMA READ / WRITE. Everything little-endian, in place.

import { SglType, Sqe, SqeFlags } from './nvme.ts';

/** Record format of every private data block this binding defines. */
export const RDMA_CM_RECFMT = 0;

/** The host's connect request private data (32 bytes; the CM may deliver it zero-padded). */
export const RdmaConnectRequest = {
  SIZE: 32,
  RECFMT: 0,
  QID: 2,
  /** host receive queue size: how many capsules the host can receive (1's based) */
  HRQSIZE: 4,
  /** host send queue size: the SQ size as in Connect, 0's based */
  HSQSIZE: 6,
  /** controller ID for an I/O queue (0xffff: not yet known), SPDK's field */
  CNTLID: 8,
} as const;

/** The controller's accept private data (32 bytes). */
export const RdmaAccept = {
  SIZE: 32,
  RECFMT: 0,
  /** controller receive queue size (1's based) */
  CRQSIZE: 2,
} as const;

/** The controller's reject private data (4 bytes). */
export const RdmaReject = {
  SIZE: 4,
  RECFMT: 0,
  STATUS: 2,
} as const;

/** Why a controller rejects a connect request (the reject's STATUS). */
export const RdmaRejectStatus = {
  INVALID_PRIVATE_DATA_LENGTH: 0x1,
  INVALID_RECFMT: 0x2,
  INVALID_QID: 0x3,
  INVALID_HSQSIZE: 0x4,
  INVALID_HRQSIZE: 0x5,
  NO_RESOURCES: 0x6,
  INVALID_IRD: 0x7,
  INVALID_ORD: 0x8,
} as const;

export type RdmaConnectRequestFields = {
  recfmt: number;
  qid: number;
  hrqsize: number;
  hsqsize: number;
  cntlid: number;
};

/** Writes the host's connect request private data into `out` (at least 32 bytes); returns 32. */
export function writeRdmaConnectRequest(out: Buffer, f: RdmaConnectRequestFields): number {
  out.fill(0, 0, RdmaConnectRequest.SIZE);
  out.writeUInt16LE(f.recfmt, RdmaConnectRequest.RECFMT);
  out.writeUInt16LE(f.qid, RdmaConnectRequest.QID);
  out.writeUInt16LE(f.hrqsize, RdmaConnectRequest.HRQSIZE);
  out.writeUInt16LE(f.hsqsize, RdmaConnectRequest.HSQSIZE);
  out.writeUInt16LE(f.cntlid, RdmaConnectRequest.CNTLID);
  return RdmaConnectRequest.SIZE;
}

/** Decodes a connect request's private data; null when it is shorter than the binding's 32 bytes. */
export function readRdmaConnectRequest(data: Buffer): RdmaConnectRequestFields | null {
  if (data.length < RdmaConnectRequest.SIZE) return null;
  return {
    recfmt: data.readUInt16LE(RdmaConnectRequest.RECFMT),
    qid: data.readUInt16LE(RdmaConnectRequest.QID),
    hrqsize: data.readUInt16LE(RdmaConnectRequest.HRQSIZE),
    hsqsize: data.readUInt16LE(RdmaConnectRequest.HSQSIZE),
    cntlid: data.readUInt16LE(RdmaConnectRequest.CNTLID),
  };
}

/** Writes the accept private data into `out` (at least 32 bytes); returns 32. */
export function writeRdmaAccept(out: Buffer, crqsize: number): number {
  out.fill(0, 0, RdmaAccept.SIZE);
  out.writeUInt16LE(RDMA_CM_RECFMT, RdmaAccept.RECFMT);
  out.writeUInt16LE(crqsize, RdmaAccept.CRQSIZE);
  return RdmaAccept.SIZE;
}

/** Decodes the accept private data; null when shorter than 4 bytes. */
export function readRdmaAccept(data: Buffer): { recfmt: number; crqsize: number } | null {
  if (data.length < 4) return null;
  return { recfmt: data.readUInt16LE(RdmaAccept.RECFMT), crqsize: data.readUInt16LE(RdmaAccept.CRQSIZE) };
}

/** Writes the reject private data into `out` (at least 4 bytes); returns 4. */
export function writeRdmaReject(out: Buffer, status: number): number {
  out.writeUInt16LE(RDMA_CM_RECFMT, RdmaReject.RECFMT);
  out.writeUInt16LE(status, RdmaReject.STATUS);
  return RdmaReject.SIZE;
}

/** Decodes the reject private data; null when shorter than 4 bytes. */
export function readRdmaReject(data: Buffer): { recfmt: number; status: number } | null {
  if (data.length < RdmaReject.SIZE) return null;
  return { recfmt: data.readUInt16LE(RdmaReject.RECFMT), status: data.readUInt16LE(RdmaReject.STATUS) };
}

/** Offsets of the keyed SGL data block descriptor in the SQE's data pointer (bytes 24..39). */
export const KeyedSgl = {
  /** 8-byte address in the host's registered memory */
  ADDRESS: Sqe.SGL_ADDRESS,
  /** 3-byte length */
  LENGTH: Sqe.SGL_LENGTH,
  /** 4-byte remote key */
  KEY: Sqe.SGL_KEY,
  TYPE: Sqe.SGL_TYPE,
} as const;

/** Keyed SGL subtypes (low nibble of the type byte). */
export const KeyedSglSubtype = {
  ADDRESS: 0x0,
  /** the target must invalidate the key (SEND_WITH_INV) when it completes the command */
  INVALIDATE_KEY: 0xf,
} as const;

/** Largest length a keyed SGL descriptor carries (24 bits). */
export const KEYED_SGL_MAX_LENGTH = 0xff_ffff;

/**
 * Describes the command's data as one keyed SGL data block (PSDT = SGL): `length`
 * bytes at the 64-bit address (two 32-bit halves) under `key`, with or without a
 * request to invalidate the key.
 */
export function setSqeKeyedSgl(
  sqe: Buffer,
  addressLo: number,
  addressHi: number,
  length: number,
  key: number,
  invalidate: boolean,
): void {
  sqe[Sqe.FLAGS] = (sqe[Sqe.FLAGS] & ~SqeFlags.PSDT_MASK) | SqeFlags.PSDT_SGL_MPTR_CONTIG;
  sqe.writeUInt32LE(addressLo >>> 0, KeyedSgl.ADDRESS);
  sqe.writeUInt32LE(addressHi >>> 0, KeyedSgl.ADDRESS + 4);
  sqe.writeUIntLE(length, KeyedSgl.LENGTH, 3);
  sqe.writeUInt32LE(key >>> 0, KeyedSgl.KEY);
  sqe[KeyedSgl.TYPE] =
    (SglType.KEYED_DATA_BLOCK << 4) | (invalidate ? KeyedSglSubtype.INVALIDATE_KEY : KeyedSglSubtype.ADDRESS);
}

/**
 * Marks a command without data: a keyed SGL data block of length 0 (address and key 0).
 * An NVMe/RDMA target parses the descriptor of every command, so a zeroed one (an
 * in-capsule data block without the offset subtype) is refused as Invalid Field
 * (Linux's nvmet-rdma does; its host sends this form).
 */
export function setSqeNoData(sqe: Buffer): void {
  setSqeKeyedSgl(sqe, 0, 0, 0, 0, false);
}

/** The 24-bit length of a keyed SGL descriptor. */
export function keyedSglLength(sqe: Buffer): number {
  return sqe.readUIntLE(KeyedSgl.LENGTH, 3);
}

/** The remote key of a keyed SGL descriptor. */
export function keyedSglKey(sqe: Buffer): number {
  return sqe.readUInt32LE(KeyedSgl.KEY);
}
