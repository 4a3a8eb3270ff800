// nvmf-perf results: one row per (worker, namespace) and a total, as a table
// in spdk_nvme_perf's layout or as JSON.

import { fixed } from '../cli/format.ts';
import { LatencyHistogram } from './histogram.ts';
import type { NsResult, WorkerResult } from './job.ts';
import type { PerfConfig } from './options.ts';

/** One histogram bucket: latencies from `from_us` to `to_us`, `count` of them. */
export interface HistogramBucket {
  from_us: number;
  to_us: number;
  count: number;
}

export interface StatsRow {
  ios: number;
  read_ios: number;
  write_ios: number;
  errors: number;
  iops: number;
  mib_per_sec: number;
  avg_lat_us: number;
  min_lat_us: number;
  max_lat_us: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p99_9_us: number;
  /** with -L only */
  histogram?: HistogramBucket[];
}

export interface DeviceRow extends StatsRow {
  name: string;
  worker: number;
  core: number;
  nsid: number;
  queues: number;
  elapsed_sec: number;
}

export interface PerfReport {
  config: {
    transport_ids: string[];
    io_depth: number;
    io_size: number;
    io_pattern: string;
    rwmixread: number;
    time_sec: number;
    warmup_sec: number;
    qpairs_per_ns: number;
    cores: number[];
  };
  devices: DeviceRow[];
  total: StatsRow;
  errors: number;
  /** nvmf-perf's own CPU time over the run (warm-up and drain included), all threads */
  perf_cpu: { wall_sec: number; user_sec: number; system_sec: number; us_per_io: number };
}

export interface CpuTimes {
  wallSec: number;
  userSec: number;
  systemSec: number;
}

const US = 1000;

function stats(
  h: LatencyHistogram,
  counts: { read: number; write: number; errors: number },
  iops: number,
  ioSize: number,
  withHistogram: boolean,
): StatsRow {
  const row: StatsRow = {
    ios: h.total,
    read_ios: counts.read,
    write_ios: counts.write,
    errors: counts.errors,
    iops,
    mib_per_sec: (iops * ioSize) / 1048576,
    avg_lat_us: h.meanNs / US,
    min_lat_us: h.total ? h.minNs / US : 0,
    max_lat_us: h.maxNs / US,
    p50_us: h.percentile(0.5) / US,
    p90_us: h.percentile(0.9) / US,
    p99_us: h.percentile(0.99) / US,
    p99_9_us: h.percentile(0.999) / US,
  };
  if (withHistogram)
    row.histogram = h.buckets().map(([from, to, count]) => ({ from_us: from / US, to_us: to / US, count }));
  return row;
}

export function buildReport(config: PerfConfig, results: WorkerResult[], cpu: CpuTimes): PerfReport {
  const devices: DeviceRow[] = [];
  const total = new LatencyHistogram();
  let totalIops = 0;
  const totals = { read: 0, write: 0, errors: 0 };
  const all: NsResult[] = results.flatMap((r) => r.namespaces);
  const completed = results.reduce((n, r) => n + r.completedTotal, 0);
  for (const ns of all) {
    const h = LatencyHistogram.fromData(ns.histogram);
    const iops = ns.elapsedSec > 0 ? ns.ios / ns.elapsedSec : 0;
    totalIops += iops;
    total.merge(ns.histogram);
    totals.read += ns.readIos;
    totals.write += ns.writeIos;
    totals.errors += ns.errors;
    devices.push({
      name: `${ns.label} from core ${String(ns.core).padStart(2)}`,
      worker: ns.worker,
      core: ns.core,
      nsid: ns.nsid,
      queues: ns.queues,
      elapsed_sec: ns.elapsedSec,
      ...stats(
        h,
        { read: ns.readIos, write: ns.writeIos, errors: ns.errors },
        iops,
        config.ioSize,
        config.histogram,
      ),
    });
  }
  return {
    config: {
      transport_ids: config.tridTexts,
      io_depth: config.queueDepth,
      io_size: config.ioSize,
      io_pattern: config.workload,
      rwmixread: config.readPercent,
      time_sec: config.timeSec,
      warmup_sec: config.warmupSec,
      qpairs_per_ns: config.queuesPerNs,
      cores: config.cores,
    },
    devices,
    total: stats(total, totals, totalIops, config.ioSize, config.histogram),
    errors: totals.errors,
    perf_cpu: {
      wall_sec: cpu.wallSec,
      user_sec: cpu.userSec,
      system_sec: cpu.systemSec,
      // per completed I/O of the whole run (warm-up and drain too), as the CPU time covers them
      us_per_io: completed > 0 ? ((cpu.userSec + cpu.systemSec) * 1e6) / completed : 0,
    },
  };
}

const COLUMNS: Array<[string, Exclude<keyof StatsRow, 'histogram'>]> = [
  ['IOPS', 'iops'],
  ['MiB/s', 'mib_per_sec'],
  ['Average', 'avg_lat_us'],
  ['min', 'min_lat_us'],
  ['max', 'max_lat_us'],
  ['p50', 'p50_us'],
  ['p90', 'p90_us'],
  ['p99', 'p99_us'],
  ['p99.9', 'p99_9_us'],
];

export function formatReport(r: PerfReport): string {
  const nameWidth = Math.max(20, ...r.devices.map((d) => d.name.length));
  const cell = (s: string) => s.padStart(11);
  const line = (name: string, row: StatsRow) =>
    `${name.padEnd(nameWidth)}: ${COLUMNS.map(([, k]) => cell(fixed(row[k]))).join('')}\n`;
  const rule = `${'='.repeat(nameWidth + 2 + 11 * COLUMNS.length)}\n`;
  let out = `${' '.repeat(nameWidth + 2 + 22)}${'Latency(us)'.padStart(11 * 7)}\n`;
  out += `${'Device Information'.padEnd(nameWidth)}: ${COLUMNS.map(([h]) => cell(h)).join('')}\n`;
  out += rule;
  for (const d of r.devices) out += line(d.name, d);
  out += rule;
  out += line('Total', r.total);
  for (const row of [...r.devices, { ...r.total, name: 'Total' }]) {
    if (row.histogram === undefined) continue;
    out += `\nLatency histogram for ${row.name}\n${'='.repeat(60)}\n       Range in us     Cumulative    IO count\n`;
    let seen = 0;
    for (const b of row.histogram) {
      seen += b.count;
      const range = `${fixed(b.from_us, 3).padStart(10)} - ${fixed(b.to_us, 3).padStart(10)}`;
      out += `${range}: ${fixed((seen / row.ios) * 100, 4).padStart(9)}%  (${String(b.count).padStart(8)})\n`;
    }
  }
  const c = r.perf_cpu;
  out += `\nnvmf-perf CPU: ${fixed(c.user_sec + c.system_sec)} s over ${fixed(c.wall_sec)} s (${fixed(c.us_per_io)} us per I/O, all threads)\n`;
  if (r.errors > 0) out += `\n${r.errors} I/O failed\n`;
  return out;
}
