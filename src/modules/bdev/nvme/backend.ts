// The realm side of bdev_nvme: each namespace's replica, the realm's table of
// I/O queues (realm-queue.ts, one per path, shared by the controller's
// replicas), and the walks by which the record reaches every realm.
//
// Multipath (bdev_nvme_attach_controller -x multipath): a replica holds one
// queue per path, in attach order (bdev_nvme_set_preferred_path moves one to
// the front), and chooses a path per I/O by its policy, as SPDK does:
// - active_passive: the first path in order that is up and ANA optimized,
//   else the first that is up and non-optimized;
// - active_active, round_robin: the next optimized path after the current one
//   (non-optimized ones when no optimized path is up), switching every
//   rr_min_io I/Os;
// - active_active, queue_depth: the optimized path with the fewest commands in
//   flight or waiting (non-optimized when no optimized path is up).
// A path is up when its controller is enabled and its queue was not just lost;
// its ANA state for this namespace is a byte the record writes (shared.ts)
// from the path's ANA log page. With bdev_nvme_set_options disable_auto_failback,
// active_passive keeps the path it chose (SPDK's io path cache) while that path
// is up and no path's ANA state changed: a path that comes back after a failure
// gets I/O again only by bdev_nvme_set_preferred_path (or when the kept one fails).

import type { BdevBackend, BdevDescriptor, BdevIo } from '../../../bdev/module.ts';
import { BdevIoStats, type BdevIoStatsSnapshot, BdevIoType, bdevDeviceId } from '../../../bdev/module.ts';
import type { DhchapHostConfig } from '../../../nvme/index.ts';
import {
  currentThread,
  defineChannelIter,
  defineHandler,
  defineThreadIter,
  forEachChannel,
  forEachThread,
  realmReactor,
  sendMsg,
} from '../../../thread/index.ts';
import { logger } from '../../../util/log.ts';
import { Oncs } from '../../../wire/identify.ts';
import { AnaState } from '../../../wire/log.ts';
import { type PathChooser, RealmQueue } from './realm-queue.ts';
import {
  anaAccessible,
  anaStateName,
  CtrlrState,
  type MultipathConfig,
  type NvmeBdevParams,
  Shared,
} from './shared.ts';

const log = logger('bdev_nvme');

// ---- per-realm table of queues, by attach id (one per path)

const queues = new Map<string, RealmQueue>();
/** attach id → the secrets bdev_nvme_set_keys gave that path (a queue made later starts with them) */
const keysByPath = new Map<string, DhchapHostConfig | null>();

function acquireQueue(p: NvmeBdevParams): RealmQueue {
  let q = queues.get(p.attachId);
  if (q === undefined) {
    q = new RealmQueue(p.attachId, p);
    const keys = keysByPath.get(p.attachId);
    if (keys !== undefined) q.dhchap = keys;
    queues.set(p.attachId, q);
  }
  q.refs++;
  return q;
}

function releaseQueue(q: RealmQueue): void {
  if (--q.refs > 0) return;
  queues.delete(q.key);
  q.destroy();
}

const disconnectIter = defineChannelIter<{ attachId: string }>(
  'bdev_nvme.disconnectQueue',
  (_ch, ctx, next) => {
    queues.get(ctx.attachId)?.disconnect();
    next(0);
  },
);

/**
 * Record side, on a reset: every thread holding a channel of the bdev has its
 * realm drop its queue to the old controller (as SPDK deletes the I/O qpairs
 * of a resetting controller), so I/O stuck on a hung remote comes back to wait.
 */
export function disconnectRealmQueues(bdevName: string, attachId: string): void {
  forEachChannel(bdevDeviceId(bdevName), disconnectIter, { attachId }, () => undefined);
}

// ---- walks that act once per realm

/** The context of a walk over every thread that acts once in each realm. */
interface RealmWalk {
  /** reactors whose realm already acted */
  reactors: number[];
}

/** True on the walk's first visit in this realm (ctx is one object within a realm and travels between them). */
function firstInRealm(ctx: RealmWalk): boolean {
  const r = realmReactor();
  if (ctx.reactors.includes(r)) return false;
  ctx.reactors.push(r);
  return true;
}

// ---- multipath: the paths each realm knows beyond the first, and the replicas that use them

