// Reading SPDK's spdk_nvme_perf output (its text report, it has no JSON):
// the Total row, and p50/p99/p99.9 from its latency histograms (-LL).

/** A percentile is null when the output has no histogram (run without -LL). */
export interface SpdkPerfTotal {
  iops: number;
  mib_per_sec: number;
  avg_lat_us: number;
  min_lat_us: number;
  max_lat_us: number;
  p50_us: number | null;
  p99_us: number | null;
  p99_9_us: number | null;
}

const TOTAL_ROW = /^Total\s*:\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$/m;
/** "  from -  to:  cumulative%  (count)", one line per non-empty bucket of every histogram */
const BUCKET_LINE = /^\s*[\d.]+\s+-\s+([\d.]+):\s+[\d.]+%\s+\(\s*(\d+)\)\s*$/gm;

/**
 * The histograms of every (core, namespace) row are merged, and a percentile
 * is the end of the bucket where the cumulative share reaches it, as
 * spdk_nvme_perf's own summary (-L) reports it for one row. Its counters and
 * histograms start after the warm-up (-a).
 */
export function parseSpdkPerf(out: string): SpdkPerfTotal {
  const total = TOTAL_ROW.exec(out);
  if (total === null) throw new Error(`no Total row in spdk_nvme_perf's output:\n${out}`);
  const buckets: { end: number; count: number }[] = [];
  for (const m of out.matchAll(BUCKET_LINE)) buckets.push({ end: Number(m[1]), count: Number(m[2]) });
  buckets.sort((a, b) => a.end - b.end);
  const ios = buckets.reduce((n, b) => n + b.count, 0);
  const percentile = (p: number): number | null => {
    let sofar = 0;
    for (const b of buckets) {
      sofar += b.count;
      if (sofar / ios >= p) return b.end;
    }
    return null;
  };
  return {
    iops: Number(total[1]),
    mib_per_sec: Number(total[2]),
    avg_lat_us: Number(total[3]),
    min_lat_us: Number(total[4]),
    max_lat_us: Number(total[5]),
    p50_us: percentile(0.5),
    p99_us: percentile(0.99),
    p99_9_us: percentile(0.999),
  };
}
