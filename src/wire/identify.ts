// Identify data structures (NVMe base spec 2.0 §5.17.2), built in place into 4096-byte buffers.
import { writeNulPadded, writePadded } from './fabrics.ts';

export const IDENTIFY_SIZE = 4096;

export const Cns = {
  NAMESPACE: 0x00,
  CONTROLLER: 0x01,
  ACTIVE_NS_LIST: 0x02,
  NS_DESCRIPTOR_LIST: 0x03,
  CSI_NAMESPACE: 0x05,
  CSI_CONTROLLER: 0x06,
  CSI_ACTIVE_NS_LIST: 0x07,
  IO_COMMAND_SET: 0x1c,
} as const;

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
  OAES: 92,
  CTRATT: 96,
  CNTRLTYPE: 111,
  OACS: 256,
  ACL: 258,
  AERL: 259,
  FRMW: 260,
  LPA: 261,
  ELPE: 262,
  NPSS: 263,
  WCTEMP: 266,
  CCTEMP: 268,
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
  ACWU: 532,
  SGLS: 536,
  MNAN: 540,
  SUBNQN: 768,
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
  NMIC: 30,
  DLFEAT: 33,
  // NVMe base spec: NOIOB is bytes 47:46 (64 is NPWG)
  NOIOB: 46,
  ANAGRPID: 92,
  NGUID: 104,
  EUI64: 120,
  LBAF0: 128,
} as const;

export interface IdentifyNsInfo {
  numBlocks: number;
  blockSize: number;
  /** deallocate (unmap) supported: thin provisioning, deallocated blocks read as zeroes */
  thinProvisioned: boolean;
  optimalIoBoundary: number;
  nguid: Buffer | null; // 16 bytes
  eui64: Buffer | null; // 8 bytes
  anaGroupId: number; // 0 when ANA reporting is off
}

function writeU64(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v >>> 0, off);
  buf.writeUInt32LE(Math.floor(v / 0x100000000) >>> 0, off + 4);
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

export const NsIdType = { EUI64: 1, NGUID: 2, UUID: 3, CSI: 4 } as const;

/** CNS 03: namespace identification descriptor list. */
export function buildNsDescriptorList(
  buf: Buffer,
  ids: { eui64: Buffer | null; nguid: Buffer | null; uuid: Buffer | null },
): void {
  buf.fill(0, 0, IDENTIFY_SIZE);
  let off = 0;
  const put = (type: number, v: Buffer) => {
    buf[off] = type;
    buf[off + 1] = v.length;
    v.copy(buf, off + 4);
    off += 4 + v.length;
  };
  if (ids.eui64) put(NsIdType.EUI64, ids.eui64);
  if (ids.nguid) put(NsIdType.NGUID, ids.nguid);
  if (ids.uuid) put(NsIdType.UUID, ids.uuid);
  put(NsIdType.CSI, Buffer.from([0])); // NVM command set
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
