// What the host knows of one namespace, parsed from Identify Namespace (CNS 0)
// and the Namespace Identification Descriptor list (CNS 3).

/** Identify Namespace field offsets (NVMe base spec §5.17.2.1). */
const IdNs = {
  NSZE: 0,
  NCAP: 8,
  NUSE: 16,
  NLBAF: 25,
  FLBAS: 26,
  NGUID: 104,
  EUI64: 120,
  LBAF0: 128,
} as const;

/** Namespace Identification Descriptor types (CNS 3). */
const Nidt = { EUI64: 1, NGUID: 2, UUID: 3 } as const;

export interface NamespaceInfo {
  nsid: number;
  /** size in logical blocks (NSZE) */
  nsze: number;
  /** capacity in logical blocks (NCAP) */
  ncap: number;
  /** blocks in use (NUSE) */
  nuse: number;
  /** log2 of the block size of the format in use */
  lbads: number;
  /** bytes per logical block (1 << lbads) */
  blockSize: number;
  /** same as nsze: the highest addressable LBA + 1 */
  numBlocks: number;
  /** metadata bytes per block of the format in use */
  metadataSize: number;
  /** 32 hex digits, or null when all zero */
  nguid: string | null;
  /** 16 hex digits, or null when all zero */
  eui64: string | null;
  /** from the descriptor list, or null when the controller gave none */
  uuid: string | null;
}

function u64(buf: Buffer, off: number): number {
  // sizes beyond 2^53 blocks do not exist in practice; keep plain numbers
  return buf.readUInt32LE(off + 4) * 0x1_0000_0000 + buf.readUInt32LE(off);
}

function hexOrNull(buf: Buffer, off: number, len: number): string | null {
  const part = buf.subarray(off, off + len);
  return part.every((b) => b === 0) ? null : part.toString('hex');
}

function formatUuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** True when Identify Namespace data describes an inactive namespace (all zero NSZE). */
export function isInactiveNamespace(idns: Buffer): boolean {
  return u64(idns, IdNs.NSZE) === 0;
}

/** Parse Identify Namespace data (and, when given, the descriptor list). */
export function parseNamespace(nsid: number, idns: Buffer, descriptors: Buffer | null = null): NamespaceInfo {
  const flbas = idns[IdNs.FLBAS];
  // format index: bits 3:0, extended by bits 6:5 when more than 16 formats exist
  let index = flbas & 0xf;
  if (idns[IdNs.NLBAF] >= 16) index |= (flbas >> 1) & 0x30;
  const lbaf = idns.readUInt32LE(IdNs.LBAF0 + index * 4);
  const lbads = (lbaf >> 16) & 0xff;
  const nsze = u64(idns, IdNs.NSZE);
  let uuid: string | null = null;
  let nguid = hexOrNull(idns, IdNs.NGUID, 16);
  let eui64 = hexOrNull(idns, IdNs.EUI64, 8);
  if (descriptors !== null) {
    for (let off = 0; off + 4 <= descriptors.length; ) {
      const type = descriptors[off];
      const len = descriptors[off + 1];
      if (type === 0 || len === 0 || off + 4 + len > descriptors.length) break;
      const value = descriptors.subarray(off + 4, off + 4 + len);
      if (type === Nidt.UUID && len === 16) uuid = formatUuid(value.toString('hex'));
      else if (type === Nidt.NGUID && len === 16) nguid ??= value.toString('hex');
      else if (type === Nidt.EUI64 && len === 8) eui64 ??= value.toString('hex');
      off += 4 + len;
    }
  }
  return {
    nsid,
    nsze,
    ncap: u64(idns, IdNs.NCAP),
    nuse: u64(idns, IdNs.NUSE),
    lbads,
    // LBADS below 9 is not a valid format (512 bytes is the minimum); report 0 rather than guess
    blockSize: lbads >= 9 && lbads < 32 ? 2 ** lbads : 0,
    numBlocks: nsze,
    metadataSize: lbaf & 0xffff,
    nguid,
    eui64,
    uuid,
  };
}