/** What a replica needs of one more path: its own queue parameters (attach id, trid, shared state). */
export type PathParams = Pick<
  NvmeBdevParams,
  | 'attachId'
  | 'trid'
  | 'hostidHex'
  | 'retryDelayMs'
  | 'connectTimeoutMs'
  | 'shared'
  | 'ctrlrData'
  | 'dhchap'
  | 'pathIndex'
>;

/** first path's attach id → the further paths (this realm's copy of the record's list) */
const extraPaths = new Map<string, PathParams[]>();
/** first path's attach id → this realm's replicas of that controller's namespaces */
const replicas = new Map<string, Set<NvmeBdevBackend>>();
/** bdev name → this realm's replica */
const replicasByName = new Map<string, NvmeBdevBackend>();

interface PathChange {
  /** the controller's first path */
  primary: string;
  add?: PathParams;
  remove?: string;
}

const pathIter = defineThreadIter<PathChange>('bdev_nvme.pathChange', (ctx, next) => {
  // every thread of every realm is visited: the realm applies the change once
  const list = extraPaths.get(ctx.primary) ?? [];
  if (ctx.add !== undefined && !list.some((p) => p.attachId === ctx.add!.attachId)) {
    list.push(ctx.add);
    extraPaths.set(ctx.primary, list);
    for (const r of replicas.get(ctx.primary) ?? []) r.addPath(ctx.add);
  }
  if (ctx.remove !== undefined && list.some((p) => p.attachId === ctx.remove)) {
    extraPaths.set(
      ctx.primary,
      list.filter((p) => p.attachId !== ctx.remove),
    );
    keysByPath.delete(ctx.remove);
    for (const r of replicas.get(ctx.primary) ?? []) r.removePath(ctx.remove);
  }
  next(0);
});

/** Record side: tell every realm about a path added to or removed from a controller; resolves when all know. */
export function changeRealmPaths(change: PathChange): Promise<void> {
  return new Promise((resolve) => forEachThread(pathIter, change, () => resolve()));
}

const policyIter = defineThreadIter<RealmWalk & { bdev: string; multipath: MultipathConfig }>(
  'bdev_nvme.multipathPolicy',
  (ctx, next) => {
    if (firstInRealm(ctx)) replicasByName.get(ctx.bdev)?.setMultipath(ctx.multipath);
    next(0);
  },
);

/** Record side: bdev_nvme_set_multipath_policy in every realm; resolves when all apply it. */
export function setRealmMultipath(bdev: string, multipath: MultipathConfig): Promise<void> {
  return new Promise((resolve) =>
    forEachThread(policyIter, { reactors: [], bdev, multipath }, () => resolve()),
  );
}

const preferredIter = defineThreadIter<RealmWalk & { bdev: string; attachId: string }>(
  'bdev_nvme.preferredPath',
  (ctx, next) => {
    if (firstInRealm(ctx)) replicasByName.get(ctx.bdev)?.setPreferred(ctx.attachId);
    next(0);
  },
);

/** Record side: bdev_nvme_set_preferred_path in every realm; resolves when all apply it. */
export function setRealmPreferredPath(bdev: string, attachId: string): Promise<void> {
  return new Promise((resolve) =>
    forEachThread(preferredIter, { reactors: [], bdev, attachId }, () => resolve()),
  );
}

interface KeysWalk extends RealmWalk {
  /** the path whose queues take the secrets */
  attachId: string;
  dhchap: DhchapHostConfig | null;
  /** re-authenticate the open queues now */
  reauthenticate: boolean;
  /** the first failure (no secret in it) */
  error: string | null;
}

const keysIter = defineThreadIter<KeysWalk>('bdev_nvme.setKeys', (ctx, next) => {
  if (!firstInRealm(ctx)) {
    next(0);
    return;
  }
  keysByPath.set(ctx.attachId, ctx.dhchap);
  const q = queues.get(ctx.attachId);
  if (q === undefined) {
    next(0);
    return;
  }
  if (!ctx.reauthenticate) {
    q.dhchap = ctx.dhchap; // the next connect uses them
    next(0);
    return;
  }
  q.reauthenticate(ctx.dhchap).then(
    () => next(0),
    (e: Error) => {
      ctx.error = `I/O queue ${realmReactor() + 1}: ${e.message}`;
      log.warn(`${q.params.ctrlrName}: ${ctx.error}`);
      next(-13);
    },
  );
});

