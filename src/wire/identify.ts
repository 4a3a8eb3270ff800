// Identify data structures (NVMe base spec 2.0 §5.17.2): the target builds
// them in place into 4096-byte buffers; the host library and the CLI decode
// them with the same offset tables.
import { readCounter, readPaddedString, readU64, writeNulPadded, writePadded, writeU64 } from './fields.ts';
import { AdminOpcode, initSqe, Sqe } from './nvme.ts';

export const IDENTIFY_SIZE = 4096;

export const Cns = {
  NAMESPACE: 0x00,
  CONTROLLER: 0x01,
  ACTIVE_NS_LIST: 0x02,
  NS_DESCRIPTOR_LIST: 0x03,
  CSI_NAMESPACE: 0x05,
  CSI_CONTROLLER: 0x06,
  CSI_ACTIVE_NS_LIST: 0x07,
  /** I/O Command Set Independent Identify Namespace (NVMe 2.0) */
  CS_INDEPENDENT_NAMESPACE: 0x08,
  IO_COMMAND_SET: 0x1c,
} as const;

/** Command Set Identifiers (Identify CDW11 bits 31:24, the CSI namespace descriptor). */
export const Csi = { NVM: 0x00, KEY_VALUE: 0x01, ZNS: 0x02 } as const;

/** Identify CDW10 bits 31:16: the controller ID CNS 1Ch (and other controller-scoped CNS) name. */
export function identifyCntid(cmd: Buffer): number {
  return cmd.readUInt16LE(Sqe.CDW10 + 2);
}

/** Identify CDW11 bits 31:24: the Command Set Identifier. */
export function identifyCsi(cmd: Buffer): number {
  return cmd[Sqe.CDW11 + 3];
}

/** Identify Controller field offsets. */
export const IdCtrl = {
  VID: 0,
  SSVID: 2,
  SN: 4,
  MN: 24,
  FR: 64,
  RAB: 72,
  IEEE: 73,
  CMIC: 76,
  MDTS: 77,
  CNTLID: 78,
  VER: 80,
  RTD3R: 84,
  RTD3E: 88,
  OAES: 92,
  CTRATT: 96,
  CNTRLTYPE: 111,
  FGUID: 112, // 16 bytes
  OACS: 256,
  ACL: 258,
  AERL: 259,
  FRMW: 260,
  LPA: 261,
  ELPE: 262,
  NPSS: 263,
  AVSCC: 264,
  APSTA: 265,
  WCTEMP: 266,
  CCTEMP: 268,
  MTFA: 270,
  HMPRE: 272,
  HMMIN: 276,
  TNVMCAP: 280, // 16 bytes
  UNVMCAP: 296, // 16 bytes
  KAS: 320,
  ANATT: 343,
  ANACAP: 344,
  ANAGRPMAX: 348,
  NANAGRPID: 352,
  SQES: 512,
  CQES: 513,
  MAXCMD: 514,
  NN: 516,
  ONCS: 520,
  FUSES: 522,
  FNA: 524,
  VWC: 525,
  AWUN: 526,
  AWUPF: 528,
  ICSVSCC: 530,
  NWPC: 531,
  ACWU: 532,
  OCFS: 534,
  SGLS: 536,
  MNAN: 540,
  MAXDNA: 544, // 16 bytes
  MAXCNA: 560,
  SUBNQN: 768, // 256 bytes
  IOCCSZ: 1792,
  IORCSZ: 1796,
  ICDOFF: 1800,
  FCATT: 1802,
  MSDBD: 1803,
  OFCS: 1804,
} as const;

export const CntrlType = { IO: 1, DISCOVERY: 2, ADMIN: 3 } as const;

export const Oncs = {
  COMPARE: 0x1,
  WRITE_UNCORRECTABLE: 0x2,
  DSM: 0x4,
  WRITE_ZEROES: 0x8,
  RESERVATIONS: 0x20,
} as const;

export interface IdentifyCtrlrInfo {
  cntlid: number;
  controllerType: number; // CntrlType
  serial: string;
  model: string;
  firmware: string;
  subnqn: string;
  /** version register value, e.g. 0x00010300 for 1.3 */
  version: number;
  /** max I/O size in bytes (→ MDTS in 4 KiB pages, power of two) */
  maxIoSize: number;
  maxQueueDepth: number;
  maxNamespaces: number;
  inCapsuleDataSize: number;
  /** keep-alive granularity in ms */
  kasMs: number;
  oncs: number;
  volatileWriteCache: boolean;
  anaReporting: boolean;
}

