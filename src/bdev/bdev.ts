// A bdev's replica in this realm, its descriptors and channels, and the I/O
// pipeline: bounds check → QoS → split → emulation → module → completion
// (always delivered later, on the submitting thread, by a batched message).

import {
  currentThread,
  defineHandler,
  getIoChannel,
  type IoChannel,
  putIoChannel,
  registerIoDevice,
  type SpdkThread,
  sendMsg,
  unregisterIoDevice,
} from '../thread/index.ts';
import { type BdevIo, type BdevIoCb, bdevFreeIo, getIo, setCompletionHook } from './bdev-io.ts';
import type { BdevQos } from './qos.ts';
import { BdevIoStats, nowTicks } from './stats.ts';
import { type BdevDescriptor, BdevIoStatus, BdevIoType, NvmeStatus } from './types.ts';

/** What a module builds in each realm for each of its bdevs (SPDK's spdk_bdev_fn_table). */
export interface BdevBackend {
  /** I/O types the module handles itself; the layer emulates write_zeroes and compare(-and-write) */
  supportsIo(type: BdevIoType): boolean;
  /** per-thread module context (e.g. a base bdev's channel); runs on the thread getting the channel */
  createChannel?(): unknown;
  destroyChannel?(ctx: unknown): void;
  /** Start the I/O; finish it with io.complete(ok) / io.completeNvme(sct, sc), now or later. */
  submit(io: BdevIo, moduleCtx: unknown): void;
  /** ABORT: abort the queued I/O whose cbArg is `target`; true when found and aborted */
  abort?(target: unknown, moduleCtx: unknown): boolean;
  /** the replica is being dropped from this realm (all channels are gone) */
  destruct?(): void;
  /** new size already applied to the descriptor and the Bdev */
  resize?(numBlocks: number): void;
  /** driver_specific section of bdev_get_bdevs */
  dumpInfo?(): Record<string, unknown>;
  /** zero-copy reads: a view of the blocks' memory (malloc), or null */
  zcopyView?(offsetBlocks: number, numBlocks: number): Buffer | null;
}

/** A bdev module (SPDK's spdk_bdev_module): builds replicas from descriptors. */
export interface BdevModule {
  readonly name: string;
  /** Build this realm's replica; runs in every realm, in registration order. */
  createReplica(desc: BdevDescriptor, bdev: Bdev): BdevBackend;
  /** The RPC call that recreates this bdev (save_config). */
  writeConfigJson?(desc: BdevDescriptor): { method: string; params: Record<string, unknown> } | null;
  /** App thread, after every realm dropped its replica: free module-level resources. */
  destroyRecord?(desc: BdevDescriptor): void | Promise<void>;
}

export type BdevEventType = 'remove' | 'resize';
export type BdevEventCb = (ev: BdevEventType, bdev: Bdev) => void;

const realmBdevs = new Map<string, Bdev>(); // name and aliases → replica

export function bdevDeviceId(name: string): string {
  return `bdev:${name}`;
}

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
  qos: BdevQos | null = null;
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

// ---------------------------------------------------------------- realm replicas

export function realmLookup(name: string): Bdev | undefined {
  return realmBdevs.get(name);
}

export function realmBdevList(): Bdev[] {
  const seen = new Set<Bdev>();
  for (const b of realmBdevs.values()) seen.add(b);
  return [...seen];
}

/** Build and register this realm's replica (called by the registry in every realm). */
export function addReplica(d: BdevDescriptor, module: BdevModule): Bdev {
  if (realmBdevs.has(d.name)) throw new Error(`bdev ${d.name} already exists in this realm`);
  const bdev = new Bdev(d);
  bdev.backend = module.createReplica(d, bdev);
  realmBdevs.set(d.name, bdev);
  for (const a of d.aliases) realmBdevs.set(a, bdev);
  registerIoDevice<BdevChannel>(
    bdevDeviceId(d.name),
    () => {
      const ch = new BdevChannel(bdev, currentThread());
      bdev.channels.add(ch);
      return ch;
    },
    (ch) => {
      bdev.retiredStats.add(ch.stats.snapshot());
      bdev.channels.delete(ch);
      bdev.backend.destroyChannel?.(ch.moduleCtx);
    },
    d.name,
  );
  return bdev;
}

/**
 * Hot-remove in this realm: tell every open descriptor's thread, wait until
 * all are closed and every channel is put, then drop the replica.
 */
