// 1 000 connect/disconnect cycles (admin queue + 1 I/O queue + one verified
// write/read each) against a child-process target started with --expose-gc,
// so the heap figures nvmf_get_stats and thread_get_stats report are taken
// after a full GC. The heap and the libuv handle counts stay flat and every
// queue and controller is gone at the end.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController } from '../../../src/nvme/index.ts';
import { ChildTarget, freePort, pattern } from '../../lib/index.ts';
import { simpleConfig } from './fault-config.ts';

const NQN = 'nqn.2016-06.io.spdk:cycles';
const CYCLES = 1000;
const LANES = 4; // cycles run 4 at a time
const WARMUP = 100;
let tgt: ChildTarget;
let port = 0;

before(async () => {
  port = await freePort();
  tgt = await ChildTarget.start({
    cores: '0x3',
    nodeArgs: ['--expose-gc'],
    config: simpleConfig(port, NQN, [
      { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
    ]),
  });
});

after(async () => {
  await tgt?.dispose();
});

interface Sample {
  heap: number;
  handles: number;
  channels: number;
  pollers: number;
}

async function sample(): Promise<Sample> {
  await tgt.settled(15_000);
  const s = await tgt.call<{
    threads: { io_channels_count: number; pollers_count: number }[];
    realms: { memory: { heap_used: number }; handles: number }[];
  }>('thread_get_stats');
  return {
    heap: s.realms.reduce((n, r) => n + r.memory.heap_used, 0),
    handles: s.realms.reduce((n, r) => n + r.handles, 0),
    channels: s.threads.reduce((n, t) => n + t.io_channels_count, 0),
    pollers: s.threads.reduce((n, t) => n + t.pollers_count, 0),
  };
}

test(`${CYCLES} connect/disconnect cycles: heap and handles flat, nothing left connected`, async () => {
  const trid = { traddr: '127.0.0.1', trsvcid: String(port), subnqn: NQN };
  let done = 0;
  const cycle = async (lane: number) => {
    const c = await NvmeController.connect(trid, { kato: 5000, asyncEvents: false });
    try {
      await c.setNumQueues(1);
      const q = await c.createIoQpair(16);
      const lba = lane * 16;
      const data = pattern(4096, done);
      await q.writeAsync(1, lba, 8, data);
      const r = Buffer.alloc(4096);
      await q.readAsync(1, lba, 8, r);
      assert.ok(r.equals(data), `cycle ${done}: read back what was written`);
    } finally {
      await c.disconnect();
    }
    done++;
  };
  const run = async (n: number) => {
    const target = done + n;
    await Promise.all(
      Array.from({ length: LANES }, async (_, lane) => {
        while (done < target) await cycle(lane);
      }),
    );
  };
  const t0 = Date.now();
  await run(WARMUP);
  const base = await sample();
  await run(CYCLES - WARMUP);
  const end = await sample();
  const seconds = (Date.now() - t0) / 1000;
  assert.ok(done >= CYCLES, `${done} cycles`);
  const growth = end.heap - base.heap;
  assert.ok(
    growth < 20 * 1024 * 1024,
    `heap grew by ${(growth / 1048576).toFixed(1)} MiB over ${CYCLES - WARMUP} cycles`,
  );
  assert.ok(end.handles <= base.handles + 2, `handles ${base.handles} -> ${end.handles}`);
  assert.equal(end.channels, base.channels, 'io channels');
  assert.equal(end.pollers, base.pollers, 'pollers');
  const stats = await tgt.pollGroups();
  const ctrlrsMade = stats.reduce((n, g) => n + (g as unknown as { admin_qpairs: number }).admin_qpairs, 0);
  assert.ok(ctrlrsMade >= CYCLES, `the target saw ${ctrlrsMade} admin queues`);
  const list = await tgt.call<unknown[]>('nvmf_subsystem_get_controllers', { nqn: NQN });
  assert.deepEqual(list, []);
  console.log(
    `# cycles: ${done} in ${seconds.toFixed(1)} s; target heap ${(base.heap / 1048576).toFixed(1)} -> ` +
      `${(end.heap / 1048576).toFixed(1)} MiB (after GC), handles ${base.handles} -> ${end.handles}, ` +
      `channels ${base.channels} -> ${end.channels}, pollers ${base.pollers} -> ${end.pollers}`,
  );
});
