import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as B from '../../../src/bdev/module.ts';
import { newLendGuardMemory } from '../../../src/modules/bdev/malloc/lend-guard.ts';
import { createMallocBdev, setLentWriteWaitMs } from '../../../src/modules/bdev/malloc/malloc.ts';
import { createNullBdev } from '../../../src/modules/bdev/null/null.ts';
import { currentThread } from '../../../src/thread/index.ts';
import { pattern } from '../../lib/pattern.ts';
import { app, createThread, on, pollIdle, recorder, settle, uniq, until } from './harness.ts';

async function malloc(blockSize = 512, numBlocks = 1024, optimalIoBoundary = 0) {
  const name = await settle(
    createMallocBdev({ name: uniq('Malloc'), numBlocks, blockSize, optimalIoBoundary }),
  );
  const desc = B.bdevOpen(name, true, () => {});
  const ch = B.bdevGetIoChannel(desc);
  return { name, desc, ch };
}

for (const bs of [512, 4096]) {
  test(`malloc ${bs}: write then read back through a scatter list`, async () => {
    const { desc, ch } = await malloc(bs);
    const r = recorder();
    const data = pattern(8 * bs, bs);
    B.bdevWrite(
      desc,
      ch,
      [data.subarray(0, 100), data.subarray(100, 3 * bs + 7), data.subarray(3 * bs + 7)],
      5,
      8,
      false,
      r.cb,
      'w',
    );
    pollIdle();
    const out = [Buffer.alloc(bs), Buffer.alloc(7 * bs)];
    B.bdevRead(desc, ch, out, 5, 8, r.cb, 'r');
    pollIdle();
    assert.deepEqual(
      r.done.map((d) => [d.tag, d.ok]),
      [
        ['w', true],
        ['r', true],
      ],
    );
    assert.ok(Buffer.concat(out).equals(data));
  });
}

test('zero-length I/O completes (no hang at a split boundary)', async () => {
  const { desc, ch } = await malloc(512, 1024, 16);
  const r = recorder();
  B.bdevRead(desc, ch, [], 32, 0, r.cb, 'r0');
  B.bdevWrite(desc, ch, [], 16, 0, false, r.cb, 'w0');
  B.bdevWriteZeroes(desc, ch, 48, 0, r.cb, 'wz0');
  pollIdle();
  assert.deepEqual(
    r.done.map((d) => [d.tag, d.ok]),
    [
      ['r0', true],
      ['w0', true],
      ['wz0', true],
    ],
  );
});

test('completion is never delivered inside the submit call', async () => {
  const { desc, ch } = await malloc();
  const r = recorder();
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 0, 1, r.cb, 1);
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 5000, 1, r.cb, 2); // fails the bounds check
  assert.equal(r.done.length, 0);
  pollIdle();
  assert.equal(r.done.length, 2);
});

test('bounds, short buffers and read-only descriptors get NVMe statuses', async () => {
  const { name, desc, ch } = await malloc(512, 64);
  const r = recorder();
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 64, 1, r.cb, 'past-end');
  B.bdevRead(desc, ch, [Buffer.alloc(1024)], 63, 2, r.cb, 'straddles-end');
  B.bdevWrite(desc, ch, [Buffer.alloc(100)], 0, 1, false, r.cb, 'short-buffer');
  B.bdevUnmap(
    desc,
    ch,
    [
      { offsetBlocks: 0, numBlocks: 1 },
      { offsetBlocks: 60, numBlocks: 10 },
    ],
    r.cb,
    'unmap-oob',
  );
  const ro = B.bdevOpen(name, false, () => {});
  B.bdevWrite(ro, ch, [Buffer.alloc(512)], 0, 1, false, r.cb, 'ro-write');
  pollIdle();
  const by = Object.fromEntries(r.done.map((d) => [d.tag, [d.ok, d.sct, d.sc]]));
  assert.deepEqual(by['past-end'], [false, 0, 0x80]);
  assert.deepEqual(by['straddles-end'], [false, 0, 0x80]);
  assert.deepEqual(by['short-buffer'], [false, 0, 0x04]);
  assert.deepEqual(by['unmap-oob'], [false, 0, 0x80]);
  assert.deepEqual(by['ro-write'], [false, 0, 0x02]);
  B.bdevClose(ro);
});

