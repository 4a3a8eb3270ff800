// Page-aligned memory for data buffers. A copy between two buffers runs at full speed only when
// their addresses agree modulo 64: on this project's machines a 128 KiB Buffer.copy took
// 1.3–2.8 times as long when they did not (bench/copy-alignment.ts). Node's ArrayBuffers start
// wherever malloc puts them (16 bytes past a page for a large one, anywhere 16-aligned on the
// heap for the rest), so the target's data buffers and a malloc bdev's memory met at a different
// offset in every process.
// WebAssembly memory is allocated by V8's page allocator and always starts on a page boundary:
// data buffers carved from it at page multiples agree with each other and with the kernel's
// pages. It is zero-filled and committed page by page as written, like an ArrayBuffer.

/** the part of the WebAssembly global used here (the project's lib has no DOM/WebAssembly types) */
declare const WebAssembly: {
  Memory: new (descriptor: {
    initial: number;
    maximum: number;
    shared?: boolean;
  }) => {
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
  };
};

/** a WebAssembly page */
const WASM_PAGE = 65536;
/** the most a 32-bit WebAssembly memory holds (65536 pages, 4 GiB) less one page of margin */
export const ALIGNED_MAX_BYTES = 65535 * WASM_PAGE;

function pages(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / WASM_PAGE));
}

/**
 * `bytes` of zeroed memory starting on a page boundary (its byteLength rounded up to 64 KiB),
 * or null when it cannot be had that way (over ALIGNED_MAX_BYTES, or V8 refused the address
 * space): the caller then takes an ordinary ArrayBuffer.
 */
export function pageAlignedArrayBuffer(bytes: number): ArrayBuffer | null {
  return wasmMemoryBuffer(bytes, false) as ArrayBuffer | null;
}

/** The same, shareable between realms (a SharedArrayBuffer); null as above. */
export function pageAlignedSharedArrayBuffer(bytes: number): SharedArrayBuffer | null {
  return wasmMemoryBuffer(bytes, true) as SharedArrayBuffer | null;
}

function wasmMemoryBuffer(bytes: number, shared: boolean): ArrayBuffer | SharedArrayBuffer | null {
  if (bytes > ALIGNED_MAX_BYTES) return null;
  try {
    const n = pages(bytes);
    return new WebAssembly.Memory({ initial: n, maximum: n, shared }).buffer;
  } catch {
    return null;
  }
}

/**
 * Up to `count` buffers of `size` bytes carved one after another, at a multiple of `align`
 * bytes, from one page-aligned memory made at the first take(); null once they are all
 * taken or when no such memory could be had (the caller then allocates as usual).
 */
export class AlignedSlab {
  private memory: ArrayBuffer | null | undefined = undefined;
  private next = 0;
  private readonly size: number;
  private readonly stride: number;
  private readonly count: number;

  constructor(size: number, count: number, align: number) {
    this.size = size;
    this.stride = Math.ceil(size / align) * align;
    this.count = Math.max(0, Math.min(count, Math.floor(ALIGNED_MAX_BYTES / this.stride)));
  }

  take(): Buffer | null {
    if (this.memory === undefined)
      this.memory = this.count > 0 ? pageAlignedArrayBuffer(this.count * this.stride) : null;
    const memory = this.memory;
    if (memory === null || this.next >= this.count * this.stride) return null;
    const buf = Buffer.from(memory, this.next, this.size);
    this.next += this.stride;
    return buf;
  }

  /** whether `buf` was carved from this slab */
  owns(buf: Buffer): boolean {
    return this.memory !== undefined && this.memory !== null && buf.buffer === this.memory;
  }
}
