// Log pages (NVMe base spec §5.16): identifiers and builders.

export const LogPage = {
  SUPPORTED_LOG_PAGES: 0x00,
  ERROR: 0x01,
  HEALTH: 0x02,
  FIRMWARE_SLOT: 0x03,
  CHANGED_NS_LIST: 0x04,
  COMMAND_EFFECTS: 0x05,
  ANA: 0x0c,
  DISCOVERY: 0x70,
  RESERVATION_NOTIFICATION: 0x80,
} as const;

/** Get Log Page CDW10..13 decoding: LID, LSP, RAE, NUMDL/NUMDU, LPOL/LPOU. */
export interface GetLogParams {
  lid: number;
  rae: boolean;
  /** bytes requested */
  length: number;
  /** byte offset */
  offset: number;
}

export function decodeGetLog(cmd: Buffer): GetLogParams {
  const cdw10 = cmd.readUInt32LE(40);
  const cdw11 = cmd.readUInt32LE(44);
  const numdl = cdw10 >>> 16;
  const numdu = cdw11 & 0xffff;
  const dwords = numdu * 0x10000 + numdl + 1;
  const lpol = cmd.readUInt32LE(48);
  const lpou = cmd.readUInt32LE(52);
  return {
    lid: cdw10 & 0xff,
    rae: (cdw10 & 0x8000) !== 0,
    length: dwords * 4,
    offset: lpou * 0x100000000 + lpol,
  };
}

export const ERROR_LOG_ENTRY_SIZE = 64;

export interface ErrorLogEntry {
  errorCount: number;
  sqid: number;
  cid: number;
  /** status field as in the CQE bits 15:1 (SC | SCT << 8 | …) */
  status: number;
  lba: number;
  nsid: number;
  /** Parameter Error Location (paramLoc), NO_PARAM_LOC when not specific */
  paramLoc?: number;
}

/** Parameter Error Location not specific to one field. */
export const NO_PARAM_LOC = 0xffff;

/** Parameter Error Location: the SQE byte holding the bad field (bits 7:0) and its first bit (bits 10:8). */
export function paramLoc(byte: number, bit = 0): number {
  return (byte & 0xff) | ((bit & 0x7) << 8);
}

export function writeErrorLogEntry(buf: Buffer, off: number, e: ErrorLogEntry): void {
  buf.fill(0, off, off + ERROR_LOG_ENTRY_SIZE);
  buf.writeUInt32LE(e.errorCount >>> 0, off);
  buf.writeUInt32LE(Math.floor(e.errorCount / 0x100000000) >>> 0, off + 4);
  buf.writeUInt16LE(e.sqid, off + 8);
  buf.writeUInt16LE(e.cid, off + 10);
  buf.writeUInt16LE((e.status << 1) & 0xffff, off + 12);
  buf.writeUInt16LE(e.paramLoc ?? NO_PARAM_LOC, off + 14);
  buf.writeUInt32LE(e.lba >>> 0, off + 16);
  buf.writeUInt32LE(Math.floor(e.lba / 0x100000000) >>> 0, off + 20);
  buf.writeUInt32LE(e.nsid, off + 24);
  buf[off + 29] = 3; // transport type TCP
}

export const HEALTH_LOG_SIZE = 512;
/** SMART / health: all zero except the temperature threshold fields the way SPDK leaves them. */
export function buildHealthLog(
  buf: Buffer,
  counters: {
    dataUnitsRead: number;
    dataUnitsWritten: number;
    hostReads: number;
    hostWrites: number;
    errors: number;
  },
): void {
  buf.fill(0, 0, HEALTH_LOG_SIZE);
  const u128 = (off: number, v: number) => {
    buf.writeUInt32LE(v >>> 0, off);
    buf.writeUInt32LE(Math.floor(v / 0x100000000) >>> 0, off + 4);
  };
  u128(32, counters.dataUnitsRead);
  u128(48, counters.dataUnitsWritten);
  u128(64, counters.hostReads);
  u128(80, counters.hostWrites);
  u128(176, counters.errors);
}

export const FIRMWARE_LOG_SIZE = 512;
export function buildFirmwareSlotLog(buf: Buffer, firmware: string): void {
  buf.fill(0, 0, FIRMWARE_LOG_SIZE);
  buf[0] = 1; // active slot 1
  buf.fill(0x20, 8, 16);
  buf.write(firmware.slice(0, 8), 8, 'latin1');
}

export const CHANGED_NS_LOG_SIZE = 4096;
export function buildChangedNsList(buf: Buffer, nsids: readonly number[]): void {
  buf.fill(0, 0, CHANGED_NS_LOG_SIZE);
  if (nsids.length > 1024) {
    buf.writeUInt32LE(0xffffffff, 0);
    return;
  }
  for (let i = 0; i < nsids.length; i++) buf.writeUInt32LE(nsids[i], i * 4);
}

export const COMMAND_EFFECTS_LOG_SIZE = 4096;
const CSUPP = 0x1;
const LBCC = 0x2;
export function buildCommandEffectsLog(
  buf: Buffer,
  admin: readonly number[],
  io: readonly number[],
  ioLbaChange: readonly number[],
): void {
  buf.fill(0, 0, COMMAND_EFFECTS_LOG_SIZE);
  for (const op of admin) buf.writeUInt32LE(CSUPP, op * 4);
  for (const op of io) buf.writeUInt32LE(CSUPP | (ioLbaChange.includes(op) ? LBCC : 0), 1024 + op * 4);
}

export function buildSupportedLogPages(buf: Buffer, lids: readonly number[]): void {
  buf.fill(0, 0, 1024);
  for (const lid of lids) buf.writeUInt32LE(1, lid * 4);
}

/** ANA states as the ANA log page encodes them. */
export const AnaState = {
  optimized: 0x1,
  non_optimized: 0x2,
  inaccessible: 0x3,
  persistent_loss: 0x4,
  change: 0xf,
} as const;

export interface AnaGroup {
  grpid: number;
  state: number;
  nsids: readonly number[];
}

/** ANA log page (0Ch): 16-byte header, then per group a 32-byte descriptor and its NSIDs (unless RGO). */
export function buildAnaLog(changeCount: number, groups: readonly AnaGroup[], rgo: boolean): Buffer {
  let size = 16;
  for (const g of groups) size += 32 + (rgo ? 0 : 4 * g.nsids.length);
  const buf = Buffer.alloc(size);
  buf.writeUInt32LE(changeCount >>> 0, 0);
  buf.writeUInt16LE(groups.length, 8);
  let off = 16;
  for (const g of groups) {
    buf.writeUInt32LE(g.grpid, off);
    buf.writeUInt32LE(rgo ? 0 : g.nsids.length, off + 4);
    buf.writeUInt32LE(changeCount >>> 0, off + 8);
    buf[off + 16] = g.state;
    off += 32;
    if (!rgo) {
      for (const n of g.nsids) {
        buf.writeUInt32LE(n, off);
        off += 4;
      }
    }
  }
  return buf;
}
