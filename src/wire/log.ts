// Log pages (NVMe base spec §5.16): identifiers, the Get Log Page command,
// the builders the target uses and the decoders the host library and the CLI
// use, on the same offset tables. Also the Asynchronous Event completion,
// which names the log page that clears the event.
import { readCounter, readU64, writeU64 } from './fields.ts';
import { AdminOpcode, initSqe, Sqe } from './nvme.ts';

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
  const cdw10 = cmd.readUInt32LE(Sqe.CDW10);
  const cdw11 = cmd.readUInt32LE(Sqe.CDW11);
  const numdl = cdw10 >>> 16;
  const numdu = cdw11 & 0xffff;
  const dwords = numdu * 0x10000 + numdl + 1;
  const lpol = cmd.readUInt32LE(Sqe.CDW12);
  const lpou = cmd.readUInt32LE(Sqe.CDW13);
  return {
    lid: cdw10 & 0xff,
    rae: (cdw10 & 0x8000) !== 0,
    length: dwords * 4,
    offset: lpou * 0x100000000 + lpol,
  };
}

/**
 * Fills a Get Log Page SQE for `length` bytes (a multiple of 4) of log `lid`
 * from byte `offset`: NUMD (0's based dwords) split over CDW10/11, LPO over CDW12/13.
 */
export function writeGetLogPage(
  sqe: Buffer,
  lid: number,
  nsid: number,
  length: number,
  offset: number,
): void {
  initSqe(sqe, AdminOpcode.GET_LOG_PAGE, nsid);
  const numd = length / 4 - 1;
  sqe.writeUInt32LE((((numd & 0xffff) << 16) | lid) >>> 0, Sqe.CDW10);
  sqe.writeUInt32LE(numd >>> 16, Sqe.CDW11);
  sqe.writeUInt32LE(offset >>> 0, Sqe.CDW12);
  sqe.writeUInt32LE(Math.floor(offset / 0x1_0000_0000), Sqe.CDW13);
}

export const ERROR_LOG_ENTRY_SIZE = 64;

/** Error Information log entry (64 bytes) offsets. */
export const ErrorLogEntry = {
  ERROR_COUNT: 0, // 8 bytes
  SQID: 8,
  CMDID: 10,
  /** status field as in the CQE (bits 15:1), phase bit 0 */
  STATUS_FIELD: 12,
  PARM_ERROR_LOCATION: 14,
  LBA: 16, // 8 bytes
  NSID: 24,
  VS: 28,
  TRTYPE: 29,
  CS: 32, // 8 bytes
  TRTYPE_SPEC_INFO: 40,
} as const;

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
  writeU64(buf, off + ErrorLogEntry.ERROR_COUNT, e.errorCount);
  buf.writeUInt16LE(e.sqid, off + ErrorLogEntry.SQID);
  buf.writeUInt16LE(e.cid, off + ErrorLogEntry.CMDID);
  buf.writeUInt16LE((e.status << 1) & 0xffff, off + ErrorLogEntry.STATUS_FIELD);
  buf.writeUInt16LE(e.paramLoc ?? NO_PARAM_LOC, off + ErrorLogEntry.PARM_ERROR_LOCATION);
  writeU64(buf, off + ErrorLogEntry.LBA, e.lba);
  buf.writeUInt32LE(e.nsid, off + ErrorLogEntry.NSID);
  buf[off + ErrorLogEntry.TRTYPE] = 3; // transport type TCP
}

/** One Error Information log entry (64 bytes at `off`), nvme-cli's names; `status_field` raw (bits 15:1). */
export function decodeErrorLogEntry(d: Buffer, off: number) {
  return {
    error_count: readCounter(d, off + ErrorLogEntry.ERROR_COUNT, 8),
    sqid: d.readUInt16LE(off + ErrorLogEntry.SQID),
    cmdid: d.readUInt16LE(off + ErrorLogEntry.CMDID),
    status_field: d.readUInt16LE(off + ErrorLogEntry.STATUS_FIELD),
    parm_error_location: d.readUInt16LE(off + ErrorLogEntry.PARM_ERROR_LOCATION),
    lba: readCounter(d, off + ErrorLogEntry.LBA, 8),
    nsid: d.readUInt32LE(off + ErrorLogEntry.NSID),
    vs: d[off + ErrorLogEntry.VS],
    trtype: d[off + ErrorLogEntry.TRTYPE],
    cs: readCounter(d, off + ErrorLogEntry.CS, 8),
    trtype_spec_info: d.readUInt16LE(off + ErrorLogEntry.TRTYPE_SPEC_INFO),
  };
}
export type DecodedErrorLogEntry = ReturnType<typeof decodeErrorLogEntry>;

