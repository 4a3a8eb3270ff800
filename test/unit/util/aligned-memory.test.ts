// Page-aligned data memory: what the transports' buffer pools and the malloc bdev rely on.

import assert from 'node:assert/strict';
import test from 'node:test';
import { BufferPool } from '../../../src/nvmf/tcp/request.ts';
import {
  ALIGNED_MAX_BYTES,
  AlignedSlab,
  pageAlignedArrayBuffer,
  pageAlignedSharedArrayBuffer,
} from '../../../src/util/aligned-memory.ts';

test('page-aligned memory: zeroed, whole 64 KiB pages, shareable or not; none past the limit', () => {
  const plain = pageAlignedArrayBuffer(100_000);
  assert.ok(plain instanceof ArrayBuffer, 'an ArrayBuffer');
  assert.equal(plain.byteLength, 2 * 65536);
  assert.ok(
    new Uint8Array(plain).every((b) => b === 0),
    'zero-filled',
  );
  const shared = pageAlignedSharedArrayBuffer(65536);
  assert.ok(shared instanceof SharedArrayBuffer, 'a SharedArrayBuffer');
  assert.equal(shared.byteLength, 65536);
  assert.equal(pageAlignedArrayBuffer(ALIGNED_MAX_BYTES + 1), null);
  assert.equal(pageAlignedSharedArrayBuffer(ALIGNED_MAX_BYTES + 1), null);
});

test('AlignedSlab carves `count` buffers at multiples of the alignment, then gives none', () => {
  const slab = new AlignedSlab(4256, 3, 64);
  const bufs = [slab.take(), slab.take(), slab.take()];
  assert.equal(slab.take(), null, 'all taken');
  const offsets = bufs.map((b) => {
    assert.ok(b !== null);
    assert.equal(b.length, 4256);
    assert.ok(slab.owns(b));
    return b.byteOffset;
  });
  assert.deepEqual(offsets, [0, 4288, 8576], 'one stride (4256 rounded up to 64) apart');
  // carved buffers do not overlap
  (bufs[0] as Buffer).fill(1);
  assert.ok((bufs[1] as Buffer).every((b) => b === 0));
  assert.equal(slab.owns(Buffer.alloc(4256)), false);
  assert.equal(new AlignedSlab(16, 0, 64).take(), null, 'a slab of none');
});

test('BufferPool: carved buffers at page multiples, all kept; ordinary ones beyond up to keep', () => {
  const pool = new BufferPool(131072, 2);
  const a = pool.get();
  const b = pool.get();
  const c = pool.get(); // beyond the carved ones: an ordinary buffer
  assert.deepEqual([a.byteOffset, b.byteOffset], [0, 131072]);
  assert.equal(a.buffer, b.buffer, 'one memory');
  assert.notEqual(c.buffer, a.buffer);
  assert.equal(c.length, 131072);
  pool.put(c);
  pool.put(a);
  pool.put(b); // the free list holds `keep` already: a carved buffer is kept all the same
  const back = [pool.get(), pool.get(), pool.get()];
  assert.deepEqual(new Set(back), new Set([a, b, c]), 'all three came back, none allocated');
});
