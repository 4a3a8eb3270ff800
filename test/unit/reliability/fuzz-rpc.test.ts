// Property-based fuzzing of the JSON-RPC layer of a real nvmf_tgt (fixed seed,
// bounded runs): every method with arbitrary params gets one well-formed
// response; the target lives and a well-behaved host keeps its verified I/O.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { fuzzableMethods, rpcProperty } from '../../lib/fuzz-rpc.ts';
import { type ChildTarget, GoodHost, startChildTarget } from '../../lib/index.ts';

let target: ChildTarget;
let good: GoodHost;

before(async () => {
  target = await startChildTarget();
  good = await GoodHost.connect({ port: target.port, lbaBase: 8192 });
});

after(async () => {
  await good?.close();
  await target?.stop();
});

test('every RPC method with arbitrary params answers one well-formed response; the target and a good host live on', async () => {
  const served = (await target.rpc.call('rpc_get_methods')) as string[];
  const methods = await fuzzableMethods(served);
  assert.ok(methods.length > 50, `${methods.length} methods to fuzz`);
  const since = good.rounds;
  good.start();
  await fc.assert(rpcProperty(target.rpcPath, methods, target.alive), { seed: 0x72706366, numRuns: 1000 });
  assert.ok(target.alive());
  await good.assertHealthy(since, 1);
});
