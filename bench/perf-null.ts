// The ceiling of nvmf-perf on this machine: our target (a child process) with
// a null bdev, which does no work per I/O, driven by nvmf-perf (a child too)
// at 4 KiB randread, QD 32 and 128, with 1 and 2 workers. Prints IOPS,
// latency, and nvmf-perf's own CPU cost per I/O (its ceiling per core is
// 1e6 / that figure). Never gates CI.
//
//   node bench/perf-null.ts [--time 5] [--tgt-mask 0x1] [--json]

import { parseArgs } from 'node:util';
import { cpuSeconds, runPerf, startNullTarget, stopNullTarget } from './lib/null-target.ts';

const { values } = parseArgs({
  options: {
    time: { type: 'string', default: '5' },
    'tgt-mask': { type: 'string', default: '0x1' },
    json: { type: 'boolean', default: false },
  },
});

const tgt = await startNullTarget({ cores: values['tgt-mask'] ?? '0x1' });
const rows = [];
try {
  for (const [depth, mask, workers] of [
    [32, '0x1', 1],
    [128, '0x1', 1],
    [32, '0x3', 2],
    [128, '0x3', 2],
  ] as const) {
    const tgtCpuBefore = cpuSeconds(tgt.proc.pid as number);
    const r = await runPerf([
      '-r',
      tgt.trid,
      '-q',
      String(depth),
      '-o',
      '4096',
      '-w',
      'randread',
      '-t',
      values.time ?? '5',
      '-c',
      mask,
    ]);
    const tgtCpu = cpuSeconds(tgt.proc.pid as number) - tgtCpuBefore;
    const row = {
      workload: '4k randread',
      depth,
      workers,
      iops: Math.round(r.total.iops),
      mib_per_sec: Number(r.total.mib_per_sec.toFixed(1)),
      avg_lat_us: Number(r.total.avg_lat_us.toFixed(1)),
      p99_us: Number(r.total.p99_us.toFixed(1)),
      errors: r.total.errors,
      perf_cpu_sec: Number((r.perf_cpu.user_sec + r.perf_cpu.system_sec).toFixed(2)),
      perf_us_per_io: Number(r.perf_cpu.us_per_io.toFixed(2)),
      target_cpu_sec: Number(tgtCpu.toFixed(2)),
      wall_sec: Number(r.perf_cpu.wall_sec.toFixed(2)),
    };
    rows.push(row);
    if (!values.json)
      console.log(
        `4k randread QD${String(depth).padEnd(3)} workers ${workers}: ${String(row.iops).padStart(7)} IOPS ${String(row.mib_per_sec).padStart(7)} MiB/s  avg ${row.avg_lat_us} us  p99 ${row.p99_us} us  | nvmf-perf ${row.perf_cpu_sec} s CPU (${row.perf_us_per_io} us/IO), target ${row.target_cpu_sec} s CPU, over ${row.wall_sec} s`,
      );
  }
} finally {
  await stopNullTarget(tgt);
}
if (values.json) console.log(JSON.stringify({ target_mask: values['tgt-mask'], rows }, null, 2));
