// The objects of the bdev layer in one realm and the second half of an I/O's
// path through them. A Bdev replica holds the module's BdevBackend; threads
// open BdevDescs on it and hold BdevChannels; each I/O is a pooled BdevIo,
// which owns its completion:
//
//   submitAdmitted (after the checks and QoS of submit.ts)
//     → split / emulation / backend.submit (the module)
//     → io.complete*  → finishIo → the channel's completion batch
//     → drainCompletions (one message per batch, on the submitting thread)
//     → stats → the caller's callback.
//
// These types refer to one another (an I/O names its bdev, whose backend
// takes I/Os), and a child I/O's completion submits the next step of its
// parent, so they live in one file: there is no import cycle to follow.

import { defineHandler, type SpdkThread, sendMsg } from '../thread/index.ts';
import { GenericStatus, MediaErrorStatus, StatusCodeType } from '../wire/nvme.ts';
import type { BdevQos } from './qos.ts';
import { BdevIoStats, nowTicks } from './stats.ts';
import { type BdevDescriptor, BdevIoStatus, BdevIoType, type BlockRange, changesBlocks } from './types.ts';

// ---------------------------------------------------------------- the module contract

/**
 * What a module builds in each realm for each of its bdevs (SPDK's
 * spdk_bdev_fn_table). `C` is the module's per-thread channel context: the
 * layer passes `submit` and `abort` what `createChannel` returned on that thread.
 */
export interface BdevBackend<C = unknown> {
  /** I/O types the module handles itself; the layer emulates write_zeroes and compare(-and-write) */
  supportsIo(type: BdevIoType): boolean;
  /** per-thread module context (e.g. a base bdev's channel); runs on the thread getting the channel */
  createChannel?(): C;
  destroyChannel?(ctx: C): void;
  /** Start the I/O; finish it with io.complete(ok) / io.completeNvme(sct, sc), now or later. */
  submit(io: BdevIo, moduleCtx: C): void;
  /** ABORT: abort the queued I/O whose cbArg is `target`; true when found and aborted */
  abort?(target: unknown, moduleCtx: C): boolean;
  /** the replica is being dropped from this realm (all channels are gone) */
  destruct?(): void;
  /** new size already applied to the descriptor and the Bdev */
  resize?(numBlocks: number): void;
  /** driver_specific section of bdev_get_bdevs */
  dumpInfo?(): Record<string, unknown>;
  /**
   * Zero-copy reads (SPDK's zcopy start with populate): lend a view of the blocks' own memory
   * (malloc), which the module keeps unchanged until zcopyEnd with the same range; null when it
   * cannot now (the layer then reads by copy).
   */
  zcopyStart?(offsetBlocks: number, numBlocks: number): Buffer | null;
  /** the reader is done with what zcopyStart lent */
  zcopyEnd?(offsetBlocks: number, numBlocks: number): void;
  /**
   * Zero-copy writes (SPDK's zcopy start without populate): a view of the blocks' own memory
   * for the write's data to land in, as it arrives, so nothing else may read or write those
   * blocks until zcopyEndWrite with the same range; null when it cannot now (the layer then
   * writes by copy). Implement both or neither.
   */
  zcopyStartWrite?(offsetBlocks: number, numBlocks: number): Buffer | null;
  /** the data is in (commit: the write is done) or never comes (the blocks' contents are then
   * what landed, as after any failed write) */
  zcopyEndWrite?(offsetBlocks: number, numBlocks: number, commit: boolean): void;
  /**
   * True when `submit` is done with a WRITE's data by the time it returns (it copied the data,
   * or never reads it: malloc, null), whenever it completes the I/O. The layer may then hand
   * it data that is only lent for the submit call (LentData) instead of a copy. Leave it unset
   * when the module keeps `io.iov` past `submit` (a queue, an async write, a base bdev's I/O).
   */
  readonly consumesWriteDataInSubmit?: boolean;
}

