import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as B from '../../../src/bdev/module.ts';
import {
  createMallocBdev,
  deleteMallocBdev,
  type MallocBackend,
  mallocModule,
} from '../../../src/modules/bdev/malloc/malloc.ts';
import {
  createNullBdev,
  deleteNullBdev,
  nullModule,
  resizeNullBdev,
} from '../../../src/modules/bdev/null/null.ts';
import { createPassthruBdev } from '../../../src/modules/bdev/passthru/passthru.ts';
import { pollIdle, quiesce, recorder, settle, uniq } from './harness.ts';

test('names, aliases and UUIDs are unique; lookup by UUID works', async () => {
  const name = uniq('Malloc');
  const uuid = crypto.randomUUID();
  await settle(createMallocBdev({ name, numBlocks: 16, blockSize: 512, uuid }));
  assert.equal(B.bdevGetRecord(uuid)?.desc.name, name);
  await assert.rejects(settle(createMallocBdev({ name, numBlocks: 16, blockSize: 512 })), /already exists/);
  await assert.rejects(
    settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 16, blockSize: 512, uuid })),
    /already exists/,
  );
  await assert.rejects(
    settle(createMallocBdev({ name: uniq('M'), numBlocks: 16, blockSize: 520 })),
    /block_size/,
  );
  await assert.rejects(
    settle(createMallocBdev({ name: uniq('M'), numBlocks: 0, blockSize: 512 })),
    /num_blocks/,
  );
  assert.throws(() => B.bdevOpen('nope', false, () => {}), /does not exist/);
});

test('claims are exclusive and released with the stacked bdev', async () => {
  const base = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 16, blockSize: 512 }));
  const pt = uniq('PT');
  await settle(createPassthruBdev({ baseBdevName: base, name: pt }));
  assert.equal(B.bdevGetRecord(base)?.claimedBy, `passthru:${pt}`);
  const d = B.bdevOpen(base, true, () => {});
  assert.throws(() => B.bdevClaim(d, 'nvmf'), /already claimed/);
  await assert.rejects(
    settle(createPassthruBdev({ baseBdevName: base, name: uniq('PT') })),
    /already claimed/,
  );
  B.bdevClose(d);
  await settle(B.bdevUnregister(pt));
  assert.equal(B.bdevGetRecord(base)?.claimedBy, null);
  const d2 = B.bdevOpen(base, true, () => {});
  B.bdevClaim(d2, 'nvmf');
  B.bdevReleaseClaim(d2);
  B.bdevClaim(d2, 'nvmf');
  assert.equal(B.bdevGetRecord(base)?.claimedBy, 'nvmf');
  B.bdevClose(d2);
  assert.equal(B.bdevGetRecord(base)?.claimedBy, null, 'closing the claiming descriptor releases the claim');
});

test('unregister tells open descriptors, waits for them to close; I/O after removal is aborted', async () => {
  const name = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 16, blockSize: 512 }));
  const events: string[] = [];
  const desc = B.bdevOpen(name, true, (ev) => events.push(ev));
  const ch = B.bdevGetIoChannel(desc);
  let finished = false;
  const p = deleteMallocBdev(name).then(() => {
    finished = true;
  });
  await quiesce();
  assert.deepEqual(events, ['remove']);
  assert.equal(finished, false, 'still waiting for the descriptor');
  const r = recorder();
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 0, 1, r.cb, 'late');
  pollIdle();
  assert.deepEqual([r.done[0].ok, r.done[0].sc], [false, 0x07]);
  assert.throws(() => B.bdevOpen(name, false, () => {}), /does not exist/);
  B.bdevPutIoChannel(ch);
  B.bdevClose(desc);
  await settle(p);
  assert.equal(finished, true);
  assert.equal(B.bdevGetRecord(name), undefined);
});

test('deleting a base removes the bdevs stacked on it first', async () => {
  const base = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 16, blockSize: 512 }));
  const pt = uniq('PT');
  await settle(createPassthruBdev({ baseBdevName: base, name: pt }));
  await settle(deleteMallocBdev(base));
  assert.equal(B.bdevGetRecord(pt), undefined);
  assert.equal(B.bdevGetRecord(base), undefined);
});

test('resize reaches open descriptors and widens the bounds', async () => {
  const name = uniq('Null');
  await settle(createNullBdev({ name, numBlocks: 2048, blockSize: 512 })); // 1 MiB
  const events: Array<[string, number]> = [];
  const desc = B.bdevOpen(name, true, (ev, b) => events.push([ev, b.numBlocks]));
  const ch = B.bdevGetIoChannel(desc);
  await assert.rejects(settle(resizeNullBdev(name, 0)), /smaller/);
  await settle(resizeNullBdev(name, 2));
  pollIdle();
  assert.deepEqual(events, [['resize', 4096]]);
  const r = recorder();
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 4000, 1, r.cb, null);
  pollIdle();
  assert.equal(r.done[0].ok, true);
});

test('a second delete while the first waits for descriptors joins it; both resolve', async () => {
  const name = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 16, blockSize: 512 }));
  const desc = B.bdevOpen(name, true, () => {});
  let first = false;
  let second = false;
  const p1 = B.bdevUnregister(name).then(() => {
    first = true;
  });
  const p2 = B.bdevUnregister(name).then(() => {
    second = true;
  });
  await quiesce();
  assert.deepEqual([first, second], [false, false]);
  B.bdevClose(desc);
  await settle(Promise.all([p1, p2]));
  assert.deepEqual([first, second], [true, true]);
  await assert.rejects(settle(B.bdevUnregister(name)), /does not exist/);
});

test("a module's lookup finds only its own bdevs, typed; another module's delete leaves them alone", async () => {
  const name = uniq('Malloc');
  const uuid = crypto.randomUUID();
  await settle(createMallocBdev({ name, numBlocks: 16, blockSize: 512, uuid }));
  const desc = B.bdevModuleDescriptor(mallocModule, uuid);
  assert.equal(desc?.name, name, 'found by UUID too');
  assert.ok(desc.params.memory instanceof SharedArrayBuffer);
  // page-aligned memory comes in whole 64 KiB pages (util/aligned-memory.ts); the bdev is the
  // first 16 blocks of it
  assert.equal(desc.params.memory.byteLength, 65536);
  const replica = B.bdevGetReplica(name);
  assert.ok(replica !== undefined, 'a replica in this realm');
  assert.equal((replica.backend as MallocBackend).mem.length, 16 * 512);
  assert.equal(B.bdevModuleDescriptor(nullModule, name), undefined);
  assert.equal(B.bdevModuleDescriptor(mallocModule, 'nope'), undefined);
  await assert.rejects(settle(deleteNullBdev(name)), (e: B.BdevError) => e.code === 'ENODEV');
  assert.equal(B.bdevGetRecord(name)?.desc.module, 'malloc', 'still registered');
  await settle(deleteMallocBdev(name));
  assert.equal(B.bdevGetRecord(name), undefined);
});
