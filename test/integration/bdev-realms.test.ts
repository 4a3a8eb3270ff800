// The bdev layer on real reactors: two realms (main + a worker), replicas in
// both, I/O from threads on either reactor.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { percentileNs, startJob } from '../../bench/lib/bdev-job.ts';
import { type Reactors, startReactors } from '../../bench/lib/realms.ts';
import { remote } from '../../bench/lib/remote-ops.ts';
import { createSparseBdev } from '../../examples/sparse-bdev/sparse.ts';
import * as B from '../../src/bdev/module.ts';
import { createDelayBdev } from '../../src/modules/bdev/delay/delay.ts';
import { createMallocBdev, deleteMallocBdev } from '../../src/modules/bdev/malloc/malloc.ts';
import { spawnThread, type ThreadRef } from '../../src/thread/index.ts';
import { pattern } from '../lib/pattern.ts';
import { waitFor } from '../lib/wait.ts';

let reactors: Reactors;
let app: ThreadRef;
let t0: ThreadRef;
let t1: ThreadRef;

function spawn(name: string, reactor: number): Promise<ThreadRef> {
  return new Promise((resolve) => spawnThread(name, reactor, (r: ThreadRef) => resolve(r)));
}

before(async () => {
  reactors = await startReactors(2);
  app = reactors.realm.thread.ref;
  B.bdevSetRealmThreads([await spawn('bdev_realm_0', 0), await spawn('bdev_realm_1', 1)]);
  t0 = await spawn('io_0', 0);
  t1 = await spawn('io_1', 1);
});

after(async () => {
  await reactors.stop();
});

test('malloc: data written on reactor 1 is read on reactor 0 (one SharedArrayBuffer)', async () => {
  await createMallocBdev({ name: 'RMalloc0', numBlocks: 1024, blockSize: 4096 });
  const data = pattern(3 * 4096, 1);
  assert.deepEqual((await remote(t1, { op: 'write', bdev: 'RMalloc0', offset: 7, data }, app)).ok, true);
  const r = await remote(t0, { op: 'read', bdev: 'RMalloc0', offset: 7, blocks: 3 }, app);
  assert.deepEqual(Buffer.from(r.data!), Buffer.from(data));
  const back = await remote(t1, { op: 'read', bdev: 'RMalloc0', offset: 7, blocks: 3 }, app);
  assert.deepEqual(Buffer.from(back.data!), Buffer.from(data));
});

test('malloc: a read lent on reactor 1 holds a write to those blocks on reactor 0 until the lend ends', async () => {
  await createMallocBdev({ name: 'RMallocLend', numBlocks: 1024, blockSize: 4096 });
  const before = pattern(4 * 4096, 3);
  assert.equal(
    (await remote(t0, { op: 'write', bdev: 'RMallocLend', offset: 20, data: before }, app)).ok,
    true,
  );
  const lend = await remote(t1, { op: 'lend', bdev: 'RMallocLend', offset: 20, blocks: 4, key: 'l1' }, app);
  assert.equal(lend.ok && lend.zcopy, true, 'the worker realm was lent the memory');
  assert.deepEqual(Buffer.from(lend.data!), Buffer.from(before));
  const guard = new Int32Array(
    (B.bdevGetRecord('RMallocLend')!.desc.params as { lendGuard: SharedArrayBuffer }).lendGuard,
  );
  const after = pattern(4096, 4);
  let written = false;
  const write = remote(t0, { op: 'write', bdev: 'RMallocLend', offset: 22, data: after }, app).then((r) => {
    written = true;
    return r;
  });
  // the counts are the guard's shared memory: slot 0 is the writes waiting now
  await waitFor('the write to wait for the other realm’s lend', () => Atomics.load(guard, 0) === 1, {
    intervalMs: 0,
  });
  assert.equal(written, false);
  const copy = await remote(t1, { op: 'read', bdev: 'RMallocLend', offset: 22, blocks: 1 }, app);
  assert.deepEqual(
    Buffer.from(copy.data!),
    Buffer.from(before.subarray(2 * 4096, 3 * 4096)),
    'not written yet',
  );
  assert.equal((await remote(t1, { op: 'endLend', key: 'l1' }, app)).ok, true);
  assert.equal((await write).ok, true);
  assert.equal(Atomics.load(guard, 0), 0);
  const back = await remote(t1, { op: 'read', bdev: 'RMallocLend', offset: 22, blocks: 1 }, app);
  assert.deepEqual(Buffer.from(back.data!), Buffer.from(after));
  await deleteMallocBdev('RMallocLend');
});

