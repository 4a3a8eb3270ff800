// The zcopy transport option on a real target process (two reactors) and real
// sockets: a write larger than the in-capsule buffer has its data read from
// the socket straight into the malloc bdev's memory. Readers of the same
// blocks on other queues, on both poll groups, run all the while: every block
// they get is one that was written whole (never half of one write and half of
// another, nor half written), and what stays at the end is the last write.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController } from '../../src/nvme/index.ts';
import { ChildTarget, pattern, TEST_BDEV, TEST_BLOCK_SIZE, TEST_NQN } from '../lib/index.ts';

const BS = TEST_BLOCK_SIZE;
/** blocks per write: 128 KiB, the largest transfer */
const RANGE = 131072 / BS;
/** ranges the writers go over, and writes per range */
const RANGES = 4;
const GENERATIONS = 24;

let target: ChildTarget | null = null;

before(async () => {
  // the default config (a malloc bdev as nsid 1 of cnode1) with the transport's zcopy on
  target = await ChildTarget.start({ cores: '0x3', transport: { zcopy: true }, startTimeoutMs: 20_000 });
});

after(async () => {
  await target?.stop();
});

/** Block `lba`'s content as generation `g` writes it (generation 0: the first fill). */
function blockOf(lba: number, g: number): Buffer {
  return pattern(BS, lba * 1000 + g);
}

function rangeOf(r: number, g: number): Buffer {
  return Buffer.concat(Array.from({ length: RANGE }, (_v, i) => blockOf(r * RANGE + i, g)));
}

/** The generation block `i` of range `r` holds in `data`, or -1 when it is no whole block written. */
function generationOf(data: Buffer, r: number, i: number): number {
  const block = data.subarray(i * BS, (i + 1) * BS);
  for (let g = 0; g <= GENERATIONS; g++) if (block.equals(blockOf(r * RANGE + i, g))) return g;
  return -1;
}

async function landedWrites(): Promise<number> {
  assert.ok(target);
  const [bdev] = (await target.rpc.call('bdev_get_bdevs', { name: TEST_BDEV })) as {
    driver_specific: { malloc: { zcopy_writes: { writes_landed: number; reads_waited: number } } };
  }[];
  return bdev.driver_specific.malloc.zcopy_writes.writes_landed;
}

test('zcopy: 128 KiB writes land in the bdev’s memory; concurrent readers on both reactors only ever see whole blocks', async () => {
  assert.ok(target);
  const [transport] = (await target.rpc.call('nvmf_get_transports')) as { zcopy: boolean }[];
  assert.equal(transport.zcopy, true);
  const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: target.port, subnqn: TEST_NQN });
  try {
    await c.setNumQueues(4);
    // I/O queues go round the two poll groups: writers and readers on both
    const qs = [
      await c.createIoQpair(32),
      await c.createIoQpair(32),
      await c.createIoQpair(32),
      await c.createIoQpair(32),
    ];
    for (let r = 0; r < RANGES; r++) await qs[0].writeAsync(1, r * RANGE, RANGE, rangeOf(r, 0));
    const landedBefore = await landedWrites();

    let writing = true;
    let readsChecked = 0;
    const seen: number[][] = Array.from({ length: RANGES }, () => []);
    const writer = async (q: number, r: number): Promise<void> => {
      for (let g = 1; g <= GENERATIONS; g++) await qs[q].writeAsync(1, r * RANGE, RANGE, rangeOf(r, g));
    };
    const reader = async (q: number): Promise<void> => {
      const buf = Buffer.alloc(RANGE * BS);
      for (let k = 0; writing || k < RANGES; k++) {
        const r = k % RANGES;
        await qs[q].readAsync(1, r * RANGE, RANGE, buf);
        for (let i = 0; i < RANGE; i++) {
          const g = generationOf(buf, r, i);
          assert.notEqual(g, -1, `range ${r} block ${i}: a whole block of one write`);
          seen[r].push(g);
        }
        readsChecked++;
      }
    };
    // two writers per queue on ranges of their own, on both poll groups; the first reader to
    // see a torn block fails the whole at once
    const writers = Promise.all([writer(0, 0), writer(1, 1), writer(0, 2), writer(1, 3)]).finally(() => {
      writing = false;
    });
    await Promise.all([writers, reader(2), reader(3), reader(2), reader(3)]);

    const landed = (await landedWrites()) - landedBefore;
    assert.ok(landed > 0, `writes landed in the bdev’s memory (${landed} of ${RANGES * GENERATIONS})`);
    assert.ok(readsChecked >= 4 * RANGES, `readers checked ${readsChecked} reads of 128 KiB`);
    const buf = Buffer.alloc(RANGE * BS);
    for (let r = 0; r < RANGES; r++) {
      await qs[1].readAsync(1, r * RANGE, RANGE, buf);
      assert.ok(buf.equals(rangeOf(r, GENERATIONS)), `range ${r} holds its last write`);
    }
  } finally {
    await c.disconnect();
  }
});