export function removeReplica(name: string, done: () => void): void {
  const bdev = realmBdevs.get(name);
  if (bdev === undefined) {
    done();
    return;
  }
  bdev.removing = true;
  for (const desc of bdev.descs) {
    sendMsg(desc.thread, notifyRemove, desc);
  }
  const finish = () => {
    realmBdevs.delete(bdev.name);
    for (const a of bdev.aliases) realmBdevs.delete(a);
    unregisterIoDeviceOnce(bdev, () => {
      bdev.backend.destruct?.();
      done();
    });
  };
  if (bdev.descs.size === 0) finish();
  else pendingRemovals.set(bdev, finish);
}

const pendingRemovals = new Map<Bdev, () => void>();

function notifyRemove(desc: BdevDesc): void {
  if (!desc.closed) desc.onEvent('remove', desc.bdev);
}

function notifyResize(desc: BdevDesc): void {
  if (!desc.closed) desc.onEvent('resize', desc.bdev);
}

export function resizeReplica(name: string, numBlocks: number): void {
  const bdev = realmBdevs.get(name);
  if (bdev === undefined) return;
  bdev.numBlocks = numBlocks;
  bdev.descriptor.numBlocks = numBlocks;
  bdev.backend.resize?.(numBlocks);
  for (const desc of bdev.descs) sendMsg(desc.thread, notifyResize, desc);
}

function unregisterIoDeviceOnce(bdev: Bdev, done: () => void): void {
  unregisterIoDevice(bdevDeviceId(bdev.name), done);
}

// ---------------------------------------------------------------- descriptors

/** Open a bdev (by name or alias) in this realm, on the current thread. Throws if absent or being removed. */
export function bdevOpen(name: string, write: boolean, onEvent: BdevEventCb): BdevDesc {
  const bdev = realmBdevs.get(name);
  if (bdev === undefined || bdev.removing) throw new Error(`bdev ${name} does not exist`);
  const desc = new BdevDesc(bdev, write, onEvent, currentThread());
  bdev.descs.add(desc);
  return desc;
}

export function bdevClose(desc: BdevDesc): void {
  if (desc.closed) return;
  desc.closed = true;
  desc.onClose?.();
  desc.onClose = null;
  const bdev = desc.bdev;
  bdev.descs.delete(desc);
  if (bdev.descs.size === 0) {
    const finish = pendingRemovals.get(bdev);
    if (finish !== undefined) {
      pendingRemovals.delete(bdev);
      finish();
    }
  }
}

export function bdevGetIoChannel(desc: BdevDesc): IoChannel<BdevChannel> {
  return getIoChannel<BdevChannel>(bdevDeviceId(desc.bdev.name));
}

export function bdevPutIoChannel(ch: IoChannel<BdevChannel>): void {
  putIoChannel(ch as IoChannel<unknown>);
}

// ---------------------------------------------------------------- submission

/** The channel argument of the I/O calls: what bdevGetIoChannel returned, or its ctx. */
export type Ch = IoChannel<BdevChannel> | BdevChannel;

function chCtx(ch: Ch): BdevChannel {
  return ch instanceof BdevChannel ? ch : ch.ctx;
}

function prepare(desc: BdevDesc, ch: Ch, type: BdevIoType, cb: BdevIoCb, cbArg: unknown): BdevIo {
  const io = getIo();
  io.type = type;
  io.desc = desc;
  io.bdev = desc.bdev;
  const c = chCtx(ch);
  io.ch = c;
  io.cb = cb;
  io.cbArg = cbArg;
  io.submitTicks = nowTicks();
  c.outstanding++;
  return io;
}

/** prepare() plus the block range that most I/O types carry. */
function prepareRange(
  desc: BdevDesc,
  ch: Ch,
  type: BdevIoType,
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): BdevIo {
  const io = prepare(desc, ch, type, cb, cbArg);
  io.offsetBlocks = offsetBlocks;
  io.numBlocks = numBlocks;
  return io;
}

function iovBytes(iov: Buffer[]): number {
  let n = 0;
  for (let i = 0; i < iov.length; i++) n += iov[i].length;
  return n;
}

