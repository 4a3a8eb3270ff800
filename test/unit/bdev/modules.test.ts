import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as B from '../../../src/bdev/module.ts';
import { createAioBdev, deleteAioBdev, rescanAioBdev } from '../../../src/modules/bdev/aio/aio.ts';
import { createDelayBdev, updateDelayLatency } from '../../../src/modules/bdev/delay/delay.ts';
import { createErrorBdev, injectError } from '../../../src/modules/bdev/error/error.ts';
import { createMallocBdev, mallocModule } from '../../../src/modules/bdev/malloc/malloc.ts';
import { createPassthruBdev } from '../../../src/modules/bdev/passthru/passthru.ts';
import { pattern } from '../../lib/pattern.ts';
import { pollIdle, quiesce, recorder, settle, uniq, until } from './harness.ts';

async function openNew(name: string) {
  const desc = B.bdevOpen(name, true, () => {});
  return { desc, ch: B.bdevGetIoChannel(desc) };
}

test('passthru forwards every I/O type to its base', async () => {
  const base = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: 512 }));
  const pt = await settle(createPassthruBdev({ baseBdevName: base, name: uniq('PT') }));
  const { desc, ch } = await openNew(pt);
  const r = recorder();
  const a = pattern(1024, 5);
  B.bdevWrite(desc, ch, [a], 2, 2, true, r.cb, 'w');
  pollIdle();
  const out = Buffer.alloc(1024);
  B.bdevRead(desc, ch, [out], 2, 2, r.cb, 'r');
  B.bdevCompare(desc, ch, [Buffer.alloc(1024)], 2, 2, r.cb, 'cmp');
  B.bdevUnmap(desc, ch, [{ offsetBlocks: 2, numBlocks: 1 }], r.cb, 'unmap');
  B.bdevFlush(desc, ch, 0, 64, r.cb, 'flush');
  pollIdle();
  const by = Object.fromEntries(r.done.map((d) => [d.tag, [d.ok, d.sct, d.sc]]));
  assert.ok(out.equals(a));
  assert.deepEqual(by['cmp'], [false, 2, 0x85], 'miscompare travels up unchanged');
  assert.deepEqual(by['unmap'], [true, 0, 0]);
  // the data went to the base
  const base2 = await openNew(base);
  B.bdevRead(base2.desc, base2.ch, [out], 3, 1, r.cb, 'base');
  pollIdle();
  assert.ok(out.subarray(0, 512).equals(a.subarray(512)));
});

test('error bdev: failure, nvme_failure, corrupt_data and pending (aborted) by I/O type and count', async () => {
  const base = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: 512 }));
  const ee = await settle(createErrorBdev({ baseName: base }));
  assert.equal(ee, `EE_${base}`);
  const { desc, ch } = await openNew(ee);
  const r = recorder();
  const inj = (ioType: 'read' | 'write' | 'all' | 'clear', errorType: string, num: number, extra = {}) =>
    injectError(ee, {
      ioType,
      errorType: errorType as never,
      num,
      nvmeSct: 0,
      nvmeSc: 0,
      corruptOffset: 0,
      corruptValue: 0,
      ...extra,
    });
  inj('write', 'failure', 2);
  for (let i = 0; i < 3; i++) B.bdevWrite(desc, ch, [pattern(512, i)], 0, 1, false, r.cb, `w${i}`);
  pollIdle();
  assert.deepEqual(
    r.done.map((d) => d.ok),
    [false, false, true],
    'exactly num writes fail',
  );
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 0, 1, r.cb, 'r-unaffected');
  inj('read', 'nvme_failure', 1, { nvmeSct: 1, nvmeSc: 0x80 });
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 0, 1, r.cb, 'r-nvme');
  pollIdle();
  const by = () => Object.fromEntries(r.done.map((d) => [d.tag, [d.ok, d.sct, d.sc]]));
  assert.deepEqual(by()['r-unaffected'], [true, 0, 0]);
  assert.deepEqual(by()['r-nvme'], [false, 1, 0x80]);
  inj('read', 'corrupt_data', 1, { corruptOffset: 3, corruptValue: 0x0f });
  const out = Buffer.alloc(512);
  B.bdevRead(desc, ch, [out], 0, 1, r.cb, 'r-corrupt');
  pollIdle();
  assert.equal(out[3], pattern(512, 2)[3] ^ 0x0f);
  inj('all', 'pending', 1);
  B.bdevRead(desc, ch, [out], 0, 1, r.cb, 'pending');
  pollIdle();
  assert.equal(by()['pending'], undefined, 'held');
  B.bdevAbort(desc, ch, 'pending', r.cb, 'abort');
  pollIdle();
  assert.deepEqual(by()['pending'], [false, 0, 0x07]);
  assert.deepEqual(by()['abort'], [true, 0, 0]);
  inj('clear', 'failure', 0);
  B.bdevWrite(desc, ch, [out], 0, 1, false, r.cb, 'after-clear');
  pollIdle();
  assert.deepEqual(by()['after-clear'], [true, 0, 0]);
});

