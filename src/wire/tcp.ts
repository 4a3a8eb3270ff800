// NVMe/TCP transport PDUs (NVMe/TCP transport specification; field layout
// checked against Linux include/linux/nvme-tcp.h). Offsets are from the start
// of the PDU; every PDU starts with the 8-byte common header. Below the
// layouts: an encoder for every PDU either side sends, written in place into
// the caller's buffer (the I/O-path ones allocate nothing), and the decoders
// for the fields each side reads. The receiving state machine (framing,
// digests checked) is tcp-receiver.ts.

import { crc32c } from '@node-rs/crc32';
import { CQE_SIZE, Cqe, SQE_SIZE } from './nvme.ts';

export const PduType = {
  IC_REQ: 0x00,
  IC_RESP: 0x01,
  H2C_TERM_REQ: 0x02,
  C2H_TERM_REQ: 0x03,
  CAPSULE_CMD: 0x04,
  CAPSULE_RESP: 0x05,
  H2C_DATA: 0x06,
  C2H_DATA: 0x07,
  R2T: 0x09,
} as const;
export type PduType = (typeof PduType)[keyof typeof PduType];

/** Common header flags (byte 1). */
export const PduFlags = {
  HDGST: 0x01,
  DDGST: 0x02,
  /** C2HData / H2CData: last PDU of the transfer */
  DATA_LAST: 0x04,
  /** C2HData: the command succeeded, no CapsuleResp follows */
  DATA_SUCCESS: 0x08,
} as const;

/** Common header (8 bytes). */
export const Ch = {
  TYPE: 0,
  FLAGS: 1,
  HLEN: 2,
  PDO: 3,
  PLEN: 4,
  SIZE: 8,
} as const;

export const DIGEST_SIZE = 4;

/** Header lengths (hlen) per PDU type. */
export const PduHlen = {
  IC_REQ: 128,
  IC_RESP: 128,
  TERM_REQ: 24,
  CAPSULE_CMD: 72,
  CAPSULE_RESP: 24,
  H2C_DATA: 24,
  C2H_DATA: 24,
  R2T: 24,
} as const;

/** ICReq fields. */
export const IcReq = {
  PFV: 8, // le16
  HPDA: 10, // u8, host PDU data alignment, 0's based dwords
  DGST: 11, // bit0 HDGST_ENABLE, bit1 DDGST_ENABLE
  MAXR2T: 12, // le32, 0's based
  SIZE: 128,
} as const;

/** ICResp fields. */
export const IcResp = {
  PFV: 8, // le16
  CPDA: 10, // u8
  DGST: 11, // u8
  MAXH2CDATA: 12, // le32
  SIZE: 128,
} as const;

export const IcDigest = {
  HDGST_ENABLE: 0x1,
  DDGST_ENABLE: 0x2,
} as const;

/** H2CTermReq / C2HTermReq fields. */
export const TermReq = {
  FES: 8, // le16
  FEI: 10, // le32 field error information
  HDR_SIZE: 24,
  /** the offending PDU header is copied after the 24-byte header, up to 128 bytes */
  MAX_ERROR_DATA: 128,
  MIN_PLEN: 24,
  MAX_PLEN: 152,
} as const;

/** Fatal error status codes of a TermReq. */
export const TermReqFes = {
  INVALID_HEADER_FIELD: 0x01,
  PDU_SEQUENCE_ERROR: 0x02,
  HDGST_ERROR: 0x03,
  DATA_TRANSFER_OUT_OF_RANGE: 0x04,
  DATA_TRANSFER_LIMIT_EXCEEDED: 0x05,
  UNSUPPORTED_PARAMETER: 0x06,
} as const;

/** CapsuleCmd: the 64-byte SQE follows the common header. */
export const CapsuleCmd = {
  SQE: 8,
  HDR_SIZE: 72,
} as const;

/** CapsuleResp: the 16-byte CQE follows the common header. */
export const CapsuleResp = {
  CQE: 8,
  HDR_SIZE: 24,
} as const;

