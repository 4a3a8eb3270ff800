// NVMe over Fabrics command layouts (NVMe-oF 1.1 §3; SPDK include/spdk/nvmf_spec.h):
// Connect (SQE fields and the 1024-byte data) and Property Get / Set, each
// with the encoder the host uses and the decoder the target uses, and the
// completion fields the target writes for them.
// Opcodes, fabrics command types and status codes live in nvme.ts.
// Offsets are into the 64-byte SQE / 16-byte CQE / 1024-byte Connect data.

import { readCString } from './fields.ts';
import { Cqe, FABRICS_OPCODE, FabricsCommandType, initSqe, Sqe } from './nvme.ts';

export const FabricsSqe = {
  FCTYPE: 4,
  // Connect
  CONNECT_RECFMT: 40,
  CONNECT_QID: 42,
  CONNECT_SQSIZE: 44,
  CONNECT_CATTR: 46,
  CONNECT_KATO: 48,
  // Property Get / Set
  PROP_ATTRIB: 40,
  PROP_OFFSET: 44,
  PROP_VALUE: 48,
} as const;

/** Connect CATTR bit 2: the host disables SQ flow control. */
export const CONNECT_CATTR_DISABLE_SQFLOW = 0x04;

/** Connect data (1024 bytes, host to controller). */
export const ConnectData = {
  SIZE: 1024,
  HOSTID: 0, // 16 bytes
  HOSTID_SIZE: 16,
  CNTLID: 16,
  SUBNQN: 256, // 256 bytes, NUL-terminated
  HOSTNQN: 512,
  NQN_LEN: 256,
} as const;

/** Longest NQN in bytes, without its terminating NUL (NVMe base spec §4.5). */
export const NQN_MAX_LEN = 223;

/** Connect response: DW0 bits 15:0 = CNTLID; on Invalid Parameter DW0 byte 0 = IATTR, bytes 2..3 = IPO. */
export const ConnectRsp = { CNTLID: 0, AUTHREQ: 2, IATTR: 0, IPO: 2 } as const;

/** The Connect command's own fields (SQE bytes 40..51). */
export interface ConnectCommand {
  recfmt: number;
  qid: number;
  /** submission queue size, 0's based as on the wire */
  sqsize: number;
  cattr: number;
  /** keep alive timeout in ms (0 = none) */
  kato: number;
}

/** The 1024-byte Connect data. */
export interface ConnectDataFields {
  /** 16-byte host identifier */
  hostid: Buffer;
  /** 0xffff for an admin queue (dynamic controller), else the controller to join */
  cntlid: number;
  subnqn: string;
  hostnqn: string;
}

/** Fills a Connect SQE (opcode, FCTYPE, fields; CID and SGL are the transport's). */
export function writeConnectCommand(sqe: Buffer, c: ConnectCommand): void {
  initSqe(sqe, FABRICS_OPCODE);
  sqe[Sqe.FCTYPE] = FabricsCommandType.CONNECT;
  sqe.writeUInt16LE(c.recfmt, FabricsSqe.CONNECT_RECFMT);
  sqe.writeUInt16LE(c.qid, FabricsSqe.CONNECT_QID);
  sqe.writeUInt16LE(c.sqsize, FabricsSqe.CONNECT_SQSIZE);
  sqe[FabricsSqe.CONNECT_CATTR] = c.cattr;
  sqe.writeUInt32LE(c.kato >>> 0, FabricsSqe.CONNECT_KATO);
}

export function readConnectCommand(sqe: Buffer): ConnectCommand {
  return {
    recfmt: sqe.readUInt16LE(FabricsSqe.CONNECT_RECFMT),
    qid: sqe.readUInt16LE(FabricsSqe.CONNECT_QID),
    sqsize: sqe.readUInt16LE(FabricsSqe.CONNECT_SQSIZE),
    cattr: sqe[FabricsSqe.CONNECT_CATTR],
    kato: sqe.readUInt32LE(FabricsSqe.CONNECT_KATO),
  };
}

/** Fills the 1024-byte Connect data; NQNs are written as UTF-8, at most 255 bytes, NUL-padded. */
export function writeConnectData(data: Buffer, d: ConnectDataFields): void {
  data.fill(0, 0, ConnectData.SIZE);
  d.hostid.copy(data, ConnectData.HOSTID, 0, ConnectData.HOSTID_SIZE);
  data.writeUInt16LE(d.cntlid, ConnectData.CNTLID);
  data.write(d.subnqn, ConnectData.SUBNQN, ConnectData.NQN_LEN - 1, 'utf8');
  data.write(d.hostnqn, ConnectData.HOSTNQN, ConnectData.NQN_LEN - 1, 'utf8');
}

