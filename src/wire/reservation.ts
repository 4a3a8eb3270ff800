// Reservations (NVMe base spec 2.0 §8.19, NVM command set §3.2.4-3.2.7): command
// fields, the data the host sends with Register/Acquire/Release, the Reservation
// Report structures and the Reservation Notification log page, at fixed offsets;
// the host's SQE of each command.
// Layouts checked against SPDK include/spdk/nvme_spec.h (static size asserts) and
// Linux include/linux/nvme.h.

import { initSqe, Sqe } from './nvme.ts';

/** Reservation types (Acquire/Release CDW10 bits 15:8, Report RTYPE). */
export const ResvType = {
  NONE: 0,
  WRITE_EXCLUSIVE: 1,
  EXCLUSIVE_ACCESS: 2,
  WRITE_EXCLUSIVE_REG_ONLY: 3,
  EXCLUSIVE_ACCESS_REG_ONLY: 4,
  WRITE_EXCLUSIVE_ALL_REGS: 5,
  EXCLUSIVE_ACCESS_ALL_REGS: 6,
} as const;
export type ResvType = (typeof ResvType)[keyof typeof ResvType];

/** Reservation Register action (CDW10 bits 2:0). */
export const RegisterAction = { REGISTER: 0, UNREGISTER: 1, REPLACE: 2 } as const;
/** Reservation Acquire action (CDW10 bits 2:0). */
export const AcquireAction = { ACQUIRE: 0, PREEMPT: 1, PREEMPT_AND_ABORT: 2 } as const;
/** Reservation Release action (CDW10 bits 2:0). */
export const ReleaseAction = { RELEASE: 0, CLEAR: 1 } as const;
/** Change Persist Through Power Loss state (Register CDW10 bits 31:30). */
export const Cptpl = { NO_CHANGE: 0, CLEAR: 2, PERSIST: 3 } as const;

/** Register / Acquire / Release CDW10 fields. */
export const ResvCdw10 = {
  ACTION_MASK: 0x7,
  /** Ignore Existing Key */
  IEKEY: 0x8,
  RTYPE_SHIFT: 8,
  RTYPE_MASK: 0xff,
  CPTPL_SHIFT: 30,
} as const;

/** Report CDW11 bit 0: extended data structure (128-bit host identifiers). */
export const REPORT_EDS = 0x1;

/** Report CDW10 for `bytes` of data: NUMD, the number of dwords, 0's based. */
export function reportNumd(bytes: number): number {
  return Math.max(0, Math.ceil(bytes / 4) - 1);
}

/** Data of Reservation Register (16 bytes): current key, new key. */
export const RegisterData = { CRKEY: 0, NRKEY: 8, SIZE: 16 } as const;
/** Data of Reservation Acquire (16 bytes): current key, preempt key. */
export const AcquireData = { CRKEY: 0, PRKEY: 8, SIZE: 16 } as const;
/** Data of Reservation Release (8 bytes): current key. */
export const ReleaseData = { CRKEY: 0, SIZE: 8 } as const;

/** Reservation Status data structure header (24 bytes; 64 in the extended format). */
export const ResvStatus = {
  GEN: 0, // le32
  RTYPE: 4, // u8
  REGCTL: 5, // le16, number of registered controllers
  PTPLS: 9, // u8
  SIZE: 24,
  EXTENDED_SIZE: 64,
} as const;

/** Registered Controller data structure (24 bytes, 64-bit host identifier). */
export const RegCtrl = { CNTLID: 0, RCSTS: 2, HOSTID: 8, RKEY: 16, SIZE: 24 } as const;
/** Registered Controller Extended data structure (64 bytes, 128-bit host identifier). */
export const RegCtrlExt = { CNTLID: 0, RCSTS: 2, RKEY: 8, HOSTID: 16, SIZE: 64 } as const;
/** RCSTS bit 0: this controller's host holds the reservation. */
export const RCSTS_HOLDER = 0x1;

/** Reservation Notification log page (80h): one 64-byte entry. */
export const ResvNotifyLog = {
  COUNT: 0, // le64 log page count
  TYPE: 8, // u8
  NUM_AVAIL: 9, // u8 additional pages available
  NSID: 12, // le32
  SIZE: 64,
} as const;

/** Reservation notification log page types. */
export const ResvNotifyType = {
  EMPTY: 0,
  REGISTRATION_PREEMPTED: 1,
  RESERVATION_RELEASED: 2,
  RESERVATION_PREEMPTED: 3,
} as const;
export type ResvNotifyType = (typeof ResvNotifyType)[keyof typeof ResvNotifyType];