/** H2CData / C2HData fields. */
export const DataPdu = {
  CCCID: 8, // le16 command capsule CID
  TTAG: 10, // le16 transfer tag (H2C only)
  DATAO: 12, // le32 data offset
  DATAL: 16, // le32 data length
  RESERVED: 20, // 4 bytes
  HDR_SIZE: 24,
} as const;

/** R2T fields. */
export const R2t = {
  CCCID: 8,
  TTAG: 10,
  R2TO: 12,
  R2TL: 16,
  RESERVED: 20, // 4 bytes
  HDR_SIZE: 24,
} as const;

export const PFV_1_0 = 0;
/** largest hpda the target accepts (0's based dwords: 128 bytes) */
export const MAX_HPDA = 31;

/** Write a common header in place, at `at` of `buf` (a PDU that does not start the buffer). */
export function writeCommonHeader(
  buf: Buffer,
  type: number,
  flags: number,
  hlen: number,
  pdo: number,
  plen: number,
  at = 0,
): void {
  buf[at + Ch.TYPE] = type;
  buf[at + Ch.FLAGS] = flags;
  buf[at + Ch.HLEN] = hlen;
  buf[at + Ch.PDO] = pdo;
  buf.writeUInt32LE(plen, at + Ch.PLEN);
}

/** Fixed header length expected for a PDU type, or -1 if the type is unknown. */
export function expectedHlen(type: number): number {
  switch (type) {
    case PduType.IC_REQ:
    case PduType.IC_RESP:
      return 128;
    case PduType.H2C_TERM_REQ:
    case PduType.C2H_TERM_REQ:
      return 24;
    case PduType.CAPSULE_CMD:
      return 72;
    case PduType.CAPSULE_RESP:
    case PduType.H2C_DATA:
    case PduType.C2H_DATA:
    case PduType.R2T:
      return 24;
    default:
      return -1;
  }
}

/** Whether a PDU type may carry a header digest (ICReq/ICResp/TermReq never do). */
export function pduHasHeaderDigest(type: number): boolean {
  return type >= PduType.CAPSULE_CMD;
}

/** Whether a PDU type may carry a data digest. */
export function pduCanHaveDataDigest(type: number): boolean {
  return type === PduType.CAPSULE_CMD || type === PduType.H2C_DATA || type === PduType.C2H_DATA;
}

// ---------------------------------------------------------------------------
// Digests

/** CRC32C of the first `hlen` bytes of a PDU, stored right after them (HDGST). */
export function writeHeaderDigest(pdu: Buffer, hlen: number, at = 0): void {
  pdu.writeUInt32LE(crc32c(pdu.subarray(at, at + hlen)), at + hlen);
}

/** Data digest (CRC32C) of `data`; pass the previous result as `crc` to go on over several parts. */
export function dataDigest(data: Buffer, crc = 0): number {
  return crc32c(data, crc) >>> 0;
}

/** PDO of a data PDU: its header (and HDGST) rounded up to the receiver's data alignment. */
export function dataPduPdo(hdgst: boolean, align: number): number {
  const n = DataPdu.HDR_SIZE + (hdgst ? DIGEST_SIZE : 0);
  return Math.ceil(n / align) * align;
}

// ---------------------------------------------------------------------------
// ICReq / ICResp (128 bytes, never digested)

export interface IcReqFields {
  pfv: number;
  /** host PDU data alignment, 0's based dwords */
  hpda: number;
  /** IcDigest bits the host asks for */
  dgst: number;
  /** outstanding R2Ts per command, 0's based */
  maxr2t: number;
}

export interface IcRespFields {
  pfv: number;
  /** controller PDU data alignment, 0's based dwords */
  cpda: number;
  /** IcDigest bits the controller enables */
  dgst: number;
  /** largest H2CData payload the controller takes */
  maxh2cdata: number;
}

/** IcDigest bits for the given digests. */
export function icDigestBits(hdgst: boolean, ddgst: boolean): number {
  return (hdgst ? IcDigest.HDGST_ENABLE : 0) | (ddgst ? IcDigest.DDGST_ENABLE : 0);
}