/**
 * The owner of a WRITE's data that lends it only for the call that submits the I/O (NVMe/TCP
 * in-capsule data left in the socket's receive buffer, which is reused once parsed). The
 * layer either lets a module that consumes write data in submit take it there, or, wherever
 * the I/O would outlive the call with the data (QoS, a locked range, any other module), first
 * asks the owner for a copy of its own.
 */
export interface LentData {
  /** Copy the data into memory the owner keeps until the command completes; returns the iov
   * holding that copy (the owner's command uses it from now on too). Called at most once,
   * during the submit call. */
  keep(): Buffer[];
  /** A module that consumes write data in submit took it: nothing to keep. */
  consumed(): void;
}

/**
 * A bdev module (SPDK's spdk_bdev_module): builds replicas from descriptors.
 * `P` is the type of its descriptors' `params`; the layer hands a module only
 * the descriptors whose `module` is its name.
 */
export interface BdevModule<P extends object = object> {
  readonly name: string;
  /** Build this realm's replica; runs in every realm, in registration order. */
  createReplica(desc: BdevDescriptor<P>, bdev: Bdev): BdevBackend;
  /** save_config: module-level calls written before any bdev (SPDK's config_json), e.g. rbd clusters. */
  configJson?(): Array<{ method: string; params: Record<string, unknown> }>;
  /** The RPC call that recreates this bdev (save_config). */
  writeConfigJson?(desc: BdevDescriptor<P>): { method: string; params: Record<string, unknown> } | null;
  /** save_config: calls written right after this bdev's own (bdev_nvme: a controller's further paths). */
  extraConfigJson?(desc: BdevDescriptor<P>): Array<{ method: string; params: Record<string, unknown> }>;
  /** App thread, after every realm dropped its replica: free module-level resources. */
  destroyRecord?(desc: BdevDescriptor<P>): void | Promise<void>;
}

// ---------------------------------------------------------------- bdev, descriptor, channel

export type BdevEventType = 'remove' | 'resize';
export type BdevEventCb = (ev: BdevEventType, bdev: Bdev) => void;

export function bdevDeviceId(name: string): string {
  return `bdev:${name}`;
}

/** This realm's replica of a bdev. */
export class Bdev {
  readonly name: string;
  readonly aliases: string[];
  readonly uuid: string;
  readonly blockSize: number;
  numBlocks: number;
  readonly productName: string;
  readonly writeCache: boolean;
  readonly optimalIoBoundary: number;
  readonly splitOnOptimalIoBoundary: boolean;
  readonly maxTransferBlocks: number;
  readonly moduleName: string;
  readonly descriptor: BdevDescriptor;
  backend!: BdevBackend;
  /** descriptors open in this realm */
  readonly descs = new Set<BdevDesc>();
  readonly channels = new Set<BdevChannel>();
  removing = false;
  /** stats of channels already destroyed in this realm */
  readonly retiredStats = new BdevIoStats();
  histogramEnabled = false;
  qos: BdevQos<BdevIo> | null = null;
  /** emulated compare-and-writes in progress: their LBA ranges are locked against other writes */
  readonly lockedRanges: BdevIo[] = [];
  readonly lockWaiters: BdevIo[] = [];

  constructor(d: BdevDescriptor) {
    this.name = d.name;
    this.aliases = d.aliases;
    this.uuid = d.uuid;
    this.blockSize = d.blockSize;
    this.numBlocks = d.numBlocks;
    this.productName = d.productName;
    this.writeCache = d.writeCache;
    this.optimalIoBoundary = d.optimalIoBoundary;
    this.splitOnOptimalIoBoundary = d.splitOnOptimalIoBoundary;
    this.maxTransferBlocks = d.maxTransferBlocks;
    this.moduleName = d.module;
    this.descriptor = d;
  }

