// Slow and failing bdevs seen from the host: injected failures arrive with
// their NVMe status (and in the controller's error log), a host that gives up
// on a slow command (its own timeout) gets a truthful Abort answer and can
// drop the queue without leaking the I/O the bdev still holds.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController, NvmeStatusError } from '../../../src/nvme/index.ts';
import { ChildTarget, freePort, pattern, waitFor } from '../../lib/index.ts';
import { tcpOf } from '../../lib/tcp-qpair-of.ts';
import { simpleConfig } from './fault-config.ts';

const NQN = 'nqn.2016-06.io.spdk:fault-bdev';
let tgt: ChildTarget;
let port = 0;

before(async () => {
  port = await freePort();
  tgt = await ChildTarget.start({
    cores: '0x1',
    config: simpleConfig(
      port,
      NQN,
      [
        { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 4096, block_size: 512 } },
        { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 4096, block_size: 512 } },
        { method: 'bdev_error_create', params: { base_name: 'Malloc0' } },
        {
          method: 'bdev_delay_create',
          params: {
            base_bdev_name: 'Malloc1',
            name: 'Slow1',
            avg_read_latency: 2_000_000,
            p99_read_latency: 2_000_000,
            avg_write_latency: 2_000_000,
            p99_write_latency: 2_000_000,
          },
        },
      ],
      {},
      ['EE_Malloc0', 'Slow1'],
    ),
  });
});

after(async () => {
  await tgt?.dispose();
});

const trid = () => ({ traddr: '127.0.0.1', trsvcid: String(port), subnqn: NQN });
const opts = { asyncEvents: false };

test('error bdev: injected failures reach the host with their status and land in the error log', async () => {
  const c = await NvmeController.connect(trid(), opts);
  try {
    await c.setNumQueues(1);
    const q = await c.createIoQpair(32);
    await tgt.call('bdev_error_inject_error', {
      name: 'EE_Malloc0',
      io_type: 'write',
      error_type: 'failure',
      num: 3,
    });
    const out = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        q.writeAsync(1, i, 1, Buffer.alloc(512, i)).then(
          () => null,
          (e) => e,
        ),
      ),
    );
    const failed = out.filter((e) => e !== null);
    assert.equal(failed.length, 3, 'exactly the injected count failed');
    for (const e of failed) {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x06, 'Internal Error');
    }
    // an NVMe status chosen by the injection comes through unchanged (media: unrecovered read error)
    await tgt.call('bdev_error_inject_error', {
      name: 'EE_Malloc0',
      io_type: 'read',
      error_type: 'nvme_failure',
      num: 1,
      nvme_sct: 2,
      nvme_sc: 0x81,
    });
    await assert.rejects(q.readAsync(1, 0, 1, Buffer.alloc(512)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x281);
      return true;
    });
    // the next read is fine again
    const r = Buffer.alloc(512);
    await q.readAsync(1, 5, 1, r);
    assert.equal(r[0], 5);
    // error log: the newest entry is the read failure (I/O errors reach the log by a message)
    let log: Buffer = Buffer.alloc(0);
    await waitFor('the read failure in the error log', async () => {
      log = await c.getLogPage(0x01, Buffer.alloc(64 * 4));
      return log.readBigUInt64LE(0) >= 4n;
    });
    assert.ok(log.readBigUInt64LE(0) >= 4n, 'error count covers the 4 failures');
    const status = log.readUInt16LE(12) >> 1;
    assert.equal(status, 0x281, 'newest error log entry carries the status');
    assert.equal(log.readUInt32LE(24), 1, 'nsid');
  } finally {
    await c.disconnect();
  }
  await tgt.settled();
});

test('slow bdev: a host timeout, a truthful Abort (not aborted: dw0 bit 0), then the queue dropped without a leak', async () => {
  const c = await NvmeController.connect(trid(), opts);
  try {
    await c.setNumQueues(1);
    const q = await c.createIoQpair(32);
    const t0 = Date.now();
    let slowDone = false;
    const slow = q.writeAsync(2, 0, 8, pattern(4096, 1)).then(() => {
      slowDone = true;
      return Date.now() - t0;
    });
    // the write reaches the bdev, which holds it for 2 s; the host gives up waiting (its own deadline)
    await waitFor('the write at the bdev', async () => (await tgt.total('pending_bdev_io')) === 1);
    assert.equal(slowDone, false, 'the 2 s write is still running');
    assert.equal(await tgt.total('pending_bdev_io'), 1);
    // Abort (sqid = the I/O queue, cid 0: the first command of a fresh queue)
    const abort = Buffer.alloc(64);
    abort[0] = 0x08;
    abort.writeUInt32LE((0 << 16) | q.qid, 40);
    const cpl = await c.adminCommand(abort, null, false);
    assert.equal(cpl.dw0 & 1, 1, 'the target says "not aborted": the bdev cannot take it back');
    // the command really was not aborted: it completes, successfully, after its latency
    const took = await slow;
    assert.ok(took >= 1500, `the write took its latency (${took} ms)`);
    // a second slow write, then the host gives up on the queue
    const again = q.writeAsync(2, 8, 8, pattern(4096, 2)).catch((e) => e);
    await waitFor('the second write at the bdev', async () => (await tgt.total('pending_bdev_io')) === 1);
    assert.equal(await tgt.total('pending_bdev_io'), 1);
    tcpOf(q.qpair).socket.resetAndDestroy();
    assert.ok((await again) instanceof Error, 'the host fails its own command');
    // the bdev still holds the write: the target keeps the queue until it completes, then frees all
    const g = await tgt.pollGroups();
    assert.ok(g[0].outstanding_requests >= 1, 'the request is still accounted for');
    await waitFor(
      'I/O queue released after the slow write completed',
      async () => (await tgt.total('current_io_qpairs')) === 0,
      { timeoutMs: 5000 },
    );
    assert.equal(await tgt.total('pending_bdev_io'), 0);
    // the write was not lost either: it completed on the bdev
    const q2 = await c.createIoQpair(8);
    const r = Buffer.alloc(4096);
    await q2.readAsync(2, 8, 8, r);
    assert.ok(r.equals(pattern(4096, 2)));
  } finally {
    await c.disconnect();
  }
  await tgt.settled();
});

test("the host library's I/O timeout fires on a slow bdev; the target releases the queue once the bdev completes", async () => {
  const c = await NvmeController.connect(trid(), { asyncEvents: false, ioTimeoutMs: 500 });
  try {
    await c.setNumQueues(1);
    const q = await c.createIoQpair(16);
    const t0 = Date.now();
    const err = await q.writeAsync(2, 64, 8, pattern(4096, 3)).then(
      () => null,
      (e: unknown) => e,
    );
    const waited = Date.now() - t0;
    assert.ok(err instanceof NvmeStatusError, `the write failed on the host: ${String(err)}`);
    assert.equal(err.sct, 3, 'path-related status');
    assert.equal(err.sc, 0x71, 'aborted by host');
    assert.ok(waited >= 400 && waited < 1900, `timed out after ${waited} ms, before the bdev's 2 s`);
    assert.equal(q.closed, true, 'the host drops a queue with a timed-out command');
    // the target holds the request until the bdev answers, then frees everything
    await waitFor(
      'the I/O queue was released',
      async () => (await tgt.total('current_io_qpairs')) === 0 && (await tgt.total('pending_bdev_io')) === 0,
      { timeoutMs: 6000 },
    );
  } finally {
    await c.disconnect();
  }
  await tgt.settled();
});
