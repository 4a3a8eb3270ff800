// Write data lent for the submit call only (bdevWrite's LentData, what NVMe/TCP does with
// in-capsule data left in its receive buffer): a module that consumes write data in submit
// takes it in place; anything that holds the I/O past the call (QoS, a range locked by a
// compare-and-write, a module without the flag) gets the owner's copy first. Each test
// overwrites the lent buffer as soon as bdevWrite returns, as the socket's next read would,
// and checks what reached the blocks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as B from '../../../src/bdev/module.ts';
import { createMallocBdev } from '../../../src/modules/bdev/malloc/malloc.ts';
import { createNullBdev } from '../../../src/modules/bdev/null/null.ts';
import { createPassthruBdev } from '../../../src/modules/bdev/passthru/passthru.ts';
import { pattern } from '../../lib/pattern.ts';
import { pollIdle, recorder, settle, uniq, until } from './harness.ts';

const BS = 512;

/** An owner lending `data` from a buffer it reuses (the receive buffer) with a copy of its own for keep(). */
function lender(data: Buffer) {
  const rx = Buffer.from(data);
  const own = Buffer.alloc(data.length);
  const l = {
    iov: [rx],
    kept: 0,
    consumedCalls: 0,
    /** what the socket's next read does to the buffer once the call returned */
    reuse() {
      rx.fill(0xee);
    },
    keep(): Buffer[] {
      l.kept++;
      rx.copy(own);
      l.iov[0] = own;
      return l.iov;
    },
    consumed() {
      l.consumedCalls++;
    },
  };
  return l;
}

async function open(name: string) {
  const desc = B.bdevOpen(name, true, () => {});
  return { desc, ch: B.bdevGetIoChannel(desc) };
}

function readBack(desc: B.BdevDesc, ch: B.BdevChannelArg, offset: number, blocks: number): Buffer {
  const out = Buffer.alloc(blocks * BS);
  const r = recorder();
  B.bdevRead(desc, ch, [out], offset, blocks, r.cb, 'r');
  pollIdle();
  assert.equal(r.done[0]?.ok, true);
  return out;
}

test('malloc and null consume lent write data in submit: no copy, the blocks hold it', async () => {
  const m = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: BS }));
  const { desc, ch } = await open(m);
  assert.equal(desc.bdev.backend.consumesWriteDataInSubmit, true);
  const data = pattern(4 * BS, 3);
  const l = lender(data);
  const r = recorder();
  B.bdevWrite(desc, ch, l.iov, 8, 4, false, r.cb, 'w', l);
  assert.deepEqual([l.kept, l.consumedCalls], [0, 1], 'taken during the call, never kept');
  l.reuse();
  pollIdle();
  assert.equal(r.done[0]?.ok, true);
  assert.ok(readBack(desc, ch, 8, 4).equals(data));

  const n = await settle(createNullBdev({ name: uniq('Null'), numBlocks: 64, blockSize: BS }));
  const nul = await open(n);
  const l2 = lender(data);
  B.bdevWrite(nul.desc, nul.ch, l2.iov, 0, 4, false, r.cb, 'wn', l2);
  assert.deepEqual([l2.kept, l2.consumedCalls], [0, 1]);
  pollIdle();
  assert.equal(r.done[1]?.ok, true);
});

test('a split write over a consuming module is consumed by its parts, in place', async () => {
  // optimal I/O boundary of 4 blocks: a 6-block write at block 2 is split in three
  const m = await settle(
    createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: BS, optimalIoBoundary: 4 }),
  );
  const { desc, ch } = await open(m);
  const data = pattern(6 * BS, 5);
  const l = lender(data);
  const r = recorder();
  B.bdevWrite(desc, ch, l.iov, 2, 6, false, r.cb, 'w', l);
  assert.deepEqual([l.kept, l.consumedCalls], [0, 1]);
  l.reuse();
  pollIdle();
  assert.equal(r.done[0]?.ok, true);
  assert.ok(readBack(desc, ch, 2, 6).equals(data));
});

