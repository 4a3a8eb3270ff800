// I/O statistics per channel and per bdev (bdev_get_iostat), latency in
// nanosecond ticks (tick_rate 1e9), and an optional log2 latency histogram.

import { performance } from 'node:perf_hooks';
import { BdevIoType } from './types.ts';

export const TICK_RATE = 1_000_000_000;

/** Current time in ticks (nanoseconds, fractional); one read per I/O (`performance` imported: the
 * global is an accessor run on every read). */
export function nowTicks(): number {
  return performance.now() * 1e6;
}

/** Histogram: bucket i counts latencies in [2^i, 2^(i+1)) ns (bucket 0 also holds < 1 ns). */
export const HISTOGRAM_BUCKETS = 48;

export class BdevIoStats {
  bytesRead = 0;
  numReadOps = 0;
  bytesWritten = 0;
  numWriteOps = 0;
  bytesUnmapped = 0;
  numUnmapOps = 0;
  readLatencyTicks = 0;
  maxReadLatencyTicks = 0;
  minReadLatencyTicks = Number.MAX_SAFE_INTEGER;
  writeLatencyTicks = 0;
  maxWriteLatencyTicks = 0;
  minWriteLatencyTicks = Number.MAX_SAFE_INTEGER;
  unmapLatencyTicks = 0;
  maxUnmapLatencyTicks = 0;
  minUnmapLatencyTicks = Number.MAX_SAFE_INTEGER;
  numOtherOps = 0;
  ioErrors = 0;
  /** allocated when the bdev's histogram is enabled */
  histogram: Float64Array | null = null;

  record(type: number, bytes: number, latency: number, success: boolean): void {
    if (!success) {
      this.ioErrors++;
      return;
    }
    if (type === BdevIoType.READ) {
      this.numReadOps++;
      this.bytesRead += bytes;
      this.readLatencyTicks += latency;
      if (latency > this.maxReadLatencyTicks) this.maxReadLatencyTicks = latency;
      if (latency < this.minReadLatencyTicks) this.minReadLatencyTicks = latency;
    } else if (type === BdevIoType.WRITE) {
      this.numWriteOps++;
      this.bytesWritten += bytes;
      this.writeLatencyTicks += latency;
      if (latency > this.maxWriteLatencyTicks) this.maxWriteLatencyTicks = latency;
      if (latency < this.minWriteLatencyTicks) this.minWriteLatencyTicks = latency;
    } else if (type === BdevIoType.UNMAP) {
      this.numUnmapOps++;
      this.bytesUnmapped += bytes;
      this.unmapLatencyTicks += latency;
      if (latency > this.maxUnmapLatencyTicks) this.maxUnmapLatencyTicks = latency;
      if (latency < this.minUnmapLatencyTicks) this.minUnmapLatencyTicks = latency;
    } else {
      this.numOtherOps++;
    }
    const h = this.histogram;
    if (h !== null) {
      const bucket = latency < 2 ? 0 : Math.min(HISTOGRAM_BUCKETS - 1, Math.floor(Math.log2(latency)));
      h[bucket]++;
    }
  }

  add(o: BdevIoStatsSnapshot): void {
    this.bytesRead += o.bytesRead;
    this.numReadOps += o.numReadOps;
    this.bytesWritten += o.bytesWritten;
    this.numWriteOps += o.numWriteOps;
    this.bytesUnmapped += o.bytesUnmapped;
    this.numUnmapOps += o.numUnmapOps;
    this.readLatencyTicks += o.readLatencyTicks;
    this.maxReadLatencyTicks = Math.max(this.maxReadLatencyTicks, o.maxReadLatencyTicks);
    this.minReadLatencyTicks = Math.min(this.minReadLatencyTicks, o.minReadLatencyTicks);
    this.writeLatencyTicks += o.writeLatencyTicks;
    this.maxWriteLatencyTicks = Math.max(this.maxWriteLatencyTicks, o.maxWriteLatencyTicks);
    this.minWriteLatencyTicks = Math.min(this.minWriteLatencyTicks, o.minWriteLatencyTicks);
    this.unmapLatencyTicks += o.unmapLatencyTicks;
    this.maxUnmapLatencyTicks = Math.max(this.maxUnmapLatencyTicks, o.maxUnmapLatencyTicks);
    this.minUnmapLatencyTicks = Math.min(this.minUnmapLatencyTicks, o.minUnmapLatencyTicks);
    this.numOtherOps += o.numOtherOps;
    this.ioErrors += o.ioErrors;
    if (o.histogram !== null) {
      if (this.histogram === null) this.histogram = new Float64Array(HISTOGRAM_BUCKETS);
      for (let i = 0; i < HISTOGRAM_BUCKETS; i++) this.histogram[i] += o.histogram[i] ?? 0;
    }
  }

  reset(): void {
    const keepHistogram = this.histogram !== null;
    Object.assign(this, new BdevIoStats());
    if (keepHistogram) this.histogram = new Float64Array(HISTOGRAM_BUCKETS);
  }

  /** Plain-data copy (structured-cloneable). */
  snapshot(): BdevIoStatsSnapshot {
    return { ...this, histogram: this.histogram === null ? null : Array.from(this.histogram) };
  }
}

export type BdevIoStatsSnapshot = Omit<
  {
    [K in keyof BdevIoStats as BdevIoStats[K] extends (...a: never[]) => unknown ? never : K]: BdevIoStats[K];
  },
  'histogram'
> & { histogram: number[] | Float64Array | null; threadId?: number };

/** bdev_get_iostat entry for one bdev (SPDK's field names). */
export function iostatJson(name: string, s: BdevIoStats, ticks: number): Record<string, unknown> {
  const min = (v: number) => (v === Number.MAX_SAFE_INTEGER ? 0 : Math.round(v));
  return {
    name,
    bytes_read: s.bytesRead,
    num_read_ops: s.numReadOps,
    bytes_written: s.bytesWritten,
    num_write_ops: s.numWriteOps,
    bytes_unmapped: s.bytesUnmapped,
    num_unmap_ops: s.numUnmapOps,
    bytes_copied: 0,
    num_copy_ops: 0,
    read_latency_ticks: Math.round(s.readLatencyTicks),
    max_read_latency_ticks: Math.round(s.maxReadLatencyTicks),
    min_read_latency_ticks: min(s.minReadLatencyTicks),
    write_latency_ticks: Math.round(s.writeLatencyTicks),
    max_write_latency_ticks: Math.round(s.maxWriteLatencyTicks),
    min_write_latency_ticks: min(s.minWriteLatencyTicks),
    unmap_latency_ticks: Math.round(s.unmapLatencyTicks),
    max_unmap_latency_ticks: Math.round(s.maxUnmapLatencyTicks),
    min_unmap_latency_ticks: min(s.minUnmapLatencyTicks),
    copy_latency_ticks: 0,
    max_copy_latency_ticks: 0,
    min_copy_latency_ticks: 0,
    io_error: s.ioErrors,
    ticks: Math.round(ticks),
  };
}