test('delay bdev holds completions for the configured latency; update takes effect; abort', async () => {
  const base = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: 512 }));
  const name = uniq('Delay');
  await settle(
    createDelayBdev({
      baseBdevName: base,
      name,
      avgReadLatency: 20000,
      p99ReadLatency: 20000,
      avgWriteLatency: 0,
      p99WriteLatency: 0,
    }),
  );
  const { desc, ch } = await openNew(name);
  const r = recorder();
  const t0 = performance.now();
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 0, 1, r.cb, 'r');
  await until(() => r.done.length === 1);
  const ms = performance.now() - t0;
  assert.ok(ms >= 19, `read took ${ms} ms, expected >= 20`);
  updateDelayLatency(name, 'avg_read', 500000);
  updateDelayLatency(name, 'p99_read', 500000);
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 0, 1, r.cb, 'slow');
  await quiesce();
  assert.equal(r.done.length, 1, 'still held');
  B.bdevAbort(desc, ch, 'slow', r.cb, 'abort');
  await until(() => r.done.length === 3);
  const by = Object.fromEntries(r.done.map((d) => [d.tag, [d.ok, d.sc]]));
  assert.deepEqual(by['slow'], [false, 0x07]);
  assert.deepEqual(by['abort'], [true, 0]);
  assert.throws(() => updateDelayLatency(base, 'avg_read', 1), /does not exist/);
  B.bdevRead(desc, ch, [Buffer.alloc(512)], 0, 1, r.cb, 'held');
  await quiesce(); // the read is at the delay bdev, held
  B.bdevReset(desc, ch, r.cb, 'reset');
  await until(() => r.done.length === 5);
  const after = Object.fromEntries(r.done.map((d) => [d.tag, [d.ok, d.sc]]));
  assert.deepEqual(after['held'], [false, 0x07], 'reset aborts held I/O');
  assert.deepEqual(after['reset'], [true, 0]);
});

test('hot-remove while I/O is in flight: the I/O completes with an error, nothing crashes', async () => {
  const base = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 64, blockSize: 512 }));
  const name = uniq('Delay');
  await settle(
    createDelayBdev({
      baseBdevName: base,
      name,
      avgReadLatency: 10_000_000,
      p99ReadLatency: 10_000_000,
      avgWriteLatency: 0,
      p99WriteLatency: 0,
    }),
  );
  const events: string[] = [];
  const desc = B.bdevOpen(name, true, (ev) => events.push(ev));
  const ch = B.bdevGetIoChannel(desc);
  const r = recorder();
  for (let i = 0; i < 4; i++) B.bdevRead(desc, ch, [Buffer.alloc(512)], i, 1, r.cb, i);
  const removal = B.bdevUnregister(base); // removes the delay bdev first
  await until(() => events.length === 1);
  // the owner reacts to 'remove' the way nvmf does: put the channel, close
  B.bdevPutIoChannel(ch);
  B.bdevClose(desc);
  await settle(removal);
  await until(() => r.done.length === 4);
  assert.ok(r.done.every((d) => !d.ok && d.sc === 0x07));
  assert.equal(B.bdevGetRecord(name), undefined);
});

