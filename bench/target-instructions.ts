// Instructions per I/O of the real target in user space (our code, Node's streams, libuv, V8),
// counted by valgrind, so the figure does not move with the load of a shared machine as CPU
// time does. Each checkout's bin/nvmf_tgt.mjs runs under cachegrind (null bdev, -m 0x1, poll
// window 0) while this checkout's nvmf-perf drives it (4 KiB, QD 32 by default) for --short
// and then, in a second target, --long seconds; the difference of the two instruction counts
// over the difference of the I/Os completed leaves out start-up, JIT warm-up and shutdown.
// Under valgrind the target is some 50 times slower than its client, so it always finds a full
// queue's worth of commands per read: the figure is the cost per I/O at full batches. The
// kernel's share (copies into socket buffers, TCP) is not counted. Never gates CI.
//
//   node bench/target-instructions.ts --tgt /tmp/before/bin/nvmf_tgt.mjs --tgt bin/nvmf_tgt.mjs \
//     [--rw randread,randwrite] [--depth 32] [--short 5] [--long 25] [--rounds 1]
//
// Runs of one tree agreed within 1 % on a quiet machine; under load the client gets less CPU,
// the batches shrink and the figure moved by up to 5 %: compare medians of several --rounds.
// --short must end past the JIT's warm-up (3 s did not, under load).

import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { OWN_TGT, runPerf, startNullTarget, stopNullTarget } from './lib/null-target.ts';

const { values } = parseArgs({
  options: {
    tgt: { type: 'string', multiple: true },
    rw: { type: 'string', default: 'randread,randwrite' },
    depth: { type: 'string', default: '32' },
    short: { type: 'string', default: '5' },
    long: { type: 'string', default: '25' },
    rounds: { type: 'string', default: '1' },
  },
});

const tgtPaths = (values.tgt ?? [OWN_TGT]).map((p) => resolve(p));

/** One target under cachegrind driven for `seconds`: its instruction count and the I/Os completed. */
async function countRun(tgt: string, rw: string, seconds: string): Promise<{ instr: number; ios: number }> {
  const t = await startNullTarget({
    path: tgt,
    cores: '0x1',
    args: ['--poll-window-us', '0'],
    wrapper: ['valgrind', '--tool=cachegrind', '--cache-sim=no', '--cachegrind-out-file=/dev/null'],
    nodeArgs: ['--predictable', '--hash-seed=1', '--random-seed=1'],
    startTimeoutMs: 120000,
  });
  let ios = 0;
  try {
    const r = await runPerf(
      ['-r', t.trid, '-q', values.depth ?? '32', '-o', '4096', '-w', rw, '-t', seconds],
      (Number(seconds) + 120) * 1000,
    );
    if (r.total.errors > 0) throw new Error(`${tgt}: ${r.total.errors} I/O errors`);
    // every I/O the target served, warm-up and drain included (perf_cpu's us_per_io is per
    // completed I/O of the whole run)
    const c = r.perf_cpu;
    ios = Math.round(((c.user_sec + c.system_sec) * 1e6) / c.us_per_io);
  } finally {
    // valgrind prints its count when the target exits; its shutdown is slow
    await stopNullTarget(t, 120000);
  }
  const m = /I\s+refs:\s+([\d,]+)/.exec(t.log());
  if (m === null) throw new Error(`no instruction count from valgrind:\n${t.log().slice(-2000)}`);
  return { instr: Number(m[1].replaceAll(',', '')), ios };
}

const results = new Map<string, number[]>();
for (let round = 0; round < Number(values.rounds); round++) {
  for (const rw of (values.rw ?? 'randread').split(',')) {
    for (const tgt of tgtPaths) {
      const a = await countRun(tgt, rw, values.short ?? '5');
      const b = await countRun(tgt, rw, values.long ?? '25');
      const perIo = (b.instr - a.instr) / (b.ios - a.ios);
      const key = `${rw}|${tgt}`;
      results.set(key, [...(results.get(key) ?? []), perIo]);
      console.log(
        `round ${round + 1} ${rw.padEnd(9)} ${tgt}: ${Math.round(perIo)} instructions per I/O (${a.ios} and ${b.ios} I/Os)`,
      );
    }
  }
}
console.log('');
for (const [key, v] of results) {
  const [rw, tgt] = key.split('|');
  console.log(`4k ${rw} QD${values.depth} ${tgt}: ${v.map((x) => Math.round(x)).join(', ')}`);
}