/** log2 of (maxIoSize / 4096), 0 = no limit. */
export function mdtsFor(maxIoSize: number): number {
  const pages = Math.floor(maxIoSize / 4096);
  if (pages <= 0) return 0;
  return Math.floor(Math.log2(pages));
}

export function buildIdentifyController(buf: Buffer, c: IdentifyCtrlrInfo): void {
  buf.fill(0, 0, IDENTIFY_SIZE);
  buf.writeUInt16LE(0x8086, IdCtrl.VID);
  buf.writeUInt16LE(0x8086, IdCtrl.SSVID);
  writePadded(buf, IdCtrl.SN, 20, c.serial);
  writePadded(buf, IdCtrl.MN, 40, c.model);
  writePadded(buf, IdCtrl.FR, 8, c.firmware);
  buf[IdCtrl.RAB] = 6;
  // SPDK's IEEE OUI, byte for byte as SPDK's target stores it
  buf[IdCtrl.IEEE] = 0xe4;
  buf[IdCtrl.IEEE + 1] = 0xd2;
  buf[IdCtrl.IEEE + 2] = 0x5c;
  const io = c.controllerType === CntrlType.IO;
  if (io) buf[IdCtrl.CMIC] = 0x3 | (c.anaReporting ? 0x8 : 0);
  buf[IdCtrl.MDTS] = mdtsFor(c.maxIoSize);
  buf.writeUInt16LE(c.cntlid, IdCtrl.CNTLID);
  buf.writeUInt32LE(c.version, IdCtrl.VER);
  // OAES bit 8: namespace attribute notices; bit 11: ANA change notices; bit 31: discovery log change
  buf.writeUInt32LE(io ? 0x100 | (c.anaReporting ? 0x800 : 0) : 0x80000000, IdCtrl.OAES);
  buf.writeUInt32LE(0x1, IdCtrl.CTRATT); // 128-bit host identifier
  buf[IdCtrl.CNTRLTYPE] = c.controllerType;
  buf[IdCtrl.ACL] = 3;
  buf[IdCtrl.AERL] = 3;
  buf[IdCtrl.FRMW] = 0x3; // one slot, slot 1 read-only
  // LPA: bit 1 commands supported and effects, bit 2 extended data for Get Log Page
  buf[IdCtrl.LPA] = io ? 0x06 : 0x04;
  buf[IdCtrl.ELPE] = 127;
  if (io) {
    buf.writeUInt16LE(343, IdCtrl.WCTEMP); // warning / critical composite temperature (K), as SPDK
    buf.writeUInt16LE(373, IdCtrl.CCTEMP);
  }
  buf.writeUInt16LE(Math.floor(c.kasMs / 100), IdCtrl.KAS);
  if (io && c.anaReporting) {
    buf[IdCtrl.ANATT] = 10;
    buf[IdCtrl.ANACAP] = 0x1f; // optimized..change states reported
    buf.writeUInt32LE(c.maxNamespaces, IdCtrl.ANAGRPMAX);
    buf.writeUInt32LE(c.maxNamespaces, IdCtrl.NANAGRPID);
  }
  buf[IdCtrl.SQES] = 0x66;
  buf[IdCtrl.CQES] = 0x44;
  buf.writeUInt16LE(c.maxQueueDepth, IdCtrl.MAXCMD);
  buf.writeUInt32LE(io ? c.maxNamespaces : 0, IdCtrl.NN);
  if (io) {
    buf.writeUInt16LE(c.oncs, IdCtrl.ONCS);
    buf.writeUInt16LE(0x1, IdCtrl.FUSES); // fused compare and write
    // VWC bit 0 present; bits 2:1 = 10b: flush to all namespaces not supported
    buf[IdCtrl.VWC] = c.volatileWriteCache ? 0x05 : 0x04;
    buf.writeUInt32LE(c.maxNamespaces, IdCtrl.MNAN);
  }
  // SGLS: SGLs supported (no alignment), keyed SGL data block, SGL offset
  buf.writeUInt32LE(0x1 | 0x4 | (1 << 20), IdCtrl.SGLS);
  writeNulPadded(buf, IdCtrl.SUBNQN, 256, c.subnqn);
  buf.writeUInt32LE((64 + c.inCapsuleDataSize) / 16, IdCtrl.IOCCSZ);
  buf.writeUInt32LE(1, IdCtrl.IORCSZ);
  buf.writeUInt16LE(0, IdCtrl.ICDOFF);
  buf[IdCtrl.FCATT] = 0; // dynamic controller model
  buf[IdCtrl.MSDBD] = 1;
}

