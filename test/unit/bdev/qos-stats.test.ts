import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as B from '../../../src/bdev/index.ts';
import { createMallocBdev } from '../../../src/modules/bdev/malloc/malloc.ts';
import { currentThread } from '../../../src/thread/index.ts';
import { createThread, on, pollOnce, quiesce, recorder, settle, uniq, until } from './harness.ts';

/** Keep `qd` reads of `blocks` in flight for `ms`; returns completed I/Os per second. */
async function measure(name: string, qd: number, blocks: number, ms: number): Promise<number> {
  const t = createThread(uniq('qos'));
  let completed = 0;
  let lastDone = 0;
  const start = performance.now();
  let stop = false;
  on(t, () => {
    const desc = B.bdevOpen(name, false, () => {});
    const ch = B.bdevGetIoChannel(desc);
    const buf = Buffer.alloc(blocks * desc.bdev.blockSize);
    const cb: B.BdevIoCb = (io) => {
      B.bdevFreeIo(io);
      completed++;
      lastDone = performance.now();
      if (!stop) B.bdevRead(desc, ch, [buf], 0, blocks, cb, null);
    };
    for (let i = 0; i < qd; i++) B.bdevRead(desc, ch, [buf], 0, blocks, cb, null);
  });
  while (performance.now() - start < ms) {
    pollOnce();
    await new Promise((r) => setImmediate(r));
  }
  stop = true;
  // up to the last completion: a descheduled test process must not count as time the limit left unused
  const rate = (completed * 1000) / (lastDone - start);
  for (let i = 0; i < 2000; i++) {
    pollOnce();
    await new Promise((r) => setImmediate(r));
  }
  return rate;
}

test('QoS IOPS limit holds within ±10 %', async () => {
  const name = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: 512 }));
  await settle(
    B.bdevSetQos(name, {
      rw_ios_per_sec: 4000,
      rw_mbytes_per_sec: 0,
      r_mbytes_per_sec: 0,
      w_mbytes_per_sec: 0,
    }),
  );
  const iops = await measure(name, 32, 1, 1000);
  assert.ok(iops > 3600 && iops < 4400, `measured ${iops} IOPS for a 4000 limit`);
});

test('QoS bandwidth limit holds within ±10 % and can be lifted', async () => {
  const name = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 1024, blockSize: 512 }));
  await settle(
    B.bdevSetQos(name, { rw_ios_per_sec: 0, rw_mbytes_per_sec: 0, r_mbytes_per_sec: 8, w_mbytes_per_sec: 0 }),
  );
  const iops = await measure(name, 8, 256, 1000); // 128 KiB reads
  const mbs = (iops * 128) / 1024;
  assert.ok(mbs > 7.2 && mbs < 8.8, `measured ${mbs} MiB/s for an 8 MiB/s limit`);
  await settle(
    B.bdevSetQos(name, { rw_ios_per_sec: 0, rw_mbytes_per_sec: 0, r_mbytes_per_sec: 0, w_mbytes_per_sec: 0 }),
  );
  const free = await measure(name, 8, 256, 300);
  assert.ok(free > iops * 2, `unlimited ${free} vs limited ${iops}`);
});