export const HEALTH_LOG_SIZE = 512;

/** SMART / Health Information log (LID 02h) offsets; the counters are 16 bytes. */
export const HealthLog = {
  CRITICAL_WARNING: 0,
  TEMPERATURE: 1,
  AVAILABLE_SPARE: 3,
  SPARE_THRESHOLD: 4,
  PERCENTAGE_USED: 5,
  ENDURANCE_GROUP_WARNING: 6,
  DATA_UNITS_READ: 32,
  DATA_UNITS_WRITTEN: 48,
  HOST_READ_COMMANDS: 64,
  HOST_WRITE_COMMANDS: 80,
  CONTROLLER_BUSY_TIME: 96,
  POWER_CYCLES: 112,
  POWER_ON_HOURS: 128,
  UNSAFE_SHUTDOWNS: 144,
  MEDIA_ERRORS: 160,
  NUM_ERR_LOG_ENTRIES: 176,
  WARNING_TEMP_TIME: 192,
  CRITICAL_COMP_TIME: 196,
  /** 8 sensors, 2 bytes each */
  TEMP_SENSORS: 200,
} as const;

/** SMART / health: all zero except the counters (below 2^53, so their high 10 bytes stay zero). */
export function buildHealthLog(
  buf: Buffer,
  counters: {
    dataUnitsRead: number;
    dataUnitsWritten: number;
    hostReads: number;
    hostWrites: number;
    errors: number;
    /** minutes with an I/O command outstanding */
    busyMinutes?: number;
    powerOnHours?: number;
  },
): void {
  buf.fill(0, 0, HEALTH_LOG_SIZE);
  writeU64(buf, HealthLog.CONTROLLER_BUSY_TIME, counters.busyMinutes ?? 0);
  writeU64(buf, HealthLog.POWER_ON_HOURS, counters.powerOnHours ?? 0);
  writeU64(buf, HealthLog.DATA_UNITS_READ, counters.dataUnitsRead);
  writeU64(buf, HealthLog.DATA_UNITS_WRITTEN, counters.dataUnitsWritten);
  writeU64(buf, HealthLog.HOST_READ_COMMANDS, counters.hostReads);
  writeU64(buf, HealthLog.HOST_WRITE_COMMANDS, counters.hostWrites);
  writeU64(buf, HealthLog.NUM_ERR_LOG_ENTRIES, counters.errors);
}

/** SMART / Health Information, nvme-cli's names; temperatures in kelvin as on the wire. */
export function decodeHealthLog(d: Buffer) {
  const sensors: number[] = [];
  for (let i = 0; i < 8; i++) sensors.push(d.readUInt16LE(HealthLog.TEMP_SENSORS + i * 2));
  return {
    critical_warning: d[HealthLog.CRITICAL_WARNING],
    temperature: d.readUInt16LE(HealthLog.TEMPERATURE),
    available_spare: d[HealthLog.AVAILABLE_SPARE],
    available_spare_threshold: d[HealthLog.SPARE_THRESHOLD],
    percentage_used: d[HealthLog.PERCENTAGE_USED],
    endurance_grp_critical_warning_summary: d[HealthLog.ENDURANCE_GROUP_WARNING],
    data_units_read: readCounter(d, HealthLog.DATA_UNITS_READ, 16),
    data_units_written: readCounter(d, HealthLog.DATA_UNITS_WRITTEN, 16),
    host_read_commands: readCounter(d, HealthLog.HOST_READ_COMMANDS, 16),
    host_write_commands: readCounter(d, HealthLog.HOST_WRITE_COMMANDS, 16),
    controller_busy_time: readCounter(d, HealthLog.CONTROLLER_BUSY_TIME, 16),
    power_cycles: readCounter(d, HealthLog.POWER_CYCLES, 16),
    power_on_hours: readCounter(d, HealthLog.POWER_ON_HOURS, 16),
    unsafe_shutdowns: readCounter(d, HealthLog.UNSAFE_SHUTDOWNS, 16),
    media_errors: readCounter(d, HealthLog.MEDIA_ERRORS, 16),
    num_err_log_entries: readCounter(d, HealthLog.NUM_ERR_LOG_ENTRIES, 16),
    warning_temp_time: d.readUInt32LE(HealthLog.WARNING_TEMP_TIME),
    critical_comp_time: d.readUInt32LE(HealthLog.CRITICAL_COMP_TIME),
    temperature_sensors: sensors,
  };
}
export type DecodedHealthLog = ReturnType<typeof decodeHealthLog>;

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