  /** True for types the module does or the layer emulates. */
  supportsIo(type: BdevIoType): boolean {
    if (this.backend.supportsIo(type)) return true;
    switch (type) {
      case BdevIoType.WRITE_ZEROES:
      case BdevIoType.COMPARE:
      case BdevIoType.COMPARE_AND_WRITE:
        return this.backend.supportsIo(BdevIoType.WRITE) && this.backend.supportsIo(BdevIoType.READ);
      case BdevIoType.FLUSH:
      case BdevIoType.RESET:
      case BdevIoType.ABORT:
        return true;
      default:
        return false;
    }
  }
}

/** An open bdev (bdevOpen), used on the thread that opened it. */
export class BdevDesc {
  readonly bdev: Bdev;
  readonly write: boolean;
  readonly thread: SpdkThread;
  readonly onEvent: BdevEventCb;
  closed = false;
  /** set by bdevClaim: releases the claim when the descriptor closes (as SPDK does) */
  onClose: (() => void) | null = null;
  constructor(bdev: Bdev, write: boolean, onEvent: BdevEventCb, thread: SpdkThread) {
    this.bdev = bdev;
    this.write = write;
    this.onEvent = onEvent;
    this.thread = thread;
  }
}

/** A thread's channel to one bdev: module context, stats, the completion batch. */
export class BdevChannel {
  readonly bdev: Bdev;
  readonly thread: SpdkThread;
  readonly moduleCtx: unknown;
  readonly stats = new BdevIoStats();
  readonly completions: BdevIo[] = [];
  drainScheduled = false;
  /** top-level I/Os submitted and not yet delivered */
  outstanding = 0;
  constructor(bdev: Bdev, thread: SpdkThread) {
    this.bdev = bdev;
    this.thread = thread;
    this.moduleCtx = bdev.backend.createChannel?.();
    if (bdev.histogramEnabled) this.stats.histogram = new Float64Array(48);
  }
}

// ---------------------------------------------------------------- the pooled I/O

export type BdevIoCb = (io: BdevIo, success: boolean, cbArg: unknown) => void;

const EMPTY_IOV: Buffer[] = [];

/** One I/O in flight, reused from a per-realm pool. Children (splits, emulations) are BdevIos too, with `parent` set. */
export class BdevIo {
  type: BdevIoType = 1;
  bdev: Bdev | null = null;
  desc: BdevDesc | null = null;
  ch: BdevChannel | null = null;
  /** data buffers (READ/WRITE/COMPARE; COMPARE_AND_WRITE: the compare data) */
  iov: Buffer[] = EMPTY_IOV;
  /** COMPARE_AND_WRITE: the data written when the compare matches */
  writeIov: Buffer[] = EMPTY_IOV;
  offsetBlocks = 0;
  numBlocks = 0;
  fua = false;
  /** ABORT: cbArg of the I/O to abort */
  abortTarget: unknown = undefined;
  status: BdevIoStatus = BdevIoStatus.PENDING;
  nvmeSct = 0;
  nvmeSc = 0;
  cb: BdevIoCb | null = null;
  cbArg: unknown = undefined;
  submitTicks = 0;
  // --- splitting / emulation ---
  parent: BdevIo | null = null;
  childrenOutstanding = 0;
  /** what this child does for its parent (ChildRole) */
  childRole = 0;
  /** scratch owned by the layer (e.g. the compare read buffer) */
  scratch: Buffer | null = null;
  /** scratch for modules (e.g. the delay module's due time) */
  moduleCtx: unknown = undefined;
  moduleNum = 0;
  moduleStatus: BdevIoStatus = BdevIoStatus.PENDING;
  /** intrusive queue link (QoS / module queues) */
  next: BdevIo | null = null;
  /** a WRITE whose iov is lent for the submit call only (see LentData); null once kept or consumed */
  lent: LentData | null = null;
  /** a READ whose iov is the module's own memory, lent until bdevZcopyEnd (bdevReadZcopy), or a
   * WRITE whose data lands there, until bdevZcopyEnd (bdevZcopyStartWrite) */
  zcopy = false;

