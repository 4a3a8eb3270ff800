// Property-based fuzzing of a real nvmf_tgt's answers to generated PDU streams
// (fixed seed, bounded runs): well-formed answers, a C2HTermReq whenever the
// stream is malformed, and a well-behaved host unharmed throughout.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { type StreamFuzzStats, streamProperty } from '../../lib/fuzz-stream.ts';
import { type ChildTarget, GoodHost, startChildTarget } from '../../lib/index.ts';

let target: ChildTarget;
let good: GoodHost;

before(async () => {
  target = await startChildTarget();
  good = await GoodHost.connect({ port: target.port, lbaBase: 0 });
});

after(async () => {
  await good?.close();
  await target?.stop();
});

test('generated PDU streams after ICReq: well-formed answers, a TermReq for every malformed stream', async () => {
  const stats: StreamFuzzStats = { cases: 0, termReqs: 0 };
  const since = good.rounds;
  good.start();
  await fc.assert(streamProperty(target.port, target.alive, stats), { seed: 0x73747266, numRuns: 80 });
  assert.ok(stats.termReqs > stats.cases / 3, `${stats.termReqs} of ${stats.cases} connections terminated`);
  assert.deepEqual(target.uncaughtErrors(), []);
  await good.assertHealthy(since, 1);
});
