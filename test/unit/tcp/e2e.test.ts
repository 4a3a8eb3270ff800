import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController, type NvmeStatusError } from '../../../src/nvme/index.ts';
import { GenericStatus, MediaErrorStatus } from '../../../src/wire/nvme.ts';
import { BLOCK, type FakeTarget, startFakeTarget } from '../../lib/fake-core.ts';
import { pattern } from '../../lib/pattern.ts';
import { pollUntil } from '../../lib/wait.ts';

const SUBNQN = 'nqn.2016-06.io.spdk:cnode1';
let target: FakeTarget;

before(async () => {
  target = await startFakeTarget(4096);
});
after(async () => {
  await target.close();
});

for (const [hdgst, ddgst, sqflow] of [
  [false, false, false],
  [true, true, false],
  [true, false, true],
  [false, true, true],
] as const) {
  test(`connect, identify, I/O round trip (hdgst ${hdgst}, ddgst ${ddgst}, SQ flow control disabled ${sqflow})`, async () => {
    const ctrlr = await NvmeController.connect(
      { traddr: '127.0.0.1', trsvcid: String(target.port), subnqn: SUBNQN, hdgst, ddgst },
      { disableSqFlowControl: sqflow },
    );
    try {
      assert.equal(ctrlr.cntlid, 1);
      assert.ok(ctrlr.cdata);
      assert.equal(ctrlr.cdata.toString('latin1', 24, 28), 'FAKE');
      assert.equal(ctrlr.ioInCapsuleDataSize, 4096);
      assert.deepEqual(await ctrlr.setNumQueues(4), { sq: 4, cq: 4 });
      // the core returned 8 bytes for a 4096-byte read: the host still gets 4096, zero-filled
      const list = await ctrlr.identify(2, 0, Buffer.alloc(4096, 0xee));
      assert.equal(list.readUInt32LE(0), 1);
      assert.ok(list.subarray(4).equals(Buffer.alloc(4092)));
      await ctrlr.keepAlive();
      const io = await ctrlr.createIoQpair(64);
      // in-capsule write (4 KiB), transport-SGL write (64 KiB, R2T) and max-size read (128 KiB)
      const small = pattern(4096, 1);
      await io.writeAsync(1, 8, 8, small);
      const big = pattern(65536, 2);
      await io.writeAsync(1, 100, 128, big);
      const back = Buffer.alloc(65536);
      await io.readAsync(1, 100, 128, back);
      assert.ok(back.equals(big));
      const smallBack = Buffer.alloc(4096);
      await io.readAsync(1, 8, 8, smallBack);
      assert.ok(smallBack.equals(small));
      const max = Buffer.alloc(131072);
      await io.readAsync(1, 0, 256, max);
      assert.ok(max.subarray(8 * BLOCK, 16 * BLOCK).equals(small));
      // compare: equal, then a miscompare
      await io.compareAsync(1, 100, 128, big);
      await assert.rejects(io.compareAsync(1, 8, 8, big.subarray(0, 4096)), (e: NvmeStatusError) => {
        assert.equal(e.sct, 2);
        assert.equal(e.sc, MediaErrorStatus.COMPARE_FAILURE);
        return true;
      });
      await io.flushAsync(1);
      await io.writeZeroesAsync(1, 8, 8);
      await io.readAsync(1, 8, 8, smallBack);
      assert.ok(smallBack.equals(Buffer.alloc(4096)));
      await io.dsmAsync(1, [[100, 8]]);
      await io.readAsync(1, 100, 8, smallBack);
      assert.ok(smallBack.equals(Buffer.alloc(4096)));
      await assert.rejects(io.readAsync(1, 4095, 2, Buffer.alloc(1024)), (e: NvmeStatusError) => {
        assert.equal(e.sc, GenericStatus.LBA_OUT_OF_RANGE);
        assert.equal(e.dnr, true);
        return true;
      });
      // a burst of 64 concurrent writes then reads, verified
      const writes = [];
      for (let i = 0; i < 64; i++) writes.push(io.writeAsync(1, 1000 + i * 16, 16, pattern(8192, i)));
      await Promise.all(writes);
      const reads = [];
      for (let i = 0; i < 64; i++) {
        const b = Buffer.alloc(8192);
        reads.push(
          io
            .readAsync(1, 1000 + i * 16, 16, b)
            .then(() => assert.ok(b.equals(pattern(8192, i)), `block ${i}`)),
        );
      }
      await Promise.all(reads);
    } finally {
      await ctrlr.disconnect();
    }
  });
}

test('qpairs report disconnection once after the host goes away', async () => {
  const before = target.core.disconnected.length;
  const ctrlr = await NvmeController.connect({
    traddr: '127.0.0.1',
    trsvcid: String(target.port),
    subnqn: SUBNQN,
  });
  const io = await ctrlr.createIoQpair(8);
  await io.writeAsync(1, 0, 1, Buffer.alloc(512, 1));
  await ctrlr.disconnect();
  await pollUntil(() => target.core.disconnected.length >= before + 2, { timeoutMs: 1000, intervalMs: 10 });
  assert.equal(target.core.disconnected.length, before + 2);
  assert.equal(new Set(target.core.disconnected).size, target.core.disconnected.length);
});
