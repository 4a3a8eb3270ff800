// How the `nvmf` CLI names what the wire layer decodes (src/wire/identify.ts,
// log.ts and discovery.ts hold the structures and their decoders): discovery
// entries with nvme-cli's value strings, TREQ / EFLAGS / SECTYPE / VER as text.

import type { DiscoveredEntry } from '../../nvme/index.ts';
import {
  AdrFam,
  EFLAGS_DUPRETINFO,
  EFLAGS_EPCSD,
  EFLAGS_NCC,
  SubType,
  TcpSecType,
  TREQ_SECURE_CHANNEL_MASK,
  TREQ_SQFLOW_DISABLE_SUPPORTED,
  TrType,
} from '../../wire/discovery.ts';

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

const SECTYPE_NAMES: Record<number, string> = {
  [TcpSecType.NONE]: 'none',
  [TcpSecType.TLS_1_2]: 'tls',
  [TcpSecType.TLS_1_3]: 'tls13',
};

/** nvme-cli's words for an RDMA entry's TSAS */
const RDMA_QPTYPE_NAMES: Record<number, string> = { 1: 'connected', 2: 'datagram' };
const RDMA_PRTYPE_NAMES: Record<number, string> = {
  1: 'not specified',
  2: 'infiniband',
  3: 'roce',
  4: 'roce-v2',
  5: 'iwarp',
};
const RDMA_CMS_NAMES: Record<number, string> = { 1: 'rdma-cm' };

function named(table: Record<number, string>, v: number): string {
  return table[v] ?? `unrecognized (${v})`;
}

/** TREQ: bits 1:0 secure channel, bit 2 SQ flow control disable supported. */
export function treqString(treq: number): string {
  const secure = ['not specified', 'required', 'not required', 'reserved'][treq & TREQ_SECURE_CHANNEL_MASK];
  return treq & TREQ_SQFLOW_DISABLE_SUPPORTED ? `${secure}, sq flow control disable supported` : secure;
}

/** EFLAGS: bit 0 duplicate returned information, bit 1 explicit persistent connection support. */
export function eflagsString(eflags: number): string {
  const parts: string[] = [];
  if (eflags & EFLAGS_EPCSD) parts.push('explicit discovery connections');
  if (eflags & EFLAGS_DUPRETINFO) parts.push('duplicate discovery information');
  if (eflags & EFLAGS_NCC) parts.push('no cdc connectivity');
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
    // TCP's transport specific address subtype (as nvme-cli prints it)
    ...(e.trtype === TrType.TCP ? { sectype: named(SECTYPE_NAMES, e.sectype) } : {}),
    ...(e.rdma !== undefined
      ? {
          rdma_prtype: named(RDMA_PRTYPE_NAMES, e.rdma.prtype),
          rdma_qptype: named(RDMA_QPTYPE_NAMES, e.rdma.qptype),
          rdma_cms: named(RDMA_CMS_NAMES, e.rdma.cms),
        }
      : {}),
  };
}

/** VER register as "major.minor.tertiary". */
export function versionString(ver: number): string {
  return `${ver >>> 16}.${(ver >> 8) & 0xff}.${ver & 0xff}`;
}
