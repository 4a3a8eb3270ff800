// Random sizes and offsets over several queues with digests, checked against a model:
// exercises in-capsule vs R2T, direct placement across chunk splits (and reads straight
// into the command's buffer), slot reuse.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NvmeController } from '../../../src/nvme/index.ts';
import { startFakeTarget } from '../../lib/fake-core.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 0x1_0000_0000;
  };
}

for (const digests of [true, false])
  test(`random mixed I/O on 3 queues ${digests ? 'with' : 'without'} digests matches the model`, async () => {
    const granuleBlocks = 256; // 128 KiB
    const granulesPerQueue = 16;
    const target = await startFakeTarget(3 * granulesPerQueue * granuleBlocks);
    try {
      const ctrlr = await NvmeController.connect(
        {
          traddr: '127.0.0.1',
          trsvcid: String(target.port),
          subnqn: 'nqn.x',
          hdgst: digests,
          ddgst: digests,
        },
        { kato: 0 },
      );
      const model = Buffer.alloc(target.core.disk.length);
      const queues = await Promise.all([0, 1, 2].map(() => ctrlr.createIoQpair(32)));
      await Promise.all(
        queues.map(async (io, qi) => {
          const rand = rng(qi + 1);
          for (let round = 0; round < 12; round++) {
            // 8 writes in flight to distinct granules, then read them all back
            const granules = new Set<number>();
            while (granules.size < 8) granules.add(Math.floor(rand() * granulesPerQueue));
            const ops = [...granules].map((g) => {
              const blocks = 1 + Math.floor(rand() * granuleBlocks);
              const lba =
                (qi * granulesPerQueue + g) * granuleBlocks +
                Math.floor(rand() * (granuleBlocks - blocks + 1));
              const data = Buffer.alloc(blocks * 512);
              for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(Math.floor(rand() * 0xffffffff), i);
              data.copy(model, lba * 512);
              return { lba, blocks, data };
            });
            await Promise.all(ops.map((o) => io.writeAsync(1, o.lba, o.blocks, o.data)));
            await Promise.all(
              ops.map(async (o) => {
                const back = Buffer.alloc(o.blocks * 512);
                await io.readAsync(1, o.lba, o.blocks, back);
                assert.ok(
                  back.equals(model.subarray(o.lba * 512, (o.lba + o.blocks) * 512)),
                  `q${qi} lba ${o.lba}+${o.blocks}`,
                );
              }),
            );
          }
        }),
      );
      assert.ok(target.core.disk.equals(model));
      await ctrlr.disconnect();
    } finally {
      await target.close();
    }
  });
