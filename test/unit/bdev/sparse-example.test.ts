import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bdevModuleEntry, createSparseBdev } from '../../../examples/sparse-bdev/sparse.ts';
import * as B from '../../../src/bdev/module.ts';
import { pattern } from '../../lib/pattern.ts';
import { pollIdle, recorder, settle, uniq } from './harness.ts';

B.registerBdevModule(bdevModuleEntry.module);

test('example sparse bdev: unwritten blocks read as zeroes, written ones come back, unmap drops them', async () => {
  const name = await settle(createSparseBdev(uniq('Sparse'), 1 << 20, 4096));
  const desc = B.bdevOpen(name, true, () => {});
  const ch = B.bdevGetIoChannel(desc);
  const r = recorder();
  const data = pattern(3 * 4096, 8);
  B.bdevWrite(desc, ch, [data.subarray(0, 5000), data.subarray(5000)], 1000, 3, false, r.cb, 'w');
  pollIdle();
  const out = Buffer.alloc(5 * 4096, 0xff);
  B.bdevRead(desc, ch, [out], 999, 5, r.cb, 'r');
  pollIdle();
  assert.ok(out.subarray(0, 4096).equals(Buffer.alloc(4096)));
  assert.ok(out.subarray(4096, 4 * 4096).equals(data));
  assert.ok(out.subarray(4 * 4096).equals(Buffer.alloc(4096)));
  assert.deepEqual((desc.bdev.backend.dumpInfo!() as { sparse: unknown }).sparse, { blocks_stored: 3 });
  B.bdevUnmap(desc, ch, [{ offsetBlocks: 1001, numBlocks: 1 }], r.cb, 'unmap');
  B.bdevCompare(desc, ch, [data.subarray(0, 4096)], 1000, 1, r.cb, 'cmp'); // emulated by the layer
  pollIdle();
  assert.deepEqual((desc.bdev.backend.dumpInfo!() as { sparse: unknown }).sparse, { blocks_stored: 2 });
  assert.ok(r.done.every((d) => d.ok));
  const methods = bdevModuleEntry.rpcMethods.map((m) => m.name);
  assert.deepEqual(methods, ['bdev_sparse_create', 'bdev_sparse_delete']);
  assert.deepEqual(
    bdevModuleEntry.module.writeConfigJson?.(B.bdevGetRecord(name)!.desc)?.method,
    'bdev_sparse_create',
  );
});
