// Load on loopback: 32 controllers x 4 I/O queues, queue depth 128 each, for a
// bounded time against a child-process target (its CPU apart). Every slot of
// every queue owns an LBA range and loops write -> read back -> compare, with
// callbacks (no promise per I/O), so every read is verified against what was
// written. Then every host disconnects and the leak counters return to zero.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController, type NvmeIoQpair } from '../../../src/nvme/index.ts';
import { ChildTarget, freePort } from '../../lib/index.ts';
import { simpleConfig } from './fault-config.ts';

const NQN = 'nqn.2016-06.io.spdk:load';
const CONTROLLERS = 32;
const QUEUES = 4;
const DEPTH = 128;
const RUN_MS = 10_000;
const BLOCK = 512;
const SLOT_BLOCKS = 8; // each slot owns 4 KiB
const NUM_BLOCKS = CONTROLLERS * QUEUES * DEPTH * SLOT_BLOCKS; // 64 MiB
let tgt: ChildTarget;
let port = 0;

before(async () => {
  port = await freePort();
  tgt = await ChildTarget.start({
    cores: '0x3',
    config: simpleConfig(port, NQN, [
      {
        method: 'bdev_malloc_create',
        params: { name: 'Malloc0', num_blocks: NUM_BLOCKS, block_size: BLOCK },
      },
    ]),
  });
});

after(async () => {
  await tgt?.dispose();
});

interface Totals {
  writes: number;
  verified: number;
  mismatches: number;
  errors: number;
  firstError: string;
}

/** One slot: write a generation-stamped pattern over its range, read it back, compare, repeat. */
class Slot {
  readonly q: NvmeIoQpair;
  readonly lba: number;
  readonly id: number;
  readonly expected = Buffer.alloc(SLOT_BLOCKS * BLOCK);
  readonly got = Buffer.alloc(SLOT_BLOCKS * BLOCK);
  readonly t: Totals;
  gen = 0;
  blocks = 1;
  running = true;
  done: () => void = () => {};
  constructor(q: NvmeIoQpair, lba: number, id: number, t: Totals) {
    this.q = q;
    this.lba = lba;
    this.id = id;
    this.t = t;
  }
  private readonly onWrite = (status: number): void => {
    if (status !== 0) {
      this.fail(`write status 0x${status.toString(16)}`);
      return;
    }
    this.t.writes++;
    this.got.fill(0);
    const buf = this.blocks === SLOT_BLOCKS ? this.got : this.got.subarray(0, this.blocks * BLOCK);
    if (!this.q.read(1, this.lba, this.blocks, buf, this.onRead)) this.fail('read refused');
  };
  private readonly onRead = (status: number): void => {
    if (status !== 0) {
      this.fail(`read status 0x${status.toString(16)}`);
      return;
    }
    const n = this.blocks * BLOCK;
    if (this.got.compare(this.expected, 0, n, 0, n) !== 0) this.t.mismatches++;
    else this.t.verified++;
    this.next();
  };
  private fail(what: string): void {
    this.t.errors++;
    if (this.t.firstError === '') this.t.firstError = `slot ${this.id}: ${what}`;
    this.running = false;
    this.done();
  }
  next(): void {
    if (!this.running) {
      this.done();
      return;
    }
    this.gen++;
    // 1..8 blocks, header (slot, generation) in every block, body filled with the generation
    this.blocks = 1 + ((this.gen * 7 + this.id) % SLOT_BLOCKS);
    const n = this.blocks * BLOCK;
    this.expected.fill(this.gen & 0xff, 0, n);
    for (let off = 0; off < n; off += BLOCK) {
      this.expected.writeUInt32LE(this.id, off);
      this.expected.writeUInt32LE(this.gen, off + 4);
    }
    const buf = n === this.expected.length ? this.expected : this.expected.subarray(0, n);
    if (!this.q.write(1, this.lba, this.blocks, buf, this.onWrite)) this.fail('write refused');
  }
}

test(`${CONTROLLERS} controllers x ${QUEUES} queues x QD ${DEPTH} for ${RUN_MS / 1000} s, every read verified`, async () => {
  const trid = { traddr: '127.0.0.1', trsvcid: String(port), subnqn: NQN };
  const ctrlrs: NvmeController[] = [];
  const queues: NvmeIoQpair[] = [];
  const t0 = Date.now();
  for (let i = 0; i < CONTROLLERS; i++) {
    const c = await NvmeController.connect(trid, { asyncEvents: false });
    ctrlrs.push(c);
    await c.setNumQueues(QUEUES);
    for (let k = 0; k < QUEUES; k++) queues.push(await c.createIoQpair(DEPTH));
  }
  const setupMs = Date.now() - t0;
  const stats = await tgt.pollGroups();
  assert.equal(
    stats.reduce((n, g) => n + g.current_io_qpairs, 0),
    CONTROLLERS * QUEUES,
  );
  assert.equal(
    stats.reduce((n, g) => n + g.controllers, 0),
    CONTROLLERS,
  );
  assert.ok(
    stats.every((g) => g.current_io_qpairs > 0),
    'queues spread over both poll groups',
  );

  const t: Totals = { writes: 0, verified: 0, mismatches: 0, errors: 0, firstError: '' };
  const slots: Slot[] = [];
  queues.forEach((q, qi) => {
    // a queue may take DEPTH - 1 commands at once (one SQ entry stays free)
    for (let s = 0; s < DEPTH - 1; s++) {
      const id = qi * DEPTH + s;
      slots.push(new Slot(q, id * SLOT_BLOCKS, id, t));
    }
  });
  let remaining = slots.length;
  const finished = new Promise<void>((resolve) => {
    for (const s of slots) {
      s.done = () => {
        s.done = () => {};
        if (--remaining === 0) resolve();
      };
    }
  });
  const start = Date.now();
  for (const s of slots) s.next();
  const timer = setTimeout(() => {
    for (const s of slots) s.running = false;
  }, RUN_MS);
  // bounded: a stuck command fails the test instead of hanging it
  let guard: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    finished.then(() => true),
    new Promise<boolean>((r) => {
      guard = setTimeout(() => r(false), RUN_MS + 30_000);
    }),
  ]);
  clearTimeout(timer);
  clearTimeout(guard);
  const elapsed = (Date.now() - start) / 1000;
  assert.ok(drained, `every slot finished (${remaining} still waiting)`);
  assert.equal(t.errors, 0, t.firstError);
  assert.equal(t.mismatches, 0, 'every read returned what was written');
  assert.ok(t.verified >= slots.length, `every slot verified at least once (${t.verified})`);
  console.log(
    `# load: ${CONTROLLERS}x${QUEUES} queues, QD ${DEPTH} (${slots.length} slots), setup ${setupMs} ms, ` +
      `${t.writes} writes, ${t.verified} reads verified, 0 mismatches in ${elapsed.toFixed(1)} s ` +
      `(${Math.round((t.writes + t.verified) / elapsed)} IOPS)`,
  );
  for (const c of ctrlrs) await c.disconnect();
  await tgt.settled(20_000);
});
