// A poll group's local view of one subsystem: the view from the app thread
// plus the namespaces opened in this realm (descriptor + this thread's channel).
import type { BdevChannel, BdevDesc } from '../bdev/index.ts';
import type { IoChannel } from '../thread/index.ts';
import type { NsIoCounters } from './io-stats.ts';
import type { NamespaceConfig, SubsystemView } from './subsystem.ts';
import type { NvmfRequest } from './transport.ts';

export interface PgNamespace {
  readonly nsid: number;
  config: NamespaceConfig;
  readonly desc: BdevDesc;
  readonly ch: IoChannel<BdevChannel>;
  readonly unmapSupported: boolean;
  readonly writeCache: boolean;
  readonly flushSupported: boolean;
}

export class PgSubsystem {
  view: SubsystemView;
  readonly ns = new Map<number, PgNamespace>();
  /** I/O counted per namespace while it is open here (io-stats.ts) */
  readonly io = new Map<number, NsIoCounters>();
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
}