/** Writes a whole ICReq (reserved bytes zero); returns its length. */
export function writeIcReq(buf: Buffer, f: IcReqFields): number {
  buf.fill(0, 0, IcReq.SIZE);
  writeCommonHeader(buf, PduType.IC_REQ, 0, PduHlen.IC_REQ, 0, IcReq.SIZE);
  buf.writeUInt16LE(f.pfv, IcReq.PFV);
  buf[IcReq.HPDA] = f.hpda;
  buf[IcReq.DGST] = f.dgst;
  buf.writeUInt32LE(f.maxr2t >>> 0, IcReq.MAXR2T);
  return IcReq.SIZE;
}

export function readIcReq(pdu: Buffer): IcReqFields {
  return {
    pfv: pdu.readUInt16LE(IcReq.PFV),
    hpda: pdu[IcReq.HPDA],
    dgst: pdu[IcReq.DGST],
    maxr2t: pdu.readUInt32LE(IcReq.MAXR2T),
  };
}

/** Writes a whole ICResp (reserved bytes zero); returns its length. */
export function writeIcResp(buf: Buffer, f: IcRespFields): number {
  buf.fill(0, 0, IcResp.SIZE);
  writeCommonHeader(buf, PduType.IC_RESP, 0, PduHlen.IC_RESP, 0, IcResp.SIZE);
  buf.writeUInt16LE(f.pfv, IcResp.PFV);
  buf[IcResp.CPDA] = f.cpda;
  buf[IcResp.DGST] = f.dgst;
  buf.writeUInt32LE(f.maxh2cdata >>> 0, IcResp.MAXH2CDATA);
  return IcResp.SIZE;
}

export function readIcResp(pdu: Buffer): IcRespFields {
  return {
    pfv: pdu.readUInt16LE(IcResp.PFV),
    cpda: pdu[IcResp.CPDA],
    dgst: pdu[IcResp.DGST],
    maxh2cdata: pdu.readUInt32LE(IcResp.MAXH2CDATA),
  };
}

// ---------------------------------------------------------------------------
// CapsuleCmd / CapsuleResp

/**
 * Writes a CapsuleCmd header: common header, the 64-byte `sqe`, HDGST when on.
 * `dataLength` bytes of in-capsule data (and their DDGST when on) follow it in
 * the PDU; the caller sends them. Returns the header length (the PDO when data follows).
 */
export function writeCapsuleCmd(
  buf: Buffer,
  sqe: Buffer,
  dataLength: number,
  hdgst: boolean,
  ddgst: boolean,
): number {
  const hdrLen = CapsuleCmd.HDR_SIZE + (hdgst ? DIGEST_SIZE : 0);
  const dd = ddgst && dataLength > 0 ? DIGEST_SIZE : 0;
  let flags = hdgst ? PduFlags.HDGST : 0;
  if (dd) flags |= PduFlags.DDGST;
  const pdo = dataLength > 0 ? hdrLen : 0;
  const plen = dataLength > 0 ? hdrLen + dataLength + dd : hdrLen;
  writeCommonHeader(buf, PduType.CAPSULE_CMD, flags, CapsuleCmd.HDR_SIZE, pdo, plen);
  sqe.copy(buf, CapsuleCmd.SQE, 0, SQE_SIZE);
  if (hdgst) writeHeaderDigest(buf, CapsuleCmd.HDR_SIZE);
  return hdrLen;
}

/** Copies the SQE of a CapsuleCmd starting at `at` of `pdu` into `into` (64 bytes). */
export function readCapsuleCmdSqe(pdu: Buffer, into: Buffer, at = 0): void {
  pdu.copy(into, 0, at + CapsuleCmd.SQE, at + CapsuleCmd.SQE + SQE_SIZE);
}

/** The CQE of a CapsuleResp, as a view: the target fills it in place before writeCapsuleResp. */
export function capsuleRespCqe(pdu: Buffer): Buffer {
  return pdu.subarray(CapsuleResp.CQE, CapsuleResp.CQE + CQE_SIZE);
}

/**
 * Completes a CapsuleResp whose CQE is already in place (capsuleRespCqe):
 * common header and HDGST when on. Returns the PDU length.
 */