/**
 * Record side (bdev_nvme_set_keys): every realm's queue of path `attachId` takes the
 * secrets and, with `reauthenticate`, authenticates with them now. Resolves with the first
 * failure's message, or null.
 */
export function setRealmKeys(
  attachId: string,
  dhchap: DhchapHostConfig | null,
  reauthenticate: boolean,
): Promise<string | null> {
  return new Promise((resolve) =>
    forEachThread(
      keysIter,
      { reactors: [], attachId, dhchap, reauthenticate, error: null } as KeysWalk,
      (r: { ctx: KeysWalk; status: number }) => resolve(r.status === 0 ? null : (r.ctx.error ?? 'failed')),
    ),
  );
}

/** One poll group of bdev_nvme_get_io_paths: a thread holding channels of nvme bdevs, and their paths. */
export interface IoPathsGroup {
  thread: string;
  io_paths: Array<Record<string, unknown>>;
}

const ioPathsIter = defineThreadIter<{ name: string | null; groups: IoPathsGroup[] }>(
  'bdev_nvme.ioPaths',
  (ctx, next) => {
    const t = currentThread();
    let holds = false;
    const paths: Array<Record<string, unknown>> = [];
    for (const r of replicasByName.values()) {
      if (!t.channels.has(bdevDeviceId(r.name))) continue;
      holds = true;
      if (ctx.name === null || ctx.name === r.name) paths.push(...r.ioPathsJson());
    }
    if (holds) ctx.groups.push({ thread: t.name, io_paths: paths });
    next(0);
  },
);

/** Record side: bdev_nvme_get_io_paths, one group per thread holding channels of nvme bdevs (SPDK's poll groups). */
export function collectIoPaths(name: string | null): Promise<IoPathsGroup[]> {
  return new Promise((resolve) =>
    forEachThread(
      ioPathsIter,
      { name, groups: [] as IoPathsGroup[] },
      (r: { ctx: { groups: IoPathsGroup[] } }) => resolve(r.ctx.groups),
    ),
  );
}

/** bdev_nvme_get_path_iostat: one path's counts so far (attach id → the counts of every realm added up). */
interface PathIostatWalk extends RealmWalk {
  bdev: string;
  sums: Array<{ attachId: string; stat: BdevIoStatsSnapshot }>;
}

const pathIostatIter = defineThreadIter<PathIostatWalk>('bdev_nvme.pathIostat', (ctx, next) => {
  const r = firstInRealm(ctx) ? replicasByName.get(ctx.bdev) : undefined;
  if (r !== undefined) {
    for (const q of r.pathQueues) {
      const mine = q.pathStats?.get(r.params.nsid);
      if (mine === undefined) continue;
      const sum = ctx.sums.find((x) => x.attachId === q.key);
      if (sum === undefined) {
        ctx.sums.push({ attachId: q.key, stat: mine.snapshot() });
        continue;
      }
      const total = new BdevIoStats();
      total.add(sum.stat);
      total.add(mine.snapshot());
      sum.stat = total.snapshot();
    }
  }
  next(0);
});

/** Record side: bdev `bdev`'s I/O counts per path (attach id), added up over the realms (io_path_stat on). */
export function collectPathIostat(bdev: string): Promise<Map<string, BdevIoStats>> {
  return new Promise((resolve) =>
    forEachThread(
      pathIostatIter,
      { reactors: [], bdev, sums: [] } as PathIostatWalk,
      (r: { ctx: PathIostatWalk }) => {
        const byPath = new Map<string, BdevIoStats>();
        for (const { attachId, stat } of r.ctx.sums) {
          const st = new BdevIoStats();
          st.add(stat);
          byPath.set(attachId, st);
        }
        resolve(byPath);
      },
    ),
  );
}

// ---- ANA errors: the record reads the path's ANA log page again

/** A path answered a namespace's I/O with an ANA status (sent to the record thread). */
export interface AnaErrorNotice {
  ctrlrName: string;
  attachId: string;
}