test('compare, compare-and-write (match and miscompare), write_zeroes, unmap, flush, reset', async () => {
  const { desc, ch } = await malloc();
  const r = recorder();
  const a = pattern(1024, 1);
  const b = pattern(1024, 2);
  B.bdevWrite(desc, ch, [a], 10, 2, false, r.cb, 'w');
  pollIdle();
  B.bdevCompare(desc, ch, [a], 10, 2, r.cb, 'cmp-equal');
  B.bdevCompare(desc, ch, [b], 10, 2, r.cb, 'cmp-differs');
  B.bdevCompareAndWrite(desc, ch, [b], [b], 10, 2, false, r.cb, 'caw-miscompare');
  B.bdevCompareAndWrite(desc, ch, [a], [b], 10, 2, false, r.cb, 'caw-ok');
  pollIdle();
  const out = Buffer.alloc(1024);
  B.bdevRead(desc, ch, [out], 10, 2, r.cb, 'r1');
  pollIdle();
  assert.ok(out.equals(b), 'compare-and-write wrote the new data');
  B.bdevWriteZeroes(desc, ch, 10, 1, r.cb, 'wz');
  B.bdevUnmap(desc, ch, [{ offsetBlocks: 11, numBlocks: 1 }], r.cb, 'unmap');
  B.bdevFlush(desc, ch, 0, 1024, r.cb, 'flush');
  B.bdevReset(desc, ch, r.cb, 'reset');
  pollIdle();
  B.bdevRead(desc, ch, [out], 10, 2, r.cb, 'r2');
  pollIdle();
  assert.ok(out.equals(Buffer.alloc(1024)), 'zeroed and unmapped blocks read as zeroes');
  const by = Object.fromEntries(r.done.map((d) => [d.tag, [d.ok, d.sct, d.sc]]));
  assert.deepEqual(by['cmp-equal'], [true, 0, 0]);
  assert.deepEqual(by['cmp-differs'], [false, 2, 0x85]);
  assert.deepEqual(by['caw-miscompare'], [false, 2, 0x85]);
  assert.deepEqual(by['caw-ok'], [true, 0, 0]);
  for (const t of ['wz', 'unmap', 'flush', 'reset']) assert.deepEqual(by[t], [true, 0, 0], t);
});

test('null: emulated compare, reads zeroes, unmap unsupported -> Invalid Opcode', async () => {
  const name = await settle(createNullBdev({ name: uniq('Null'), numBlocks: 256, blockSize: 4096 }));
  const desc = B.bdevOpen(name, true, () => {});
  const ch = B.bdevGetIoChannel(desc);
  const r = recorder();
  const buf = Buffer.alloc(8192, 0xee);
  B.bdevWrite(desc, ch, [pattern(8192, 3)], 0, 2, true, r.cb, 'w');
  B.bdevRead(desc, ch, [buf], 0, 2, r.cb, 'r');
  B.bdevCompare(desc, ch, [Buffer.alloc(4096)], 0, 1, r.cb, 'cmp-zero');
  B.bdevCompare(desc, ch, [Buffer.alloc(4096, 1)], 0, 1, r.cb, 'cmp-one');
  B.bdevUnmap(desc, ch, [{ offsetBlocks: 0, numBlocks: 1 }], r.cb, 'unmap');
  pollIdle();
  const by = Object.fromEntries(r.done.map((d) => [d.tag, [d.ok, d.sct, d.sc]]));
  assert.ok(buf.equals(Buffer.alloc(8192)));
  assert.deepEqual(by['w'], [true, 0, 0]);
  assert.deepEqual(by['cmp-zero'], [true, 0, 0]);
  assert.deepEqual(by['cmp-one'], [false, 2, 0x85]);
  assert.deepEqual(by['unmap'], [false, 0, 0x01]);
  assert.equal(desc.bdev.supportsIo(B.BdevIoType.UNMAP), false);
  assert.equal(desc.bdev.supportsIo(B.BdevIoType.COMPARE), true);
});

