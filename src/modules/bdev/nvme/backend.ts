// The realm side of bdev_nvme: in each realm, one I/O queue per attached
// controller (SPDK's per-thread qpair; qid = reactor + 1), shared by the
// replicas of that controller's namespaces and by every thread of the realm.
// The queue connects lazily on the first I/O; I/O waits in a queue while it
// connects, while the controller resets, and when the queue is full. A queue
// lost with I/O in flight resubmits that I/O after the reconnect.
// Multipath (bdev_nvme_attach_controller -x multipath): a replica holds one
// queue per path, in attach order, and sends each I/O on the first path whose
// controller is enabled (SPDK's active_passive); I/O waiting on a path that
// went down, or answered with a path status (SCT 3, e.g. ANA inaccessible),
// moves to another path that is up.

import type { BdevBackend, BdevDescriptor, BdevIo } from '../../../bdev/module.ts';
import { BdevIoStatus, BdevIoType, bdevDeviceId } from '../../../bdev/module.ts';
import { connectIoQpair, type NvmeIoQpair } from '../../../nvme/index.ts';
import {
  defineChannelIter,
  defineThreadIter,
  forEachChannel,
  forEachThread,
  realmReactor,
} from '../../../thread/index.ts';
import { logger } from '../../../util/log.ts';
import { Oncs } from '../../../wire/identify.ts';
import {
  GenericStatus,
  NvmOpcode,
  packStatus,
  RwFlags,
  SQE_SIZE,
  Sqe,
  SqeFlags,
  StatusCodeType,
  statusOf,
  statusSc,
  statusSct,
  writeRwCommand,
} from '../../../wire/nvme.ts';
import { CtrlrState, type NvmeBdevParams, Shared } from './shared.ts';

const log = logger('bdev_nvme');

/** How often a realm with waiting I/O looks at the shared state while it has no queue. */
const WAIT_POLL_MS = 50;
/** I/O queue connects refused in a row (admin queue up) before waiting I/O is failed */
const MAX_QUEUE_CONNECT_FAILURES = 3;

/** The packed status of commands failed because their queue went away */
const ABORTED_SQ_DELETION = packStatus(StatusCodeType.GENERIC, GenericStatus.ABORTED_SQ_DELETION);

/** One NVMe command in flight for a bdev_io; pooled, its completion callback bound once. */
class NvmeRequest {
  readonly owner: RealmQueue;
  io: BdevIo | null = null;
  /** the queue the command went to (to tell a lost queue's aborts from real statuses) */
  qpair: NvmeIoQpair | null = null;
  /** read bounce buffer when the bdev_io's iovs are not one buffer */
  bounce: Buffer | null = null;
  readonly done: (status: number, cpl: Buffer) => void;
  // fused compare-and-write: two commands, one bdev_io
  fusedPending = 0;
  compareStatus = 0;
  writeStatus = 0;
  readonly compareDone: (cpl: Buffer) => void;
  readonly writeDone: (cpl: Buffer) => void;
  constructor(owner: RealmQueue) {
    this.owner = owner;
    this.done = (status) => this.owner.completed(this, status);
    this.compareDone = (cpl) => {
      this.compareStatus = statusOf(cpl);
      this.fusedPart();
    };
    this.writeDone = (cpl) => {
      this.writeStatus = statusOf(cpl);
      this.fusedPart();
    };
  }

  private fusedPart(): void {
    if (--this.fusedPending > 0) return;
    // the compare's status decides (a miscompare aborts the write); else the write's
    this.owner.completed(this, this.compareStatus !== 0 ? this.compareStatus : this.writeStatus);
  }
}

/** Fill an NVM command SQE for a fused compare / write half (CID and SGL are the queue's). */
function fillFused(
  cmd: Buffer,
  opcode: number,
  fuse: number,
  nsid: number,
  lba: number,
  blocks: number,
  fua: boolean,
): Buffer {
  writeRwCommand(cmd, opcode, nsid, lba, blocks, fua ? RwFlags.FUA : 0);
  cmd[Sqe.FLAGS] = fuse;
  return cmd;
}