/** Validate then route; failures complete (later) with an NVMe status. */
function submit(io: BdevIo): void {
  const bdev = io.bdev!;
  const desc = io.desc!;
  if (desc.closed || bdev.removing) {
    io.completeStatus(BdevIoStatus.ABORTED);
    return;
  }
  const t = io.type;
  const isWrite =
    t === BdevIoType.WRITE ||
    t === BdevIoType.WRITE_ZEROES ||
    t === BdevIoType.UNMAP ||
    t === BdevIoType.COMPARE_AND_WRITE;
  if (isWrite && !desc.write) {
    io.completeNvme(NvmeStatus.SCT_GENERIC, NvmeStatus.SC_INVALID_FIELD);
    return;
  }
  if (t !== BdevIoType.RESET && t !== BdevIoType.ABORT && t !== BdevIoType.FLUSH) {
    if (io.offsetBlocks + io.numBlocks > bdev.numBlocks || io.numBlocks < 0 || io.offsetBlocks < 0) {
      io.completeNvme(NvmeStatus.SCT_GENERIC, NvmeStatus.SC_LBA_OUT_OF_RANGE);
      return;
    }
    if (io.numBlocks === 0) {
      io.complete(true); // nothing to move (and nothing to split)
      return;
    }
    const needsData = t === BdevIoType.READ || t === BdevIoType.WRITE || t === BdevIoType.COMPARE;
    if (needsData && iovBytes(io.iov) < io.numBlocks * bdev.blockSize) {
      io.completeNvme(NvmeStatus.SCT_GENERIC, NvmeStatus.SC_DATA_TRANSFER_ERROR);
      return;
    }
    if (
      t === BdevIoType.COMPARE_AND_WRITE &&
      (iovBytes(io.iov) < io.numBlocks * bdev.blockSize ||
        iovBytes(io.writeIov) < io.numBlocks * bdev.blockSize)
    ) {
      io.completeNvme(NvmeStatus.SCT_GENERIC, NvmeStatus.SC_DATA_TRANSFER_ERROR);
      return;
    }
  }
  if (bdev.qos !== null && !bdev.qos.admit(io)) return; // queued; QoS resubmits via submitAdmitted
  submitAdmitted(io);
}