test('aio: write+flush reach the file, read back, write_zeroes, rescan picks up growth', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nvmf-ts-aio-'));
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, Buffer.alloc(1 << 20));
  try {
    const name = await settle(createAioBdev({ name: uniq('AIO'), filename: file }));
    const events: string[] = [];
    const desc = B.bdevOpen(name, true, (ev) => events.push(ev));
    const ch = B.bdevGetIoChannel(desc);
    assert.equal(desc.bdev.numBlocks, 2048);
    const r = recorder();
    const data = pattern(8192, 6);
    B.bdevWrite(desc, ch, [data.subarray(0, 4096), data.subarray(4096)], 16, 16, false, r.cb, 'w');
    await until(() => r.done.length === 1);
    B.bdevFlush(desc, ch, 0, 2048, r.cb, 'flush');
    await until(() => r.done.length === 2);
    assert.ok(
      fs
        .readFileSync(file)
        .subarray(16 * 512, 32 * 512)
        .equals(data),
      'the bytes are in the file',
    );
    const out = Buffer.alloc(8192);
    B.bdevRead(desc, ch, [out], 16, 16, r.cb, 'r');
    await until(() => r.done.length === 3);
    assert.ok(out.equals(data));
    B.bdevWriteZeroes(desc, ch, 16, 8, r.cb, 'wz');
    B.bdevUnmap(desc, ch, [{ offsetBlocks: 24, numBlocks: 8 }], r.cb, 'unmap');
    await until(() => r.done.length === 5);
    assert.ok(
      fs
        .readFileSync(file)
        .subarray(16 * 512, 32 * 512)
        .equals(Buffer.alloc(8192)),
    );
    assert.ok(r.done.every((d) => d.ok));
    B.bdevRead(desc, ch, [out], 2047, 2, r.cb, 'oob');
    await until(() => r.done.length === 6);
    assert.equal(r.done[5].sc, 0x80);
    fs.truncateSync(file, 2 << 20);
    await settle(rescanAioBdev(name));
    pollIdle();
    assert.deepEqual(events, ['resize']);
    assert.equal(desc.bdev.numBlocks, 4096);
    B.bdevPutIoChannel(ch);
    B.bdevClose(desc);
    await settle(deleteAioBdev(name));
    await assert.rejects(
      settle(createAioBdev({ name: uniq('AIO'), filename: path.join(dir, 'missing') })),
      /cannot open/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('save_config entries carry SPDK parameter names', async () => {
  const uuid = crypto.randomUUID();
  const name = await settle(
    createMallocBdev({ name: uniq('Malloc'), numBlocks: 2048, blockSize: 4096, uuid }),
  );
  const c = mallocModule.writeConfigJson!(B.bdevModuleDescriptor(mallocModule, name)!);
  assert.deepEqual(c, {
    method: 'bdev_malloc_create',
    params: {
      name,
      num_blocks: 2048,
      block_size: 4096,
      physical_block_size: 4096,
      uuid,
      optimal_io_boundary: 0,
      md_size: 0,
      dif_type: 0,
      dif_is_head_of_md: false,
      dif_pi_format: 0,
      numa_id: -1,
    },
  });
});

test('emulated compare-and-write (aio) locks its range: a write submitted right after waits for it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nvmf-ts-caw-'));
  try {
    const file = path.join(dir, 'd.img');
    fs.writeFileSync(file, Buffer.alloc(64 * 4096));
    const name = await settle(createAioBdev({ name: uniq('AIO'), filename: file, blockSize: 4096 }));
    const { desc, ch } = await openNew(name);
    const r = recorder();
    for (let round = 0; round < 20; round++) {
      const old = pattern(4096, round);
      const mid = pattern(4096, round + 100);
      const last = pattern(4096, round + 200);
      B.bdevWrite(desc, ch, [old], 5, 1, false, r.cb, 'init');
      await until(() => r.done.length === 1);
      B.bdevCompareAndWrite(desc, ch, [old], [mid], 5, 1, false, r.cb, 'caw');
      B.bdevWrite(desc, ch, [last], 5, 1, false, r.cb, 'after');
      await until(() => r.done.length === 3);
      const by = Object.fromEntries(r.done.map((d) => [d.tag, d.ok]));
      assert.deepEqual(by, { init: true, caw: true, after: true });
      const out = Buffer.alloc(4096);
      B.bdevRead(desc, ch, [out], 5, 1, r.cb, 'check');
      await until(() => r.done.length === 4);
      assert.ok(out.equals(last), 'the later write landed after the compare-and-write');
      assert.equal(desc.bdev.lockedRanges.length, 0);
      r.done.length = 0;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
