// bench/lib/spdk-perf.ts reads spdk_nvme_perf's text report: the samples
// below keep the layout of SPDK v26.05's output (-LL), with few buckets.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSpdkPerf } from '../../../bench/lib/spdk-perf.ts';

const DEVICE = 'TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:cnode1) NSID 1';

function report(rows: string[], total: string, histograms: string[][]): string {
  const lines = [
    'Initializing NVMe Controllers',
    'Initialization complete. Launching workers.',
    '========================================================',
    `${' '.repeat(110)}Latency(us)`,
    `${'Device Information'.padEnd(74)}:       IOPS      MiB/s    Average        min        max`,
    ...rows,
    '========================================================',
    `${'Total'.padEnd(74)}: ${total}`,
    '',
  ];
  // the summaries (-L) come first; their lines are not buckets
  for (let i = 0; i < histograms.length; i++)
    lines.push(
      `Summary latency data for TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.s from core ${i + 1}:`,
      '=================================================================================',
      '  1.00000% :    89.403us',
      ' 50.00000% :   239.458us',
      '',
    );
  histograms.forEach((buckets, i) => {
    lines.push(
      `Latency histogram for TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.s from core ${i + 1}:`,
      '==============================================================================',
      '       Range in us     Cumulative    IO count',
      ...buckets,
      '',
    );
  });
  return lines.join('\n');
}

test('the Total row and the percentiles of one histogram', () => {
  const out = report(
    [`${DEVICE} from core  1:   47142.01     184.15     678.78      58.86   30688.02`],
    '  47142.01     184.15     678.78      58.86   30688.02',
    [
      [
        '   58.758 -    59.002:    1.0000%  (        1)',
        '  100.000 -   100.500:   50.0000%  (       49)',
        '  200.000 -   201.000:   99.0000%  (       49)',
        '30600.000 - 30700.000:  100.0000%  (        1)',
      ],
    ],
  );
  assert.deepEqual(parseSpdkPerf(out), {
    iops: 47142.01,
    mib_per_sec: 184.15,
    avg_lat_us: 678.78,
    min_lat_us: 58.86,
    max_lat_us: 30688.02,
    p50_us: 100.5,
    p99_us: 201,
    p99_9_us: 30700,
  });
});

test('the histograms of several cores are merged before the percentiles', () => {
  const out = report(
    [
      `${DEVICE} from core  1:   30000.00     117.19     500.00      50.00    1000.00`,
      `${DEVICE} from core  2:   10000.00      39.06     900.00      60.00    2000.00`,
    ],
    '  40000.00     156.25     600.00      50.00    2000.00',
    [
      ['  100.000 -   101.000:   60.0000%  (        3)', '  300.000 -   301.000:  100.0000%  (        2)'],
      ['  200.000 -   201.000:   40.0000%  (        2)', '  400.000 -   401.000:  100.0000%  (        3)'],
    ],
  );
  const r = parseSpdkPerf(out);
  // 10 I/Os: 3 ≤ 101, 5 ≤ 201, 7 ≤ 301, 10 ≤ 401
  assert.equal(r.p50_us, 201);
  assert.equal(r.p99_us, 401);
  assert.equal(r.iops, 40000);
  assert.equal(r.max_lat_us, 2000);
});

test('without a histogram (no -LL) the percentiles are null', () => {
  const out = report(
    [`${DEVICE} from core  1:   19660.93      76.80    1627.93      92.32   52017.16`],
    '  19660.93      76.80    1627.93      92.32   52017.16',
    [],
  );
  const r = parseSpdkPerf(out);
  assert.equal(r.avg_lat_us, 1627.93);
  assert.equal(r.p50_us, null);
  assert.equal(r.p99_9_us, null);
});

test('an output without a Total row is an error', () => {
  assert.throws(() => parseSpdkPerf('Initializing NVMe Controllers\nerrors occurred\n'), /no Total row/);
});