/** Identify Namespace field offsets. */
export const IdNs = {
  NSZE: 0,
  NCAP: 8,
  NUSE: 16,
  NSFEAT: 24,
  NLBAF: 25,
  FLBAS: 26,
  MC: 27,
  DPC: 28,
  DPS: 29,
  NMIC: 30,
  RESCAP: 31,
  FPI: 32,
  DLFEAT: 33,
  NAWUN: 34,
  NAWUPF: 36,
  NACWU: 38,
  NABSN: 40,
  NABO: 42,
  NABSPF: 44,
  // NVMe base spec: NOIOB is bytes 47:46 (64 is NPWG)
  NOIOB: 46,
  NVMCAP: 48, // 16 bytes
  NPWG: 64,
  NPWA: 66,
  NPDG: 68,
  NPDA: 70,
  NOWS: 72,
  ANAGRPID: 92,
  NSATTR: 99,
  NVMSETID: 100,
  ENDGID: 102,
  NGUID: 104,
  EUI64: 120,
  /** LBA format 0; format i is at LBAF0 + i * LbaFormat.SIZE */
  LBAF0: 128,
} as const;

/** One LBA format descriptor (4 bytes). */
export const LbaFormat = {
  /** metadata bytes per block, le16 */
  MS: 0,
  /** log2 of the block size */
  LBADS: 2,
  /** relative performance, bits 1:0 */
  RP: 3,
  SIZE: 4,
} as const;

/** Index of the LBA format in use: FLBAS bits 3:0, extended by bits 6:5 when there are more than 16 formats. */
export function lbaFormatIndex(flbas: number, nlbaf: number): number {
  let index = flbas & 0xf;
  if (nlbaf >= 16) index |= (flbas >> 1) & 0x30;
  return index;
}

export interface IdentifyNsInfo {
  numBlocks: number;
  blockSize: number;
  /** deallocate (unmap) supported: thin provisioning, deallocated blocks read as zeroes */
  thinProvisioned: boolean;
  optimalIoBoundary: number;
  nguid: Buffer | null; // 16 bytes
  eui64: Buffer | null; // 8 bytes
  anaGroupId: number; // 0 when ANA reporting is off
  /** reservation capabilities (RESCAP, wire/reservation.ts Rescap); 0: none */
  rescap?: number;
}

export function buildIdentifyNamespace(buf: Buffer, n: IdentifyNsInfo): void {
  buf.fill(0, 0, IDENTIFY_SIZE);
  writeU64(buf, IdNs.NSZE, n.numBlocks);
  writeU64(buf, IdNs.NCAP, n.numBlocks);
  writeU64(buf, IdNs.NUSE, n.numBlocks);
  // NSFEAT bit 0 thin provisioning; bit 4 NPWG..NOWS (not reported)
  buf[IdNs.NSFEAT] = n.thinProvisioned ? 0x1 : 0;
  buf[IdNs.NLBAF] = 0;
  buf[IdNs.FLBAS] = 0;
  buf[IdNs.NMIC] = 0x1; // may be shared by controllers
  buf[IdNs.RESCAP] = n.rescap ?? 0;
  // DLFEAT: deallocated blocks read 0x00 (001b) and Write Zeroes may deallocate (bit 3)
  buf[IdNs.DLFEAT] = n.thinProvisioned ? 0x09 : 0;
  if (n.optimalIoBoundary > 0 && n.optimalIoBoundary <= 0xffff)
    buf.writeUInt16LE(n.optimalIoBoundary, IdNs.NOIOB);
  buf.writeUInt32LE(n.anaGroupId, IdNs.ANAGRPID);
  if (n.nguid) n.nguid.copy(buf, IdNs.NGUID, 0, 16);
  if (n.eui64) n.eui64.copy(buf, IdNs.EUI64, 0, 8);
  // LBAF0: MS 0, LBADS = log2(block size), RP 0
  buf.writeUInt32LE(Math.log2(n.blockSize) << 16, IdNs.LBAF0);
}

