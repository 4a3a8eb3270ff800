// NVMe/RDMA target transport, registered memory: everything the device reads or
// writes is registered once, never per I/O. Per realm and device (protection
// domain): the data buffers a poll group lends to commands (slabs of
// io_unit_size chunks, registered when a slab is made; an RDMA READ lands in
// them, an RDMA WRITE leaves from them), and the lookup that turns a data
// Buffer into (memory region, offset) for a work request. A view of a large
// SharedArrayBuffer the transport did not make (a malloc bdev's memory, when
// the core hands one out for a read) is registered on first sight, local read
// only, so the NIC writes it to the host with no copy and can never write into
// it; anything else is copied into a chunk first.

import { Access, type MemoryRegion, type ProtectionDomain } from '../../rdma/index.ts';
import { pageAlignedSharedArrayBuffer } from '../../util/aligned-memory.ts';

/** One data buffer of the pool: a view of a registered slab. */
export interface DataChunk {
  readonly buf: Buffer;
  readonly mrIndex: number;
  readonly offset: number;
}

/** Where a Buffer lies in registered memory, for an SGE. */
export interface RegisteredSpan {
  mrIndex: number;
  offset: number;
}

/** A SharedArrayBuffer this large is registered when a read hands out a view of it. */
export const FOREIGN_REGISTRATION_MIN_BYTES = 1024 * 1024;
/** Foreign regions one protection domain keeps at most (each pins its memory until the realm ends). */
export const MAX_FOREIGN_REGIONS = 32;

/** The registered memory of one protection domain, found by the ArrayBuffer a Buffer views. */
export class RegisteredMemory {
  readonly pd: ProtectionDomain;
  private readonly regions = new Map<ArrayBufferLike, MemoryRegion>();
  private foreign = 0;

  constructor(pd: ProtectionDomain) {
    this.pd = pd;
  }

  /** Register `memory` whole (slabs of this transport). */
  register(memory: SharedArrayBuffer, access: number): MemoryRegion {
    const mr = this.pd.registerMemory(new Uint8Array(memory), access);
    this.regions.set(memory, mr);
    return mr;
  }

  /** Deregister what `register` registered (a queue pair's response memory). */
  unregister(memory: SharedArrayBuffer): void {
    const mr = this.regions.get(memory);
    if (mr === undefined) return;
    this.regions.delete(memory);
    try {
      mr.deregister();
    } catch {
      // released with the realm already
    }
  }

  /**
   * The span of `buf` in registered memory into `out`; false when it is not registered
   * and cannot be (a plain ArrayBuffer, a small SharedArrayBuffer, or too many already):
   * the caller copies it into a chunk.
   */
  locate(buf: Buffer, out: RegisteredSpan): boolean {
    let mr = this.regions.get(buf.buffer);
    if (mr === undefined) {
      const backing = buf.buffer;
      if (
        !(backing instanceof SharedArrayBuffer) ||
        backing.byteLength < FOREIGN_REGISTRATION_MIN_BYTES ||
        this.foreign >= MAX_FOREIGN_REGIONS
      ) {
        return false;
      }
      try {
        // local read only: the device sends from it and never writes into it
        mr = this.pd.registerMemory(new Uint8Array(backing), 0);
      } catch {
        return false;
      }
      this.regions.set(backing, mr);
      this.foreign++;
    }
    out.mrIndex = mr.index;
    out.offset = buf.byteOffset;
    return true;
  }

  /** Deregister everything (the realm's transport is going away). */
  destroy(): void {
    for (const mr of this.regions.values()) {
      try {
        mr.deregister();
      } catch {
        // already released
      }
    }
    this.regions.clear();
    this.foreign = 0;
  }
}

/** Data buffers of io_unit_size, in registered slabs made on demand up to a limit. */
export class DataPool {
  readonly chunkSize: number;
  private readonly memory: RegisteredMemory;
  private readonly maxChunks: number;
  private readonly slabChunks: number;
  private readonly free: DataChunk[] = [];
  private made = 0;

  constructor(memory: RegisteredMemory, chunkSize: number, maxChunks: number) {
    this.memory = memory;
    this.chunkSize = chunkSize;
    this.maxChunks = Math.max(1, maxChunks);
    // slabs of about 4 MiB (at least one chunk): few registrations, little memory unused
    this.slabChunks = Math.max(1, Math.min(64, Math.floor((4 * 1024 * 1024) / chunkSize)));
  }

  /** Chunks made so far (registered memory in use or free). */
  get size(): number {
    return this.made;
  }

  get available(): number {
    return this.free.length + (this.maxChunks - this.made);
  }

  /** A chunk, or null when all `maxChunks` are lent out. */
  get(): DataChunk | null {
    const c = this.free.pop();
    if (c !== undefined) return c;
    if (this.made >= this.maxChunks) return null;
    this.grow();
    return this.free.pop() ?? null;
  }

  put(c: DataChunk): void {
    this.free.push(c);
  }

  private grow(): void {
    const n = Math.min(this.slabChunks, this.maxChunks - this.made);
    // page-aligned, as a malloc bdev's memory is: the copies between them run at full speed
    const bytes = n * this.chunkSize;
    const slab = pageAlignedSharedArrayBuffer(bytes) ?? new SharedArrayBuffer(bytes);
    const mr = this.memory.register(slab, Access.LOCAL_WRITE);
    for (let i = n - 1; i >= 0; i--) {
      const offset = i * this.chunkSize;
      this.free.push({ buf: Buffer.from(slab, offset, this.chunkSize), mrIndex: mr.index, offset });
    }
    this.made += n;
  }
}