let anaErrorListener: ((n: AnaErrorNotice) => void) | null = null;

const anaErrorMsg = defineHandler<AnaErrorNotice>('bdev_nvme.anaError', (n) => anaErrorListener?.(n));

/** Record side: what to do when a realm reports an ANA error (set once, by the record module). */
export function onAnaError(fn: (n: AnaErrorNotice) => void): void {
  anaErrorListener = fn;
}

// ---- the replica

const SUPPORTED = new Set<number>([
  BdevIoType.READ,
  BdevIoType.WRITE,
  BdevIoType.UNMAP,
  BdevIoType.FLUSH,
  BdevIoType.RESET,
  BdevIoType.WRITE_ZEROES,
  BdevIoType.COMPARE,
]);

/**
 * One namespace's replica in this realm: it tags each I/O with its NSID and
 * hands it to the queue of the path its multipath policy chooses.
 */
export class NvmeBdevBackend implements BdevBackend, PathChooser {
  readonly params: NvmeBdevParams;
  readonly name: string;
  /** the first path's queue (it keys the replica's controller) */
  private readonly queue: RealmQueue;
  /** every path's queue, in preference order (attach order unless a preferred path was set) */
  private paths: RealmQueue[];
  /** this namespace's ANA state through each path, by path index */
  private readonly ana: Uint8Array;
  private readonly nsid: number;
  private dropped = false;
  private multipath: MultipathConfig;
  private activeActive = false;
  private queueDepth = false;
  private minIo = 1;
  /** round_robin: the path of the last choice (its index in paths) and I/Os sent on it since */
  private current = -1;
  private sentOnCurrent = 0;
  /** active_passive without auto failback: the path kept (its index in paths, -1 none) and the ANA states it was chosen under */
  private kept = -1;
  private keptAna = new Uint8Array(0);

  constructor(desc: BdevDescriptor<NvmeBdevParams>) {
    this.params = desc.params;
    this.name = desc.name;
    this.nsid = this.params.nsid;
    this.ana = new Uint8Array(this.params.ana);
    this.queue = acquireQueue(this.params);
    this.paths = [this.queue];
    this.multipath = this.params.multipath;
    this.setMultipath(this.params.multipath);
    const key = this.params.attachId;
    let set = replicas.get(key);
    if (set === undefined) {
      set = new Set();
      replicas.set(key, set);
    }
    set.add(this);
    replicasByName.set(this.name, this);
    for (const p of extraPaths.get(key) ?? []) this.addPath(p);
  }

  addPath(p: PathParams): void {
    if (this.dropped || this.paths.some((q) => q.key === p.attachId)) return;
    this.paths.push(acquireQueue({ ...this.params, ...p }));
    this.current = -1;
    this.kept = -1;
  }

  removePath(attachId: string): void {
    const q = this.paths.find((x) => x.key === attachId);
    if (q === undefined || q === this.queue) return;
    this.paths = this.paths.filter((x) => x !== q);
    this.current = -1;
    this.kept = -1;
    releaseQueue(q);
  }

  setMultipath(m: MultipathConfig): void {
    this.multipath = m;
    this.activeActive = m.policy === 'active_active';
    this.queueDepth = m.selector === 'queue_depth';
    this.minIo = Math.max(1, m.minIo);
    this.current = -1;
    this.sentOnCurrent = 0;
    this.kept = -1;
  }

  /** every path's queue in this realm (bdev_nvme_get_path_iostat) */
  get pathQueues(): readonly RealmQueue[] {
    return this.paths;
  }

  /** bdev_nvme_set_preferred_path: that path first. */
  setPreferred(attachId: string): void {
    const q = this.paths.find((x) => x.key === attachId);
    if (q === undefined) return;
    this.paths = [q, ...this.paths.filter((x) => x !== q)];
    this.current = -1;
    // the manual failback SPDK documents for disable_auto_failback
    this.kept = -1;
  }

  /** The ANA state of this namespace through path `q`. */
  private anaOf(q: RealmQueue): number {
    return Atomics.load(this.ana, q.pathIndex);
  }