  /** Module completion: the layer delivers it to the submitter later, never synchronously. */
  complete(success: boolean): void {
    finishIo(this, success ? BdevIoStatus.SUCCESS : BdevIoStatus.FAILED);
  }

  /** Module completion with an explicit NVMe status (sct/sc). */
  completeNvme(sct: number, sc: number): void {
    if (sct === 0 && sc === 0) {
      finishIo(this, BdevIoStatus.SUCCESS);
      return;
    }
    this.nvmeSct = sct;
    this.nvmeSc = sc;
    finishIo(this, BdevIoStatus.NVME_ERROR);
  }

  completeStatus(status: BdevIoStatus): void {
    finishIo(this, status);
  }

  /** Bytes this I/O covers. */
  get byteLength(): number {
    return this.numBlocks * (this.bdev?.blockSize ?? 0);
  }

  reset(): void {
    this.bdev = null;
    this.desc = null;
    this.ch = null;
    this.iov = EMPTY_IOV;
    this.writeIov = EMPTY_IOV;
    this.fua = false;
    this.abortTarget = undefined;
    this.status = BdevIoStatus.PENDING;
    this.nvmeSct = 0;
    this.nvmeSc = 0;
    this.cb = null;
    this.cbArg = undefined;
    this.parent = null;
    this.childrenOutstanding = 0;
    this.childRole = 0;
    this.scratch = null;
    this.moduleCtx = undefined;
    this.moduleNum = 0;
    this.moduleStatus = BdevIoStatus.PENDING;
    this.next = null;
    this.lent = null;
    this.zcopy = false;
  }
}

/** The NVMe status for a completed I/O (success = 0/0). */
export function bdevIoGetNvmeStatus(io: BdevIo): { sct: number; sc: number } {
  switch (io.status) {
    case BdevIoStatus.SUCCESS:
      return { sct: StatusCodeType.GENERIC, sc: GenericStatus.SUCCESS };
    case BdevIoStatus.NVME_ERROR:
      return { sct: io.nvmeSct, sc: io.nvmeSc };
    case BdevIoStatus.MISCOMPARE:
      return { sct: StatusCodeType.MEDIA_ERROR, sc: MediaErrorStatus.COMPARE_FAILURE };
    case BdevIoStatus.ABORTED:
      return { sct: StatusCodeType.GENERIC, sc: GenericStatus.ABORTED_BY_REQUEST };
    default:
      return { sct: StatusCodeType.GENERIC, sc: GenericStatus.INTERNAL_DEVICE_ERROR };
  }
}

// ---- per-realm pool ----
const pool: BdevIo[] = [];
let poolCap = 65535;
let allocated = 0;

export function setBdevIoPoolSize(n: number): void {
  poolCap = n;
}

export function getIo(): BdevIo {
  const io = pool.pop();
  if (io !== undefined) return io;
  allocated++;
  return new BdevIo();
}

/** Return an I/O to the pool; call once the completion callback has read its status. */
export function bdevFreeIo(io: BdevIo): void {
  io.reset();
  if (pool.length < poolCap) pool.push(io);
  else allocated--;
}

export function ioPoolStats(): { free: number; allocated: number } {
  return { free: pool.length, allocated };
}

// ---------------------------------------------------------------- routing