/** After QoS: split when needed, emulate what the module lacks, else hand to the module. */
export function submitAdmitted(io: BdevIo): void {
  const bdev = io.bdev!;
  const t = io.type;
  const backend = bdev.backend;
  if (bdev.lockedRanges.length > 0 && io.parent === null && t !== BdevIoType.READ && overlapsLock(bdev, io)) {
    bdev.lockWaiters.push(io); // resubmitted when the compare-and-write holding the range ends
    return;
  }
  if (t === BdevIoType.READ || t === BdevIoType.WRITE) {
    if (needsSplit(bdev, io.offsetBlocks, io.numBlocks)) {
      splitRw(io);
      return;
    }
    backend.submit(io, io.ch!.moduleCtx);
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
  io.completeNvme(NvmeStatus.SCT_GENERIC, NvmeStatus.SC_INVALID_OPCODE);
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

function overlapsLock(bdev: Bdev, io: BdevIo): boolean {
  const t = io.type;
  if (
    t !== BdevIoType.WRITE &&
    t !== BdevIoType.WRITE_ZEROES &&
    t !== BdevIoType.UNMAP &&
    t !== BdevIoType.COMPARE_AND_WRITE
  ) {
    return false;
  }
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

function finishIo(io: BdevIo, status: BdevIoStatus): void {
  if (io.parent !== null) {
    io.status = status;
    childDone(io, status);
    return;
  }
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

setCompletionHook(finishIo);

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
    list.splice(0, i);
    if (list.length > 0 && !ch.drainScheduled) {
      ch.drainScheduled = true;
      sendMsg(ch.thread, drainCompletions, ch);
    }
  }
});

// ---------------------------------------------------------------- public I/O calls

export function bdevRead(
  desc: BdevDesc,
  ch: Ch,
  iov: Buffer[],
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  const io = prepareRange(desc, ch, BdevIoType.READ, offsetBlocks, numBlocks, cb, cbArg);
  io.iov = iov;
  submit(io);
}

export function bdevWrite(
  desc: BdevDesc,
  ch: Ch,
  iov: Buffer[],
  offsetBlocks: number,
  numBlocks: number,
  fua: boolean,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  const io = prepareRange(desc, ch, BdevIoType.WRITE, offsetBlocks, numBlocks, cb, cbArg);
  io.iov = iov;
  io.fua = fua;
  submit(io);
}

export function bdevCompare(
  desc: BdevDesc,
  ch: Ch,
  iov: Buffer[],
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  const io = prepareRange(desc, ch, BdevIoType.COMPARE, offsetBlocks, numBlocks, cb, cbArg);
  io.iov = iov;
  submit(io);
}

/** Fused compare + write: writes `writeIov` only when the blocks equal `compareIov`. */
export function bdevCompareAndWrite(
  desc: BdevDesc,
  ch: Ch,
  compareIov: Buffer[],
  writeIov: Buffer[],
  offsetBlocks: number,
  numBlocks: number,
  fua: boolean,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  const io = prepareRange(desc, ch, BdevIoType.COMPARE_AND_WRITE, offsetBlocks, numBlocks, cb, cbArg);
  io.iov = compareIov;
  io.writeIov = writeIov;
  io.fua = fua;
  submit(io);
}

export function bdevWriteZeroes(
  desc: BdevDesc,
  ch: Ch,
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  submit(prepareRange(desc, ch, BdevIoType.WRITE_ZEROES, offsetBlocks, numBlocks, cb, cbArg));
}

export interface BlockRange {
  offsetBlocks: number;
  numBlocks: number;
}

/** Unmap (deallocate) one or more ranges; one completion for all of them. */
export function bdevUnmap(desc: BdevDesc, ch: Ch, ranges: BlockRange[], cb: BdevIoCb, cbArg: unknown): void {
  const io = prepare(desc, ch, BdevIoType.UNMAP, cb, cbArg);
  if (ranges.length === 1) {
    io.offsetBlocks = ranges[0].offsetBlocks;
    io.numBlocks = ranges[0].numBlocks;
    submit(io);
    return;
  }
  // several ranges: validate all, then one child per range
  const bdev = desc.bdev;
  let total = 0;
  for (const r of ranges) {
    if (r.offsetBlocks < 0 || r.numBlocks < 0 || r.offsetBlocks + r.numBlocks > bdev.numBlocks) {
      io.completeNvme(NvmeStatus.SCT_GENERIC, NvmeStatus.SC_LBA_OUT_OF_RANGE);
      return;
    }
    total += r.numBlocks;
  }
  io.numBlocks = total;
  if (!desc.write) {
    io.completeNvme(NvmeStatus.SCT_GENERIC, NvmeStatus.SC_INVALID_FIELD);
    return;
  }
  if (ranges.length === 0 || desc.closed || bdev.removing) {
    io.complete(ranges.length === 0);
    return;
  }
  if (!bdev.backend.supportsIo(BdevIoType.UNMAP)) {
    io.completeNvme(NvmeStatus.SCT_GENERIC, NvmeStatus.SC_INVALID_OPCODE);
    return;
  }
  io.childrenOutstanding = ranges.length;
  for (const r of ranges) {
    const c = makeChild(io, BdevIoType.UNMAP, r.offsetBlocks, r.numBlocks, ChildRole.SPLIT);
    submitAdmitted(c);
  }
}

export function bdevFlush(
  desc: BdevDesc,
  ch: Ch,
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  submit(prepareRange(desc, ch, BdevIoType.FLUSH, offsetBlocks, numBlocks, cb, cbArg));
}

export function bdevReset(desc: BdevDesc, ch: Ch, cb: BdevIoCb, cbArg: unknown): void {
  submit(prepare(desc, ch, BdevIoType.RESET, cb, cbArg));
}

/** Abort the I/O submitted on this channel with cbArg `target` (succeeds only if the module could abort it). */
export function bdevAbort(desc: BdevDesc, ch: Ch, target: unknown, cb: BdevIoCb, cbArg: unknown): void {
  const io = prepare(desc, ch, BdevIoType.ABORT, cb, cbArg);
  io.abortTarget = target;
  const backend = desc.bdev.backend;
  if (backend.abort !== undefined) {
    io.complete(backend.abort(target, chCtx(ch).moduleCtx));
    return;
  }
  io.complete(false);
}

/**
 * Read without a caller buffer: on success `io.iov` holds the data. For a
 * memory-backed bdev (malloc) these are views of its memory, no copy; the
 * caller must be done with them before it frees the io (later writes show
 * through). Other bdevs read into a buffer the layer allocates.
 */
export function bdevReadZcopy(
  desc: BdevDesc,
  ch: Ch,
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  const io = prepare(desc, ch, BdevIoType.READ, cb, cbArg);
  io.offsetBlocks = offsetBlocks;
  io.numBlocks = numBlocks;
  const bdev = desc.bdev;
  const inRange = offsetBlocks >= 0 && numBlocks >= 0 && offsetBlocks + numBlocks <= bdev.numBlocks;
  const view =
    inRange && bdev.qos === null && !bdev.removing && !desc.closed
      ? (bdev.backend.zcopyView?.(offsetBlocks, numBlocks) ?? null)
      : null;
  if (view !== null) {
    io.iov = [view];
    io.complete(true);
    return;
  }
  io.iov = inRange ? [Buffer.allocUnsafe(numBlocks * bdev.blockSize)] : [];
  submit(io);
}
