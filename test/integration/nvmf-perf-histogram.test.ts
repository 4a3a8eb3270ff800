// nvmf-perf's latency histogram: bucket bounds, percentiles within the
// bucket precision, and merging (what the workers' results go through).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  bucketOf,
  bucketUpperBound,
  HISTOGRAM_BUCKETS,
  LatencyHistogram,
} from '../../src/apps/perf/histogram.ts';

test('every value lands in a bucket whose upper bound is within 1/64 above it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (v) => {
      const b = bucketOf(v);
      assert.ok(b >= 0 && b < HISTOGRAM_BUCKETS);
      const upper = bucketUpperBound(b);
      assert.ok(upper >= v, `upper ${upper} < ${v}`);
      assert.ok(upper - v <= Math.max(0, v / 64), `bucket too wide at ${v}: ${upper}`);
      if (b > 0) assert.ok(bucketUpperBound(b - 1) < v, `value ${v} belongs to an earlier bucket`);
    }),
  );
  assert.equal(bucketOf(1e12), HISTOGRAM_BUCKETS - 1, 'beyond 32 bits clamps to the last bucket');
  assert.equal(bucketOf(-5), 0);
});

test('percentiles of 1..100000 ns are within the bucket precision, and ordered', () => {
  const h = new LatencyHistogram();
  for (let v = 1; v <= 100000; v++) h.record(v);
  assert.equal(h.total, 100000);
  assert.equal(h.minNs, 1);
  assert.equal(h.maxNs, 100000);
  assert.equal(h.meanNs, 50000.5);
  for (const [p, exact] of [
    [0.5, 50000],
    [0.9, 90000],
    [0.99, 99000],
    [0.999, 99900],
  ]) {
    const got = h.percentile(p);
    assert.ok(got >= exact && got <= exact * (1 + 1 / 64), `p${p * 100}: ${got} vs ${exact}`);
  }
  assert.ok(h.percentile(1) <= h.maxNs);
  assert.equal(new LatencyHistogram().percentile(0.5), 0);
});

test('merging two histograms equals recording everything in one', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 5_000_000 }), { minLength: 1, maxLength: 200 }),
      fc.array(fc.integer({ min: 1, max: 5_000_000 }), { minLength: 1, maxLength: 200 }),
      (xs, ys) => {
        const a = new LatencyHistogram();
        const b = new LatencyHistogram();
        const all = new LatencyHistogram();
        for (const x of xs) {
          a.record(x);
          all.record(x);
        }
        for (const y of ys) {
          b.record(y);
          all.record(y);
        }
        const merged = LatencyHistogram.fromData(a.toData());
        merged.merge(structuredClone(b.toData()));
        assert.deepEqual([...merged.counts], [...all.counts]);
        assert.equal(merged.total, all.total);
        assert.equal(merged.minNs, all.minNs);
        assert.equal(merged.maxNs, all.maxNs);
        for (const p of [0.5, 0.99, 0.999]) assert.equal(merged.percentile(p), all.percentile(p));
      },
    ),
    { numRuns: 50 },
  );
});