/** CNS 02: active namespace IDs greater than `after`, ascending, at most 1024. */
export function buildActiveNsList(buf: Buffer, nsids: readonly number[], after: number): void {
  buf.fill(0, 0, IDENTIFY_SIZE);
  const sorted = nsids.filter((n) => n > after).sort((a, b) => a - b);
  const count = Math.min(sorted.length, 1024);
  for (let i = 0; i < count; i++) buf.writeUInt32LE(sorted[i], i * 4);
}

/** I/O Command Set Independent Identify Namespace (CNS 08h) offsets. */
export const IdNsIndependent = {
  NSFEAT: 0,
  NMIC: 1,
  RESCAP: 2,
  FPI: 3,
  ANAGRPID: 4,
  NSATTR: 8,
  NVMSETID: 9,
  ENDGID: 11,
  /** bit 0: namespace ready */
  NSTAT: 13,
} as const;

/** CNS 08h of an active namespace: shared, its reservation capabilities and ANA group, ready. */
export function buildCsIndependentNamespace(
  buf: Buffer,
  n: { thinProvisioned: boolean; rescap: number; anaGroupId: number },
): void {
  buf.fill(0, 0, IDENTIFY_SIZE);
  buf[IdNsIndependent.NSFEAT] = n.thinProvisioned ? 0x1 : 0;
  buf[IdNsIndependent.NMIC] = 0x1;
  buf[IdNsIndependent.RESCAP] = n.rescap;
  buf.writeUInt32LE(n.anaGroupId, IdNsIndependent.ANAGRPID);
  buf[IdNsIndependent.NSTAT] = 0x1;
}

/** CNS 1Ch: the I/O Command Set Combinations, 512 vectors of 8 bytes; one combination here:
 * index 0 with bit 0, the NVM command set. */
export const IOCS_VECTOR_SIZE = 8;
export const IOCS_VECTOR_NVM = 0x1;

export function buildIoCommandSetList(buf: Buffer): void {
  buf.fill(0, 0, IDENTIFY_SIZE);
  buf.writeUInt32LE(IOCS_VECTOR_NVM, 0);
}

export const NsIdType = { EUI64: 1, NGUID: 2, UUID: 3, CSI: 4 } as const;

/** One namespace identification descriptor: type, length, 2 reserved bytes, the identifier. */
export const NsDescriptor = { NIDT: 0, NIDL: 1, NID: 4 } as const;

/** CNS 03: namespace identification descriptor list. */
export function buildNsDescriptorList(
  buf: Buffer,
  ids: { eui64: Buffer | null; nguid: Buffer | null; uuid: Buffer | null },
): void {
  buf.fill(0, 0, IDENTIFY_SIZE);
  let off = 0;
  const put = (type: number, v: Buffer) => {
    buf[off + NsDescriptor.NIDT] = type;
    buf[off + NsDescriptor.NIDL] = v.length;
    v.copy(buf, off + NsDescriptor.NID);
    off += NsDescriptor.NID + v.length;
  };
  if (ids.eui64) put(NsIdType.EUI64, ids.eui64);
  if (ids.nguid) put(NsIdType.NGUID, ids.nguid);
  if (ids.uuid) put(NsIdType.UUID, ids.uuid);
  put(NsIdType.CSI, Buffer.from([Csi.NVM]));
}

/** '1b4e28ba-2fa1-11d2-883f-0016d3cca427' → 16 bytes (null when malformed). */
export function uuidToBytes(uuid: string): Buffer | null {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return null;
  return Buffer.from(hex, 'hex');
}

/** NGUID hex string (32 hex digits, dashes allowed) → 16 bytes. */
export function nguidToBytes(nguid: string): Buffer | null {
  return uuidToBytes(nguid);
}

export function eui64ToBytes(eui: string): Buffer | null {
  const hex = eui.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) return null;
  return Buffer.from(hex, 'hex');
}

// ---------------------------------------------------------------------------
// Host side: the Identify command and the decoders

/** Fills an Identify SQE (CNS in CDW10 bits 7:0). */
export function writeIdentifyCommand(sqe: Buffer, cns: number, nsid: number): void {
  initSqe(sqe, AdminOpcode.IDENTIFY, nsid);
  sqe.writeUInt32LE(cns, Sqe.CDW10);
}

