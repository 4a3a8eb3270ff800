// The target's CPU cost per I/O, A/B: one nvmf_tgt per checkout given (each a
// child process on one core with a null bdev, so the bdev does no work),
// driven in turn by this checkout's nvmf-perf (4 KiB, QD 32 by default, one
// worker). For each run the target's CPU time (user + system, every thread,
// from /proc) over the I/Os nvmf-perf completed. Targets alternate in
// A B B A order round after round, so a slow spell on a shared machine falls
// on both; the medians per target and workload are printed at the end.
// The targets' start order still shows: on a shared 2-core machine the one
// started second was measured 18-30 % dearer on randwrite whichever code it
// ran, so compare with the --tgt order swapped too. Never gates CI.
//
//   node bench/target-cpu.ts --tgt ../old/bin/nvmf_tgt.mjs --tgt bin/nvmf_tgt.mjs \
//     [--rw randread,randwrite] [--depth 32] [--time 5] [--rounds 5] [--json]
//
// --args gives the target of the same position extra arguments (one --args per --tgt,
// '' for none). With --watch, a target started with '--metrics-port 0' is observed as
// an operator would while it runs: /metrics scraped every second and the dashboard's
// event stream kept open (docs/observability.md: the cost of watching):
//
//   node bench/target-cpu.ts --tgt bin/nvmf_tgt.mjs --args '' \
//     --tgt bin/nvmf_tgt.mjs --args='--metrics-port 0' --watch

import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  cpuSeconds,
  type NullTarget,
  OWN_TGT,
  runPerf,
  startNullTarget,
  stopNullTarget,
} from './lib/null-target.ts';

const { values } = parseArgs({
  options: {
    tgt: { type: 'string', multiple: true },
    rw: { type: 'string', default: 'randread,randwrite' },
    depth: { type: 'string', default: '32' },
    time: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
    args: { type: 'string', multiple: true },
    watch: { type: 'boolean', default: false },
  },
});

const tgtPaths = (values.tgt ?? [OWN_TGT]).map((p) => resolve(p));
const tgtArgs = tgtPaths.map((_p, i) => (values.args?.[i] ?? '').split(' ').filter((a) => a !== ''));
const workloads = (values.rw ?? 'randread').split(',');
const rounds = Number(values.rounds);

interface Target extends NullTarget {
  /** the metrics server's port when it logged one */
  metricsPort: number | null;
}

async function startTarget(path: string, extra: string[]): Promise<Target> {
  const t = await startNullTarget({ path, cores: '0x1', args: extra });
  const m = /metrics and dashboard on http:\/\/[^:]+:(\d+)\//.exec(t.log());
  return { ...t, metricsPort: m === null ? null : Number(m[1]) };
}

/** Watch target `t` as an operator would: a scrape a second and the dashboard's stream open. */
function watch(t: Target): () => void {
  if (!values.watch || t.metricsPort === null) return () => {};
  const base = `http://127.0.0.1:${t.metricsPort}`;
  const ac = new AbortController();
  fetch(`${base}/events`, { signal: ac.signal })
    .then(async (r) => {
      for await (const _chunk of r.body ?? []) {
        // frames arrive once a second; reading them is the browser's part
      }
    })
    .catch(() => {});
  const timer = setInterval(() => {
    fetch(`${base}/metrics`, { signal: ac.signal })
      .then((r) => r.text())
      .catch(() => {});
  }, 1000);
  return () => {
    clearInterval(timer);
    ac.abort();
  };
}

/** One nvmf-perf run against `t`: the target's CPU microseconds per completed I/O, and IOPS. */
async function measure(t: Target, rw: string): Promise<{ usPerIo: number; iops: number }> {
  const pid = t.proc.pid as number;
  const unwatch = watch(t);
  const before = cpuSeconds(pid);
  const r = await runPerf([
    '-r',
    t.trid,
    '-q',
    values.depth ?? '32',
    '-o',
    '4096',
    '-w',
    rw,
    '-t',
    values.time ?? '5',
  ]);
  const cpu = cpuSeconds(pid) - before;
  unwatch();
  if (r.total.errors > 0) throw new Error(`${t.path}: ${r.total.errors} I/O errors`);
  // nvmf-perf's figure covers every I/O it completed (warm-up and drain too), as does ours
  const completed = ((r.perf_cpu.user_sec + r.perf_cpu.system_sec) * 1e6) / r.perf_cpu.us_per_io;
  return { usPerIo: (cpu * 1e6) / completed, iops: r.total.iops };
}

/** A, B, … in the order the targets were given. */
function letter(i: number): string {
  return String.fromCharCode(65 + i);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const targets: Target[] = [];
const samples = new Map<string, { usPerIo: number[]; iops: number[] }>();
try {
  for (const [i, p] of tgtPaths.entries()) targets.push(await startTarget(p, tgtArgs[i]));
  for (let round = 0; round < rounds; round++) {
    for (const rw of workloads) {
      // A B then B A: each target runs first as often as last
      const ab = [...targets.keys()];
      const ba = [...ab].reverse();
      const pass = round % 2 === 0 ? [...ab, ...ba] : [...ba, ...ab];
      for (const i of pass) {
        const m = await measure(targets[i], rw);
        const key = `${i}|${rw}`;
        const s = samples.get(key) ?? { usPerIo: [], iops: [] };
        s.usPerIo.push(m.usPerIo);
        s.iops.push(m.iops);
        samples.set(key, s);
        if (!values.json)
          console.log(
            `round ${round + 1} ${rw.padEnd(9)} target ${letter(i)}: ${m.usPerIo.toFixed(2)} us CPU/IO, ${Math.round(m.iops)} IOPS`,
          );
      }
    }
  }
} finally {
  for (const t of targets) await stopNullTarget(t);
}

const rows = [];
for (const rw of workloads) {
  for (let i = 0; i < tgtPaths.length; i++) {
    const s = samples.get(`${i}|${rw}`);
    if (s === undefined) continue;
    rows.push({
      label: letter(i),
      target: tgtPaths[i],
      workload: `4k ${rw} QD${values.depth}`,
      runs: s.usPerIo.length,
      median_us_cpu_per_io: Number(median(s.usPerIo).toFixed(2)),
      min_us_cpu_per_io: Number(Math.min(...s.usPerIo).toFixed(2)),
      max_us_cpu_per_io: Number(Math.max(...s.usPerIo).toFixed(2)),
      median_iops: Math.round(median(s.iops)),
    });
  }
}
if (values.json) console.log(JSON.stringify(rows, null, 2));
else {
  console.log('');
  tgtPaths.forEach((p, i) => {
    const watched = values.watch && tgtArgs[i].includes('--metrics-port') ? ' (watched)' : '';
    console.log(`target ${letter(i)}: ${p} ${tgtArgs[i].join(' ')}${watched}`);
  });
  for (const r of rows)
    console.log(
      `${r.workload.padEnd(20)} ${r.label}: median ${r.median_us_cpu_per_io} us CPU/IO (min ${r.min_us_cpu_per_io}, max ${r.max_us_cpu_per_io}, ${r.runs} runs), median ${r.median_iops} IOPS`,
    );
}