  /**
   * From paths[start] on, round the list: the first path other than `skip` that is up and
   * optimized, else the first that is up and non-optimized; its index, or -1.
   */
  private scan(start: number, skip: RealmQueue | null): number {
    const paths = this.paths;
    const n = paths.length;
    let fallback = -1;
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      const q = paths[i];
      if (q === skip || !q.usable()) continue;
      const st = this.anaOf(q);
      if (st === AnaState.optimized) return i;
      if (st === AnaState.non_optimized && fallback < 0) fallback = i;
    }
    return fallback;
  }

  /** queue_depth: the optimized path (else non-optimized) with the fewest commands in flight or waiting. */
  private leastLoaded(): number {
    const paths = this.paths;
    let best = -1;
    let bestDepth = 0;
    let fallback = -1;
    let fallbackDepth = 0;
    for (let i = 0; i < paths.length; i++) {
      const q = paths[i];
      if (!q.usable()) continue;
      const st = this.anaOf(q);
      const d = q.depth;
      if (st === AnaState.optimized) {
        if (best < 0 || d < bestDepth) {
          best = i;
          bestDepth = d;
        }
      } else if (st === AnaState.non_optimized && (fallback < 0 || d < fallbackDepth)) {
        fallback = i;
        fallbackDepth = d;
      }
    }
    return best >= 0 ? best : fallback;
  }

  /** Without auto failback: the kept path is still the one to use (up, and no ANA state changed). */
  private keptHolds(): boolean {
    const k = this.kept;
    return !this.params.autoFailback && k >= 0 && this.paths[k].usable() && this.anaAsKept();
  }

  /** Whether every path's ANA state for this namespace is what it was when the kept path was chosen. */
  private anaAsKept(): boolean {
    const seen = this.keptAna;
    const paths = this.paths;
    if (seen.length !== paths.length) return false;
    for (let i = 0; i < paths.length; i++) if (this.anaOf(paths[i]) !== seen[i]) return false;
    return true;
  }

  /**
   * active_passive: the first path up and optimized (else non-optimized); without auto
   * failback the one chosen last, while it is up and no ANA state changed.
   */
  private choosePassive(): number {
    if (this.params.autoFailback) return this.scan(0, null);
    if (this.keptHolds()) return this.kept;
    const i = this.scan(0, null);
    this.kept = i;
    const paths = this.paths;
    if (this.keptAna.length !== paths.length) this.keptAna = new Uint8Array(paths.length);
    for (let j = 0; j < paths.length; j++) this.keptAna[j] = this.anaOf(paths[j]);
    return i;
  }

  /** The path for the next I/O by the policy: its index, or -1 when no path is up and accessible. */
  private choose(): number {
    if (!this.activeActive) return this.choosePassive();
    if (this.queueDepth) return this.leastLoaded();
    const cur = this.current;
    if (cur >= 0 && ++this.sentOnCurrent < this.minIo) {
      const q = this.paths[cur];
      if (q.usable() && anaAccessible(this.anaOf(q))) return cur;
    }
    this.sentOnCurrent = 0;
    const next = this.scan(cur + 1, null);
    this.current = next;
    return next;
  }

  reroute(io: BdevIo, from: RealmQueue): boolean {
    // a path error: SPDK clears its io path cache, the next I/O chooses again
    this.kept = -1;
    const i = this.scan(0, from);
    if (i < 0) return false;
    this.paths[i].submit(io);
    return true;
  }

  anaError(from: RealmQueue): void {
    // every realm skips the path for this namespace until the record has read its ANA log again
    if (Atomics.exchange(this.ana, from.pathIndex, AnaState.change) === AnaState.change) return;
    sendMsg(this.params.recordThread, anaErrorMsg, { ctrlrName: this.params.ctrlrName, attachId: from.key });
  }

  supportsIo(type: BdevIoType): boolean {
    // optional commands the remote lacks: the bdev layer emulates write zeroes and compare
    const oncs = this.params.oncs;
    if (type === BdevIoType.COMPARE) return (oncs & Oncs.COMPARE) !== 0;
    if (type === BdevIoType.UNMAP) return (oncs & Oncs.DSM) !== 0;
    if (type === BdevIoType.WRITE_ZEROES) return (oncs & Oncs.WRITE_ZEROES) !== 0;
    // fused compare and write is atomic on the remote; without it the layer emulates (atomic in this realm only)
    if (type === BdevIoType.COMPARE_AND_WRITE) return (this.params.fuses & 1) !== 0;
    return SUPPORTED.has(type);
  }

  submit(io: BdevIo): void {
    if (io.type === BdevIoType.RESET) {
      // nothing is held below the bdev layer but the wait queue, which the reconnect logic owns
      io.complete(true);
      return;
    }
    io.moduleNum = this.nsid;
    const paths = this.paths;
    if (paths.length === 1) {
      paths[0].submit(io);
      return;
    }
    const i = this.choose();
    if (i >= 0) {
      paths[i].submit(io);
      return;
    }
    // no path is up and accessible: the first one that is up (its answer says why), else the first
    for (const q of paths) {
      if (q.usable()) {
        q.submit(io);
        return;
      }
    }
    paths[0].submit(io);
  }

  destruct(): void {
    if (this.dropped) return;
    this.dropped = true;
    replicas.get(this.params.attachId)?.delete(this);
    if (replicasByName.get(this.name) === this) replicasByName.delete(this.name);
    for (const q of this.paths) if (q !== this.queue) releaseQueue(q);
    this.paths = [this.queue];
    releaseQueue(this.queue);
  }

  /** Whether path `q` is "current" as SPDK reports it (bdev_nvme_get_io_paths). */
  private isCurrent(q: RealmQueue): boolean {
    if (!q.usable() || !anaAccessible(this.anaOf(q))) return false;
    if (this.activeActive) {
      // a non-optimized path is current only when no path is optimized
      return (
        this.anaOf(q) === AnaState.optimized || !this.paths.some((p) => this.anaOf(p) === AnaState.optimized)
      );
    }
    return this.paths[this.keptHolds() ? this.kept : this.scan(0, null)] === q;
  }

  /** bdev_nvme_get_io_paths: this namespace's paths (SPDK's nvme_io_path_info_json). */
  ioPathsJson(): Array<Record<string, unknown>> {
    return this.paths.map((q) => {
      const t = q.params.trid;
      return {
        bdev_name: this.name,
        cntlid: Atomics.load(q.shared, Shared.CNTLID),
        current: this.isCurrent(q),
        connected: q.connected,
        accessible: anaAccessible(this.anaOf(q)),
        transport: {
          trtype: t.trtype?.toLowerCase() === 'rdma' ? 'RDMA' : 'TCP',
          traddr: t.traddr,
          trsvcid: t.trsvcid,
          adrfam: t.traddr.includes(':') ? 'IPv6' : 'IPv4',
        },
      };
    });
  }

  dumpInfo(): Record<string, unknown> {
    const m = this.multipath;
    return {
      // one entry per path, in preference order (SPDK lists the namespace of each)
      nvme: this.paths.map((q) => {
        const p = q.params;
        const st = q.state;
        return {
          trid: {
            trtype: p.trid.trtype?.toLowerCase() === 'rdma' ? 'RDMA' : 'TCP',
            adrfam: p.trid.traddr.includes(':') ? 'IPv6' : 'IPv4',
            traddr: p.trid.traddr,
            trsvcid: p.trid.trsvcid,
            subnqn: p.trid.subnqn,
          },
          ctrlr_data: {
            cntlid: Atomics.load(q.shared, Shared.CNTLID),
            vendor_id: `0x${p.ctrlrData.vendorId.toString(16).padStart(4, '0')}`,
            model_number: p.ctrlrData.model,
            serial_number: p.ctrlrData.serial,
            firmware_revision: p.ctrlrData.firmware,
            subnqn: p.ctrlrData.subnqn,
            ana_reporting: p.ctrlrData.anaReporting,
          },
          ns_data: {
            id: this.nsid,
            ...(p.ctrlrData.anaReporting ? { ana_state: anaStateName(this.anaOf(q)) } : {}),
          },
          state: st === CtrlrState.ENABLED ? 'enabled' : st === CtrlrState.DELETED ? 'deleting' : 'resetting',
        };
      }),
      mp_policy: m.policy,
      ...(m.policy === 'active_active' ? { selector: m.selector } : {}),
      ...(m.policy === 'active_active' && m.selector === 'round_robin' ? { rr_min_io: m.minIo } : {}),
    };
  }
}
