// The RDMA transport's data chunks (src/nvmf/rdma/buffers.ts DataPool) over the fake verbs layer:
// registered slabs of page-aligned memory, as a malloc bdev's is, carved at chunk multiples.

import assert from 'node:assert/strict';
import test from 'node:test';
import { DataPool, RegisteredMemory } from '../../../src/nvmf/rdma/buffers.ts';
import { FakePd, FakeRdma } from '../../lib/fake-rdma.ts';

test('DataPool: chunks from registered page-aligned slabs, at chunk multiples, up to the limit', () => {
  const fabric = new FakeRdma();
  const pool = new DataPool(new RegisteredMemory(new FakePd(fabric)), 8192, 3);
  const chunks = [pool.get(), pool.get(), pool.get()];
  assert.equal(pool.get(), null, 'all three lent out');
  const slab = chunks[0]?.buf.buffer;
  assert.ok(slab instanceof SharedArrayBuffer, 'shareable, as registered memory must be');
  // page-aligned memory comes in whole 64 KiB WebAssembly pages (util/aligned-memory.ts)
  assert.equal(slab.byteLength, 65536);
  assert.deepEqual(
    chunks.map((c) => [c?.buf.buffer === slab, c?.offset, c?.buf.byteOffset, c?.buf.length]),
    [
      [true, 0, 0, 8192],
      [true, 8192, 8192, 8192],
      [true, 16384, 16384, 8192],
    ],
  );
  assert.equal(fabric.mrs.get(chunks[0]?.mrIndex as number)?.length, 65536, 'the slab registered whole');
  pool.put(chunks[1] as NonNullable<(typeof chunks)[1]>);
  assert.equal(pool.get(), chunks[1], 'a chunk put back is lent again, nothing new made');
});