/** ANA log page (0Ch) layout: a header, then per group a descriptor followed by its NSIDs. */
export const AnaLog = {
  /** header: change count (8 bytes), number of group descriptors */
  CHGCNT: 0,
  NGRPS: 8,
  HDR_SIZE: 16,
  /** group descriptor, from its start */
  GRP_ANAGRPID: 0,
  GRP_NNSIDS: 4,
  GRP_CHGCNT: 8,
  GRP_STATE: 16,
  GRP_SIZE: 32,
} as const;

/** ANA log page (0Ch): header, then per group a descriptor and its NSIDs (unless RGO). */
export function buildAnaLog(changeCount: number, groups: readonly AnaGroup[], rgo: boolean): Buffer {
  let size = AnaLog.HDR_SIZE;
  for (const g of groups) size += AnaLog.GRP_SIZE + (rgo ? 0 : 4 * g.nsids.length);
  const buf = Buffer.alloc(size);
  buf.writeUInt32LE(changeCount >>> 0, AnaLog.CHGCNT);
  buf.writeUInt16LE(groups.length, AnaLog.NGRPS);
  let off = AnaLog.HDR_SIZE;
  for (const g of groups) {
    buf.writeUInt32LE(g.grpid, off + AnaLog.GRP_ANAGRPID);
    buf.writeUInt32LE(rgo ? 0 : g.nsids.length, off + AnaLog.GRP_NNSIDS);
    buf.writeUInt32LE(changeCount >>> 0, off + AnaLog.GRP_CHGCNT);
    buf[off + AnaLog.GRP_STATE] = g.state;
    off += AnaLog.GRP_SIZE;
    if (!rgo) {
      for (const n of g.nsids) {
        buf.writeUInt32LE(n, off);
        off += 4;
      }
    }
  }
  return buf;
}

export interface DecodedAnaLog {
  changeCount: number;
  groups: Array<AnaGroup & { changeCount: number }>;
}

/** Decodes an ANA log page; stops at a descriptor that would run past the buffer. */
export function decodeAnaLog(buf: Buffer): DecodedAnaLog {
  const ngrps = buf.readUInt16LE(AnaLog.NGRPS);
  const groups: DecodedAnaLog['groups'] = [];
  let off = AnaLog.HDR_SIZE;
  for (let i = 0; i < ngrps && off + AnaLog.GRP_SIZE <= buf.length; i++) {
    const count = buf.readUInt32LE(off + AnaLog.GRP_NNSIDS);
    const first = off + AnaLog.GRP_SIZE;
    const nsids: number[] = [];
    for (let n = 0; n < count && first + 4 * n + 4 <= buf.length; n++)
      nsids.push(buf.readUInt32LE(first + 4 * n));
    groups.push({
      grpid: buf.readUInt32LE(off + AnaLog.GRP_ANAGRPID),
      state: buf[off + AnaLog.GRP_STATE],
      changeCount: readU64(buf, off + AnaLog.GRP_CHGCNT),
      nsids,
    });
    off = first + 4 * count;
  }
  return { changeCount: readU64(buf, AnaLog.CHGCNT), groups };
}

/** Asynchronous event types (completion DW0 bits 2:0). */
export const AsyncEventType = {
  ERROR: 0,
  SMART_HEALTH: 1,
  NOTICE: 2,
  IMMEDIATE: 3,
  ONE_SHOT: 4,
  IO_COMMAND_SET: 6,
  VENDOR: 7,
} as const;

/** Notice event information (DW0 bits 15:8 when the type is NOTICE). */
export const NoticeInfo = {
  NAMESPACE_ATTRIBUTE_CHANGED: 0x00,
  FIRMWARE_ACTIVATION_STARTING: 0x01,
  TELEMETRY_LOG_CHANGED: 0x02,
  ANA_CHANGE: 0x03,
  DISCOVERY_LOG_CHANGE: 0xf0,
} as const;

/** An Asynchronous Event Request's completion DW0: type, information, the log page that clears it. */
export function asyncEventDw0(type: number, info: number, logPage: number): number {
  return ((type & 0x7) | ((info & 0xff) << 8) | ((logPage & 0xff) << 16)) >>> 0;
}

/** Asynchronous Event Configuration (Set Features 0Bh CDW11) bits of the notices a controller may send. */
export const AsyncEventConfig = {
  /** bit 8: namespace attribute notices */
  NS_ATTRIBUTE_NOTICES: 0x100,
  /** bit 11: ANA change notices */
  ANA_CHANGE_NOTICES: 0x800,
  /** bit 31: discovery log page change notices */
  DISCOVERY_LOG_CHANGE_NOTICES: 0x8000_0000,
} as const;

export function decodeAsyncEvent(dw0: number): { type: number; info: number; logPage: number } {
  return { type: dw0 & 0x7, info: (dw0 >> 8) & 0xff, logPage: (dw0 >> 16) & 0xff };
}