/** The first `len` bytes of the iovs as one Buffer: a view when they are one buffer, else a copy. */
function gather(iov: Buffer[], len: number): Buffer {
  if (iov.length === 1 && iov[0].length >= len)
    return iov[0].length === len ? iov[0] : iov[0].subarray(0, len);
  return Buffer.concat(iov, len);
}

function scatter(src: Buffer, iov: Buffer[]): void {
  let pos = 0;
  for (let i = 0; i < iov.length && pos < src.length; i++) {
    pos += src.copy(iov[i], 0, pos, Math.min(src.length, pos + iov[i].length));
  }
}

/** This realm's I/O queue to one attached controller. */
export class RealmQueue {
  readonly key: string;
  readonly params: NvmeBdevParams;
  readonly shared: Int32Array;
  private readonly hostid: Buffer;
  refs = 0;
  qpair: NvmeIoQpair | null = null;
  /** generation of the controller the open queue belongs to */
  private qpairGeneration = -1;
  private connecting = false;
  /** generation whose connect last failed, and when to try it again */
  private failedGeneration = -1;
  private retryAt = 0;
  /** connect failures in a row while the controller says it is enabled */
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private destroyed = false;
  /** the open queue went away and no new one is connected yet (multipath: use another path) */
  private lostQueue = false;
  /** bdev_ios waiting for a queue or a free slot (intrusive list through io.next) */
  private waitHead: BdevIo | null = null;
  private waitTail: BdevIo | null = null;
  private readonly freeReqs: NvmeRequest[] = [];
  /** commands in flight on the queue */
  inFlight = 0;
  /** SQE scratch for the fused pair (the queue copies it at submit) */
  private readonly sqe = Buffer.alloc(SQE_SIZE);

  constructor(key: string, params: NvmeBdevParams) {
    this.key = key;
    this.params = params;
    this.shared = new Int32Array(params.shared);
    this.hostid = Buffer.from(params.hostidHex, 'hex');
  }

  get state(): number {
    return Atomics.load(this.shared, Shared.STATE);
  }

  submit(io: BdevIo): void {
    const st = this.state;
    if (st === CtrlrState.DELETED || st === CtrlrState.FAIL_FAST) {
      this.fail(io, st);
      return;
    }
    if (this.waitHead === null && this.ready() && this.start(io)) return;
    this.enqueue(io);
    this.kick();
  }

  /** The queue is open and belongs to the controller of the current generation. */
  private ready(): boolean {
    const q = this.qpair;
    if (q === null || q.closed) return false;
    if (this.qpairGeneration !== Atomics.load(this.shared, Shared.GENERATION)) {
      // the controller was reconnected under us: this queue belongs to the old one
      q.close();
      return false;
    }
    return true;
  }

  private enqueue(io: BdevIo): void {
    io.next = null;
    if (this.waitTail === null) this.waitHead = io;
    else this.waitTail.next = io;
    this.waitTail = io;
  }

  private fail(io: BdevIo, st: number): void {
    io.completeStatus(st === CtrlrState.DELETED ? BdevIoStatus.ABORTED : BdevIoStatus.FAILED);
  }

