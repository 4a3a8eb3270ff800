// Log-linear latency histogram (HdrHistogram's idea, as SPDK's histogram_data):
// values in nanoseconds; below 2^SUB_BITS one bucket per value, above that
// each power of two is cut into 2^SUB_BITS equal buckets (≤ 1.6 % error).
// Fixed memory, O(1) record with no allocation, mergeable across workers.

const SUB_BITS = 6;
const SUB_COUNT = 1 << SUB_BITS;
/** values are clamped to 32 bits: 4.29 s, far beyond any I/O worth measuring */
const MAX_VALUE = 0xffffffff;
export const HISTOGRAM_BUCKETS = SUB_COUNT + (32 - SUB_BITS) * SUB_COUNT;

export function bucketOf(valueNs: number): number {
  const v = valueNs >= MAX_VALUE ? MAX_VALUE : valueNs < 0 ? 0 : Math.floor(valueNs);
  if (v < SUB_COUNT) return v;
  const exponent = 31 - Math.clz32(v); // ≥ SUB_BITS
  const shift = exponent - SUB_BITS;
  return SUB_COUNT + shift * SUB_COUNT + ((v >>> shift) - SUB_COUNT);
}

/** Largest value that falls into bucket `b`. */
export function bucketUpperBound(b: number): number {
  if (b < SUB_COUNT) return b;
  const shift = Math.floor((b - SUB_COUNT) / SUB_COUNT);
  const sub = (b - SUB_COUNT) % SUB_COUNT;
  return (SUB_COUNT + sub + 1) * 2 ** shift - 1;
}

export class LatencyHistogram {
  /** Float64 counts: exact up to 2^53 and cheap to send to another thread */
  readonly counts = new Float64Array(HISTOGRAM_BUCKETS);
  total = 0;
  sumNs = 0;
  minNs = Number.POSITIVE_INFINITY;
  maxNs = 0;

  record(valueNs: number): void {
    this.counts[bucketOf(valueNs)]++;
    this.total++;
    this.sumNs += valueNs;
    if (valueNs < this.minNs) this.minNs = valueNs;
    if (valueNs > this.maxNs) this.maxNs = valueNs;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.sumNs = 0;
    this.minNs = Number.POSITIVE_INFINITY;
    this.maxNs = 0;
  }

  merge(other: HistogramData): void {
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) this.counts[i] += other.counts[i];
    this.total += other.total;
    this.sumNs += other.sumNs;
    if (other.total > 0) {
      this.minNs = Math.min(this.minNs, other.minNs);
      this.maxNs = Math.max(this.maxNs, other.maxNs);
    }
  }

  /** The value at or below which `fraction` of the samples lie, kept within [min, max]. */
  percentile(fraction: number): number {
    if (this.total === 0) return 0;
    const wanted = Math.max(1, Math.ceil(fraction * this.total));
    let seen = 0;
    for (let b = 0; b < HISTOGRAM_BUCKETS; b++) {
      seen += this.counts[b];
      if (seen >= wanted) return Math.min(this.maxNs, Math.max(this.minNs, bucketUpperBound(b)));
    }
    return this.maxNs;
  }

  /** The non-empty buckets, lowest first: [from ns, to ns (inclusive), count]. */
  buckets(): Array<[number, number, number]> {
    const out: Array<[number, number, number]> = [];
    for (let b = 0; b < HISTOGRAM_BUCKETS; b++) {
      if (this.counts[b] === 0) continue;
      out.push([b === 0 ? 0 : bucketUpperBound(b - 1) + 1, bucketUpperBound(b), this.counts[b]]);
    }
    return out;
  }

  get meanNs(): number {
    return this.total === 0 ? 0 : this.sumNs / this.total;
  }

  /** A structured-cloneable copy (postMessage). */
  toData(): HistogramData {
    return {
      counts: this.counts,
      total: this.total,
      sumNs: this.sumNs,
      minNs: this.minNs,
      maxNs: this.maxNs,
    };
  }

  static fromData(d: HistogramData): LatencyHistogram {
    const h = new LatencyHistogram();
    h.merge(d);
    return h;
  }
}

export interface HistogramData {
  counts: Float64Array;
  total: number;
  sumNs: number;
  minNs: number;
  maxNs: number;
}
