// Discovery: connect to a discovery controller, read its whole log page
// (paged, re-read on a generation change) and optionally follow referrals to
// other discovery services, loop-safe and to a bounded depth.

import { DISCOVERY_NQN, SubType, TrType } from '../wire/discovery.ts';
import {
  type ControllerOptions,
  type DiscoveredEntry,
  type DiscoveryLog,
  type DiscoveryLogOptions,
  NvmeController,
} from './controller.ts';
import { parseTransportId, type TransportId } from './transport-id.ts';

export interface DiscoverOptions extends ControllerOptions, DiscoveryLogOptions {
  /** connect to the discovery services that referral entries (subtype 1) name (default true) */
  followReferrals?: boolean;
  /** how many referral hops to follow (default 4) */
  maxReferralDepth?: number;
}

/** The log of one discovery service and, nested, those of the services it referred to. */
export interface DiscoveryResult extends DiscoveryLog {
  /** the discovery service this log came from */
  trid: TransportId;
  /** referral hops from the first service (0 for it) */
  depth: number;
  /** logs of referred services (each at most once over the whole walk) */
  referrals: DiscoveryResult[];
  /** set on a referred service that could not be read (the walk goes on) */
  error?: string;
}

function serviceKey(t: TransportId): string {
  return `${t.traddr}|${t.trsvcid}|${t.subnqn}`;
}

/**
 * Read the discovery log at `trid` (its subnqn, or the well-known discovery
 * NQN when the string form leaves it out). Throws when the first service
 * cannot be read; a failing referral is reported in its `error`.
 */
export async function discover(
  trid: TransportId | string,
  opts: DiscoverOptions = {},
): Promise<DiscoveryResult> {
  const root: TransportId = typeof trid === 'string' ? parseTransportId(trid) : { ...trid };
  if (!root.subnqn) root.subnqn = DISCOVERY_NQN;
  const visited = new Set<string>([serviceKey(root)]);
  const maxDepth = opts.followReferrals === false ? 0 : (opts.maxReferralDepth ?? 4);
  const result = await readOne(root, 0, opts);
  // breadth first: nearer services are visited before farther ones
  const queue: DiscoveryResult[] = [result];
  while (queue.length > 0) {
    const parent = queue.shift() as DiscoveryResult;
    if (parent.depth >= maxDepth) continue;
    for (const e of parent.entries) {
      if (e.subtype !== SubType.DISCOVERY_REFERRAL || e.trtype !== TrType.TCP) continue;
      const next: TransportId = {
        ...parent.trid,
        traddr: e.traddr,
        trsvcid: e.trsvcid,
        subnqn: e.subnqn || DISCOVERY_NQN,
      };
      const key = serviceKey(next);
      if (visited.has(key)) continue;
      visited.add(key);
      let child: DiscoveryResult;
      try {
        child = await readOne(next, parent.depth + 1, opts);
      } catch (err) {
        child = {
          trid: next,
          depth: parent.depth + 1,
          genctr: 0n,
          recfmt: 0,
          entries: [],
          referrals: [],
          error: (err as Error).message,
        };
      }
      parent.referrals.push(child);
      queue.push(child);
    }
  }
  return result;
}

async function readOne(trid: TransportId, depth: number, opts: DiscoverOptions): Promise<DiscoveryResult> {
  const ctrlr = await NvmeController.connect(trid, { ...opts, kato: opts.kato ?? 0, asyncEvents: false });
  try {
    const log = await ctrlr.getDiscoveryLog(opts);
    return { ...log, trid: ctrlr.trid, depth, referrals: [] };
  } finally {
    await ctrlr.disconnect();
  }
}

/** Every entry of a discovery walk that is not a referral, each subsystem/address once. */
export function discoveredSubsystems(result: DiscoveryResult): DiscoveredEntry[] {
  const seen = new Set<string>();
  const out: DiscoveredEntry[] = [];
  const walk = (r: DiscoveryResult): void => {
    for (const e of r.entries) {
      if (e.subtype === SubType.DISCOVERY_REFERRAL) continue;
      const key = `${e.subnqn}|${e.traddr}|${e.trsvcid}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(e);
    }
    for (const c of r.referrals) walk(c);
  };
  walk(result);
  return out;
}