  /** Start one bdev_io on the open queue; false when the queue is full (nothing was sent). */
  private start(io: BdevIo): boolean {
    const q = this.qpair!;
    const req = this.freeReqs.pop() ?? new NvmeRequest(this);
    req.io = io;
    req.qpair = q;
    const nsid = io.moduleNum;
    const bs = io.bdev!.blockSize;
    const len = io.numBlocks * bs;
    let ok: boolean;
    switch (io.type) {
      case BdevIoType.READ: {
        let buf: Buffer;
        if (io.iov.length === 1 && io.iov[0].length >= len) {
          buf = io.iov[0].length === len ? io.iov[0] : io.iov[0].subarray(0, len);
        } else {
          buf = Buffer.allocUnsafe(len);
          req.bounce = buf;
        }
        ok = q.read(nsid, io.offsetBlocks, io.numBlocks, buf, req.done);
        break;
      }
      case BdevIoType.WRITE:
        ok = q.write(nsid, io.offsetBlocks, io.numBlocks, gather(io.iov, len), req.done, io.fua);
        break;
      case BdevIoType.COMPARE:
        ok = q.compare(nsid, io.offsetBlocks, io.numBlocks, gather(io.iov, len), req.done);
        break;
      case BdevIoType.WRITE_ZEROES:
        ok = q.writeZeroes(nsid, io.offsetBlocks, io.numBlocks, req.done);
        break;
      case BdevIoType.UNMAP:
        ok = q.dsm(nsid, [[io.offsetBlocks, io.numBlocks]], req.done);
        break;
      case BdevIoType.FLUSH:
        ok = q.flush(nsid, req.done);
        break;
      case BdevIoType.COMPARE_AND_WRITE: {
        // both halves back to back on this queue, or neither
        if (q.qpair.available < 2) {
          ok = false;
          break;
        }
        const sqe = this.sqe;
        req.fusedPending = 2;
        req.compareStatus = 0;
        req.writeStatus = 0;
        const lba = io.offsetBlocks;
        const n = io.numBlocks;
        fillFused(sqe, NvmOpcode.COMPARE, SqeFlags.FUSE_FIRST, nsid, lba, n, false);
        q.submit(sqe, gather(io.iov, len), false, req.compareDone);
        fillFused(sqe, NvmOpcode.WRITE, SqeFlags.FUSE_SECOND, nsid, lba, n, io.fua);
        q.submit(sqe, gather(io.writeIov, len), false, req.writeDone);
        ok = true;
        break;
      }
      default:
        // not a type supportsIo() admits; answer it rather than leave it waiting
        this.release(req);
        io.completeNvme(0, GenericStatus.INVALID_OPCODE);
        return true;
    }
    if (!ok) {
      this.release(req);
      return false;
    }
    this.inFlight++;
    return true;
  }

  private release(req: NvmeRequest): void {
    req.io = null;
    req.qpair = null;
    req.bounce = null;
    this.freeReqs.push(req);
  }

  /** A command finished (the queue calls it; also with ABORTED_SQ_DELETION when the queue died). */
  completed(req: NvmeRequest, status: number): void {
    const io = req.io!;
    const bounce = req.bounce;
    const lostQueue = req.qpair!.closed && status === ABORTED_SQ_DELETION;
    this.release(req);
    this.inFlight--;
    if (lostQueue && !this.destroyed) {
      // not the device's answer: the connection went away; run it again after the reconnect
      const st = this.state;
      if (st === CtrlrState.DELETED || st === CtrlrState.FAIL_FAST) this.fail(io, st);
      else this.enqueue(io);
    } else if (status === 0) {
      if (bounce !== null) scatter(bounce, io.iov);
      io.complete(true);
    } else if (statusSct(status) === StatusCodeType.PATH && !this.destroyed && reroute(io, this)) {
      // a path status (ANA inaccessible, path error): another path took it
    } else {
      io.completeNvme(statusSct(status), statusSc(status));
    }
    if (this.waitHead !== null) this.drain();
  }

  /** Start waiting I/O while the queue takes it. */
  private drain(): void {
    if (!this.ready()) {
      this.kick();
      return;
    }
    while (this.waitHead !== null) {
      const io = this.waitHead;
      if (!this.start(io)) return; // full: the next completion drains again
      this.waitHead = io.next;
      if (this.waitHead === null) this.waitTail = null;
      io.next = null;
    }
  }

  /** Hand each waiting I/O to another path of its bdev that is up; the rest keeps waiting here. */
  private rerouteWaiting(): void {
    let io = this.waitHead;
    this.waitHead = null;
    this.waitTail = null;
    while (io !== null) {
      const next = io.next;
      io.next = null;
      if (!reroute(io, this)) this.enqueue(io);
      io = next;
    }
  }

  /** This path can take I/O now: its controller is enabled and its queue was not just lost. */
  usable(): boolean {
    return !this.destroyed && this.state === CtrlrState.ENABLED && !this.lostQueue;
  }

  private failWaiting(st: number): void {
    let io = this.waitHead;
    this.waitHead = null;
    this.waitTail = null;
    while (io !== null) {
      const next = io.next;
      io.next = null;
      this.fail(io, st);
      io = next;
    }
  }