/** After the checks and QoS: split when needed, emulate what the module lacks, else hand to the module. */
export function submitAdmitted(io: BdevIo): void {
  const bdev = io.bdev!;
  const t = io.type;
  const backend = bdev.backend;
  if (bdev.lockedRanges.length > 0 && io.parent === null && t !== BdevIoType.READ && overlapsLock(bdev, io)) {
    keepLentData(io);
    bdev.lockWaiters.push(io); // resubmitted when the compare-and-write holding the range ends
    return;
  }
  if (t === BdevIoType.READ || t === BdevIoType.WRITE) {
    const lent = io.lent;
    // lent write data goes down as it is only to a module done with it when submit returns
    if (lent !== null && backend.consumesWriteDataInSubmit !== true) keepLentData(io);
    if (needsSplit(bdev, io.offsetBlocks, io.numBlocks)) splitRw(io);
    else backend.submit(io, io.ch!.moduleCtx);
    if (io.lent !== null) {
      // the module (every part, when split) has taken the data
      io.lent = null;
      lent!.consumed();
    }
    return;
  }
  if (backend.supportsIo(t)) {
    if (
      (t === BdevIoType.WRITE_ZEROES || t === BdevIoType.UNMAP) &&
      needsSplit(bdev, io.offsetBlocks, io.numBlocks)
    ) {
      splitRw(io);
      return;
    }
    backend.submit(io, io.ch!.moduleCtx);
    return;
  }
  switch (t) {
    case BdevIoType.WRITE_ZEROES:
      emulateWriteZeroes(io);
      return;
    case BdevIoType.COMPARE:
    case BdevIoType.COMPARE_AND_WRITE:
      if (!backend.supportsIo(BdevIoType.READ)) break;
      emulateCompare(io);
      return;
    case BdevIoType.FLUSH:
    case BdevIoType.RESET:
      io.complete(true); // nothing volatile / nothing queued below us
      return;
    case BdevIoType.ABORT:
      io.complete(false);
      return;
  }
  io.completeNvme(StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE);
}

/**
 * The I/O outlives the submit call with its data (a queue, a module that keeps it): lent data
 * becomes the owner's own copy first.
 */
export function keepLentData(io: BdevIo): void {
  const lent = io.lent;
  if (lent === null) return;
  io.lent = null;
  io.iov = lent.keep();
}

/** The QoS resubmit callback (given to BdevQos by the registry): an I/O that waited goes on, or ends aborted. */
export function submitAfterQos(io: BdevIo): void {
  // the descriptor closed or the bdev went away while it waited
  if (io.desc!.closed || io.bdev!.removing) io.completeStatus(BdevIoStatus.ABORTED);
  else submitAdmitted(io);
}

function needsSplit(bdev: Bdev, offset: number, num: number): boolean {
  if (bdev.maxTransferBlocks > 0 && num > bdev.maxTransferBlocks) return true;
  const b = bdev.optimalIoBoundary;
  if (bdev.splitOnOptimalIoBoundary && b > 0) {
    return Math.floor(offset / b) !== Math.floor((offset + num - 1) / b);
  }
  return false;
}

/** The bytes [off, off+len) of a scatter list, as views (no copy). */
export function sliceIov(iov: Buffer[], off: number, len: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < iov.length && len > 0; i++) {
    const b = iov[i];
    if (off >= b.length) {
      off -= b.length;
      continue;
    }
    const take = Math.min(b.length - off, len);
    out.push(off === 0 && take === b.length ? b : b.subarray(off, off + take));
    len -= take;
    off = 0;
  }
  return out;
}

const ChildRole = { SPLIT: 1, CMP_READ: 2, CAW_WRITE: 3 } as const;

/** A child I/O for one part of `parent`'s work (a split, an emulation step). */
function makeChild(parent: BdevIo, type: BdevIoType, offset: number, num: number, role: number): BdevIo {
  const c = getIo();
  c.type = type;
  c.bdev = parent.bdev;
  c.desc = parent.desc;
  c.ch = parent.ch;
  c.offsetBlocks = offset;
  c.numBlocks = num;
  c.fua = parent.fua;
  c.parent = parent;
  c.childRole = role;
  c.submitTicks = parent.submitTicks;
  return c;
}

/** Unmap of several ranges (submit.ts): one child per range, one completion for all. */
export function submitUnmapRanges(io: BdevIo, ranges: readonly BlockRange[]): void {
  io.childrenOutstanding = ranges.length;
  for (const r of ranges)
    submitAdmitted(makeChild(io, BdevIoType.UNMAP, r.offsetBlocks, r.numBlocks, ChildRole.SPLIT));
}

