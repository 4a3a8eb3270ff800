// NVMe/TCP transport PDUs (NVMe/TCP transport specification; field layout
// checked against Linux include/linux/nvme-tcp.h). Offsets are from the start
// of the PDU; every PDU starts with the 8-byte common header.

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
  HDR_SIZE: 24,
} as const;

/** R2T fields. */
export const R2t = {
  CCCID: 8,
  TTAG: 10,
  R2TO: 12,
  R2TL: 16,
  HDR_SIZE: 24,
} as const;

export const PFV_1_0 = 0;
/** largest hpda the target accepts (0's based dwords: 128 bytes) */
export const MAX_HPDA = 31;

/** Write a common header in place. */
export function writeCommonHeader(
  buf: Buffer,
  type: number,
  flags: number,
  hlen: number,
  pdo: number,
  plen: number,
): void {
  buf[Ch.TYPE] = type;
  buf[Ch.FLAGS] = flags;
  buf[Ch.HLEN] = hlen;
  buf[Ch.PDO] = pdo;
  buf.writeUInt32LE(plen, Ch.PLEN);
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
