// A host that vanishes mid-I/O: its sockets reset with commands in flight on a
// slow (delay) bdev, or a half-open host that stops reading and sending. The
// target tears the queues down, lets the bdev I/O complete and releases it,
// removes the controller (after KATO for the silent one) and leaks nothing:
// nvmf_get_stats counters back to zero, heap and handles flat over cycles.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type NvmeController as Ctrlr, NvmeController } from '../../../src/nvme/index.ts';
import { ChildTarget, freePort, pattern, type WaitOptions, waitFor } from '../../lib/index.ts';
import { tcpOf } from '../../lib/tcp-qpair-of.ts';
import { simpleConfig } from './fault-config.ts';

const NQN = 'nqn.2016-06.io.spdk:fault-host';
let tgt: ChildTarget;
let port = 0;

before(async () => {
  port = await freePort();
  // two poll groups: a controller's admin and I/O queues may sit on different ones
  tgt = await ChildTarget.start({
    cores: '0x3',
    nodeArgs: ['--expose-gc'],
    config: simpleConfig(
      port,
      NQN,
      [
        { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
        { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 8192, block_size: 512 } },
        {
          method: 'bdev_delay_create',
          params: {
            base_bdev_name: 'Malloc0',
            name: 'Delay0',
            avg_read_latency: 1_000_000,
            p99_read_latency: 1_000_000,
            avg_write_latency: 1_000_000,
            p99_write_latency: 1_000_000,
          },
        },
      ],
      {},
      ['Malloc1', 'Delay0'], // nsid 1 fast, nsid 2 slow
    ),
  });
});

after(async () => {
  await tgt?.dispose();
});

const trid = () => ({ traddr: '127.0.0.1', trsvcid: String(port), subnqn: NQN });

/** Stop the host library's keep-alive timer: the host goes silent. */
function silence(c: Ctrlr): void {
  const timer = (c as unknown as { keepAliveTimer: NodeJS.Timeout | null }).keepAliveTimer;
  if (timer) clearInterval(timer);
}

const logTail: WaitOptions = { detail: () => tgt.log().slice(-3000) };

/**
 * Connect, start `n` writes to the delay namespace (nsid 2) and wait until the target holds
 * `atLeast` of them at the bdev (or, on a slow machine, until they all completed already).
 */
async function busyHost(n: number, kato = 10_000, atLeast = n) {
  const c = await NvmeController.connect(trid(), { kato });
  await c.setNumQueues(1);
  const q = await c.createIoQpair(64);
  const results: Promise<unknown>[] = [];
  let finished = 0;
  for (let i = 0; i < n; i++)
    results.push(
      q.writeAsync(2, i * 8, 8, pattern(4096, i)).then(
        () => finished++,
        (e) => e,
      ),
    );
  await waitFor(
    'bdev I/O in flight',
    async () => (await tgt.total('pending_bdev_io')) >= atLeast || (atLeast < n && finished === n),
    logTail,
  );
  return { c, q, results };
}

/** Delay bdev latency for every I/O type, in µs. */
async function setLatency(us: number): Promise<void> {
  for (const latency_type of ['avg_read', 'avg_write', 'p99_read', 'p99_write'])
    await tgt.call('bdev_delay_update_latency', { delay_bdev_name: 'Delay0', latency_type, latency_us: us });
}

test('socket reset with writes in flight on a delay bdev: queues torn down, I/O released, nothing left', async () => {
  const { c, q, results } = await busyHost(32);
  assert.equal(await tgt.total('controllers'), 1);
  assert.equal(await tgt.total('current_io_qpairs'), 1);
  assert.ok(
    (await tgt.total('outstanding_requests')) >= 32,
    'the transport counts the commands the core holds',
  );
  // RST on both connections, no FIN, no Disconnect
  tcpOf(q.qpair).socket.resetAndDestroy();
  tcpOf(c.admin).socket.resetAndDestroy();
  const settled = await tgt.settled(10_000);
  assert.equal(
    settled.reduce((n, g) => n + g.controllers, 0),
    0,
  );
  // the host side saw its commands fail, none hang
  const out = await Promise.all(results);
  assert.equal(out.length, 32);
  const ctrlrs = await tgt.call<unknown[]>('nvmf_subsystem_get_controllers', { nqn: NQN });
  assert.deepEqual(ctrlrs, []);
  // the target still serves a new host with verified data
  const c2 = await NvmeController.connect(trid());
  try {
    await c2.setNumQueues(1);
    const q2 = await c2.createIoQpair(16);
    await q2.writeAsync(1, 100, 8, pattern(4096, 99));
    const r = Buffer.alloc(4096);
    await q2.readAsync(1, 100, 8, r);
    assert.ok(r.equals(pattern(4096, 99)));
  } finally {
    await c2.disconnect();
  }
  await tgt.settled();
});

