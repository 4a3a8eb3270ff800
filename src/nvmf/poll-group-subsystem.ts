// A poll group's local view of one subsystem: the view from the app thread
// plus the namespaces opened in this realm (descriptor + this thread's channel),
// and which hosts see each one (namespace masking).
import type { BdevChannel, BdevDesc } from '../bdev/index.ts';
import type { IoChannel } from '../thread/index.ts';
import type { NamespaceView, SubsystemView } from './subsystem.ts';
import type { NvmfRequest } from './transport.ts';

export interface PgNamespace {
  readonly nsid: number;
  /** its configuration and reservation as the last snapshot gave them */
  config: NamespaceView;
  /** the hosts that see it when it is not visible to every host (nvmf_ns_add_host); null: every host */
  visibleHosts: ReadonlySet<string> | null;
  readonly desc: BdevDesc;
  readonly ch: IoChannel<BdevChannel>;
  readonly unmapSupported: boolean;
  readonly writeCache: boolean;
  readonly flushSupported: boolean;
}

/** Who sees a namespace of this configuration: null for every host, else the listed ones. */
export function visibleHostsOf(config: NamespaceView): ReadonlySet<string> | null {
  return config.noAutoVisible ? new Set(config.hosts) : null;
}

/** Whether controllers of `hostnqn` see `ns` (SPDK: the controller's visible namespace set). */
export function nsVisibleTo(ns: PgNamespace, hostnqn: string): boolean {
  return ns.visibleHosts === null || ns.visibleHosts.has(hostnqn);
}

export class PgSubsystem {
  view: SubsystemView;
  readonly ns = new Map<number, PgNamespace>();
  /** I/O commands that arrived while the subsystem was paused: run on resume, in order */
  queued: NvmfRequest[] = [];
  constructor(view: SubsystemView) {
    this.view = view;
  }
  /** VWC present: any namespace's bdev has a write cache (then Linux sends Flush/FUA) */
  volatileWriteCache(): boolean {
    for (const ns of this.ns.values()) if (ns.writeCache) return true;
    return this.ns.size === 0;
  }
  /** Namespace `nsid` if controllers of `hostnqn` see it (an active namespace of theirs). */
  visibleNs(nsid: number, hostnqn: string): PgNamespace | undefined {
    const ns = this.ns.get(nsid);
    return ns !== undefined && nsVisibleTo(ns, hostnqn) ? ns : undefined;
  }
  /** The NSIDs controllers of `hostnqn` see (their active namespace list), unordered. */
  activeNsids(hostnqn: string): number[] {
    const out: number[] = [];
    for (const ns of this.ns.values()) if (nsVisibleTo(ns, hostnqn)) out.push(ns.nsid);
    return out;
  }
}