export function writeCapsuleResp(buf: Buffer, hdgst: boolean): number {
  const plen = CapsuleResp.HDR_SIZE + (hdgst ? DIGEST_SIZE : 0);
  writeCommonHeader(buf, PduType.CAPSULE_RESP, hdgst ? PduFlags.HDGST : 0, CapsuleResp.HDR_SIZE, 0, plen);
  if (hdgst) writeHeaderDigest(buf, CapsuleResp.HDR_SIZE);
  return plen;
}

/**
 * Writes a whole CapsuleResp at `at` of `buf` (header, the 16 bytes of `cqe`, HDGST when on),
 * for a response sent in one frame behind the data it answers. Returns the PDU length.
 */
export function writeCapsuleRespAt(buf: Buffer, at: number, cqe: Buffer, hdgst: boolean): number {
  const plen = CapsuleResp.HDR_SIZE + (hdgst ? DIGEST_SIZE : 0);
  writeCommonHeader(buf, PduType.CAPSULE_RESP, hdgst ? PduFlags.HDGST : 0, CapsuleResp.HDR_SIZE, 0, plen, at);
  // a typed-array set: cheaper than four dword moves or a native copy call for 16 bytes
  buf.set(cqe, at + CapsuleResp.CQE);
  if (hdgst) writeHeaderDigest(buf, CapsuleResp.HDR_SIZE, at);
  return plen;
}

/** Copies the CQE of the CapsuleResp starting at `at` of `pdu` into `into` (16 bytes). */
export function readCapsuleRespCqe(pdu: Buffer, into: Buffer, at = 0): void {
  // four dword moves: cheaper than a native copy call for 16 bytes (once per I/O on the host)
  const from = at + CapsuleResp.CQE;
  into.writeUInt32LE(pdu.readUInt32LE(from), 0);
  into.writeUInt32LE(pdu.readUInt32LE(from + 4), 4);
  into.writeUInt32LE(pdu.readUInt32LE(from + 8), 8);
  into.writeUInt32LE(pdu.readUInt32LE(from + 12), 12);
}

/** The command identifier the CapsuleResp starting at `at` of `pdu` answers. */
export function capsuleRespCid(pdu: Buffer, at = 0): number {
  return pdu.readUInt16LE(at + CapsuleResp.CQE + Cqe.CID);
}

// ---------------------------------------------------------------------------
// H2CData / C2HData / R2T

/**
 * Writes a C2HData header: fields, HDGST when on, and zeroed padding up to the
 * PDO that `pdoAlign` (the host's HPDA in bytes) asks for. `flags` are
 * DATA_LAST / DATA_SUCCESS; the digest flags are added here. The data (`datal`
 * bytes, then DDGST when on) follow. Returns the PDO.
 */
export function writeC2HData(
  buf: Buffer,
  cccid: number,
  datao: number,
  datal: number,
  flags: number,
  hdgst: boolean,
  ddgst: boolean,
  pdoAlign: number,
): number {
  const pdo = dataPduPdo(hdgst, pdoAlign);
  let f = flags;
  if (hdgst) f |= PduFlags.HDGST;
  if (ddgst) f |= PduFlags.DDGST;
  writeCommonHeader(buf, PduType.C2H_DATA, f, DataPdu.HDR_SIZE, pdo, pdo + datal + (ddgst ? DIGEST_SIZE : 0));
  buf.writeUInt16LE(cccid, DataPdu.CCCID);
  // every byte of the header written (its reserved fields zeroed), then only the padding filled:
  // a fill of the whole header costs more than these writes
  buf.writeUInt16LE(0, DataPdu.TTAG);
  buf.writeUInt32LE(datao, DataPdu.DATAO);
  buf.writeUInt32LE(datal, DataPdu.DATAL);
  buf.writeUInt32LE(0, DataPdu.RESERVED);
  const hdrEnd = DataPdu.HDR_SIZE + (hdgst ? DIGEST_SIZE : 0);
  if (pdo > hdrEnd) buf.fill(0, hdrEnd, pdo);
  if (hdgst) writeHeaderDigest(buf, DataPdu.HDR_SIZE);
  return pdo;
}