test('half-open host (stops reading and sending, reads pending): removed after KATO, counters back to 0', async () => {
  const { c, q } = await busyHost(16, 1000);
  // large reads the host will never read back: the target's writes back up
  for (let i = 0; i < 16; i++) q.read(1, i * 256, 256, Buffer.alloc(256 * 512), () => {});
  silence(c);
  tcpOf(c.admin).socket.pause();
  tcpOf(q.qpair).socket.pause();
  const t0 = Date.now();
  await waitFor(
    'controller removed after keep-alive timeout',
    async () => (await tgt.total('controllers')) === 0,
    logTail,
  );
  const elapsed = Date.now() - t0;
  // the last keep-alive went out at most 500 ms before the silence began
  assert.ok(elapsed >= 300, `not removed before KATO (${elapsed} ms)`);
  assert.ok(elapsed < 8000, `removed within a few KATO periods (${elapsed} ms)`);
  await tgt.settled(10_000);
  assert.match(tgt.log(), /keep alive timeout/);
  tcpOf(c.admin).socket.destroy();
  tcpOf(q.qpair).socket.destroy();
});

test('an admin queue dropped with AERs outstanding still frees its controller', async () => {
  const c = await NvmeController.connect(trid(), { kato: 0 });
  for (let i = 0; i < 4; i++) {
    const aer = Buffer.alloc(64);
    aer[0] = 0x0c; // Asynchronous Event Request
    c.adminCommand(aer, null, false).catch(() => {});
  }
  await waitFor('AERs held', async () => (await tgt.total('outstanding_requests')) >= 4, logTail);
  tcpOf(c.admin).socket.destroy();
  await tgt.settled(5000);
});

test('a queue dropped with the first half of a fused command waiting still goes away', async () => {
  const c = await NvmeController.connect(trid(), { asyncEvents: false, kato: 0 });
  try {
    await c.setNumQueues(1);
    const q = await c.createIoQpair(16);
    const cmd = Buffer.alloc(64);
    cmd[0] = 0x05; // Compare
    cmd[1] = 0x01; // fused, first half
    cmd.writeUInt32LE(1, 4); // nsid
    cmd.writeUInt32LE(0, 48); // 1 block
    let answered = false;
    q.submit(cmd, Buffer.alloc(512), false, () => {
      answered = true;
    });
    await waitFor(
      'the target holds the first half',
      async () => (await tgt.total('outstanding_requests')) >= 1,
      logTail,
    );
    assert.equal(answered, false);
    tcpOf(q.qpair).socket.destroy();
    await waitFor('I/O queue gone', async () => (await tgt.total('current_io_qpairs')) === 0, {
      ...logTail,
      timeoutMs: 5000,
    });
    assert.equal(await tgt.total('outstanding_requests'), 0);
  } finally {
    await c.disconnect();
  }
  await tgt.settled();
});

test('repeated host losses: heap and handles flat', async () => {
  const sample = async () => {
    const gs = await tgt.settled();
    return {
      heap: gs.reduce((n, g) => n + g.memory.heap_used, 0),
      handles: gs.reduce((n, g) => n + g.handles, 0),
    };
  };
  // warm-up cycles (pools, JIT), then the baseline
  const cycle = async (i: number) => {
    const { c, q, results } = await busyHost(8, 10_000, 1);
    if (i % 2 === 0) {
      tcpOf(q.qpair).socket.resetAndDestroy();
      tcpOf(c.admin).socket.resetAndDestroy();
    } else {
      tcpOf(q.qpair).socket.destroy();
      tcpOf(c.admin).socket.destroy();
    }
    await Promise.all(results);
    await tgt.settled();
  };
  // shorter latency: 24 cycles each wait for it
  await setLatency(150_000);
  for (let i = 0; i < 4; i++) await cycle(i);
  const base = await sample();
  const cycles = 20;
  for (let i = 0; i < cycles; i++) await cycle(i);
  const end = await sample();
  assert.ok(
    end.heap - base.heap < 8 * 1024 * 1024,
    `heap grew by ${((end.heap - base.heap) / 1048576).toFixed(1)} MiB over ${cycles} host losses`,
  );
  assert.ok(end.handles <= base.handles + 2, `handles ${base.handles} -> ${end.handles}`);
  const threads = await tgt.call<{
    threads: { name: string; io_channels_count: number; pollers_count: number }[];
  }>('thread_get_stats');
  const pgs = threads.threads.filter((t) => t.name.startsWith('nvmf_tgt_poll_group'));
  assert.equal(pgs.length, 2, 'both poll group threads listed');
  for (const pg of pgs) {
    assert.ok(pg.io_channels_count <= 4, `poll group holds ${pg.io_channels_count} channels`);
    assert.ok(pg.pollers_count <= 4, `poll group runs ${pg.pollers_count} pollers`);
  }
  console.log(
    `# host-loss cycles: ${cycles}, heap ${(base.heap / 1048576).toFixed(1)} -> ${(end.heap / 1048576).toFixed(1)} MiB, handles ${base.handles} -> ${end.handles}`,
  );
});