/** Reservation Notification Mask feature (82h) CDW11 bits: a set bit masks that notice. */
export const ResvNotifyMask = {
  REGISTRATION_PREEMPTED: 1 << 1,
  RESERVATION_RELEASED: 1 << 2,
  RESERVATION_PREEMPTED: 1 << 3,
} as const;
export const RESV_NOTIFY_MASK_ALL =
  ResvNotifyMask.REGISTRATION_PREEMPTED |
  ResvNotifyMask.RESERVATION_RELEASED |
  ResvNotifyMask.RESERVATION_PREEMPTED;

/** Reservation Persistence feature (83h) CDW11 bit 0: PTPL. */
export const RESV_PERSIST_PTPL = 0x1;

/** Identify Namespace RESCAP (byte 31; byte 2 of CNS 08h) bits. */
export const Rescap = {
  PTPL: 1 << 0,
  WRITE_EXCLUSIVE: 1 << 1,
  EXCLUSIVE_ACCESS: 1 << 2,
  WRITE_EXCLUSIVE_REG_ONLY: 1 << 3,
  EXCLUSIVE_ACCESS_REG_ONLY: 1 << 4,
  WRITE_EXCLUSIVE_ALL_REGS: 1 << 5,
  EXCLUSIVE_ACCESS_ALL_REGS: 1 << 6,
  IGNORE_EXISTING_KEY: 1 << 7,
} as const;
/** Every type and IEKEY; PTPL only where the namespace has a PTPL file. */
export const RESCAP_ALL_TYPES = 0xfe;

/** Decoded CDW10 of Register / Acquire / Release. */
export interface ResvCdw10Fields {
  action: number;
  iekey: boolean;
  rtype: number;
  cptpl: number;
}

export function decodeResvCdw10(cdw10: number): ResvCdw10Fields {
  return {
    action: cdw10 & ResvCdw10.ACTION_MASK,
    iekey: (cdw10 & ResvCdw10.IEKEY) !== 0,
    rtype: (cdw10 >>> ResvCdw10.RTYPE_SHIFT) & ResvCdw10.RTYPE_MASK,
    cptpl: (cdw10 >>> ResvCdw10.CPTPL_SHIFT) & 0x3,
  };
}

export function encodeResvCdw10(f: {
  action: number;
  iekey?: boolean;
  rtype?: number;
  cptpl?: number;
}): number {
  return (
    ((f.action & ResvCdw10.ACTION_MASK) |
      (f.iekey ? ResvCdw10.IEKEY : 0) |
      (((f.rtype ?? 0) & ResvCdw10.RTYPE_MASK) << ResvCdw10.RTYPE_SHIFT) |
      (((f.cptpl ?? 0) & 0x3) << ResvCdw10.CPTPL_SHIFT)) >>>
    0
  );
}

/** A Reservation Register / Report / Acquire / Release SQE (the data pointer is the transport's). */
export function writeReservationCommand(
  sqe: Buffer,
  opcode: number,
  nsid: number,
  cdw10: number,
  cdw11 = 0,
): void {
  initSqe(sqe, opcode, nsid);
  sqe.writeUInt32LE(cdw10 >>> 0, Sqe.CDW10);
  sqe.writeUInt32LE(cdw11 >>> 0, Sqe.CDW11);
}

/** Two 64-bit keys (Register: CRKEY, NRKEY; Acquire: CRKEY, PRKEY) as the host sends them. */
export function encodeResvKeys(first: bigint, second: bigint): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt.asUintN(64, first), 0);
  b.writeBigUInt64LE(BigInt.asUintN(64, second), 8);
  return b;
}

/** Release data: the current key. */
export function encodeResvKey(crkey: bigint): Buffer {
  const b = Buffer.alloc(ReleaseData.SIZE);
  b.writeBigUInt64LE(BigInt.asUintN(64, crkey), 0);
  return b;
}

export interface RegisteredController {
  cntlid: number;
  holder: boolean;
  rkey: bigint;
  /** 32 hex digits (128-bit host identifier) */
  hostId: string;
}

export interface ResvStatusData {
  generation: number;
  rtype: number;
  ptpls: boolean;
  /** number of registrants, even those not transferred */
  regctl: number;
  registrants: RegisteredController[];
}

/**
 * Reservation Report data, extended format (64-byte header, 64 bytes per
 * registrant), written into `buf` up to its length; the header always counts every
 * registrant (REGCTL), as the host sizes its next request from it.
 */
