// Decoders for the structures the `nvmf` CLI prints: Identify Controller,
// Identify Namespace, SMART / health log, error log entries and discovery
// log entries, with the field names nvme-cli uses. The control path only:
// plain objects, numbers where they fit, decimal strings for 128-bit counters.

import type { DiscoveredEntry } from '../../nvme/index.ts';
import { AdrFam, SubType, TrType } from '../../wire/discovery.ts';
import { IdCtrl, IdNs } from '../../wire/identify.ts';

/** Identify Controller offsets not in src/spec (only the CLI reads them). */
const IdCtrlExtra = {
  RTD3R: 84,
  RTD3E: 88,
  FGUID: 112,
  AVSCC: 264,
  APSTA: 265,
  MTFA: 270,
  HMPRE: 272,
  HMMIN: 276,
  TNVMCAP: 280,
  UNVMCAP: 296,
  ICSVSCC: 530,
  NWPC: 531,
  OCFS: 534,
  MAXDNA: 544,
  MAXCNA: 560,
} as const;

/** Identify Namespace offsets (NVMe base spec, Identify Namespace data structure). */
const IdNsField = {
  MC: 27,
  DPC: 28,
  DPS: 29,
  RESCAP: 31,
  FPI: 32,
  NAWUN: 34,
  NAWUPF: 36,
  NACWU: 38,
  NABSN: 40,
  NABO: 42,
  NABSPF: 44,
  NOIOB: 46,
  NVMCAP: 48,
  NPWG: 64,
  NPWA: 66,
  NPDG: 68,
  NPDA: 70,
  NOWS: 72,
  NSATTR: 99,
  NVMSETID: 100,
  ENDGID: 102,
  LBAF_SIZE: 4,
} as const;

/** SMART / Health Information log (LID 02h) offsets. */
const Smart = {
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
  TEMP_SENSORS: 200,
} as const;

export const SMART_LOG_SIZE = 512;
export const ERROR_LOG_ENTRY_SIZE = 64;

/** Error Information log entry (LID 01h) offsets. */
const ErrEntry = {
  ERROR_COUNT: 0,
  SQID: 8,
  CMDID: 10,
  STATUS_FIELD: 12,
  PARM_ERROR_LOCATION: 14,
  LBA: 16,
  NSID: 24,
  VS: 28,
  TRTYPE: 29,
  CS: 32,
  TRTYPE_SPEC_INFO: 40,
} as const;

export type Decoded = Record<string, string | number | Array<Record<string, number>> | number[]>;

/** An ASCII field padded with spaces or NULs, trailing padding removed. */
export function asciiField(buf: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && buf[end] !== 0) end++;
  return buf.toString('latin1', off, end).trimEnd();
}