  /** Move toward a usable queue: fail waiting I/O, connect, or look again shortly. */
  private kick(): void {
    if (this.destroyed) return;
    const st = this.state;
    // this path is down (its controller resets, or its queue was lost): other paths take the waiting I/O
    if ((st !== CtrlrState.ENABLED || this.lostQueue) && this.waitHead !== null) this.rerouteWaiting();
    if (this.connecting) return;
    if (st === CtrlrState.DELETED || st === CtrlrState.FAIL_FAST) {
      this.failWaiting(st);
      return;
    }
    if (this.ready()) {
      this.drain();
      return;
    }
    const granted = Atomics.load(this.shared, Shared.QUEUES_GRANTED);
    if (st === CtrlrState.ENABLED && granted > 0 && realmReactor() + 1 > granted) {
      // our qid is beyond what the remote allows: no queue will ever connect
      this.failWaiting(CtrlrState.FAIL_FAST);
      return;
    }
    const gen = Atomics.load(this.shared, Shared.GENERATION);
    if (st !== CtrlrState.ENABLED || (gen === this.failedGeneration && Date.now() < this.retryAt)) {
      this.wait();
      return;
    }
    this.connect(gen);
  }

  private wait(): void {
    if (this.timer !== null || this.waitHead === null || this.destroyed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.kick();
    }, WAIT_POLL_MS);
  }

  private connect(gen: number): void {
    this.connecting = true;
    const p = this.params;
    connectIoQpair({
      trid: p.trid,
      cntlid: Atomics.load(this.shared, Shared.CNTLID),
      hostid: this.hostid,
      qid: realmReactor() + 1,
      queueSize: Atomics.load(this.shared, Shared.QUEUE_SIZE),
      inCapsuleDataSize: Atomics.load(this.shared, Shared.IN_CAPSULE),
      connectTimeoutMs: p.connectTimeoutMs,
      dhchap: p.dhchap,
    }).then(
      (q) => {
        this.connecting = false;
        if (this.destroyed || Atomics.load(this.shared, Shared.GENERATION) !== gen) {
          q.close();
          this.kick();
          return;
        }
        this.qpair = q;
        this.qpairGeneration = gen;
        this.failures = 0;
        this.lostQueue = false;
        q.qpair.onClose = (reason) => this.lost(q, reason);
        log.info(`${p.ctrlrName}: I/O queue ${q.qid} connected`);
        this.drain();
      },
      (err: Error) => {
        this.connecting = false;
        this.failures = this.failedGeneration === gen ? this.failures + 1 : 1;
        this.failedGeneration = gen;
        this.retryAt = Date.now() + p.retryDelayMs;
        log.info(`${p.ctrlrName}: I/O queue connect failed: ${err.message}`);
        // the admin queue is up but this queue keeps being refused: do not hold I/O forever
        if (this.failures >= MAX_QUEUE_CONNECT_FAILURES && this.state === CtrlrState.ENABLED) {
          this.failWaiting(CtrlrState.FAIL_FAST);
        }
        this.kick();
      },
    );
  }

  private lost(q: NvmeIoQpair, reason: string): void {
    if (this.qpair !== q) return;
    this.qpair = null;
    this.lostQueue = true;
    if (!this.destroyed) log.warn(`${this.params.ctrlrName}: I/O queue ${q.qid} lost: ${reason}`);
    // the I/O it had in flight came back (ABORTED_SQ_DELETION) into the wait queue
    if (this.waitHead !== null) this.kick();
  }

  /** The controller is resetting: drop this queue; its I/O in flight comes back and waits. */
  disconnect(): void {
    const q = this.qpair;
    if (q !== null && !q.closed) q.close();
  }

  destroy(): void {
    this.destroyed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.rerouteWaiting(); // a removed path's I/O goes on through the others
    this.failWaiting(CtrlrState.DELETED);
    const q = this.qpair;
    this.qpair = null;
    q?.close();
  }
}

// ---- per-realm table of queues, by attach id (one per path)

const queues = new Map<string, RealmQueue>();