test('I/O larger than the boundary is split into children and reassembled', async () => {
  const { desc, ch } = await malloc(512, 4096, 16);
  const r = recorder();
  const data = pattern(100 * 512, 9);
  // starts mid-boundary, crosses 7 boundaries, buffers not aligned to the split points
  B.bdevWrite(
    desc,
    ch,
    [data.subarray(0, 1000), data.subarray(1000, 30000), data.subarray(30000)],
    13,
    100,
    false,
    r.cb,
    'w',
  );
  pollIdle();
  const out = Buffer.alloc(100 * 512);
  B.bdevRead(desc, ch, [out], 13, 100, r.cb, 'r');
  pollIdle();
  assert.deepEqual(
    r.done.map((d) => d.ok),
    [true, true],
  );
  assert.ok(out.equals(data));
  const before = B.ioPoolStats();
  B.bdevRead(desc, ch, [out], 13, 100, r.cb, 'r2');
  pollIdle();
  assert.equal(B.ioPoolStats().allocated, before.allocated, 'children come back to the pool');
});

test('sliceIov returns views covering exactly the range', () => {
  const a = Buffer.from([0, 1, 2, 3]);
  const b = Buffer.from([4, 5, 6]);
  const s = B.sliceIov([a, b], 2, 4);
  assert.deepEqual(Buffer.concat(s), Buffer.from([2, 3, 4, 5]));
  s[0][0] = 99;
  assert.equal(a[2], 99, 'views, not copies');
});

/** Completions kept with their ios (a lent read's io goes back through bdevZcopyEnd). */
function keeper() {
  const done = new Map<string, { io: B.BdevIo; ok: boolean }>();
  const cb: B.BdevIoCb = (io, ok, tag) => {
    done.set(tag as string, { io, ok });
  };
  return { cb, done };
}

function lentReadCounts(name: string): Record<string, number> {
  const info = B.bdevGetRecord(name)!;
  const p = info.desc.params as { lendGuard: SharedArrayBuffer };
  const words = new Int32Array(p.lendGuard);
  return { waiting: words[0], waited: words[1], expired: words[2] };
}

test('zero-copy read lends views of malloc memory; a write to lent blocks waits until the lend ends', async () => {
  // 512 KiB: the guard's chunks are 64 KiB (128 blocks)
  const { name, desc, ch } = await malloc();
  const k = keeper();
  const r = recorder();
  B.bdevWrite(desc, ch, [pattern(1024, 4)], 3, 2, false, r.cb, 'a');
  pollIdle();
  B.bdevReadZcopy(desc, ch, [Buffer.alloc(1024)], 3, 2, k.cb, 'lend');
  pollIdle();
  const lend = k.done.get('lend')!;
  assert.ok(lend.ok && lend.io.zcopy, 'malloc lends its memory');
  assert.ok(lend.io.iov[0].buffer instanceof SharedArrayBuffer);
  assert.ok(lend.io.iov[0].equals(pattern(1024, 4)));

  B.bdevWrite(desc, ch, [pattern(512, 5)], 4, 1, false, r.cb, 'b-on-lent');
  B.bdevWrite(desc, ch, [pattern(512, 6)], 200, 1, false, r.cb, 'c-elsewhere');
  pollIdle();
  assert.deepEqual(
    r.done.map((d) => d.tag),
    ['a', 'c-elsewhere'],
    'the write to another chunk completes, the one to the lent blocks waits',
  );
  assert.ok(lend.io.iov[0].equals(pattern(1024, 4)), 'the lent view is unchanged');
  assert.deepEqual(lentReadCounts(name), { waiting: 1, waited: 1, expired: 0 });

  // while that write is marked, a new read of its chunk is not lent: it copies the old data
  const copy = Buffer.alloc(1024);
  B.bdevReadZcopy(desc, ch, [copy], 3, 2, k.cb, 'copied');
  pollIdle();
  assert.equal(k.done.get('copied')!.io.zcopy, false);
  assert.ok(copy.equals(pattern(1024, 4)));
  B.bdevZcopyEnd(k.done.get('copied')!.io);

  B.bdevZcopyEnd(lend.io);
  pollIdle();
  assert.deepEqual(
    r.done.map((d) => [d.tag, d.ok]),
    [
      ['a', true],
      ['c-elsewhere', true],
      ['b-on-lent', true],
    ],
  );
  const out = Buffer.alloc(1024);
  B.bdevRead(desc, ch, [out], 3, 2, r.cb, 'check');
  pollIdle();
  assert.ok(out.equals(Buffer.concat([pattern(1024, 4).subarray(0, 512), pattern(512, 5)])));
  assert.deepEqual(lentReadCounts(name), { waiting: 0, waited: 1, expired: 0 });
});