test('iostat counts operations, bytes and errors over all channels; reset clears', async () => {
  const name = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: 512 }));
  const r = recorder();
  for (const tn of ['s1', 's2']) {
    on(createThread(uniq(tn)), () => {
      const d = B.bdevOpen(name, true, () => {});
      const ch = B.bdevGetIoChannel(d);
      B.bdevWrite(d, ch, [Buffer.alloc(1024)], 0, 2, false, r.cb, 'w');
      B.bdevRead(d, ch, [Buffer.alloc(512)], 0, 1, r.cb, 'r');
      B.bdevUnmap(d, ch, [{ offsetBlocks: 0, numBlocks: 4 }], r.cb, 'u');
      B.bdevRead(d, ch, [Buffer.alloc(512)], 64, 1, r.cb, 'bad');
    });
  }
  await settle(B.bdevSetHistogram(name, true));
  const snaps = await settle(B.bdevCollectStats(name));
  const s = new B.BdevIoStats();
  for (const x of snaps) s.add(x);
  const j = B.iostatJson(name, s, 0);
  assert.equal(j.num_write_ops, 2);
  assert.equal(j.bytes_written, 2048);
  assert.equal(j.num_read_ops, 2);
  assert.equal(j.bytes_read, 1024);
  assert.equal(j.num_unmap_ops, 2);
  assert.equal(j.bytes_unmapped, 4096);
  assert.equal(j.io_error, 2);
  assert.ok((j.read_latency_ticks as number) > 0);
  assert.ok((j.min_read_latency_ticks as number) <= (j.max_read_latency_ticks as number));
  await settle(B.bdevCollectStats(name, true));
  const after = new B.BdevIoStats();
  for (const x of await settle(B.bdevCollectStats(name))) after.add(x);
  assert.equal(after.numReadOps + after.numWriteOps + after.ioErrors, 0);
});

test('lifting a limit lets the queued I/O through on its own thread', async () => {
  const name = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: 512 }));
  await settle(
    B.bdevSetQos(name, {
      rw_ios_per_sec: 10,
      rw_mbytes_per_sec: 0,
      r_mbytes_per_sec: 0,
      w_mbytes_per_sec: 0,
    }),
  );
  const t = createThread(uniq('lift'));
  const threads: string[] = [];
  on(t, () => {
    const d = B.bdevOpen(name, false, () => {});
    const ch = B.bdevGetIoChannel(d);
    for (let i = 0; i < 20; i++) {
      B.bdevRead(
        d,
        ch,
        [Buffer.alloc(512)],
        0,
        1,
        (io) => {
          B.bdevFreeIo(io);
          threads.push(currentThread().name);
        },
        null,
      );
    }
  });
  await quiesce();
  assert.ok(threads.length < 5, `${threads.length} done under a 10 IOPS limit`);
  await settle(
    B.bdevSetQos(name, { rw_ios_per_sec: 0, rw_mbytes_per_sec: 0, r_mbytes_per_sec: 0, w_mbytes_per_sec: 0 }),
  );
  await until(() => threads.length === 20);
  assert.equal(threads.length, 20);
  assert.ok(threads.every((n) => n === t.name));
});

test('I/O waiting for QoS when its descriptor closes ends aborted; the admitted one completes', async () => {
  const name = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: 512 }));
  await settle(
    B.bdevSetQos(name, {
      rw_ios_per_sec: 10,
      rw_mbytes_per_sec: 0,
      r_mbytes_per_sec: 0,
      w_mbytes_per_sec: 0,
    }),
  );
  const t = createThread(uniq('qclose'));
  const r = recorder();
  on(t, () => {
    const d = B.bdevOpen(name, false, () => {});
    const ch = B.bdevGetIoChannel(d);
    for (let i = 0; i < 20; i++) B.bdevRead(d, ch, [Buffer.alloc(512)], 0, 1, r.cb, i);
    // in the same turn: nothing queued can have been resubmitted yet
    B.bdevClose(d);
  });
  // lifting the limit lets the channel's poller hand every queued I/O back at once
  await settle(
    B.bdevSetQos(name, { rw_ios_per_sec: 0, rw_mbytes_per_sec: 0, r_mbytes_per_sec: 0, w_mbytes_per_sec: 0 }),
  );
  await until(() => r.done.length === 20);
  const admitted = r.done.filter((d) => d.ok);
  const aborted = r.done.filter((d) => !d.ok);
  assert.ok(admitted.length >= 1 && admitted.length < 5, `${admitted.length} admitted under a 10 IOPS limit`);
  assert.equal(admitted.length + aborted.length, 20);
  assert.ok(
    aborted.every((d) => d.sct === 0 && d.sc === 0x07),
    JSON.stringify(aborted.map((d) => [d.sct, d.sc])),
  );
});