test('a module without the flag (passthru) gets the owner copy before it sees the I/O', async () => {
  const base = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: BS }));
  const pt = await settle(createPassthruBdev({ baseBdevName: base, name: uniq('PT') }));
  const { desc, ch } = await open(pt);
  assert.notEqual(desc.bdev.backend.consumesWriteDataInSubmit, true);
  const data = pattern(2 * BS, 7);
  const l = lender(data);
  const r = recorder();
  B.bdevWrite(desc, ch, l.iov, 30, 2, false, r.cb, 'w', l);
  assert.deepEqual([l.kept, l.consumedCalls], [1, 0], 'kept during the call');
  l.reuse();
  pollIdle();
  assert.equal(r.done[0]?.ok, true);
  assert.ok(readBack(desc, ch, 30, 2).equals(data));
});

test('writes QoS holds back are kept; those it lets through are consumed; all land intact', async () => {
  const m = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 256, blockSize: BS }));
  await settle(
    B.bdevSetQos(m, { rw_ios_per_sec: 1000, rw_mbytes_per_sec: 0, r_mbytes_per_sec: 0, w_mbytes_per_sec: 0 }),
  );
  const { desc, ch } = await open(m);
  const r = recorder();
  const lenders = [];
  for (let i = 0; i < 40; i++) {
    const l = lender(pattern(BS, 100 + i));
    B.bdevWrite(desc, ch, l.iov, i, 1, false, r.cb, i, l);
    // taken or kept before the call returned, never both
    assert.equal(l.kept + l.consumedCalls, 1, `write ${i}`);
    l.reuse();
    lenders.push(l);
  }
  const kept = lenders.filter((l) => l.kept === 1).length;
  assert.ok(kept > 0 && kept < 40, `${kept} of 40 writes held back by a 1000 IOPS limit`);
  await until(() => r.done.length === 40);
  assert.ok(r.done.every((d) => d.ok));
  await settle(
    B.bdevSetQos(m, { rw_ios_per_sec: 0, rw_mbytes_per_sec: 0, r_mbytes_per_sec: 0, w_mbytes_per_sec: 0 }),
  );
  for (let i = 0; i < 40; i++) assert.ok(readBack(desc, ch, i, 1).equals(pattern(BS, 100 + i)), `block ${i}`);
});

test('a write waiting on a range a compare-and-write locked is kept, not consumed', async () => {
  // a malloc bdev whose backend here lacks compare (so the layer emulates compare-and-write:
  // read, compare, write, its range locked meanwhile) and holds reads until released
  const m = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: BS }));
  const { desc, ch } = await open(m);
  const inner = desc.bdev.backend;
  const heldReads: B.BdevIo[] = [];
  desc.bdev.backend = {
    consumesWriteDataInSubmit: true,
    supportsIo: (t) =>
      t !== B.BdevIoType.COMPARE && t !== B.BdevIoType.COMPARE_AND_WRITE && inner.supportsIo(t),
    submit(io, ctx) {
      if (io.type === B.BdevIoType.READ) heldReads.push(io);
      else inner.submit(io, ctx);
    },
  };
  try {
    const r = recorder();
    const written = pattern(4 * BS, 9);
    B.bdevCompareAndWrite(desc, ch, [Buffer.alloc(4 * BS)], [written], 0, 4, false, r.cb, 'caw');
    assert.equal(heldReads.length, 1, 'the compare read is out: blocks 0-3 locked');
    const data = pattern(2 * BS, 11);
    const l = lender(data);
    B.bdevWrite(desc, ch, l.iov, 2, 2, false, r.cb, 'w', l);
    assert.deepEqual([l.kept, l.consumedCalls], [1, 0]);
    l.reuse();
    for (const io of heldReads.splice(0)) inner.submit(io, undefined);
    pollIdle();
    // the lock's end resubmits the write before the compare-and-write's own completion is queued
    assert.deepEqual(r.done.map((d) => [d.tag, d.ok]).sort(), [
      ['caw', true],
      ['w', true],
    ]);
    desc.bdev.backend = inner;
    assert.ok(readBack(desc, ch, 0, 4).equals(Buffer.concat([written.subarray(0, 2 * BS), data])));
  } finally {
    desc.bdev.backend = inner;
  }
});

test('a write its checks fail neither keeps nor consumes (the owner decides)', async () => {
  const m = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 16, blockSize: BS }));
  const { desc, ch } = await open(m);
  const l = lender(pattern(BS, 1));
  const r = recorder();
  B.bdevWrite(desc, ch, l.iov, 16, 1, false, r.cb, 'w', l);
  assert.deepEqual([l.kept, l.consumedCalls], [0, 0]);
  pollIdle();
  assert.equal(r.done[0]?.ok, false);
});
