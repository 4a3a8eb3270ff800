// The data path of a bdev stacked on a base bdev (passthru, delay, error):
// the replica opens its base in the same realm, each channel holds a channel
// of the base, and an I/O is re-submitted to the base with the same buffers.

import {
  type BdevChannel,
  type BdevDesc,
  type BdevIo,
  BdevIoStatus,
  BdevIoType,
  bdevAbort,
  bdevCompare,
  bdevCompareAndWrite,
  bdevFlush,
  bdevFreeIo,
  bdevGetIoChannel,
  bdevPutIoChannel,
  bdevRead,
  bdevReset,
  bdevUnmap,
  bdevWrite,
  bdevWriteZeroes,
} from '../../../bdev/module.ts';
import type { IoChannel } from '../../../thread/index.ts';

export type BaseChannel = IoChannel<BdevChannel>;

/** Submit `io` to the base; `done(child, success, io)` runs when the base completes. */
export function forwardIo(
  base: BdevDesc,
  ch: BaseChannel,
  io: BdevIo,
  done: (child: BdevIo, success: boolean, parent: unknown) => void,
): void {
  switch (io.type) {
    case BdevIoType.READ:
      bdevRead(base, ch, io.iov, io.offsetBlocks, io.numBlocks, done, io);
      return;
    case BdevIoType.WRITE:
      bdevWrite(base, ch, io.iov, io.offsetBlocks, io.numBlocks, io.fua, done, io);
      return;
    case BdevIoType.UNMAP:
      bdevUnmap(base, ch, [{ offsetBlocks: io.offsetBlocks, numBlocks: io.numBlocks }], done, io);
      return;
    case BdevIoType.WRITE_ZEROES:
      bdevWriteZeroes(base, ch, io.offsetBlocks, io.numBlocks, done, io);
      return;
    case BdevIoType.FLUSH:
      bdevFlush(base, ch, io.offsetBlocks, io.numBlocks, done, io);
      return;
    case BdevIoType.COMPARE:
      bdevCompare(base, ch, io.iov, io.offsetBlocks, io.numBlocks, done, io);
      return;
    case BdevIoType.COMPARE_AND_WRITE:
      bdevCompareAndWrite(base, ch, io.iov, io.writeIov, io.offsetBlocks, io.numBlocks, io.fua, done, io);
      return;
    case BdevIoType.RESET:
      bdevReset(base, ch, done, io);
      return;
    case BdevIoType.ABORT:
      bdevAbort(base, ch, io.abortTarget, done, io);
      return;
  }
  io.complete(false);
}

/** Complete the parent with exactly the child's status, then free the child. */
export function completeFromChild(child: BdevIo, _success: boolean, parent: unknown): void {
  const p = parent as BdevIo;
  p.nvmeSct = child.nvmeSct;
  p.nvmeSc = child.nvmeSc;
  const status = child.status;
  bdevFreeIo(child);
  p.completeStatus(status);
}

/**
 * A module's abort of an I/O it holds itself (delayed, pending): take the one
 * whose cbArg is `target` out of `held` and complete it ABORTED. False when
 * it is not held here (already at the base, or done).
 */
export function abortHeldIo(held: BdevIo[], target: unknown): boolean {
  const i = held.findIndex((io) => io.cbArg === target);
  if (i < 0) return false;
  const [io] = held.splice(i, 1);
  io.completeStatus(BdevIoStatus.ABORTED);
  return true;
}

export function getBaseChannel(base: BdevDesc): BaseChannel {
  return bdevGetIoChannel(base);
}

export function putBaseChannel(ch: BaseChannel): void {
  bdevPutIoChannel(ch);
}