test('a write waiting for a lend keeps its own copy of data lent for the submit call only', async () => {
  const { desc, ch } = await malloc();
  const k = keeper();
  const r = recorder();
  B.bdevReadZcopy(desc, ch, [Buffer.alloc(512)], 10, 1, k.cb, 'lend');
  pollIdle();
  const data = pattern(512, 9);
  let consumed = 0;
  B.bdevWrite(desc, ch, [data], 10, 1, false, r.cb, 'w', {
    keep: () => assert.fail('malloc copies the data itself'),
    consumed: () => consumed++,
  });
  assert.equal(consumed, 1, 'the owner may reuse its buffer once submit returned');
  data.fill(0xee); // the owner reuses it
  B.bdevZcopyEnd(k.done.get('lend')!.io);
  pollIdle();
  assert.deepEqual(
    r.done.map((d) => [d.tag, d.ok]),
    [['w', true]],
  );
  const out = Buffer.alloc(512);
  B.bdevRead(desc, ch, [out], 10, 1, r.cb, 'check');
  pollIdle();
  assert.ok(out.equals(pattern(512, 9)));
});

test('a write waits for a lend at most the bound, then goes ahead (counted)', async () => {
  const { name, desc, ch } = await malloc();
  const k = keeper();
  const r = recorder();
  setLentWriteWaitMs(30);
  try {
    B.bdevReadZcopy(desc, ch, [Buffer.alloc(512)], 600, 1, k.cb, 'stalled');
    pollIdle();
    B.bdevWriteZeroes(desc, ch, 600, 1, r.cb, 'wz');
    pollIdle();
    assert.equal(r.done.length, 0);
    await until(() => r.done.length === 1);
    assert.deepEqual(
      r.done.map((d) => [d.tag, d.ok]),
      [['wz', true]],
    );
    assert.deepEqual(lentReadCounts(name), { waiting: 0, waited: 1, expired: 1 });
  } finally {
    setLentWriteWaitMs(2000);
    B.bdevZcopyEnd(k.done.get('stalled')!.io);
  }
});

test('zero-copy write: a view of malloc memory filled in place; readers and writers of its chunks wait for the commit', async () => {
  const { desc, ch } = await malloc();
  const r = recorder();
  const k = keeper();
  B.bdevWrite(desc, ch, [pattern(1024, 7)], 10, 2, false, r.cb, 'old');
  pollIdle();
  const io = B.bdevZcopyStartWrite(desc, ch, 10, 2, k.cb, 'landed');
  assert.ok(io !== null, 'malloc lends its memory for the write');
  assert.ok(io.iov[0].buffer instanceof SharedArrayBuffer);
  assert.equal(io.iov[0].length, 1024);
  // a second landing, a lend and a read by copy of the same chunk: refused, refused, waits
  assert.equal(B.bdevZcopyStartWrite(desc, ch, 100, 1, k.cb, 'second'), null, 'one landing per chunk');
  const readBuf = Buffer.alloc(1024);
  B.bdevReadZcopy(desc, ch, [readBuf], 10, 2, k.cb, 'read');
  B.bdevWrite(desc, ch, [pattern(512, 8)], 11, 1, false, r.cb, 'after');
  // half the data in: nobody sees it yet
  pattern(1024, 9).copy(io.iov[0], 0, 0, 512);
  pollIdle();
  assert.equal(k.done.has('read'), false, 'the read waits for the landing');
  assert.deepEqual(
    r.done.map((d) => d.tag),
    ['old'],
    'the write waits for it too',
  );
  assert.equal(k.done.has('landed'), false, 'no completion before the commit');
  pattern(1024, 9).copy(io.iov[0], 512, 512, 1024);
  B.bdevZcopyEnd(io, true);
  pollIdle();
  assert.ok(k.done.get('landed')?.ok, 'the commit completes it through its callback');
  assert.equal(k.done.get('read')?.io.zcopy, false, 'the read was not lent the landing chunk');
  assert.ok(readBuf.equals(pattern(1024, 9)), 'the read saw the whole write');
  assert.deepEqual(
    r.done.map((d) => d.tag),
    ['old', 'after'],
  );
  B.bdevFreeIo(k.done.get('landed')!.io);
  B.bdevZcopyEnd(k.done.get('read')!.io);
  assert.equal(ch.ctx.stats.numWriteOps, 3, 'the landed write counts as a write');
  assert.equal(ch.ctx.outstanding, 0);

  // ended without commit: no callback, the chunk free again
  const dropped = B.bdevZcopyStartWrite(desc, ch, 10, 2, k.cb, 'dropped');
  assert.ok(dropped !== null);
  B.bdevZcopyEnd(dropped, false);
  pollIdle();
  assert.equal(k.done.has('dropped'), false, 'a landing ended without commit has no callback');
  assert.equal(ch.ctx.outstanding, 0, 'nothing left in flight');
  const again = B.bdevZcopyStartWrite(desc, ch, 10, 2, k.cb, 'again');
  assert.ok(again !== null, 'the chunk is free after the drop');
  B.bdevZcopyEnd(again, false);
  // refused: out of range, a read-only descriptor
  assert.equal(B.bdevZcopyStartWrite(desc, ch, 1023, 2, k.cb, 'x'), null);
  const ro = B.bdevOpen(desc.bdev.name, false, () => {});
  assert.equal(B.bdevZcopyStartWrite(ro, B.bdevGetIoChannel(ro), 0, 1, k.cb, 'x'), null);
});

