// The pooled bdev_io: one per I/O in flight, reused. Children (splits,
// emulations) are bdev_ios too, with `parent` set.

import type { Bdev, BdevChannel, BdevDesc } from './bdev.ts';
import { BdevIoStatus, type BdevIoType, NvmeStatus } from './types.ts';

export type BdevIoCb = (io: BdevIo, success: boolean, cbArg: unknown) => void;

const EMPTY_IOV: Buffer[] = [];

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
  /** what this child does for its parent (see bdev.ts ChildRole) */
  childRole = 0;
  /** scratch owned by the layer (e.g. the compare read buffer) */
  scratch: Buffer | null = null;
  /** scratch for modules (e.g. the delay module's due time) */
  moduleCtx: unknown = undefined;
  moduleNum = 0;
  moduleStatus: BdevIoStatus = BdevIoStatus.PENDING;
  /** intrusive queue link (QoS / module queues) */
  next: BdevIo | null = null;

  /** Module completion: the layer delivers it to the submitter later, never synchronously. */
  complete(success: boolean): void {
    completeIo(this, success ? BdevIoStatus.SUCCESS : BdevIoStatus.FAILED);
  }

  /** Module completion with an explicit NVMe status (sct/sc). */
  completeNvme(sct: number, sc: number): void {
    if (sct === 0 && sc === 0) {
      completeIo(this, BdevIoStatus.SUCCESS);
      return;
    }
    this.nvmeSct = sct;
    this.nvmeSc = sc;
    completeIo(this, BdevIoStatus.NVME_ERROR);
  }

  completeStatus(status: BdevIoStatus): void {
    completeIo(this, status);
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
  }
}

/** The NVMe status for a completed I/O (success = 0/0). */
export function bdevIoGetNvmeStatus(io: BdevIo): { sct: number; sc: number } {
  switch (io.status) {
    case BdevIoStatus.SUCCESS:
      return { sct: 0, sc: 0 };
    case BdevIoStatus.NVME_ERROR:
      return { sct: io.nvmeSct, sc: io.nvmeSc };
    case BdevIoStatus.MISCOMPARE:
      return { sct: NvmeStatus.SCT_MEDIA, sc: NvmeStatus.SC_COMPARE_FAILURE };
    case BdevIoStatus.ABORTED:
      return { sct: NvmeStatus.SCT_GENERIC, sc: NvmeStatus.SC_ABORTED_BY_REQUEST };
    default:
      return { sct: NvmeStatus.SCT_GENERIC, sc: NvmeStatus.SC_INTERNAL_DEVICE_ERROR };
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

// completion hook installed by bdev.ts (avoids an import cycle at evaluation time)
let completeIo: (io: BdevIo, status: BdevIoStatus) => void = () => {
  throw new Error('bdev layer not initialised');
};
export function setCompletionHook(fn: (io: BdevIo, status: BdevIoStatus) => void): void {
  completeIo = fn;
}
