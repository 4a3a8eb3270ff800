// The poll groups' I/O counters: histogram buckets, percentiles, snapshots.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  IoKind,
  LATENCY_BOUNDS_US,
  LATENCY_BUCKETS,
  latencyPercentileUs,
  NsIoCounters,
} from '../../../src/nvmf/io-stats.ts';

test('NsIoCounters: operations, bytes and latency buckets by kind; failures only count as errors', () => {
  const c = new NsIoCounters();
  c.record(IoKind.READ, 4096, 7, true); // first bucket (<= 10 us)
  c.record(IoKind.READ, 4096, 10, true); // bounds are inclusive
  c.record(IoKind.READ, 4096, 11, true); // second bucket
  c.record(IoKind.WRITE, 8192, 2_000_000, true); // above the last bound: +Inf
  c.record(IoKind.OTHER, 0, 30, true);
  c.record(IoKind.WRITE, 4096, 5, false);
  const s = c.snapshot('nqn.2016-06.io.spdk:cnode1', 1);
  assert.deepEqual(s.ops, [3, 1, 1]);
  assert.deepEqual(s.bytes, [12288, 8192, 0]);
  assert.equal(s.errors, 1);
  assert.deepEqual(s.latencySumUs, [28, 2_000_000, 30]);
  const row = (k: number) => s.latency.slice(k * LATENCY_BUCKETS, (k + 1) * LATENCY_BUCKETS);
  assert.equal(row(IoKind.READ)[0], 2);
  assert.equal(row(IoKind.READ)[1], 1);
  assert.equal(row(IoKind.WRITE)[LATENCY_BUCKETS - 1], 1);
  assert.equal(row(IoKind.OTHER)[2], 1); // (25, 50]
  assert.equal(
    s.latency.reduce((a, b) => a + b, 0),
    5,
  );
});

test('latencyPercentileUs: the upper bound of the bucket where the percentile falls', () => {
  const counts = new Array(LATENCY_BUCKETS).fill(0);
  assert.equal(latencyPercentileUs(counts, 0.5), 0, 'empty');
  counts[0] = 90; // <= 10 us
  counts[4] = 9; // (100, 250]
  counts[LATENCY_BUCKETS - 1] = 1; // > 1 s
  assert.equal(latencyPercentileUs(counts, 0.5), 10);
  assert.equal(latencyPercentileUs(counts, 0.95), 250);
  assert.equal(latencyPercentileUs(counts, 1), LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.length - 1]);
});