/** A list of namespace IDs (CNS 02 and the Changed Namespace List log): the IDs before the first 0. */
export function decodeNsidList(buf: Buffer): number[] {
  const nsids: number[] = [];
  for (let off = 0; off + 4 <= buf.length; off += 4) {
    const nsid = buf.readUInt32LE(off);
    if (nsid === 0) break;
    nsids.push(nsid);
  }
  return nsids;
}

/** Identify Controller (CNS 01h) with nvme-cli's `id-ctrl` field names, in its order. */
export function decodeIdentifyController(d: Buffer) {
  return {
    vid: d.readUInt16LE(IdCtrl.VID),
    ssvid: d.readUInt16LE(IdCtrl.SSVID),
    sn: readPaddedString(d, IdCtrl.SN, 20),
    mn: readPaddedString(d, IdCtrl.MN, 40),
    fr: readPaddedString(d, IdCtrl.FR, 8),
    rab: d[IdCtrl.RAB],
    // IEEE OUI is stored least significant byte first
    ieee: d[IdCtrl.IEEE] | (d[IdCtrl.IEEE + 1] << 8) | (d[IdCtrl.IEEE + 2] << 16),
    cmic: d[IdCtrl.CMIC],
    mdts: d[IdCtrl.MDTS],
    cntlid: d.readUInt16LE(IdCtrl.CNTLID),
    ver: d.readUInt32LE(IdCtrl.VER),
    rtd3r: d.readUInt32LE(IdCtrl.RTD3R),
    rtd3e: d.readUInt32LE(IdCtrl.RTD3E),
    oaes: d.readUInt32LE(IdCtrl.OAES),
    ctratt: d.readUInt32LE(IdCtrl.CTRATT),
    cntrltype: d[IdCtrl.CNTRLTYPE],
    fguid: d.toString('hex', IdCtrl.FGUID, IdCtrl.FGUID + 16),
    oacs: d.readUInt16LE(IdCtrl.OACS),
    acl: d[IdCtrl.ACL],
    aerl: d[IdCtrl.AERL],
    frmw: d[IdCtrl.FRMW],
    lpa: d[IdCtrl.LPA],
    elpe: d[IdCtrl.ELPE],
    npss: d[IdCtrl.NPSS],
    avscc: d[IdCtrl.AVSCC],
    apsta: d[IdCtrl.APSTA],
    wctemp: d.readUInt16LE(IdCtrl.WCTEMP),
    cctemp: d.readUInt16LE(IdCtrl.CCTEMP),
    mtfa: d.readUInt16LE(IdCtrl.MTFA),
    hmpre: d.readUInt32LE(IdCtrl.HMPRE),
    hmmin: d.readUInt32LE(IdCtrl.HMMIN),
    tnvmcap: readCounter(d, IdCtrl.TNVMCAP, 16),
    unvmcap: readCounter(d, IdCtrl.UNVMCAP, 16),
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
    icsvscc: d[IdCtrl.ICSVSCC],
    nwpc: d[IdCtrl.NWPC],
    acwu: d.readUInt16LE(IdCtrl.ACWU),
    ocfs: d.readUInt16LE(IdCtrl.OCFS),
    sgls: d.readUInt32LE(IdCtrl.SGLS),
    mnan: d.readUInt32LE(IdCtrl.MNAN),
    maxdna: readCounter(d, IdCtrl.MAXDNA, 16),
    maxcna: d.readUInt32LE(IdCtrl.MAXCNA),
    subnqn: readPaddedString(d, IdCtrl.SUBNQN, 256),
    ioccsz: d.readUInt32LE(IdCtrl.IOCCSZ),
    iorcsz: d.readUInt32LE(IdCtrl.IORCSZ),
    icdoff: d.readUInt16LE(IdCtrl.ICDOFF),
    fcatt: d[IdCtrl.FCATT],
    msdbd: d[IdCtrl.MSDBD],
    ofcs: d.readUInt16LE(IdCtrl.OFCS),
  };
}
export type IdentifyController = ReturnType<typeof decodeIdentifyController>;

/** In-capsule data an I/O queue takes, in bytes, from IOCCSZ (16-byte units, the 64-byte SQE included). */
export function ioInCapsuleDataSize(cdata: Buffer): number {
  return Math.max(0, cdata.readUInt32LE(IdCtrl.IOCCSZ) * 16 - 64);
}

