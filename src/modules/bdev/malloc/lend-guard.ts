// Zero-copy reads lend views of a malloc bdev's memory to a transport, which
// hands them to the socket: the kernel may copy them out only later (libuv
// keeps the rest of a write that did not fit the socket's buffer). A write to
// those blocks in the meantime would send the host a mix of old and new
// data, torn inside a block. The guard, one per bdev in shared memory and
// used by every realm's replica, keeps the two apart chunk by chunk:
//
//   lend:  readers[c] += 1, then if writers[c] != 0: undo, read by copy instead
//   write: writers[c] += 1, then if readers[c] != 0 or landing[c] != 0: wait
//   land:  writers[c] += 1, landing[c] += 1, then unless readers[c] == 0 and
//          writers[c] == landing[c] == 1: undo, write by copy instead
//   read by copy: if landing[c] != 0: wait until it is 0
//
// A landing is a write whose data the socket puts straight into the memory
// (zero-copy write): it lasts from the R2T until the host's data is in, over
// several socket reads, so nothing else may read or write those chunks
// meanwhile or it would see (or make) a block half old and half new. It never
// waits: when anything else holds its chunks it is not taken, and the write
// goes the copy way, which waits.
//
// Atomics are sequentially consistent, so of two marks that race at least
// one sees the other (Dekker). A waiting write keeps its mark, so new lends
// and landings of its chunks fall back to copies and it is never starved.

/** Slots before the per-chunk counts. */
const Slot = {
  /** writes waiting for lent reads now (gauge) */
  WAITING: 0,
  /** writes that ever waited (counter) */
  WAITED: 1,
  /** writes that stopped waiting at the bound and went ahead (counter) */
  WAIT_EXPIRED: 2,
  /** writes whose data landed in the memory (counter) */
  LANDED: 3,
  /** reads by copy that waited for a landing (counter) */
  READS_WAITED: 4,
  CHUNKS: 8,
} as const;

/** At most this many chunks per bdev (the guard's memory is 12 bytes a chunk). */
const MAX_CHUNKS = 1 << 16;
const MIN_CHUNK_SHIFT = 16; // 64 KiB

/** The guard's memory for a bdev of `bytes`: posted with the descriptor to every realm. */
export function newLendGuardMemory(bytes: number): SharedArrayBuffer {
  const chunks = Math.ceil(bytes / (1 << chunkShift(bytes)));
  return new SharedArrayBuffer((Slot.CHUNKS + 3 * chunks) * 4);
}

function chunkShift(bytes: number): number {
  let shift = MIN_CHUNK_SHIFT;
  while (bytes > MAX_CHUNKS * 2 ** shift) shift++;
  return shift;
}

/** One realm's view of a bdev's guard. Offsets and lengths are in bytes. */
export class LendGuard {
  private readonly words: Int32Array;
  private readonly shift: number;
  private readonly readers: number;
  private readonly writers: number;
  private readonly landing: number;

  constructor(memory: SharedArrayBuffer, bytes: number) {
    this.words = new Int32Array(memory);
    this.shift = chunkShift(bytes);
    const chunks = (this.words.length - Slot.CHUNKS) / 3;
    this.readers = Slot.CHUNKS;
    this.writers = Slot.CHUNKS + chunks;
    this.landing = Slot.CHUNKS + 2 * chunks;
  }

  /** Lend [pos, pos + len) to a reader: false when a write is marked on it (read by copy then). */
  tryLend(pos: number, len: number): boolean {
    this.add(this.readers, pos, len, 1);
    if (this.allEqual(this.writers, pos, len, 0)) return true;
    this.add(this.readers, pos, len, -1);
    return false;
  }

  /** The reader is done with what tryLend lent. */
  endLend(pos: number, len: number): void {
    this.add(this.readers, pos, len, -1);
  }

  /** Mark a write of [pos, pos + len); true when nothing in it is lent or landing (write now). */
  beginWrite(pos: number, len: number): boolean {
    this.add(this.writers, pos, len, 1);
    return this.writable(pos, len);
  }

  /** For a write begun and told to wait: true once nothing in it is lent or landing any more. */
  writable(pos: number, len: number): boolean {
    return this.allEqual(this.readers, pos, len, 0) && this.allEqual(this.landing, pos, len, 0);
  }

  /** For a read by copy: true when no write is landing in [pos, pos + len) (read now). */
  readable(pos: number, len: number): boolean {
    return this.allEqual(this.landing, pos, len, 0);
  }

  /**
   * Let a write's data land in [pos, pos + len) straight from the socket: false (nothing
   * marked) when any other reader, writer or landing holds one of its chunks.
   */
  tryLand(pos: number, len: number): boolean {
    this.add(this.writers, pos, len, 1);
    this.add(this.landing, pos, len, 1);
    if (
      this.allEqual(this.readers, pos, len, 0) &&
      this.allEqual(this.writers, pos, len, 1) &&
      this.allEqual(this.landing, pos, len, 1)
    ) {
      Atomics.add(this.words, Slot.LANDED, 1);
      return true;
    }
    this.add(this.landing, pos, len, -1);
    this.add(this.writers, pos, len, -1);
    return false;
  }

  /** The landing's data is in (or will never come): its chunks are free again. */
  endLand(pos: number, len: number): void {
    this.add(this.landing, pos, len, -1);
    this.add(this.writers, pos, len, -1);
  }

  /** The write's data is in the memory: lends of its chunks may go on. */
  endWrite(pos: number, len: number): void {
    this.add(this.writers, pos, len, -1);
  }

  /** Add `delta` to the counts (readers or writers, from `base`) of the chunks [pos, pos + len) touches. */
  private add(base: number, pos: number, len: number, delta: 1 | -1): void {
    const w = this.words;
    const last = base + ((pos + len - 1) >>> this.shift);
    for (let c = base + (pos >>> this.shift); c <= last; c++) Atomics.add(w, c, delta);
  }

  /** Whether those chunks' counts (from `base`) all equal `value`. */
  private allEqual(base: number, pos: number, len: number, value: number): boolean {
    const w = this.words;
    const last = base + ((pos + len - 1) >>> this.shift);
    for (let c = base + (pos >>> this.shift); c <= last; c++) if (Atomics.load(w, c) !== value) return false;
    return true;
  }

  /** A write starts waiting (wait) or stops (-1), going ahead at the bound when `expired`. */
  noteWait(delta: 1 | -1, expired = false): void {
    Atomics.add(this.words, Slot.WAITING, delta);
    if (delta === 1) Atomics.add(this.words, Slot.WAITED, 1);
    if (expired) Atomics.add(this.words, Slot.WAIT_EXPIRED, 1);
  }

  /** A read by copy waits for a landing. */
  noteReadWait(): void {
    Atomics.add(this.words, Slot.READS_WAITED, 1);
  }

  /** Counts for bdev_get_bdevs. */
  counts(): { writes_waiting: number; writes_waited: number; writes_wait_expired: number } {
    const w = this.words;
    return {
      writes_waiting: Atomics.load(w, Slot.WAITING),
      writes_waited: Atomics.load(w, Slot.WAITED),
      writes_wait_expired: Atomics.load(w, Slot.WAIT_EXPIRED),
    };
  }

  /** Zero-copy writes so far, and reads that waited for one (bdev_get_bdevs). */
  landingCounts(): { writes_landed: number; reads_waited: number } {
    return {
      writes_landed: Atomics.load(this.words, Slot.LANDED),
      reads_waited: Atomics.load(this.words, Slot.READS_WAITED),
    };
  }
}