function acquireQueue(p: NvmeBdevParams): RealmQueue {
  let q = queues.get(p.attachId);
  if (q === undefined) {
    q = new RealmQueue(p.attachId, p);
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

// ---- multipath: the paths each realm knows beyond the first, and the replicas that use them

/** What a replica needs of one more path: its own queue parameters (attach id, trid, shared state). */
export type PathParams = Pick<
  NvmeBdevParams,
  'attachId' | 'trid' | 'hostidHex' | 'retryDelayMs' | 'connectTimeoutMs' | 'shared' | 'ctrlrData' | 'dhchap'
>;

/** first path's attach id → the further paths (this realm's copy of the record's list) */
const extraPaths = new Map<string, PathParams[]>();
/** first path's attach id → this realm's replicas of that controller's namespaces */
const replicas = new Map<string, Set<NvmeBdevBackend>>();

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
    for (const r of replicas.get(ctx.primary) ?? []) r.removePath(ctx.remove);
  }
  next(0);
});

/** Record side: tell every realm about a path added to or removed from a controller; resolves when all know. */
export function changeRealmPaths(change: PathChange): Promise<void> {
  return new Promise((resolve) => forEachThread(pathIter, change, () => resolve()));
}

/** Another path of `io`'s bdev that is up, given `from` is not; false when there is none. */
function reroute(io: BdevIo, from: RealmQueue): boolean {
  const b = io.bdev?.backend;
  if (!(b instanceof NvmeBdevBackend)) return false;
  const q = b.pathOtherThan(from);
  if (q === null) return false;
  q.submit(io);
  return true;
}

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
 * hands it to the queue of the first path that is up (the first path when none is).
 */
export class NvmeBdevBackend implements BdevBackend {
  readonly params: NvmeBdevParams;
  private readonly queue: RealmQueue;
  /** every path's queue, the first path first */
  private paths: RealmQueue[];
  private readonly nsid: number;
  private dropped = false;

  constructor(desc: BdevDescriptor<NvmeBdevParams>) {
    this.params = desc.params;
    this.nsid = this.params.nsid;
    this.queue = acquireQueue(this.params);
    this.paths = [this.queue];
    const key = this.params.attachId;
    let set = replicas.get(key);
    if (set === undefined) {
      set = new Set();
      replicas.set(key, set);
    }
    set.add(this);
    for (const p of extraPaths.get(key) ?? []) this.addPath(p);
  }

  addPath(p: PathParams): void {
    if (this.dropped || this.paths.some((q) => q.key === p.attachId)) return;
    this.paths.push(acquireQueue({ ...this.params, ...p }));
  }

  removePath(attachId: string): void {
    const q = this.paths.find((x) => x.key === attachId);
    if (q === undefined || q === this.queue) return;
    this.paths = this.paths.filter((x) => x !== q);
    releaseQueue(q);
  }

  /** The first path other than `from` that can take I/O now, or null. */
  pathOtherThan(from: RealmQueue): RealmQueue | null {
    for (const q of this.paths) if (q !== from && q.usable()) return q;
    return null;
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
    let q = paths[0];
    if (paths.length > 1 && !q.usable()) {
      for (let i = 1; i < paths.length; i++) {
        if (paths[i].usable()) {
          q = paths[i];
          break;
        }
      }
    }
    q.submit(io);
  }

  destruct(): void {
    if (this.dropped) return;
    this.dropped = true;
    replicas.get(this.params.attachId)?.delete(this);
    for (const q of this.paths) if (q !== this.queue) releaseQueue(q);
    this.paths = [this.queue];
    releaseQueue(this.queue);
  }

  dumpInfo(): Record<string, unknown> {
    const p = this.params;
    const st = this.queue.state;
    return {
      nvme: [
        {
          trid: {
            trtype: 'TCP',
            adrfam: p.trid.traddr.includes(':') ? 'IPv6' : 'IPv4',
            traddr: p.trid.traddr,
            trsvcid: p.trid.trsvcid,
            subnqn: p.trid.subnqn,
          },
          ctrlr_data: {
            cntlid: Atomics.load(this.queue.shared, Shared.CNTLID),
            vendor_id: `0x${p.ctrlrData.vendorId.toString(16).padStart(4, '0')}`,
            model_number: p.ctrlrData.model,
            serial_number: p.ctrlrData.serial,
            firmware_revision: p.ctrlrData.firmware,
            subnqn: p.ctrlrData.subnqn,
          },
          ns_data: { id: p.nsid },
          state: st === CtrlrState.ENABLED ? 'enabled' : st === CtrlrState.DELETED ? 'deleting' : 'resetting',
        },
      ],
      mp_policy: 'active_passive',
    };
  }
}
