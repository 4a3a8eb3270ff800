// Numbers the target reports are true: framework_get_reactors' busy time is time spent
// working (an idle target is ~0 % busy), and the SMART / Health log counts what the
// controller's I/O queues did, on whichever poll group they sit, closed ones included.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController } from '../../src/nvme/index.ts';
import { decodeHealthLog, HEALTH_LOG_SIZE, LogPage } from '../../src/wire/log.ts';
import { type ChildTarget, startChildTarget, TEST_NQN, waitFor } from '../lib/index.ts';

let tgt: ChildTarget;
before(async () => {
  tgt = await startChildTarget();
});
after(async () => {
  await tgt.stop();
});

type Reactors = { tick_rate: number; reactors: Array<{ lcore: number; busy: number; idle: number }> };

test('framework_get_reactors: an idle target reports ~0 % busy on every reactor', async () => {
  const first = await tgt.call<Reactors>('framework_get_reactors');
  let last = first;
  // let at least half a second of reactor time pass (counted by the reactors themselves)
  await waitFor(
    'half a second of reactor time',
    async () => {
      last = await tgt.call<Reactors>('framework_get_reactors');
      return last.reactors.every((r, i) => {
        const f = first.reactors[i];
        return r.busy + r.idle - f.busy - f.idle >= 0.5 * last.tick_rate;
      });
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  assert.equal(last.reactors.length, 2);
  for (const [i, r] of last.reactors.entries()) {
    const f = first.reactors[i];
    const busy = r.busy - f.busy;
    const total = busy + r.idle - f.idle;
    // the RPCs of this test are the only work: far below 20 %
    assert.ok(busy / total < 0.2, `reactor ${r.lcore}: ${busy} busy of ${total} ticks`);
  }
});

test('SMART / Health log: data units, commands and busy time after known I/O, closed queues included', async () => {
  const ctrlr = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN });
  try {
    const health = async () =>
      decodeHealthLog(await ctrlr.getLogPage(LogPage.HEALTH, Buffer.alloc(HEALTH_LOG_SIZE)));
    const before = await health();
    assert.deepEqual(
      [
        before.data_units_read,
        before.data_units_written,
        before.host_read_commands,
        before.host_write_commands,
      ],
      [0, 0, 0, 0],
    );
    assert.equal(before.controller_busy_time, 0);
    await ctrlr.setNumQueues(2);
    // two queues: the target spreads connections over its two poll groups
    const writer = await ctrlr.createIoQpair(32);
    const reader = await ctrlr.createIoQpair(32);
    const chunk = Buffer.alloc(32 * 1024, 0x5a); // 64 blocks of 512 bytes
    for (let i = 0; i < 32; i++) await writer.writeAsync(1, i * 64, 64, chunk); // 1 MiB
    const back = Buffer.alloc(32 * 1024);
    for (let i = 0; i < 10; i++) await reader.readAsync(1, i * 64, 64, back); // 320 KiB
    // 1 MiB = 2048 units of 512 bytes -> 3 thousands (rounded up); 320 KiB = 640 -> 1
    const want = { read: 1, written: 3, reads: 10, writes: 32 };
    const now = await health();
    assert.deepEqual(
      [now.data_units_read, now.data_units_written, now.host_read_commands, now.host_write_commands],
      [want.read, want.written, want.reads, want.writes],
    );
    assert.equal(now.controller_busy_time, 1, 'busy for less than a minute: 1 (rounded up)');
    assert.equal(now.power_on_hours, 0);
    // a closed queue's work stays counted (on the poll group it lived on), and no read of the
    // page while it closes sees the count dip: every read until the target lists it gone
    writer.close();
    let after = now;
    let reads = 0;
    const queues = async () =>
      (
        await tgt.call<Array<{ cntlid: number; qid?: number }>>('nvmf_subsystem_get_qpairs', {
          nqn: TEST_NQN,
        })
      ).length;
    await waitFor(
      'the writer queue gone from nvmf_subsystem_get_qpairs, counts unchanged on every read',
      async () => {
        const listed = await queues();
        after = await health();
        reads++;
        assert.equal(
          after.host_write_commands,
          want.writes,
          `read ${reads} of the page while the queue closed`,
        );
        assert.equal(after.data_units_written, want.written);
        return listed === 2; // the admin queue and the reader
      },
      { timeoutMs: 10_000, intervalMs: 0, detail: () => JSON.stringify(after) },
    );
    await reader.readAsync(1, 0, 64, back);
    after = await health();
    assert.equal(after.host_read_commands, want.reads + 1);
    assert.equal(after.host_write_commands, want.writes);
  } finally {
    await ctrlr.disconnect().catch(() => {});
  }
  // a gone controller's counts are forgotten where its queues lived: the next one starts at 0
  await waitFor(
    'the controller gone',
    async () => (await tgt.call<unknown[]>('nvmf_subsystem_get_qpairs', { nqn: TEST_NQN })).length === 0,
  );
  const next = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN });
  try {
    await next.setNumQueues(2);
    const q1 = await next.createIoQpair(8);
    const q2 = await next.createIoQpair(8);
    q1.close();
    q2.close();
    await waitFor(
      'only the admin queue left',
      async () => (await tgt.call<unknown[]>('nvmf_subsystem_get_qpairs', { nqn: TEST_NQN })).length === 1,
    );
    const h = decodeHealthLog(await next.getLogPage(LogPage.HEALTH, Buffer.alloc(HEALTH_LOG_SIZE)));
    assert.deepEqual([h.host_read_commands, h.host_write_commands, h.data_units_written], [0, 0, 0]);
  } finally {
    await next.disconnect().catch(() => {});
  }
});