/** Little-endian unsigned integer of 8 or 16 bytes: a number when exact, else a decimal string. */
export function bigCounter(buf: Buffer, off: number, len: 8 | 16): number | string {
  let v = 0n;
  for (let i = len - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[off + i]);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

function hex(buf: Buffer, off: number, len: number): string {
  return buf.toString('hex', off, off + len);
}

/** Identify Controller (CNS 01h), nvme-cli's `id-ctrl` names. */
export function decodeIdCtrl(d: Buffer): Decoded {
  return {
    vid: d.readUInt16LE(IdCtrl.VID),
    ssvid: d.readUInt16LE(IdCtrl.SSVID),
    sn: asciiField(d, IdCtrl.SN, 20),
    mn: asciiField(d, IdCtrl.MN, 40),
    fr: asciiField(d, IdCtrl.FR, 8),
    rab: d[IdCtrl.RAB],
    // IEEE OUI is stored least significant byte first
    ieee: d[IdCtrl.IEEE] | (d[IdCtrl.IEEE + 1] << 8) | (d[IdCtrl.IEEE + 2] << 16),
    cmic: d[IdCtrl.CMIC],
    mdts: d[IdCtrl.MDTS],
    cntlid: d.readUInt16LE(IdCtrl.CNTLID),
    ver: d.readUInt32LE(IdCtrl.VER),
    rtd3r: d.readUInt32LE(IdCtrlExtra.RTD3R),
    rtd3e: d.readUInt32LE(IdCtrlExtra.RTD3E),
    oaes: d.readUInt32LE(IdCtrl.OAES),
    ctratt: d.readUInt32LE(IdCtrl.CTRATT),
    cntrltype: d[IdCtrl.CNTRLTYPE],
    fguid: hex(d, IdCtrlExtra.FGUID, 16),
    oacs: d.readUInt16LE(IdCtrl.OACS),
    acl: d[IdCtrl.ACL],
    aerl: d[IdCtrl.AERL],
    frmw: d[IdCtrl.FRMW],
    lpa: d[IdCtrl.LPA],
    elpe: d[IdCtrl.ELPE],
    npss: d[IdCtrl.NPSS],
    avscc: d[IdCtrlExtra.AVSCC],
    apsta: d[IdCtrlExtra.APSTA],
    wctemp: d.readUInt16LE(IdCtrl.WCTEMP),
    cctemp: d.readUInt16LE(IdCtrl.CCTEMP),
    mtfa: d.readUInt16LE(IdCtrlExtra.MTFA),
    hmpre: d.readUInt32LE(IdCtrlExtra.HMPRE),
    hmmin: d.readUInt32LE(IdCtrlExtra.HMMIN),
    tnvmcap: bigCounter(d, IdCtrlExtra.TNVMCAP, 16),
    unvmcap: bigCounter(d, IdCtrlExtra.UNVMCAP, 16),
    kas: d.readUInt16LE(IdCtrl.KAS),
    anatt: d[IdCtrl.ANATT],
    anacap: d[IdCtrl.ANACAP],
    anagrpmax: d.readUInt32LE(IdCtrl.ANAGRPMAX),
    nanagrpid: d.readUInt32LE(IdCtrl.NANAGRPID),
    sqes: d[IdCtrl.SQES],
    cqes: d[IdCtrl.CQES],
    maxcmd: d.readUInt16LE(IdCtrl.MAXCMD),
    nn: d.readUInt32LE(IdCtrl.NN),
    oncs: d.readUInt16LE(IdCtrl.ONCS),
    fuses: d.readUInt16LE(IdCtrl.FUSES),
    fna: d[IdCtrl.FNA],
    vwc: d[IdCtrl.VWC],
    awun: d.readUInt16LE(IdCtrl.AWUN),
    awupf: d.readUInt16LE(IdCtrl.AWUPF),
    icsvscc: d[IdCtrlExtra.ICSVSCC],
    nwpc: d[IdCtrlExtra.NWPC],
    acwu: d.readUInt16LE(IdCtrl.ACWU),
    ocfs: d.readUInt16LE(IdCtrlExtra.OCFS),
    sgls: d.readUInt32LE(IdCtrl.SGLS),
    mnan: d.readUInt32LE(IdCtrl.MNAN),
    maxdna: bigCounter(d, IdCtrlExtra.MAXDNA, 16),
    maxcna: d.readUInt32LE(IdCtrlExtra.MAXCNA),
    subnqn: asciiField(d, IdCtrl.SUBNQN, 256),
    ioccsz: d.readUInt32LE(IdCtrl.IOCCSZ),
    iorcsz: d.readUInt32LE(IdCtrl.IORCSZ),
    icdoff: d.readUInt16LE(IdCtrl.ICDOFF),
    fcatt: d[IdCtrl.FCATT],
    msdbd: d[IdCtrl.MSDBD],
    ofcs: d.readUInt16LE(IdCtrl.OFCS),
  };
}

/** Identify Namespace (CNS 00h), nvme-cli's `id-ns` names; `lbafs` lists NLBAF + 1 formats. */
export function decodeIdNs(d: Buffer): Decoded {
  const nlbaf = d[IdNs.NLBAF];
  const lbafs: Array<Record<string, number>> = [];
  for (let i = 0; i <= nlbaf && i < 64; i++) {
    const off = IdNs.LBAF0 + i * IdNsField.LBAF_SIZE;
    lbafs.push({ ms: d.readUInt16LE(off), ds: d[off + 2], rp: d[off + 3] & 0x3 });
  }
  return {
    nsze: bigCounter(d, IdNs.NSZE, 8),
    ncap: bigCounter(d, IdNs.NCAP, 8),
    nuse: bigCounter(d, IdNs.NUSE, 8),
    nsfeat: d[IdNs.NSFEAT],
    nlbaf,
    flbas: d[IdNs.FLBAS],
    mc: d[IdNsField.MC],
    dpc: d[IdNsField.DPC],
    dps: d[IdNsField.DPS],
    nmic: d[IdNs.NMIC],
    rescap: d[IdNsField.RESCAP],
    fpi: d[IdNsField.FPI],
    dlfeat: d[IdNs.DLFEAT],
    nawun: d.readUInt16LE(IdNsField.NAWUN),
    nawupf: d.readUInt16LE(IdNsField.NAWUPF),
    nacwu: d.readUInt16LE(IdNsField.NACWU),
    nabsn: d.readUInt16LE(IdNsField.NABSN),
    nabo: d.readUInt16LE(IdNsField.NABO),
    nabspf: d.readUInt16LE(IdNsField.NABSPF),
    noiob: d.readUInt16LE(IdNsField.NOIOB),
    nvmcap: bigCounter(d, IdNsField.NVMCAP, 16),
    npwg: d.readUInt16LE(IdNsField.NPWG),
    npwa: d.readUInt16LE(IdNsField.NPWA),
    npdg: d.readUInt16LE(IdNsField.NPDG),
    npda: d.readUInt16LE(IdNsField.NPDA),
    nows: d.readUInt16LE(IdNsField.NOWS),
    anagrpid: d.readUInt32LE(IdNs.ANAGRPID),
    nsattr: d[IdNsField.NSATTR],
    nvmsetid: d.readUInt16LE(IdNsField.NVMSETID),
    endgid: d.readUInt16LE(IdNsField.ENDGID),
    nguid: hex(d, IdNs.NGUID, 16),
    eui64: hex(d, IdNs.EUI64, 8),
    lbafs,
  };
}

/** SMART / Health Information (LID 02h); temperatures in kelvin as on the wire. */
export function decodeSmartLog(d: Buffer): Decoded {
  const sensors: number[] = [];
  for (let i = 0; i < 8; i++) sensors.push(d.readUInt16LE(Smart.TEMP_SENSORS + i * 2));
  return {
    critical_warning: d[Smart.CRITICAL_WARNING],
    temperature: d.readUInt16LE(Smart.TEMPERATURE),
    available_spare: d[Smart.AVAILABLE_SPARE],
    available_spare_threshold: d[Smart.SPARE_THRESHOLD],
    percentage_used: d[Smart.PERCENTAGE_USED],
    endurance_grp_critical_warning_summary: d[Smart.ENDURANCE_GROUP_WARNING],
    data_units_read: bigCounter(d, Smart.DATA_UNITS_READ, 16),
    data_units_written: bigCounter(d, Smart.DATA_UNITS_WRITTEN, 16),
    host_read_commands: bigCounter(d, Smart.HOST_READ_COMMANDS, 16),
    host_write_commands: bigCounter(d, Smart.HOST_WRITE_COMMANDS, 16),
    controller_busy_time: bigCounter(d, Smart.CONTROLLER_BUSY_TIME, 16),
    power_cycles: bigCounter(d, Smart.POWER_CYCLES, 16),
    power_on_hours: bigCounter(d, Smart.POWER_ON_HOURS, 16),
    unsafe_shutdowns: bigCounter(d, Smart.UNSAFE_SHUTDOWNS, 16),
    media_errors: bigCounter(d, Smart.MEDIA_ERRORS, 16),
    num_err_log_entries: bigCounter(d, Smart.NUM_ERR_LOG_ENTRIES, 16),
    warning_temp_time: d.readUInt32LE(Smart.WARNING_TEMP_TIME),
    critical_comp_time: d.readUInt32LE(Smart.CRITICAL_COMP_TIME),
    temperature_sensors: sensors,
  };
}

/** One Error Information log entry (64 bytes at `off`). */
export function decodeErrorLogEntry(d: Buffer, off: number): Decoded {
  return {
    error_count: bigCounter(d, off + ErrEntry.ERROR_COUNT, 8),
    sqid: d.readUInt16LE(off + ErrEntry.SQID),
    cmdid: d.readUInt16LE(off + ErrEntry.CMDID),
    status_field: d.readUInt16LE(off + ErrEntry.STATUS_FIELD),
    parm_error_location: d.readUInt16LE(off + ErrEntry.PARM_ERROR_LOCATION),
    lba: bigCounter(d, off + ErrEntry.LBA, 8),
    nsid: d.readUInt32LE(off + ErrEntry.NSID),
    vs: d[off + ErrEntry.VS],
    trtype: d[off + ErrEntry.TRTYPE],
    cs: bigCounter(d, off + ErrEntry.CS, 8),
    trtype_spec_info: d.readUInt16LE(off + ErrEntry.TRTYPE_SPEC_INFO),
  };
}

const TRTYPE_NAMES: Record<number, string> = {
  [TrType.RDMA]: 'rdma',
  [TrType.FC]: 'fc',
  [TrType.TCP]: 'tcp',
  [TrType.LOOP]: 'loop',
};
const ADRFAM_NAMES: Record<number, string> = {
  [AdrFam.IPV4]: 'ipv4',
  [AdrFam.IPV6]: 'ipv6',
  [AdrFam.IB]: 'infiniband',
  [AdrFam.FC]: 'fibre-channel',
  [AdrFam.INTRA_HOST]: 'loop',
};
const SUBTYPE_NAMES: Record<number, string> = {
  [SubType.DISCOVERY_REFERRAL]: 'discovery subsystem referral',
  [SubType.NVME]: 'nvme subsystem',
  [SubType.DISCOVERY_CURRENT]: 'current discovery subsystem',
};

function named(table: Record<number, string>, v: number): string {
  return table[v] ?? `unrecognized (${v})`;
}

/** TREQ: bits 1:0 secure channel, bit 2 SQ flow control disable supported. */
export function treqString(treq: number): string {
  const secure = ['not specified', 'required', 'not required', 'reserved'][treq & 0x3];
  return treq & 0x4 ? `${secure}, sq flow control disable supported` : secure;
}

/** EFLAGS: bit 0 duplicate returned information, bit 1 explicit persistent connection support. */
export function eflagsString(eflags: number): string {
  const parts: string[] = [];
  if (eflags & 0x2) parts.push('explicit discovery connections');
  if (eflags & 0x1) parts.push('duplicate discovery information');
  if (eflags & 0x4) parts.push('no cdc connectivity');
  return parts.length > 0 ? parts.join(', ') : 'none';
}

/** A discovery log entry with nvme-cli's names and value strings. */
export function describeDiscoveryEntry(e: DiscoveredEntry): Record<string, string | number> {
  return {
    trtype: named(TRTYPE_NAMES, e.trtype),
    adrfam: named(ADRFAM_NAMES, e.adrfam),
    subtype: named(SUBTYPE_NAMES, e.subtype),
    treq: treqString(e.treq),
    portid: e.portid,
    trsvcid: e.trsvcid,
    subnqn: e.subnqn,
    traddr: e.traddr,
    eflags: eflagsString(e.eflags),
  };
}

/** VER register as "major.minor.tertiary". */
export function versionString(ver: number): string {
  return `${ver >>> 16}.${(ver >> 8) & 0xff}.${ver & 0xff}`;
}
