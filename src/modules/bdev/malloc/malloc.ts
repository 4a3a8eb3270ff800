// malloc bdev: RAM in a SharedArrayBuffer. Every realm's replica wraps the
// same memory, so a thread on any reactor reads and writes it directly. The
// memory starts on a page boundary (util/aligned-memory.ts) wherever it can, so
// copies to and from the transports' buffers run at full speed. A read may
// instead lend views of the memory itself (zcopyStart/zcopyEnd), and a write
// may have its data land there straight from the socket (zcopyStartWrite /
// zcopyEndWrite); the lend guard (lend-guard.ts) holds writes to lent blocks
// until the reader is done, and reads and writes of landing blocks until the
// data is in.

import type { Bdev, BdevBackend, BdevDescriptor, BdevIo, BdevModule } from '../../../bdev/module.ts';
import {
  BdevError,
  BdevIoType,
  bdevGetRecord,
  bdevListRecords,
  bdevModuleDescriptor,
  bdevRegister,
  bdevUnregister,
  changesBlocks,
  newBdevDescriptor,
} from '../../../bdev/module.ts';
import { type Poller, registerPoller } from '../../../thread/index.ts';
import { pageAlignedSharedArrayBuffer } from '../../../util/aligned-memory.ts';
import { availableMemoryBytes } from '../../../util/memory.ts';
import { MediaErrorStatus, StatusCodeType } from '../../../wire/nvme.ts';
import { LendGuard, newLendGuardMemory } from './lend-guard.ts';

export interface MallocParams {
  memory: SharedArrayBuffer;
  /** the lend guard's counts (lend-guard.ts), shared like the memory */
  lendGuard: SharedArrayBuffer;
  physicalBlockSize: number;
}

/**
 * How long a write waits for the lent reads of its blocks. A host takes its data within
 * microseconds; only one that stopped reading its socket holds a lend longer, and a write
 * from anyone else must not wait on it forever: past this bound the write goes ahead, and
 * that stalled read may carry blocks written after it was issued (counted in
 * writes_wait_expired).
 */
let lentWriteWaitMs = 2000;

/** Tests: a shorter bound for the writes of this realm. */
export function setLentWriteWaitMs(ms: number): void {
  lentWriteWaitMs = ms;
}

/** Copy `len` bytes of `mem` from `pos` into the scatter list. */
export function copyToIov(mem: Buffer, pos: number, iov: Buffer[], len: number): void {
  for (let i = 0; i < iov.length && len > 0; i++) {
    const b = iov[i];
    const n = Math.min(b.length, len);
    mem.copy(b, 0, pos, pos + n);
    pos += n;
    len -= n;
  }
}

/** Copy `len` bytes of the scatter list into `mem` at `pos`. */
export function copyFromIov(mem: Buffer, pos: number, iov: Buffer[], len: number): void {
  for (let i = 0; i < iov.length && len > 0; i++) {
    const b = iov[i];
    const n = Math.min(b.length, len);
    b.copy(mem, pos, 0, n);
    pos += n;
    len -= n;
  }
}

export function iovEqualsMem(mem: Buffer, pos: number, iov: Buffer[], len: number): boolean {
  for (let i = 0; i < iov.length && len > 0; i++) {
    const b = iov[i];
    const n = Math.min(b.length, len);
    if (mem.compare(b, 0, n, pos, pos + n) !== 0) return false;
    pos += n;
    len -= n;
  }
  return true;
}

const SUPPORTED = new Set<number>([
  BdevIoType.READ,
  BdevIoType.WRITE,
  BdevIoType.UNMAP,
  BdevIoType.WRITE_ZEROES,
  BdevIoType.FLUSH,
  BdevIoType.RESET,
  BdevIoType.COMPARE,
  BdevIoType.COMPARE_AND_WRITE,
]);

/** A thread's channel: the I/O of this thread waiting for lent reads or landing writes, in arrival order. */
class MallocChannel {
  readonly waiting: BdevIo[] = [];
  /** registered while a write waits (no idle poller per channel) */
  poller: Poller | null = null;
}