test('a bdev that cannot lend reads into the caller buffer', async () => {
  const name = await settle(createNullBdev({ name: uniq('Null'), numBlocks: 64, blockSize: 512 }));
  const desc = B.bdevOpen(name, false, () => {});
  const ch = B.bdevGetIoChannel(desc);
  const k = keeper();
  const buf = Buffer.alloc(512, 1);
  B.bdevReadZcopy(desc, ch, [buf], 0, 1, k.cb, 'r');
  pollIdle();
  const r = k.done.get('r')!;
  assert.ok(r.ok);
  assert.equal(r.io.zcopy, false);
  assert.equal(r.io.iov[0], buf);
  B.bdevZcopyEnd(r.io);
});

test('channels are per thread and each delivers completions on its own thread', async () => {
  const { name } = await malloc();
  const t1 = createThread('io1');
  const seen: string[] = [];
  on(t1, () => {
    const d = B.bdevOpen(name, true, () => {});
    const ch = B.bdevGetIoChannel(d);
    B.bdevRead(
      d,
      ch,
      [Buffer.alloc(512)],
      0,
      1,
      (io) => {
        B.bdevFreeIo(io);
        seen.push(currentThread().name);
      },
      null,
    );
    assert.notEqual(
      ch.ctx,
      on(app, () => B.bdevGetIoChannel(B.bdevOpen(name, false, () => {})).ctx),
    );
  });
  pollIdle();
  assert.deepEqual(seen, ['io1']);
});

test('I/O above the module limit (maxTransferBlocks) is split, write_zeroes included', async () => {
  const name = uniq('Limited');
  await settle(
    B.bdevRegister(
      B.newBdevDescriptor({
        module: 'malloc',
        name,
        blockSize: 512,
        numBlocks: 256,
        maxTransferBlocks: 8,
        params: {
          memory: new SharedArrayBuffer(256 * 512),
          lendGuard: newLendGuardMemory(256 * 512),
          physicalBlockSize: 512,
        },
      }),
    ),
  );
  const desc = B.bdevOpen(name, true, () => {});
  const ch = B.bdevGetIoChannel(desc);
  // count what reaches the module
  const sizes: number[] = [];
  const backend = desc.bdev.backend;
  const submit = backend.submit.bind(backend);
  backend.submit = (io, ctx) => {
    sizes.push(io.numBlocks);
    submit(io, ctx);
  };
  const r = recorder();
  const data = pattern(30 * 512, 11);
  B.bdevWrite(desc, ch, [data], 3, 30, false, r.cb, 'w');
  pollIdle();
  assert.deepEqual(sizes, [8, 8, 8, 6]);
  const out = Buffer.alloc(30 * 512);
  B.bdevRead(desc, ch, [out], 3, 30, r.cb, 'r');
  pollIdle();
  assert.ok(out.equals(data));
  sizes.length = 0;
  B.bdevWriteZeroes(desc, ch, 0, 20, r.cb, 'wz');
  pollIdle();
  assert.deepEqual(sizes, [8, 8, 4]);
  assert.ok(r.done.every((d) => d.ok));
});
