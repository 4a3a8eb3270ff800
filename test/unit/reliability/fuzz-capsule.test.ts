// Property-based fuzzing of the capsule decoder and command dispatch through a
// real nvmf_tgt's queues (fixed seed, bounded runs): every mutated command gets
// a CQE or its connection ends with a C2HTermReq; no exception escapes in the
// target; a well-behaved host on another subsystem keeps its verified I/O.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import {
  type CapsuleFuzzContext,
  capsuleProperty,
  startCapsuleFuzz,
  stopCapsuleFuzz,
} from '../../lib/fuzz-capsule.ts';
import { GoodHost } from '../../lib/index.ts';

let ctx: CapsuleFuzzContext;
let good: GoodHost;

before(async () => {
  ctx = await startCapsuleFuzz();
  good = await GoodHost.connect({ port: ctx.target.port, lbaBase: 0 });
});

after(async () => {
  await good?.close();
  if (ctx) {
    await stopCapsuleFuzz(ctx);
    await ctx.target.stop();
  }
});

test('mutated commands on admin and I/O queues: each answered or the connection ends with a TermReq', async () => {
  const since = good.rounds;
  good.start();
  await fc.assert(capsuleProperty(ctx), { seed: 0x63617073, numRuns: 150 });
  assert.ok(ctx.stats.commands >= 150, `${ctx.stats.commands} commands sent`);
  assert.ok(ctx.stats.answered > ctx.stats.commands / 2, `${ctx.stats.answered} answered`);
  assert.ok(ctx.target.alive(), 'the target lives');
  assert.deepEqual(ctx.target.uncaughtErrors(), [], 'no exception escaped in the target');
  await good.assertHealthy(since, 1);
});