export class MallocBackend implements BdevBackend<MallocChannel> {
  readonly mem: Buffer;
  readonly blockSize: number;
  readonly guard: LendGuard;
  private readonly name: string;
  /** a write is copied into the memory inside submit (or into a copy of its own, to wait) */
  readonly consumesWriteDataInSubmit = true;
  constructor(
    memory: SharedArrayBuffer,
    guard: SharedArrayBuffer,
    blockSize: number,
    numBlocks: number,
    name = 'malloc',
  ) {
    // page-aligned memory comes in whole 64 KiB pages: the bdev is its first numBlocks blocks
    this.mem = Buffer.from(memory, 0, numBlocks * blockSize);
    this.blockSize = blockSize;
    this.guard = new LendGuard(guard, numBlocks * blockSize);
    this.name = name;
  }

  supportsIo(type: BdevIoType): boolean {
    return SUPPORTED.has(type);
  }

  createChannel(): MallocChannel {
    return new MallocChannel();
  }

  destroyChannel(ch: MallocChannel): void {
    // nothing outlives its channel: I/O still waiting goes ahead
    for (const io of ch.waiting.splice(0)) {
      if (changesBlocks(io.type)) this.finishWaitingWrite(io, true);
      else this.execute(io);
    }
    ch.poller?.unregister();
    ch.poller = null;
  }

  submit(io: BdevIo, ch: MallocChannel): void {
    const len = io.numBlocks * this.blockSize;
    const pos = io.offsetBlocks * this.blockSize;
    if (!changesBlocks(io.type) || len === 0) {
      // a read of blocks a write's data is landing in waits for all of it
      if (
        len === 0 ||
        (io.type !== BdevIoType.READ && io.type !== BdevIoType.COMPARE) ||
        this.guard.readable(pos, len)
      ) {
        this.execute(io);
        return;
      }
      this.guard.noteReadWait();
      this.wait(io, ch);
      return;
    }
    // behind a waiting write of this thread to the same blocks, or on blocks lent to a reader
    const free = this.guard.beginWrite(pos, len);
    if (free && !this.overlapsWaiting(ch.waiting, io, ch.waiting.length)) {
      this.execute(io);
      this.guard.endWrite(pos, len);
      return;
    }
    // wait: the data must outlive this call (lent data is reused once submit returns)
    if (io.type === BdevIoType.WRITE) io.iov = [ownCopy(io.iov, len)];
    this.guard.noteWait(1);
    this.wait(io, ch);
  }

  private wait(io: BdevIo, ch: MallocChannel): void {
    io.moduleNum = performance.now() + lentWriteWaitMs;
    ch.waiting.push(io);
    ch.poller ??= registerPoller(() => this.retryWaiting(ch), 0, `malloc_lend_${this.name}`);
  }

  /** The channel's poller: I/O whose blocks are no longer lent or landing goes on, in order. */
  retryWaiting(ch: MallocChannel): number {
    const waiting = ch.waiting;
    const now = performance.now();
    let keep = 0;
    let done = 0;
    for (let i = 0; i < waiting.length; i++) {
      const io = waiting[i];
      const pos = io.offsetBlocks * this.blockSize;
      const len = io.numBlocks * this.blockSize;
      const expired = now >= io.moduleNum;
      if (!changesBlocks(io.type)) {
        if (expired || this.guard.readable(pos, len)) {
          this.execute(io);
          done++;
        } else waiting[keep++] = io;
      } else if (expired || (this.guard.writable(pos, len) && !this.overlapsWaiting(waiting, io, keep))) {
        this.finishWaitingWrite(io, expired);
        done++;
      } else waiting[keep++] = io;
    }
    waiting.length = keep;
    if (keep === 0) {
      ch.poller?.unregister();
      ch.poller = null;
    }
    return done > 0 ? 1 : 0;
  }

  private finishWaitingWrite(io: BdevIo, expired: boolean): void {
    this.guard.noteWait(-1, expired);
    this.execute(io);
    this.guard.endWrite(io.offsetBlocks * this.blockSize, io.numBlocks * this.blockSize);
  }

  /** Whether `io` overlaps one of waiting[0, n). */
  private overlapsWaiting(waiting: BdevIo[], io: BdevIo, n: number): boolean {
    const end = io.offsetBlocks + io.numBlocks;
    for (let i = 0; i < n; i++) {
      const w = waiting[i];
      if (w !== io && io.offsetBlocks < w.offsetBlocks + w.numBlocks && w.offsetBlocks < end) return true;
    }
    return false;
  }