/** Decodes Connect data; `hostid` is a copy. NQNs end at their first NUL (or the field's end). */
export function readConnectData(data: Buffer): ConnectDataFields {
  return {
    hostid: Buffer.from(data.subarray(ConnectData.HOSTID, ConnectData.HOSTID + ConnectData.HOSTID_SIZE)),
    cntlid: data.readUInt16LE(ConnectData.CNTLID),
    subnqn: readCString(data, ConnectData.SUBNQN, ConnectData.NQN_LEN),
    hostnqn: readCString(data, ConnectData.HOSTNQN, ConnectData.NQN_LEN),
  };
}

/**
 * Whether the Connect data's NQN field at `off` (SUBNQN or HOSTNQN) holds a NUL within its
 * first NQN_MAX_LEN + 1 bytes: an NQN is at most 223 bytes and NUL-terminated in its field.
 */
export function connectNqnTerminated(data: Buffer, off: number): boolean {
  const end = Math.min(data.length, off + NQN_MAX_LEN + 1);
  for (let i = off; i < end; i++) if (data[i] === 0) return true;
  return false;
}

/** CNTLID the controller assigned, from a successful Connect's completion DW0. */
export function connectResponseCntlid(dw0: number): number {
  return dw0 & 0xffff;
}

/** A successful Connect's completion: the controller ID in DW0 bits 15:0. */
export function setConnectResponseCntlid(rsp: Buffer, cntlid: number): void {
  rsp.writeUInt16LE(cntlid, ConnectRsp.CNTLID);
}

/**
 * A Connect failed with Invalid Parameters: which part holds the bad field (IATTR 0: the
 * command, 1: the data) and the field's byte offset in it (IPO).
 */
export function setConnectInvalidParameter(rsp: Buffer, iattr: number, ipo: number): void {
  rsp[ConnectRsp.IATTR] = iattr;
  rsp.writeUInt16LE(ipo, ConnectRsp.IPO);
}

/** Property Get/Set ATTRIB bits 2:0: the property's size. */
export const PropertySize = { FOUR_BYTES: 0, EIGHT_BYTES: 1 } as const;

export interface PropertyCommand {
  fctype: number;
  /** ATTRIB bits 2:0 (PropertySize); other values are reserved */
  sizeCode: number;
  /** register offset (ControllerRegister) */
  offset: number;
  /** Property Set: the value (the low 32 bits for a 4-byte property) */
  value: bigint;
}

/** Fills a Property Get SQE for a 4- or 8-byte property at `offset`. */
export function writePropertyGet(sqe: Buffer, offset: number, size: 4 | 8): void {
  initSqe(sqe, FABRICS_OPCODE);
  sqe[Sqe.FCTYPE] = FabricsCommandType.PROPERTY_GET;
  sqe[FabricsSqe.PROP_ATTRIB] = size === 8 ? PropertySize.EIGHT_BYTES : PropertySize.FOUR_BYTES;
  sqe.writeUInt32LE(offset, FabricsSqe.PROP_OFFSET);
}

/** Fills a Property Set SQE. A value is at most 2^53 here (every writable property is 4 bytes). */
export function writePropertySet(sqe: Buffer, offset: number, value: number, size: 4 | 8): void {
  initSqe(sqe, FABRICS_OPCODE);
  sqe[Sqe.FCTYPE] = FabricsCommandType.PROPERTY_SET;
  sqe[FabricsSqe.PROP_ATTRIB] = size === 8 ? PropertySize.EIGHT_BYTES : PropertySize.FOUR_BYTES;
  sqe.writeUInt32LE(offset, FabricsSqe.PROP_OFFSET);
  sqe.writeUInt32LE(value >>> 0, FabricsSqe.PROP_VALUE);
  if (size === 8) sqe.writeUInt32LE(Math.floor(value / 0x1_0000_0000) >>> 0, FabricsSqe.PROP_VALUE + 4);
}

export function readPropertyCommand(sqe: Buffer): PropertyCommand {
  return {
    fctype: sqe[Sqe.FCTYPE],
    sizeCode: sqe[FabricsSqe.PROP_ATTRIB] & 0x7,
    offset: sqe.readUInt32LE(FabricsSqe.PROP_OFFSET),
    value: sqe.readBigUInt64LE(FabricsSqe.PROP_VALUE),
  };
}

/** A Property Get's value from its completion (DW0 low, DW1 high). */
export function propertyValue(dw0: number, dw1: number): bigint {
  return (BigInt(dw1 >>> 0) << 32n) | BigInt(dw0 >>> 0);
}

/** A Property Get's completion: the value's low 32 bits in DW0, its high 32 bits in DW1. */
export function setPropertyValue(rsp: Buffer, lo: number, hi: number): void {
  rsp.writeUInt32LE(lo >>> 0, Cqe.DW0);
  rsp.writeUInt32LE(hi >>> 0, Cqe.DW1);
}
