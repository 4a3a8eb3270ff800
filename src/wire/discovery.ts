// Discovery log page (log identifier 0x70): 1024-byte header, 1024-byte entries (NVMe-oF 1.1 §5.3).
// The target builds it; the host library decodes it with the same tables.
import { readPaddedString, writeNulPadded, writePadded, writeU64 } from './fields.ts';

export const DISCOVERY_NQN = 'nqn.2014-08.org.nvmexpress.discovery';
export const DISCOVERY_LOG_HEADER_SIZE = 1024;
export const DISCOVERY_LOG_ENTRY_SIZE = 1024;

export const DiscLogHdr = { GENCTR: 0, NUMREC: 8, RECFMT: 16 } as const;
export const DiscLogEntry = {
  TRTYPE: 0,
  ADRFAM: 1,
  SUBTYPE: 2,
  TREQ: 3,
  PORTID: 4,
  CNTLID: 6,
  ASQSZ: 8,
  EFLAGS: 10,
  TRSVCID: 32,
  TRSVCID_SIZE: 32,
  SUBNQN: 256,
  SUBNQN_SIZE: 256,
  TRADDR: 512,
  TRADDR_SIZE: 256,
  TSAS: 768,
  TSAS_SIZE: 256,
} as const;

export const TrType = { RDMA: 1, FC: 2, TCP: 3, LOOP: 254 } as const;
export const AdrFam = { IPV4: 1, IPV6: 2, IB: 3, FC: 4, INTRA_HOST: 254 } as const;
export const SubType = { DISCOVERY_REFERRAL: 1, NVME: 2, DISCOVERY_CURRENT: 3 } as const;
/** TREQ: secure channel not specified (0); bit 2 = SQ flow control disable supported. */
export const TREQ_NOT_SPECIFIED = 0;
/** TREQ bits 1:0: secure channel not specified / required / not required */
export const TREQ_SECURE_CHANNEL_MASK = 0x3;
export const TreqSecureChannel = { NOT_SPECIFIED: 0, REQUIRED: 1, NOT_REQUIRED: 2 } as const;
export const TREQ_SQFLOW_DISABLE_SUPPORTED = 0x04;
/** TCP TSAS byte 0 (SECTYPE): the security of the port's connections */
export const TcpSecType = { NONE: 0, TLS_1_2: 1, TLS_1_3: 2 } as const;
/** TSAS of an RDMA entry (bytes 0..2): QP service type, provider type, connection management. */
export const RdmaTsas = { QPTYPE: 0, PRTYPE: 1, CMS: 2 } as const;
/** RDMA QP service type: reliable connected */
export const RDMA_QPTYPE_RELIABLE_CONNECTED = 1;
/** RDMA provider type: none specified (what SPDK reports for every device) */
export const RDMA_PRTYPE_NONE = 1;
/** RDMA connection management service: rdma_cm */
export const RDMA_CMS_RDMA_CM = 1;
/** EFLAGS: duplicate returned information, explicit persistent connection support, no CDC connectivity */
export const EFLAGS_DUPRETINFO = 0x1;
export const EFLAGS_EPCSD = 0x2;
export const EFLAGS_NCC = 0x4;

export interface DiscoveryEntry {
  trtype: string; // 'TCP'
  adrfam: string; // 'IPv4' | 'IPv6'
  subtype: number;
  portid: number;
  cntlid: number;
  asqsz: number;
  eflags: number;
  trsvcid: string;
  subnqn: string;
  traddr: string;
  /** TREQ bits 1:0 (TreqSecureChannel; default not specified) */
  secureChannel?: number;
  /** TCP TSAS byte 0: security type (TcpSecType; default none) */
  sectype?: number;
}

export function trtypeCode(trtype: string): number {
  const t = trtype.toUpperCase();
  if (t === 'TCP') return TrType.TCP;
  if (t === 'RDMA') return TrType.RDMA;
  if (t === 'FC') return TrType.FC;
  return 0;
}

export function adrfamCode(adrfam: string): number {
  const a = adrfam.toUpperCase();
  if (a === 'IPV6') return AdrFam.IPV6;
  if (a === 'IB') return AdrFam.IB;
  if (a === 'FC') return AdrFam.FC;
  if (a === 'INTRA_HOST') return AdrFam.INTRA_HOST;
  return AdrFam.IPV4;
}

/** Builds the whole log (header + entries); the caller copies the requested window. */
export function buildDiscoveryLog(genctr: number, entries: DiscoveryEntry[]): Buffer {
  const buf = Buffer.alloc(DISCOVERY_LOG_HEADER_SIZE + entries.length * DISCOVERY_LOG_ENTRY_SIZE);
  // genctr is 64-bit: write as two 32-bit halves
  writeU64(buf, DiscLogHdr.GENCTR, genctr);
  buf.writeUInt32LE(entries.length, DiscLogHdr.NUMREC);
  buf.writeUInt16LE(0, DiscLogHdr.RECFMT);
  for (let i = 0; i < entries.length; i++) {
    writeDiscoveryEntry(buf, DISCOVERY_LOG_HEADER_SIZE + i * DISCOVERY_LOG_ENTRY_SIZE, entries[i]);
  }
  return buf;
}

