// One realm's I/O queue to one path of an attached controller (SPDK's
// per-thread qpair; qid = reactor + 1), shared by the replicas of that
// controller's namespaces and by every thread of the realm. The queue
// connects lazily on the first I/O; I/O waits in a FIFO while it connects,
// while the controller resets, and when the queue is full. A queue lost with
// I/O in flight resubmits that I/O after the reconnect. With several paths
// (backend.ts chooses one per I/O), I/O waiting on a path that went down, or
// answered with a path status (SCT 3, e.g. ANA inaccessible), moves to
// another path through the bdev's replica.

import { randomInt } from 'node:crypto';
import type { BdevIo } from '../../../bdev/module.ts';
import { BdevIoStats, BdevIoStatus, BdevIoType, nowTicks } from '../../../bdev/module.ts';
import {
  authenticateQueue,
  connectIoQpair,
  type DhchapHostConfig,
  type NvmeIoQpair,
} from '../../../nvme/index.ts';
import { realmReactor } from '../../../thread/index.ts';
import { logger } from '../../../util/log.ts';
import {
  GenericStatus,
  NvmOpcode,
  PathStatus,
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

/**
 * What a queue needs of the replica an I/O came from (NvmeBdevBackend): another path for it,
 * and word that this path answered with an ANA error.
 */
export interface PathChooser {
  /** Submit `io` on another path than `from` that can take it; false when there is none. */
  reroute(io: BdevIo, from: RealmQueue): boolean;
  /** `from` answered with an ANA status: stop using it for this namespace until its ANA log is read again. */
  anaError(from: RealmQueue): void;
}

/** The replica of an nvme bdev I/O, to choose another path. */
function chooserOf(io: BdevIo): PathChooser | null {
  const b = io.bdev;
  return b !== null && b.moduleName === 'nvme' ? (b.backend as unknown as PathChooser) : null;
}

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
  /** when it was sent (ticks), with io_path_stat on */
  startTicks = 0;
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

/** A pause on the control path (a re-authentication waiting for a free slot). */
function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** An ANA status: the path's ANA state is not what this realm last read. */
function isAnaStatus(sc: number): boolean {
  return (
    sc === PathStatus.ASYMMETRIC_ACCESS_INACCESSIBLE ||
    sc === PathStatus.ASYMMETRIC_ACCESS_PERSISTENT_LOSS ||
    sc === PathStatus.ASYMMETRIC_ACCESS_TRANSITION
  );
}

/** This realm's I/O queue to one path of an attached controller. */
export class RealmQueue {
  /** the path's attach id */
  readonly key: string;
  readonly params: NvmeBdevParams;
  readonly shared: Int32Array;
  /** the path's index into each bdev's ANA states */
  readonly pathIndex: number;
  /** the DH-HMAC-CHAP secrets this queue connects with (bdev_nvme_set_keys replaces them) */
  dhchap: DhchapHostConfig | null;
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
  /** the open queue went away, or a connect failed, and no queue is connected since (multipath: use another path) */
  private lostQueue = false;
  /** the controller generation the queue was lost in (or failed to connect in); a reconnected controller makes the path usable again */
  private lostGeneration = -1;
  /** bdev_ios waiting for a queue or a free slot (intrusive list through io.next) */
  private waitHead: BdevIo | null = null;
  private waitTail: BdevIo | null = null;
  private readonly freeReqs: NvmeRequest[] = [];
  /** commands in flight on the queue */
  inFlight = 0;
  /** bdev_ios in the wait list */
  waiting = 0;
  /** a re-authentication runs on the queue: I/O waits meanwhile (its commands need free slots) */
  private authenticating = false;
  /** SQE scratch for the fused pair (the queue copies it at submit) */
  private readonly sqe = Buffer.alloc(SQE_SIZE);
  /** io_path_stat: this path's successful I/O per namespace (NSID → counts), null when off */
  readonly pathStats: Map<number, BdevIoStats> | null;

  constructor(key: string, params: NvmeBdevParams) {
    this.key = key;
    this.params = params;
    this.shared = new Int32Array(params.shared);
    this.pathIndex = params.pathIndex;
    this.dhchap = params.dhchap;
    this.hostid = Buffer.from(params.hostidHex, 'hex');
    this.pathStats = params.ioPathStat ? new Map() : null;
  }

  /** io_path_stat: namespace `nsid`'s counts on this path (made on first use). */
  statsOf(nsid: number): BdevIoStats {
    const all = this.pathStats as Map<number, BdevIoStats>;
    let st = all.get(nsid);
    if (st === undefined) {
      st = new BdevIoStats();
      all.set(nsid, st);
    }
    return st;
  }

  /** Commands on this path in flight or waiting (the queue_depth selector's measure). */
  get depth(): number {
    return this.inFlight + this.waiting;
  }

  /** The queue is connected to the controller's current generation (bdev_nvme_get_io_paths' connected). */
  get connected(): boolean {
    const q = this.qpair;
    return q !== null && !q.closed && this.qpairGeneration === Atomics.load(this.shared, Shared.GENERATION);
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
    this.waiting++;
  }

  /** Take the whole wait list (the caller puts back what stays). */
  private takeWaiting(): BdevIo | null {
    const io = this.waitHead;
    this.waitHead = null;
    this.waitTail = null;
    this.waiting = 0;
    return io;
  }

  private fail(io: BdevIo, st: number): void {
    io.completeStatus(st === CtrlrState.DELETED ? BdevIoStatus.ABORTED : BdevIoStatus.FAILED);
  }

  /** Start one bdev_io on the open queue; false when the queue is full (nothing was sent). */
  private start(io: BdevIo): boolean {
    if (this.authenticating) return false;
    const q = this.qpair!;
    const req = this.freeReqs.pop() ?? new NvmeRequest(this);
    req.io = io;
    req.qpair = q;
    if (this.pathStats !== null) req.startTicks = nowTicks();
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
    const startTicks = req.startTicks;
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
      // SPDK counts a path's successful I/O only
      if (this.pathStats !== null)
        this.statsOf(io.moduleNum).record(
          io.type,
          io.numBlocks * io.bdev!.blockSize,
          nowTicks() - startTicks,
          true,
        );
      io.complete(true);
    } else if (statusSct(status) === StatusCodeType.PATH && !this.destroyed && this.pathError(io, status)) {
      // a path status (ANA inaccessible, path error): another path took it
    } else {
      io.completeNvme(statusSct(status), statusSc(status));
    }
    if (this.waitHead !== null) this.drain();
  }

  /** A path status: an ANA one makes the namespace avoid this path until its ANA log is read; another path takes the I/O. */
  private pathError(io: BdevIo, status: number): boolean {
    const chooser = chooserOf(io);
    if (chooser === null) return false;
    if (isAnaStatus(statusSc(status))) chooser.anaError(this);
    return chooser.reroute(io, this);
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
      this.waiting--;
      io.next = null;
    }
  }

  /** Hand each waiting I/O to another path of its bdev that is up; the rest keeps waiting here. */
  private rerouteWaiting(): void {
    let io = this.takeWaiting();
    while (io !== null) {
      const next = io.next;
      io.next = null;
      if (!chooserOf(io)?.reroute(io, this)) this.enqueue(io);
      io = next;
    }
  }

  /** This path can take I/O now: its controller is enabled and its queue was not just lost. */
  usable(): boolean {
    return !this.destroyed && this.state === CtrlrState.ENABLED && !this.lostNow();
  }

  /** The queue was lost and the controller was not reconnected since (a new queue would be refused or fail alike). */
  private lostNow(): boolean {
    return this.lostQueue && this.lostGeneration === Atomics.load(this.shared, Shared.GENERATION);
  }

  private failWaiting(st: number): void {
    let io = this.takeWaiting();
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
    if ((st !== CtrlrState.ENABLED || this.lostNow()) && this.waitHead !== null) this.rerouteWaiting();
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
    if (this.timer !== null || this.destroyed) return;
    // no I/O waits here: a path whose queue alone was lost (its controller is up) is connected
    // again every reconnect delay, so that it can take I/O again
    const restore = this.waitHead === null && this.lostQueue && this.state === CtrlrState.ENABLED;
    if (this.waitHead === null && !restore) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.kick();
      },
      restore ? this.params.retryDelayMs : WAIT_POLL_MS,
    );
  }

  private connect(gen: number): void {
    this.connecting = true;
    const p = this.params;
    const dhchap = this.dhchap;
    connectIoQpair({
      trid: p.trid,
      cntlid: Atomics.load(this.shared, Shared.CNTLID),
      hostid: this.hostid,
      qid: realmReactor() + 1,
      queueSize: Atomics.load(this.shared, Shared.QUEUE_SIZE),
      inCapsuleDataSize: Atomics.load(this.shared, Shared.IN_CAPSULE),
      connectTimeoutMs: p.connectTimeoutMs,
      dhchap,
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
        // bdev_nvme_set_keys ran while it connected with the secrets before
        if (this.dhchap !== dhchap && this.dhchap !== null) {
          this.reauthenticate(this.dhchap).catch((e: Error) =>
            log.warn(`${p.ctrlrName}: I/O queue ${q.qid}: re-authentication failed: ${e.message}`),
          );
        }
        this.drain();
      },
      (err: Error) => {
        this.connecting = false;
        this.failures = this.failedGeneration === gen ? this.failures + 1 : 1;
        this.failedGeneration = gen;
        this.retryAt = Date.now() + p.retryDelayMs;
        // no queue on this path for this controller generation: other paths take its I/O until
        // a connect succeeds (tried again every reconnect delay) or the controller reconnects
        this.lostQueue = true;
        this.lostGeneration = gen;
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
    this.lostGeneration = this.qpairGeneration;
    if (!this.destroyed) log.warn(`${this.params.ctrlrName}: I/O queue ${q.qid} lost: ${reason}`);
    // the I/O it had in flight came back (ABORTED_SQ_DELETION) into the wait queue; with the
    // controller still up, a new queue is connected at once
    this.kick();
  }

  /**
   * bdev_nvme_set_keys: new secrets for the next connects, and, when `config` has a host
   * secret and the queue is open, a re-authentication with them now. I/O on this queue waits
   * for it (the Authentication Send/Receive commands need free slots). Rejects with the
   * failure (the controller then closes the queue; the reconnect uses the new secrets).
   */
  async reauthenticate(config: DhchapHostConfig | null): Promise<void> {
    this.dhchap = config;
    // one transaction at a time on a queue: a second set_keys waits for the first
    while (this.authenticating) await pause(5);
    const q = this.qpair;
    if (config === null || config !== this.dhchap || q === null || !this.connected) return;
    this.authenticating = true;
    try {
      while (q.qpair.available < 1 && !q.closed) await pause(1);
      if (q.closed) return;
      const t = this.params.trid;
      await authenticateQueue(q.qpair, {
        qid: q.qid,
        hostnqn: t.hostnqn ?? '',
        subnqn: t.subnqn,
        tid: randomInt(0, 0x1_0000),
        config,
      });
      log.info(`${this.params.ctrlrName}: I/O queue ${q.qid} re-authenticated`);
    } finally {
      this.authenticating = false;
      if (this.waitHead !== null) this.drain();
    }
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