/** Writes the CCCID of a data PDU header already written for another command of its shape. */
export function setDataPduCccid(buf: Buffer, cccid: number): void {
  buf[DataPdu.CCCID] = cccid & 0xff;
  buf[DataPdu.CCCID + 1] = cccid >>> 8;
}

/**
 * Writes an H2CData header (no padding: our host requires CPDA 0). `flags`:
 * DATA_LAST or 0; the digest flags are added here. The data (`datal` bytes,
 * then DDGST when on) follow. Returns the PDO.
 */
export function writeH2CData(
  buf: Buffer,
  cccid: number,
  ttag: number,
  datao: number,
  datal: number,
  flags: number,
  hdgst: boolean,
  ddgst: boolean,
): number {
  const pdo = DataPdu.HDR_SIZE + (hdgst ? DIGEST_SIZE : 0);
  let f = flags;
  if (hdgst) f |= PduFlags.HDGST;
  if (ddgst) f |= PduFlags.DDGST;
  writeCommonHeader(buf, PduType.H2C_DATA, f, DataPdu.HDR_SIZE, pdo, pdo + datal + (ddgst ? DIGEST_SIZE : 0));
  buf.writeUInt16LE(cccid, DataPdu.CCCID);
  buf.writeUInt16LE(ttag, DataPdu.TTAG);
  buf.writeUInt32LE(datao, DataPdu.DATAO);
  buf.writeUInt32LE(datal, DataPdu.DATAL);
  buf.writeUInt32LE(0, DataPdu.RESERVED);
  if (hdgst) writeHeaderDigest(buf, DataPdu.HDR_SIZE);
  return pdo;
}

/** The fields of an H2CData / C2HData header; one object per connection, refilled per PDU. */
export interface DataPduHeader {
  flags: number;
  cccid: number;
  /** H2CData only (0 in C2HData) */
  ttag: number;
  datao: number;
  datal: number;
}

export function newDataPduHeader(): DataPduHeader {
  return { flags: 0, cccid: 0, ttag: 0, datao: 0, datal: 0 };
}

/** Reads an H2CData / C2HData header starting at `at` of `pdu` into `into` (no allocation). */
export function readDataPduHeader(pdu: Buffer, into: DataPduHeader, at = 0): DataPduHeader {
  into.flags = pdu[at + Ch.FLAGS];
  into.cccid = pdu.readUInt16LE(at + DataPdu.CCCID);
  into.ttag = pdu.readUInt16LE(at + DataPdu.TTAG);
  into.datao = pdu.readUInt32LE(at + DataPdu.DATAO);
  into.datal = pdu.readUInt32LE(at + DataPdu.DATAL);
  return into;
}

/** Writes an R2T asking for `r2tl` bytes at `r2to` (HDGST when on); returns the PDU length. */
export function writeR2t(
  buf: Buffer,
  cccid: number,
  ttag: number,
  r2to: number,
  r2tl: number,
  hdgst: boolean,
): number {
  const plen = R2t.HDR_SIZE + (hdgst ? DIGEST_SIZE : 0);
  writeCommonHeader(buf, PduType.R2T, hdgst ? PduFlags.HDGST : 0, R2t.HDR_SIZE, 0, plen);
  buf.writeUInt16LE(cccid, R2t.CCCID);
  buf.writeUInt16LE(ttag, R2t.TTAG);
  buf.writeUInt32LE(r2to, R2t.R2TO);
  buf.writeUInt32LE(r2tl, R2t.R2TL);
  buf.writeUInt32LE(0, R2t.RESERVED);
  if (hdgst) writeHeaderDigest(buf, R2t.HDR_SIZE);
  return plen;
}

/** The fields of an R2T; one object per connection, refilled per PDU. */
export interface R2tFields {
  cccid: number;
  ttag: number;
  r2to: number;
  r2tl: number;
}

export function newR2tFields(): R2tFields {
  return { cccid: 0, ttag: 0, r2to: 0, r2tl: 0 };
}