function splitRw(io: BdevIo): void {
  const bdev = io.bdev!;
  const bs = bdev.blockSize;
  const children: BdevIo[] = [];
  let off = io.offsetBlocks;
  const end = io.offsetBlocks + io.numBlocks;
  while (off < end) {
    let n = end - off;
    if (bdev.maxTransferBlocks > 0 && n > bdev.maxTransferBlocks) n = bdev.maxTransferBlocks;
    const b = bdev.optimalIoBoundary;
    if (bdev.splitOnOptimalIoBoundary && b > 0) n = Math.min(n, b - (off % b));
    const c = makeChild(io, io.type, off, n, ChildRole.SPLIT);
    if (io.type === BdevIoType.READ || io.type === BdevIoType.WRITE) {
      c.iov = sliceIov(io.iov, (off - io.offsetBlocks) * bs, n * bs);
    }
    children.push(c);
    off += n;
  }
  io.childrenOutstanding = children.length;
  for (const c of children) bdev.backend.submit(c, io.ch!.moduleCtx);
}

let zeroBuf = Buffer.alloc(0);
const ZERO_BUF_BYTES = 1 << 20;

function emulateWriteZeroes(io: BdevIo): void {
  const bdev = io.bdev!;
  if (zeroBuf.length < Math.max(ZERO_BUF_BYTES, bdev.blockSize))
    zeroBuf = Buffer.alloc(Math.max(ZERO_BUF_BYTES, bdev.blockSize));
  const per = Math.floor(zeroBuf.length / bdev.blockSize);
  const max = bdev.maxTransferBlocks > 0 ? Math.min(per, bdev.maxTransferBlocks) : per;
  const children: BdevIo[] = [];
  for (let off = io.offsetBlocks, end = io.offsetBlocks + io.numBlocks; off < end; ) {
    const n = Math.min(max, end - off);
    const c = makeChild(io, BdevIoType.WRITE, off, n, ChildRole.SPLIT);
    c.iov = [zeroBuf.subarray(0, n * bdev.blockSize)];
    children.push(c);
    off += n;
  }
  if (children.length === 0) {
    io.complete(true);
    return;
  }
  io.childrenOutstanding = children.length;
  for (const c of children) submitAdmitted(c);
}

/**
 * Whether a zero-copy I/O of these blocks may be asked of the bdev's module now: inside the
 * bdev, no QoS (it must see every I/O), not going away, and for a write no compare-and-write's
 * range lock (a landing write would pass it by). The module may still refuse.
 */
export function zcopyPossible(bdev: Bdev, offsetBlocks: number, numBlocks: number, write: boolean): boolean {
  return (
    numBlocks > 0 &&
    offsetBlocks >= 0 &&
    offsetBlocks + numBlocks <= bdev.numBlocks &&
    bdev.qos === null &&
    !bdev.removing &&
    (!write || bdev.lockedRanges.length === 0)
  );
}

function overlapsLock(bdev: Bdev, io: BdevIo): boolean {
  if (!changesBlocks(io.type)) return false;
  const end = io.offsetBlocks + io.numBlocks;
  for (const l of bdev.lockedRanges) {
    if (io.offsetBlocks < l.offsetBlocks + l.numBlocks && l.offsetBlocks < end) return true;
  }
  return false;
}

function releaseLock(io: BdevIo): void {
  const bdev = io.bdev!;
  const i = bdev.lockedRanges.indexOf(io);
  if (i < 0) return;
  bdev.lockedRanges.splice(i, 1);
  for (const w of bdev.lockWaiters.splice(0)) submitAdmitted(w);
}

/** compare = read into scratch + compare; compare_and_write = that, then the write, with its range locked. */
function emulateCompare(io: BdevIo): void {
  const bdev = io.bdev!;
  if (io.type === BdevIoType.COMPARE_AND_WRITE) bdev.lockedRanges.push(io);
  const c = makeChild(io, BdevIoType.READ, io.offsetBlocks, io.numBlocks, ChildRole.CMP_READ);
  c.scratch = Buffer.allocUnsafe(io.numBlocks * bdev.blockSize);
  c.iov = [c.scratch];
  io.childrenOutstanding = 1;
  submitAdmitted(c);
}

