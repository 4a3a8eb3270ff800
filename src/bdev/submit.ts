// The I/O calls of bdev users (bdevRead, bdevWrite, …; SPDK's
// spdk_bdev_read_blocks and friends): each takes a pooled BdevIo, checks it
// (bounds, buffers, write permission: an NVMe status on failure), passes it
// through QoS, and hands it to submitAdmitted in bdev.ts, where the rest of
// its path is. Always called on the thread that owns the channel.

import type { IoChannel } from '../thread/index.ts';
import { GenericStatus, StatusCodeType } from '../wire/nvme.ts';
import {
  BdevChannel,
  type BdevDesc,
  type BdevIo,
  type BdevIoCb,
  bdevFreeIo,
  getIo,
  keepLentData,
  type LentData,
  submitAdmitted,
  submitUnmapRanges,
  zcopyPossible,
} from './bdev.ts';
import { nowTicks } from './stats.ts';
import { BdevIoStatus, BdevIoType, type BlockRange, changesBlocks } from './types.ts';

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

/** Check, then QoS, then route; failures complete (later) with an NVMe status. */
function checkAndSubmit(io: BdevIo): void {
  const bdev = io.bdev!;
  const desc = io.desc!;
  if (desc.closed || bdev.removing) {
    io.completeStatus(BdevIoStatus.ABORTED);
    return;
  }
  const t = io.type;
  if (changesBlocks(t) && !desc.write) {
    io.completeNvme(StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD);
    return;
  }
  if (t !== BdevIoType.RESET && t !== BdevIoType.ABORT && t !== BdevIoType.FLUSH) {
    if (io.offsetBlocks + io.numBlocks > bdev.numBlocks || io.numBlocks < 0 || io.offsetBlocks < 0) {
      io.completeNvme(StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE);
      return;
    }
    if (io.numBlocks === 0) {
      io.complete(true); // nothing to move (and nothing to split)
      return;
    }
    const needsData = t === BdevIoType.READ || t === BdevIoType.WRITE || t === BdevIoType.COMPARE;
    if (needsData && iovBytes(io.iov) < io.numBlocks * bdev.blockSize) {
      io.completeNvme(StatusCodeType.GENERIC, GenericStatus.DATA_TRANSFER_ERROR);
      return;
    }
    if (
      t === BdevIoType.COMPARE_AND_WRITE &&
      (iovBytes(io.iov) < io.numBlocks * bdev.blockSize ||
        iovBytes(io.writeIov) < io.numBlocks * bdev.blockSize)
    ) {
      io.completeNvme(StatusCodeType.GENERIC, GenericStatus.DATA_TRANSFER_ERROR);
      return;
    }
  }
  if (bdev.qos !== null && !bdev.qos.admit(io)) {
    keepLentData(io); // queued; QoS hands it to submitAfterQos later
    return;
  }
  submitAdmitted(io);
}

// ---------------------------------------------------------------- the calls

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
  checkAndSubmit(io);
}

/**
 * Write `iov` to the blocks. With `lent`, the data is only valid until this call returns (see
 * LentData): the layer hands it to a module that consumes write data in submit and tells the
 * owner `consumed()`, or asks it to `keep()` a copy before anything holds the I/O longer. A
 * call that neither (a check failed) leaves the data unused: the owner keeps it if it must.
 */
export function bdevWrite(
  desc: BdevDesc,
  ch: Ch,
  iov: Buffer[],
  offsetBlocks: number,
  numBlocks: number,
  fua: boolean,
  cb: BdevIoCb,
  cbArg: unknown,
  lent: LentData | null = null,
): void {
  const io = prepareRange(desc, ch, BdevIoType.WRITE, offsetBlocks, numBlocks, cb, cbArg);
  io.iov = iov;
  io.fua = fua;
  io.lent = lent;
  checkAndSubmit(io);
  // a failed check completes the I/O later without reading its data: nothing is lent past here
  io.lent = null;
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
  checkAndSubmit(io);
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
  checkAndSubmit(io);
}

export function bdevWriteZeroes(
  desc: BdevDesc,
  ch: Ch,
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  checkAndSubmit(prepareRange(desc, ch, BdevIoType.WRITE_ZEROES, offsetBlocks, numBlocks, cb, cbArg));
}