export function writeDiscoveryEntry(buf: Buffer, off: number, e: DiscoveryEntry): void {
  buf[off + DiscLogEntry.TRTYPE] = trtypeCode(e.trtype);
  buf[off + DiscLogEntry.ADRFAM] = adrfamCode(e.adrfam);
  buf[off + DiscLogEntry.SUBTYPE] = e.subtype;
  buf[off + DiscLogEntry.TREQ] =
    ((e.secureChannel ?? TreqSecureChannel.NOT_SPECIFIED) & TREQ_SECURE_CHANNEL_MASK) |
    TREQ_SQFLOW_DISABLE_SUPPORTED;
  buf.writeUInt16LE(e.portid, off + DiscLogEntry.PORTID);
  buf.writeUInt16LE(e.cntlid, off + DiscLogEntry.CNTLID);
  buf.writeUInt16LE(e.asqsz, off + DiscLogEntry.ASQSZ);
  buf.writeUInt16LE(e.eflags, off + DiscLogEntry.EFLAGS);
  writePadded(buf, off + DiscLogEntry.TRSVCID, DiscLogEntry.TRSVCID_SIZE, e.trsvcid);
  writeNulPadded(buf, off + DiscLogEntry.SUBNQN, DiscLogEntry.SUBNQN_SIZE, e.subnqn);
  writePadded(buf, off + DiscLogEntry.TRADDR, DiscLogEntry.TRADDR_SIZE, e.traddr);
  buf.fill(0, off + DiscLogEntry.TSAS, off + DiscLogEntry.TSAS + DiscLogEntry.TSAS_SIZE);
  if (trtypeCode(e.trtype) === TrType.RDMA) {
    buf[off + DiscLogEntry.TSAS + RdmaTsas.QPTYPE] = RDMA_QPTYPE_RELIABLE_CONNECTED;
    buf[off + DiscLogEntry.TSAS + RdmaTsas.PRTYPE] = RDMA_PRTYPE_NONE;
    buf[off + DiscLogEntry.TSAS + RdmaTsas.CMS] = RDMA_CMS_RDMA_CM;
  } else buf[off + DiscLogEntry.TSAS] = e.sectype ?? 0;
}

/** The discovery log header as the host reads it (64-bit counts as bigint). */
export interface DiscoveryLogHeader {
  genctr: bigint;
  numrec: bigint;
  recfmt: number;
}

export function decodeDiscoveryLogHeader(buf: Buffer): DiscoveryLogHeader {
  return {
    genctr: buf.readBigUInt64LE(DiscLogHdr.GENCTR),
    numrec: buf.readBigUInt64LE(DiscLogHdr.NUMREC),
    recfmt: buf.readUInt16LE(DiscLogHdr.RECFMT),
  };
}

/** One discovery log entry, numeric codes as on the wire (TrType, AdrFam, SubType); strings unpadded. */
export interface DiscoveryLogRecord {
  trtype: number;
  adrfam: number;
  subtype: number;
  treq: number;
  portid: number;
  cntlid: number;
  asqsz: number;
  eflags: number;
  trsvcid: string;
  subnqn: string;
  traddr: string;
  /** TCP TSAS byte 0 (TcpSecType) */
  sectype: number;
  /** an RDMA entry's TSAS (QP service type, provider type, connection management) */
  rdma?: { qptype: number; prtype: number; cms: number };
}

export function decodeDiscoveryEntry(buf: Buffer, off: number): DiscoveryLogRecord {
  return {
    trtype: buf[off + DiscLogEntry.TRTYPE],
    adrfam: buf[off + DiscLogEntry.ADRFAM],
    subtype: buf[off + DiscLogEntry.SUBTYPE],
    treq: buf[off + DiscLogEntry.TREQ],
    portid: buf.readUInt16LE(off + DiscLogEntry.PORTID),
    cntlid: buf.readUInt16LE(off + DiscLogEntry.CNTLID),
    asqsz: buf.readUInt16LE(off + DiscLogEntry.ASQSZ),
    eflags: buf.readUInt16LE(off + DiscLogEntry.EFLAGS),
    trsvcid: readPaddedString(buf, off + DiscLogEntry.TRSVCID, DiscLogEntry.TRSVCID_SIZE),
    subnqn: readPaddedString(buf, off + DiscLogEntry.SUBNQN, DiscLogEntry.SUBNQN_SIZE),
    traddr: readPaddedString(buf, off + DiscLogEntry.TRADDR, DiscLogEntry.TRADDR_SIZE),
    sectype: buf[off + DiscLogEntry.TSAS],
    ...(buf[off + DiscLogEntry.TRTYPE] === TrType.RDMA ? { rdma: decodeRdmaTsas(buf, off) } : {}),
  };
}

/** The RDMA fields of an entry's TSAS (meaningful when its trtype is RDMA). */
export function decodeRdmaTsas(buf: Buffer, off: number): { qptype: number; prtype: number; cms: number } {
  const at = off + DiscLogEntry.TSAS;
  return {
    qptype: buf[at + RdmaTsas.QPTYPE],
    prtype: buf[at + RdmaTsas.PRTYPE],
    cms: buf[at + RdmaTsas.CMS],
  };
}