test('sparse example: the worker realm reaches the Map in the home realm by messages', async () => {
  await createSparseBdev('RSparse0', 4096, 512);
  const data = pattern(1024, 2);
  assert.equal((await remote(t1, { op: 'write', bdev: 'RSparse0', offset: 100, data }, app)).ok, true);
  const r0 = await remote(t0, { op: 'read', bdev: 'RSparse0', offset: 100, blocks: 2 }, app);
  assert.deepEqual(Buffer.from(r0.data!), Buffer.from(data));
  const r1 = await remote(t1, { op: 'read', bdev: 'RSparse0', offset: 99, blocks: 4 }, app);
  assert.deepEqual(Buffer.from(r1.data!).subarray(512, 1536), Buffer.from(data));
  assert.ok(Buffer.from(r1.data!).subarray(0, 512).equals(Buffer.alloc(512)));
});

test('hot-remove reaches a descriptor in the other realm; delete waits for it to close', async () => {
  await createMallocBdev({ name: 'RMalloc1', numBlocks: 64, blockSize: 512 });
  const held = remote(t1, { op: 'holdUntilRemove', bdev: 'RMalloc1' }, app);
  await remote(t1, { op: 'read', bdev: 'RMalloc1', offset: 0, blocks: 1 }, app); // the hold is in place
  await deleteMallocBdev('RMalloc1');
  const r = await held;
  assert.deepEqual(r.events, ['remove']);
  assert.equal(B.bdevGetRecord('RMalloc1'), undefined);
  const gone = await remote(t1, { op: 'read', bdev: 'RMalloc1', offset: 0, blocks: 1 }, app);
  assert.match(gone.error ?? '', /does not exist/);
});

test('hot-remove with I/O in flight on the worker: every I/O completes with an error', async () => {
  await createMallocBdev({ name: 'RMalloc2', numBlocks: 64, blockSize: 512 });
  await createDelayBdev({
    baseBdevName: 'RMalloc2',
    name: 'RDelay2',
    avgReadLatency: 5_000_000,
    p99ReadLatency: 5_000_000,
    avgWriteLatency: 0,
    p99WriteLatency: 0,
  });
  const inflight = remote(t1, { op: 'inflightAcrossRemove', bdev: 'RDelay2', count: 8 }, app);
  // messages to t1 run in order: once this read is back, the 8 reads (5 s each) were submitted
  assert.equal((await remote(t1, { op: 'read', bdev: 'RMalloc2', offset: 0, blocks: 1 }, app)).ok, true);
  await B.bdevUnregister('RMalloc2');
  const r = await inflight;
  assert.equal(r.statuses!.length, 8);
  assert.ok(
    r.statuses!.every(([ok, sc]) => !ok && sc === 0x07),
    JSON.stringify(r.statuses),
  );
});

test('QoS is enforced per bdev across both reactors within ±10 %', async () => {
  await createMallocBdev({ name: 'RQos0', numBlocks: 1024, blockSize: 4096 });
  await B.bdevSetQos('RQos0', {
    rw_ios_per_sec: 6000,
    rw_mbytes_per_sec: 0,
    r_mbytes_per_sec: 0,
    w_mbytes_per_sec: 0,
  });
  const spec = { bdev: 'RQos0', ioSize: 4096, qd: 16, durationMs: 1500, rw: 'read' as const };
  const [a, b] = await Promise.all([startJob(t0, spec, app), startJob(t1, spec, app)]);
  const iops = (a.ios * 1000) / a.elapsedMs + (b.ios * 1000) / b.elapsedMs;
  assert.ok(iops > 5400 && iops < 6600, `measured ${iops} IOPS for a 6000 limit`);
  assert.ok(a.ios > 0 && b.ios > 0, 'both reactors got a share');
  assert.ok(percentileNs(a.hist, 0.5) > 0);
});

test('iostat sums the channels of both realms', async () => {
  await createMallocBdev({ name: 'RStat0', numBlocks: 256, blockSize: 512 });
  const spec = { bdev: 'RStat0', ioSize: 512, qd: 4, durationMs: 100, rw: 'write' as const };
  const [a, b] = await Promise.all([startJob(t0, spec, app), startJob(t1, spec, app)]);
  const s = new B.BdevIoStats();
  for (const x of await B.bdevCollectStats('RStat0')) s.add(x);
  assert.equal(s.numWriteOps, a.ios + b.ios);
  assert.equal(s.bytesWritten, (a.ios + b.ios) * 512);
});