  private execute(io: BdevIo): void {
    const bs = this.blockSize;
    const pos = io.offsetBlocks * bs;
    const len = io.numBlocks * bs;
    switch (io.type) {
      case BdevIoType.READ:
        copyToIov(this.mem, pos, io.iov, len);
        break;
      case BdevIoType.WRITE:
        copyFromIov(this.mem, pos, io.iov, len);
        break;
      case BdevIoType.UNMAP:
      case BdevIoType.WRITE_ZEROES:
        this.mem.fill(0, pos, pos + len);
        break;
      case BdevIoType.COMPARE:
        if (!iovEqualsMem(this.mem, pos, io.iov, len)) {
          io.completeNvme(StatusCodeType.MEDIA_ERROR, MediaErrorStatus.COMPARE_FAILURE);
          return;
        }
        break;
      case BdevIoType.COMPARE_AND_WRITE:
        // compare and write run back to back in this realm's single JS thread
        if (!iovEqualsMem(this.mem, pos, io.iov, len)) {
          io.completeNvme(StatusCodeType.MEDIA_ERROR, MediaErrorStatus.COMPARE_FAILURE);
          return;
        }
        copyFromIov(this.mem, pos, io.writeIov, len);
        break;
      default: // FLUSH, RESET: RAM has nothing to flush or reset
        break;
    }
    io.complete(true);
  }

  /** Lend a view of the blocks (zero-copy read), or null while a write to them is marked. */
  zcopyStart(offsetBlocks: number, numBlocks: number): Buffer | null {
    const bs = this.blockSize;
    if (numBlocks <= 0 || !this.guard.tryLend(offsetBlocks * bs, numBlocks * bs)) return null;
    return this.mem.subarray(offsetBlocks * bs, (offsetBlocks + numBlocks) * bs);
  }

  /** The reader is done with the view zcopyStart lent. */
  zcopyEnd(offsetBlocks: number, numBlocks: number): void {
    this.guard.endLend(offsetBlocks * this.blockSize, numBlocks * this.blockSize);
  }

  /**
   * The blocks' memory for a write's data to land in (zero-copy write), or null while anything
   * else reads or writes them: nothing else touches them until zcopyEndWrite.
   */
  zcopyStartWrite(offsetBlocks: number, numBlocks: number): Buffer | null {
    const bs = this.blockSize;
    if (numBlocks <= 0 || !this.guard.tryLand(offsetBlocks * bs, numBlocks * bs)) return null;
    return this.mem.subarray(offsetBlocks * bs, (offsetBlocks + numBlocks) * bs);
  }

  /** The write's data is in (commit) or will not come: RAM has nothing more to do either way. */
  zcopyEndWrite(offsetBlocks: number, numBlocks: number, _commit: boolean): void {
    this.guard.endLand(offsetBlocks * this.blockSize, numBlocks * this.blockSize);
  }

  dumpInfo(): Record<string, unknown> {
    return { malloc: { lent_reads: this.guard.counts(), zcopy_writes: this.guard.landingCounts() } };
  }
}

/** A WRITE's data copied into a buffer of its own (it waits past the submit call). */
function ownCopy(iov: Buffer[], len: number): Buffer {
  const own = Buffer.allocUnsafe(len);
  let off = 0;
  for (let i = 0; i < iov.length && off < len; i++)
    off += iov[i].copy(own, off, 0, Math.min(iov[i].length, len - off));
  return own;
}

export const mallocModule: BdevModule<MallocParams> = {
  name: 'malloc',
  createReplica(desc: BdevDescriptor<MallocParams>, _bdev: Bdev): BdevBackend {
    const p = desc.params;
    return new MallocBackend(p.memory, p.lendGuard, desc.blockSize, desc.numBlocks, desc.name);
  },
  writeConfigJson(desc: BdevDescriptor<MallocParams>) {
    const p = desc.params;
    return {
      method: 'bdev_malloc_create',
      params: {
        name: desc.name,
        num_blocks: desc.numBlocks,
        block_size: desc.blockSize,
        physical_block_size: p.physicalBlockSize,
        uuid: desc.uuid,
        optimal_io_boundary: desc.optimalIoBoundary,
        md_size: 0,
        dif_type: 0,
        dif_is_head_of_md: false,
        dif_pi_format: 0,
        numa_id: -1,
      },
    };
  },
};