/** One LBA format: metadata size, log2 block size (`ds`, nvme-cli's name), relative performance. */
export function decodeLbaFormat(d: Buffer, index: number): { ms: number; ds: number; rp: number } {
  const off = IdNs.LBAF0 + index * LbaFormat.SIZE;
  return {
    ms: d.readUInt16LE(off + LbaFormat.MS),
    ds: d[off + LbaFormat.LBADS],
    rp: d[off + LbaFormat.RP] & 0x3,
  };
}

/** Identify Namespace (CNS 00h) with nvme-cli's `id-ns` field names; `lbafs` lists NLBAF + 1 formats. */
export function decodeIdentifyNamespace(d: Buffer) {
  const nlbaf = d[IdNs.NLBAF];
  const lbafs: Array<{ ms: number; ds: number; rp: number }> = [];
  for (let i = 0; i <= nlbaf && i < 64; i++) lbafs.push(decodeLbaFormat(d, i));
  return {
    nsze: readCounter(d, IdNs.NSZE, 8),
    ncap: readCounter(d, IdNs.NCAP, 8),
    nuse: readCounter(d, IdNs.NUSE, 8),
    nsfeat: d[IdNs.NSFEAT],
    nlbaf,
    flbas: d[IdNs.FLBAS],
    mc: d[IdNs.MC],
    dpc: d[IdNs.DPC],
    dps: d[IdNs.DPS],
    nmic: d[IdNs.NMIC],
    rescap: d[IdNs.RESCAP],
    fpi: d[IdNs.FPI],
    dlfeat: d[IdNs.DLFEAT],
    nawun: d.readUInt16LE(IdNs.NAWUN),
    nawupf: d.readUInt16LE(IdNs.NAWUPF),
    nacwu: d.readUInt16LE(IdNs.NACWU),
    nabsn: d.readUInt16LE(IdNs.NABSN),
    nabo: d.readUInt16LE(IdNs.NABO),
    nabspf: d.readUInt16LE(IdNs.NABSPF),
    noiob: d.readUInt16LE(IdNs.NOIOB),
    nvmcap: readCounter(d, IdNs.NVMCAP, 16),
    npwg: d.readUInt16LE(IdNs.NPWG),
    npwa: d.readUInt16LE(IdNs.NPWA),
    npdg: d.readUInt16LE(IdNs.NPDG),
    npda: d.readUInt16LE(IdNs.NPDA),
    nows: d.readUInt16LE(IdNs.NOWS),
    anagrpid: d.readUInt32LE(IdNs.ANAGRPID),
    nsattr: d[IdNs.NSATTR],
    nvmsetid: d.readUInt16LE(IdNs.NVMSETID),
    endgid: d.readUInt16LE(IdNs.ENDGID),
    nguid: d.toString('hex', IdNs.NGUID, IdNs.NGUID + 16),
    eui64: d.toString('hex', IdNs.EUI64, IdNs.EUI64 + 8),
    lbafs,
  };
}
export type IdentifyNamespace = ReturnType<typeof decodeIdentifyNamespace>;

/** Sizes of a namespace in blocks (NSZE, NCAP, NUSE), as numbers (exact below 2^53). */
export function namespaceSizes(d: Buffer): { nsze: number; ncap: number; nuse: number } {
  return { nsze: readU64(d, IdNs.NSZE), ncap: readU64(d, IdNs.NCAP), nuse: readU64(d, IdNs.NUSE) };
}

/** The descriptors of a CNS 03 list, up to the first empty one (or one that overruns the buffer). */
export function decodeNsDescriptorList(buf: Buffer): Array<{ type: number; value: Buffer }> {
  const out: Array<{ type: number; value: Buffer }> = [];
  for (let off = 0; off + NsDescriptor.NID <= buf.length; ) {
    const type = buf[off + NsDescriptor.NIDT];
    const len = buf[off + NsDescriptor.NIDL];
    if (type === 0 || len === 0 || off + NsDescriptor.NID + len > buf.length) break;
    out.push({ type, value: buf.subarray(off + NsDescriptor.NID, off + NsDescriptor.NID + len) });
    off += NsDescriptor.NID + len;
  }
  return out;
}