/** Unmap (deallocate) one or more ranges; one completion for all of them. */
export function bdevUnmap(desc: BdevDesc, ch: Ch, ranges: BlockRange[], cb: BdevIoCb, cbArg: unknown): void {
  const io = prepare(desc, ch, BdevIoType.UNMAP, cb, cbArg);
  if (ranges.length === 1) {
    io.offsetBlocks = ranges[0].offsetBlocks;
    io.numBlocks = ranges[0].numBlocks;
    checkAndSubmit(io);
    return;
  }
  // several ranges: validate all, then one child per range
  const bdev = desc.bdev;
  let total = 0;
  for (const r of ranges) {
    if (r.offsetBlocks < 0 || r.numBlocks < 0 || r.offsetBlocks + r.numBlocks > bdev.numBlocks) {
      io.completeNvme(StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE);
      return;
    }
    total += r.numBlocks;
  }
  io.numBlocks = total;
  if (!desc.write) {
    io.completeNvme(StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD);
    return;
  }
  if (ranges.length === 0 || desc.closed || bdev.removing) {
    io.complete(ranges.length === 0);
    return;
  }
  if (!bdev.backend.supportsIo(BdevIoType.UNMAP)) {
    io.completeNvme(StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE);
    return;
  }
  submitUnmapRanges(io, ranges);
}

export function bdevFlush(
  desc: BdevDesc,
  ch: Ch,
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  checkAndSubmit(prepareRange(desc, ch, BdevIoType.FLUSH, offsetBlocks, numBlocks, cb, cbArg));
}

export function bdevReset(desc: BdevDesc, ch: Ch, cb: BdevIoCb, cbArg: unknown): void {
  checkAndSubmit(prepare(desc, ch, BdevIoType.RESET, cb, cbArg));
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
 * Read, lending the module's own memory where it can (SPDK's spdk_bdev_zcopy_start with
 * populate): on success with `io.zcopy` set, `io.iov` is a view of the blocks themselves
 * (malloc), no copy, which the module keeps unchanged until the caller gives the io back with
 * bdevZcopyEnd instead of bdevFreeIo. Otherwise (a module that cannot lend, QoS, a write to
 * those blocks under way) the data is read into `iov` as bdevRead does.
 */
export function bdevReadZcopy(
  desc: BdevDesc,
  ch: Ch,
  iov: Buffer[],
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): void {
  const io = prepareRange(desc, ch, BdevIoType.READ, offsetBlocks, numBlocks, cb, cbArg);
  const bdev = desc.bdev;
  const backend = bdev.backend;
  if (
    backend.zcopyStart !== undefined &&
    !desc.closed &&
    zcopyPossible(bdev, offsetBlocks, numBlocks, false)
  ) {
    const view = backend.zcopyStart(offsetBlocks, numBlocks);
    if (view !== null) {
      io.iov = [view];
      io.zcopy = true;
      io.complete(true);
      return;
    }
  }
  io.iov = iov;
  checkAndSubmit(io);
}

/**
 * A write whose data is to land in the module's own memory (SPDK's spdk_bdev_zcopy_start
 * without populate): the io, pending, with `io.iov` a view of the blocks themselves, for the
 * caller to fill and end with bdevZcopyEnd; or null (nothing taken) when the module cannot now
 * or the write could not be done that way (no write access, range, QoS, a compare-and-write's
 * lock, a bdev going away): write by copy then, which also reports any error. While it is
 * pending nothing else reads or writes those blocks (the module's promise), so they never
 * show a block half old and half new.
 */
export function bdevZcopyStartWrite(
  desc: BdevDesc,
  ch: Ch,
  offsetBlocks: number,
  numBlocks: number,
  cb: BdevIoCb,
  cbArg: unknown,
): BdevIo | null {
  const bdev = desc.bdev;
  const backend = bdev.backend;
  if (
    backend.zcopyStartWrite === undefined ||
    !desc.write ||
    desc.closed ||
    !zcopyPossible(bdev, offsetBlocks, numBlocks, true)
  ) {
    return null;
  }
  const view = backend.zcopyStartWrite(offsetBlocks, numBlocks);
  if (view === null) return null;
  const io = prepareRange(desc, ch, BdevIoType.WRITE, offsetBlocks, numBlocks, cb, cbArg);
  io.iov = [view];
  io.zcopy = true;
  return io;
}

/**
 * The end of a zero-copy I/O. A lent read (bdevReadZcopy): its caller is done with the view,
 * the module may change those blocks again, and the io is freed. A write (bdevZcopyStartWrite):
 * with `commit` its data is all in and it completes, through its callback as any write (which
 * frees it); without, the data never came and the io is freed here without a callback.
 */
export function bdevZcopyEnd(io: BdevIo, commit = false): void {
  if (io.zcopy && io.type === BdevIoType.WRITE) {
    io.zcopy = false;
    io.bdev!.backend.zcopyEndWrite?.(io.offsetBlocks, io.numBlocks, commit);
    if (commit) {
      io.complete(true);
      return;
    }
    io.ch!.outstanding--;
    bdevFreeIo(io);
    return;
  }
  if (io.zcopy) io.bdev!.backend.zcopyEnd?.(io.offsetBlocks, io.numBlocks);
  bdevFreeIo(io);
}