/** Reads the R2T starting at `at` of `pdu` into `into` (no allocation). */
export function readR2t(pdu: Buffer, into: R2tFields, at = 0): R2tFields {
  into.cccid = pdu.readUInt16LE(at + R2t.CCCID);
  into.ttag = pdu.readUInt16LE(at + R2t.TTAG);
  into.r2to = pdu.readUInt32LE(at + R2t.R2TO);
  into.r2tl = pdu.readUInt32LE(at + R2t.R2TL);
  return into;
}

// ---------------------------------------------------------------------------
// H2CTermReq / C2HTermReq

/**
 * How much of the offending PDU a TermReq carries: its header (hlen bytes, at
 * least the common header), never its data, at most 128 bytes.
 */
export function termReqErrorDataLength(offending: Buffer | null): number {
  if (offending === null) return 0;
  const hdrLen = offending.length >= Ch.SIZE ? Math.max(Ch.SIZE, offending[Ch.HLEN]) : 0;
  return Math.min(offending.length, hdrLen || offending.length, TermReq.MAX_ERROR_DATA);
}

/** FEI is defined only for an invalid header field or an unsupported parameter; reserved (0) otherwise. */
export function termReqFei(fes: number, fei: number): number {
  return fes === TermReqFes.INVALID_HEADER_FIELD || fes === TermReqFes.UNSUPPORTED_PARAMETER ? fei : 0;
}

/**
 * Writes an H2CTermReq or C2HTermReq (`type`) with FES, FEI and, as error
 * data, the header of the offending PDU (termReqErrorDataLength bytes of it).
 * `buf` must hold TermReq.HDR_SIZE + that many bytes. Returns the PDU length.
 */
export function writeTermReq(
  buf: Buffer,
  type: number,
  fes: number,
  fei: number,
  offending: Buffer | null,
): number {
  const copyLen = termReqErrorDataLength(offending);
  const plen = TermReq.HDR_SIZE + copyLen;
  buf.fill(0, 0, TermReq.HDR_SIZE);
  writeCommonHeader(buf, type, 0, TermReq.HDR_SIZE, 0, plen);
  buf.writeUInt16LE(fes, TermReq.FES);
  buf.writeUInt32LE(fei >>> 0, TermReq.FEI);
  if (offending !== null) offending.copy(buf, TermReq.HDR_SIZE, 0, copyLen);
  return plen;
}

export interface TermReqFields {
  fes: number;
  fei: number;
  /** the copied header of the offending PDU (a view; cut short when `pdu` is) */
  errorData: Buffer;
}

export function readTermReq(pdu: Buffer): TermReqFields {
  const plen = pdu.readUInt32LE(Ch.PLEN);
  return {
    fes: pdu.readUInt16LE(TermReq.FES),
    fei: pdu.readUInt32LE(TermReq.FEI),
    errorData: pdu.subarray(TermReq.HDR_SIZE, Math.max(TermReq.HDR_SIZE, Math.min(plen, pdu.length))),
  };
}

// ---------------------------------------------------------------------------

/** Reads the common header: the PDU's type, flags, hlen, pdo and plen. */
export function readCommonHeader(pdu: Buffer): {
  type: number;
  flags: number;
  hlen: number;
  pdo: number;
  plen: number;
} {
  return {
    type: pdu[Ch.TYPE],
    flags: pdu[Ch.FLAGS],
    hlen: pdu[Ch.HLEN],
    pdo: pdu[Ch.PDO],
    plen: pdu.readUInt32LE(Ch.PLEN),
  };
}

/** One buffer holding a PDU: `header` (its first `headerLength` bytes), the data, and DDGST when asked. */
export function joinPdu(header: Buffer, headerLength: number, data: Buffer | null, ddgst: boolean): Buffer {
  const dataLength = data?.length ?? 0;
  const dd = ddgst && dataLength > 0 ? DIGEST_SIZE : 0;
  const out = Buffer.alloc(headerLength + dataLength + dd);
  header.copy(out, 0, 0, headerLength);
  if (data !== null && dataLength > 0) {
    data.copy(out, headerLength);
    if (dd) out.writeUInt32LE(dataDigest(data), headerLength + dataLength);
  }
  return out;
}
