// What the host knows of one namespace, from Identify Namespace (CNS 0) and
// the Namespace Identification Descriptor list (CNS 3), decoded by the wire layer.

import {
  decodeLbaFormat,
  decodeNsDescriptorList,
  IdNs,
  lbaFormatIndex,
  NsIdType,
  namespaceSizes,
} from '../wire/identify.ts';

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

function hexOrNull(buf: Buffer, off: number, len: number): string | null {
  const part = buf.subarray(off, off + len);
  return part.every((b) => b === 0) ? null : part.toString('hex');
}

function formatUuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** True when Identify Namespace data describes an inactive namespace (all zero NSZE). */
export function isInactiveNamespace(idns: Buffer): boolean {
  return namespaceSizes(idns).nsze === 0;
}

/** Parse Identify Namespace data (and, when given, the descriptor list). */
export function parseNamespace(nsid: number, idns: Buffer, descriptors: Buffer | null = null): NamespaceInfo {
  const format = decodeLbaFormat(idns, lbaFormatIndex(idns[IdNs.FLBAS], idns[IdNs.NLBAF]));
  const lbads = format.ds;
  const { nsze, ncap, nuse } = namespaceSizes(idns);
  let uuid: string | null = null;
  let nguid = hexOrNull(idns, IdNs.NGUID, 16);
  let eui64 = hexOrNull(idns, IdNs.EUI64, 8);
  if (descriptors !== null) {
    for (const { type, value } of decodeNsDescriptorList(descriptors)) {
      const len = value.length;
      if (type === NsIdType.UUID && len === 16) uuid = formatUuid(value.toString('hex'));
      else if (type === NsIdType.NGUID && len === 16) nguid ??= value.toString('hex');
      else if (type === NsIdType.EUI64 && len === 8) eui64 ??= value.toString('hex');
    }
  }
  return {
    nsid,
    nsze,
    ncap,
    nuse,
    lbads,
    // LBADS below 9 is not a valid format (512 bytes is the minimum); report 0 rather than guess
    blockSize: lbads >= 9 && lbads < 32 ? 2 ** lbads : 0,
    numBlocks: nsze,
    metadataSize: format.ms,
    nguid,
    eui64,
    uuid,
  };
}
