// What a discovery controller reports (SPDK's ctrlr_discovery.c): one log
// entry per listener of every subsystem the host may reach, filtered by the
// target's discovery_filter, the listener of the discovery subsystem the host
// came through, then the referrals to other discovery services. The log page
// itself is built by src/wire/discovery.ts.
import {
  DISCOVERY_NQN,
  type DiscoveryEntry,
  EFLAGS_DUPRETINFO,
  EFLAGS_EPCSD,
  SubType,
  TcpSecType,
  TreqSecureChannel,
} from '../wire/discovery.ts';
import type { PgSubsystem } from './poll-group-subsystem.ts';
import { SubsystemState, SubsystemType } from './subsystem.ts';
import type { TransportAddress } from './transport.ts';

/** nvmf_discovery_add_referral: another discovery service (or NVM subsystem) to point hosts at. */
export interface Referral {
  address: TransportAddress;
  subnqn: string;
  secureChannel: boolean;
}

/** The log entry of a referral (the target computes it once; every poll group appends it). */
export function referralEntry(r: Referral): DiscoveryEntry {
  return {
    trtype: r.address.trtype,
    adrfam: r.address.adrfam,
    subtype: r.subnqn === DISCOVERY_NQN ? SubType.DISCOVERY_REFERRAL : SubType.NVME,
    portid: 0,
    cntlid: 0xffff,
    asqsz: 128,
    eflags: 0,
    trsvcid: r.address.trsvcid,
    subnqn: r.subnqn,
    traddr: r.address.traddr,
    // as SPDK: a referral says whether its port requires a secure channel, not which kind
    secureChannel: r.secureChannel ? TreqSecureChannel.REQUIRED : TreqSecureChannel.NOT_REQUIRED,
  };
}

export interface DiscoveryLogQuery {
  /** the poll group's view of every subsystem */
  subsystems: Iterable<PgSubsystem>;
  /** the host asking */
  hostnqn: string;
  /** the listener its discovery controller's admin queue came through */
  via: TransportAddress;
  /** ASQSZ to report: the admin queue depth of that transport */
  asqsz: number;
  /** SPDK discovery_filter: 'match_any' or a combination of transport/address/svcid */
  filter: string;
  referrals: readonly DiscoveryEntry[];
}

/** The entries of the discovery log page, in the order SPDK lists them. */
export function discoveryLogEntries(q: DiscoveryLogQuery): DiscoveryEntry[] {
  const via = q.via;
  const out: DiscoveryEntry[] = [];
  for (const sub of q.subsystems) {
    const v = sub.view;
    if (v.state === SubsystemState.INACTIVE) continue;
    const isDisc = v.subtype === SubsystemType.DISCOVERY;
    if (!isDisc && !(v.allowAnyHost || v.hosts.includes(q.hostnqn))) continue;
    v.listeners.forEach((l, i) => {
      if (isDisc) {
        // only the discovery listener the host came through describes "this" discovery controller
        if (
          !(
            l.traddr === via.traddr &&
            l.trsvcid === via.trsvcid &&
            l.trtype.toUpperCase() === via.trtype.toUpperCase()
          )
        )
          return;
      } else if (!filterMatches(q.filter, l, via)) return;
      // as SPDK: a TLS port says "required" and TLS 1.3, any other "not required"
      const secure = v.listenerSecureChannels?.[i] === true;
      out.push({
        trtype: l.trtype,
        adrfam: l.adrfam,
        subtype: isDisc ? SubType.DISCOVERY_CURRENT : SubType.NVME,
        portid: i,
        cntlid: 0xffff,
        asqsz: q.asqsz,
        eflags: isDisc ? EFLAGS_DUPRETINFO | EFLAGS_EPCSD : 0,
        trsvcid: l.trsvcid,
        subnqn: isDisc ? DISCOVERY_NQN : v.nqn,
        traddr: l.traddr,
        secureChannel: secure ? TreqSecureChannel.REQUIRED : TreqSecureChannel.NOT_REQUIRED,
        sectype: secure ? TcpSecType.TLS_1_3 : TcpSecType.NONE,
      });
    });
  }
  for (const r of q.referrals) out.push(r);
  return out;
}

/** Whether listener `l` passes the discovery filter for a host that came through `via`. */
export function filterMatches(filter: string, l: TransportAddress, via: TransportAddress): boolean {
  if (filter === 'match_any' || filter === '') return true;
  if (filter.includes('transport') && l.trtype.toUpperCase() !== via.trtype.toUpperCase()) return false;
  if (filter.includes('address') && l.traddr !== via.traddr) return false;
  if (filter.includes('svcid') && l.trsvcid !== via.trsvcid) return false;
  return true;
}