export interface MallocCreateOptions {
  name?: string;
  numBlocks: number;
  blockSize: number;
  uuid?: string;
  physicalBlockSize?: number;
  optimalIoBoundary?: number;
}

/** Control path (app thread): create and register a malloc bdev; resolves with its name. */
export async function createMallocBdev(o: MallocCreateOptions): Promise<string> {
  checkGeometry(o.blockSize, o.numBlocks);
  const name = o.name ?? freeName('Malloc');
  if (bdevGetRecord(name) !== undefined) throw new BdevError('EEXIST', `bdev name ${name} already exists`);
  checkMemoryBacking(name, o.numBlocks * o.blockSize);
  let memory: SharedArrayBuffer;
  try {
    const bytes = o.numBlocks * o.blockSize;
    memory = pageAlignedSharedArrayBuffer(bytes) ?? new SharedArrayBuffer(bytes);
  } catch (e) {
    throw new BdevError(
      'ENOMEM',
      `cannot allocate ${o.numBlocks * o.blockSize} bytes for ${name}: ${(e as Error).message}`,
    );
  }
  const params: MallocParams = {
    memory,
    lendGuard: newLendGuardMemory(o.numBlocks * o.blockSize),
    physicalBlockSize: o.physicalBlockSize || o.blockSize,
  };
  await bdevRegister(
    newBdevDescriptor({
      module: 'malloc',
      name,
      blockSize: o.blockSize,
      numBlocks: o.numBlocks,
      productName: 'Malloc disk',
      writeCache: false,
      optimalIoBoundary: o.optimalIoBoundary ?? 0,
      splitOnOptimalIoBoundary: (o.optimalIoBoundary ?? 0) > 0,
      ...(o.uuid !== undefined ? { uuid: o.uuid } : {}),
      params,
    }),
  );
  return name;
}

export async function deleteMallocBdev(name: string): Promise<void> {
  const desc = bdevModuleDescriptor(mallocModule, name);
  if (desc === undefined) throw new BdevError('ENODEV', `malloc bdev ${name} does not exist`);
  await bdevUnregister(desc.name);
}

/** RAM kept free beside malloc bdevs, for the target itself and the machine. */
const MEMORY_HEADROOM = 256 * 1024 * 1024;

/**
 * A SharedArrayBuffer only reserves address space: its pages are given when first
 * written, so a malloc bdev larger than the machine can back would be accepted and
 * then get the target OOM-killed mid-I/O as it fills. Refuse it up front: the new
 * bdev plus the part of the existing malloc bdevs not yet in RAM (their size beyond
 * the process's resident memory) must fit in the memory available now, less a
 * headroom.
 */
function checkMemoryBacking(name: string, bytes: number): void {
  let reserved = 0;
  for (const r of bdevListRecords())
    if (r.desc.module === mallocModule.name) reserved += r.desc.numBlocks * r.desc.blockSize;
  const notYetResident = Math.max(0, reserved - process.memoryUsage().rss);
  const available = availableMemoryBytes() - MEMORY_HEADROOM - notYetResident;
  if (bytes > available) {
    const mib = (n: number) => `${Math.floor(n / 1048576)} MiB`;
    throw new BdevError(
      'ENOMEM',
      `cannot back ${name} with RAM: it needs ${mib(bytes)}, the machine has ${mib(Math.max(0, available))} available ` +
        `(MemAvailable less ${mib(MEMORY_HEADROOM)} headroom${notYetResident > 0 ? ` and ${mib(notYetResident)} other malloc bdevs may still take` : ''})`,
    );
  }
}

/** Block size a multiple of 512 up to 64 KiB, at least one block. */
export function checkGeometry(blockSize: number, numBlocks: number): void {
  if (!Number.isInteger(blockSize) || blockSize < 512 || blockSize > 65536 || blockSize % 512 !== 0) {
    throw new BdevError('EINVAL', `block_size ${blockSize} must be a multiple of 512 between 512 and 65536`);
  }
  if (!Number.isInteger(numBlocks) || numBlocks < 1) {
    throw new BdevError('EINVAL', `num_blocks ${numBlocks} must be a positive integer`);
  }
}

/** First free name of the form `${prefix}N`. */
export function freeName(prefix: string): string {
  for (let i = 0; ; i++) if (bdevGetRecord(`${prefix}${i}`) === undefined) return `${prefix}${i}`;
}