function iovEquals(iov: Buffer[], data: Buffer): boolean {
  let pos = 0;
  for (let i = 0; i < iov.length && pos < data.length; i++) {
    const b = iov[i];
    const n = Math.min(b.length, data.length - pos);
    if (b.compare(data, pos, pos + n, 0, n) !== 0) return false;
    pos += n;
  }
  return true;
}

// ---------------------------------------------------------------- completion

/** Where every io.complete* lands: a child reports to its parent, a top-level I/O joins its channel's batch. */
function finishIo(io: BdevIo, status: BdevIoStatus): void {
  if (io.parent !== null) {
    io.status = status;
    childDone(io, status);
    return;
  }
  // cannot happen unless a module completes one bdev_io twice: a bug to stop at, not an error to handle
  if (io.status !== BdevIoStatus.PENDING) throw new Error('bdev_io completed twice');
  io.status = status;
  if (io.type === BdevIoType.COMPARE_AND_WRITE && io.bdev!.lockedRanges.length > 0) releaseLock(io);
  const ch = io.ch!;
  ch.completions.push(io);
  if (!ch.drainScheduled) {
    ch.drainScheduled = true;
    sendMsg(ch.thread, drainCompletions, ch);
  }
}

function childDone(c: BdevIo, status: BdevIoStatus): void {
  const p = c.parent!;
  if (status !== BdevIoStatus.SUCCESS && p.status === BdevIoStatus.PENDING) {
    p.status = status;
    p.nvmeSct = c.nvmeSct;
    p.nvmeSc = c.nvmeSc;
  }
  const role = c.childRole;
  if (role === ChildRole.CMP_READ && status === BdevIoStatus.SUCCESS && p.status === BdevIoStatus.PENDING) {
    if (!iovEquals(p.iov, c.scratch!)) p.status = BdevIoStatus.MISCOMPARE;
    else if (p.type === BdevIoType.COMPARE_AND_WRITE) {
      bdevFreeIo(c);
      // compare matched: now the write (the parent stays outstanding)
      const w = makeChild(p, BdevIoType.WRITE, p.offsetBlocks, p.numBlocks, ChildRole.CAW_WRITE);
      w.iov = p.writeIov;
      submitAdmitted(w);
      return;
    }
  }
  bdevFreeIo(c);
  if (--p.childrenOutstanding > 0) return;
  const st = p.status === BdevIoStatus.PENDING ? BdevIoStatus.SUCCESS : p.status;
  p.status = BdevIoStatus.PENDING;
  finishIo(p, st);
}

/** The channel's batch, delivered on the thread that owns the channel: stats, QoS, then each caller's callback. */
const drainCompletions = defineHandler<BdevChannel>('bdev.drainCompletions', (ch) => {
  ch.drainScheduled = false;
  const list = ch.completions;
  const now = nowTicks();
  // completions pushed while callbacks run go to the next batch
  const n = list.length;
  let i = 0;
  try {
    while (i < n) {
      const io = list[i++];
      const success = io.status === BdevIoStatus.SUCCESS;
      ch.stats.record(io.type, io.numBlocks * io.bdev!.blockSize, now - io.submitTicks, success);
      ch.outstanding--;
      io.bdev!.qos?.completed(io);
      io.cb!(io, success, io.cbArg);
    }
  } finally {
    // a throwing callback must not make the delivered ones run again nor strand the rest
    // all delivered (the usual case): pops, inline and keeping the array's room, not a splice
    // that allocates the removed part
    if (i === list.length) while (list.length > 0) list.pop();
    else list.splice(0, i);
    if (list.length > 0 && !ch.drainScheduled) {
      ch.drainScheduled = true;
      sendMsg(ch.thread, drainCompletions, ch);
    }
  }
});