export function writeResvReportExtended(buf: Buffer, s: ResvStatusData): void {
  buf.fill(0);
  const hdr = Buffer.alloc(ResvStatus.EXTENDED_SIZE);
  hdr.writeUInt32LE(s.generation >>> 0, ResvStatus.GEN);
  hdr[ResvStatus.RTYPE] = s.rtype;
  hdr.writeUInt16LE(s.regctl, ResvStatus.REGCTL);
  hdr[ResvStatus.PTPLS] = s.ptpls ? 1 : 0;
  hdr.copy(buf, 0, 0, Math.min(buf.length, hdr.length));
  let off = ResvStatus.EXTENDED_SIZE;
  const entry = Buffer.alloc(RegCtrlExt.SIZE);
  for (const r of s.registrants) {
    if (off >= buf.length) break;
    entry.fill(0);
    entry.writeUInt16LE(r.cntlid, RegCtrlExt.CNTLID);
    entry[RegCtrlExt.RCSTS] = r.holder ? RCSTS_HOLDER : 0;
    entry.writeBigUInt64LE(r.rkey, RegCtrlExt.RKEY);
    Buffer.from(r.hostId, 'hex').copy(entry, RegCtrlExt.HOSTID, 0, 16);
    entry.copy(buf, off, 0, Math.min(RegCtrlExt.SIZE, buf.length - off));
    off += RegCtrlExt.SIZE;
  }
}

/** Decodes a Reservation Report (extended or not) as the host receives it. */
export function readResvReport(buf: Buffer, extended: boolean): ResvStatusData {
  const hdrSize = extended ? ResvStatus.EXTENDED_SIZE : ResvStatus.SIZE;
  if (buf.length < ResvStatus.SIZE)
    throw new RangeError(`reservation report of ${buf.length} bytes is too short`);
  const regctl = buf.readUInt16LE(ResvStatus.REGCTL);
  const registrants: RegisteredController[] = [];
  const size = extended ? RegCtrlExt.SIZE : RegCtrl.SIZE;
  for (let i = 0; i < regctl; i++) {
    const off = hdrSize + i * size;
    if (off + size > buf.length) break;
    registrants.push(
      extended
        ? {
            cntlid: buf.readUInt16LE(off + RegCtrlExt.CNTLID),
            holder: (buf[off + RegCtrlExt.RCSTS] & RCSTS_HOLDER) !== 0,
            rkey: buf.readBigUInt64LE(off + RegCtrlExt.RKEY),
            hostId: buf.toString('hex', off + RegCtrlExt.HOSTID, off + RegCtrlExt.HOSTID + 16),
          }
        : {
            cntlid: buf.readUInt16LE(off + RegCtrl.CNTLID),
            holder: (buf[off + RegCtrl.RCSTS] & RCSTS_HOLDER) !== 0,
            rkey: buf.readBigUInt64LE(off + RegCtrl.RKEY),
            hostId: buf.toString('hex', off + RegCtrl.HOSTID, off + RegCtrl.HOSTID + 8),
          },
    );
  }
  return {
    generation: buf.readUInt32LE(ResvStatus.GEN),
    rtype: buf[ResvStatus.RTYPE],
    ptpls: buf[ResvStatus.PTPLS] !== 0,
    regctl,
    registrants,
  };
}

export interface ResvNotification {
  /** 64-bit log page count; 0 with type EMPTY when nothing is queued */
  count: bigint;
  type: number;
  available: number;
  nsid: number;
}

export function writeResvNotificationLog(buf: Buffer, n: ResvNotification): void {
  buf.fill(0, 0, Math.min(buf.length, ResvNotifyLog.SIZE));
  const entry = Buffer.alloc(ResvNotifyLog.SIZE);
  entry.writeBigUInt64LE(n.count, ResvNotifyLog.COUNT);
  entry[ResvNotifyLog.TYPE] = n.type;
  entry[ResvNotifyLog.NUM_AVAIL] = Math.min(255, n.available);
  entry.writeUInt32LE(n.nsid >>> 0, ResvNotifyLog.NSID);
  entry.copy(buf, 0, 0, Math.min(buf.length, ResvNotifyLog.SIZE));
}

export function readResvNotificationLog(buf: Buffer): ResvNotification {
  return {
    count: buf.readBigUInt64LE(ResvNotifyLog.COUNT),
    type: buf[ResvNotifyLog.TYPE],
    available: buf[ResvNotifyLog.NUM_AVAIL],
    nsid: buf.readUInt32LE(ResvNotifyLog.NSID),
  };
}
