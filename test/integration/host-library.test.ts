// The host library against our own target (a child process): connect by
// transport ID string, namespaces, every I/O command verified on malloc and
// null bdevs with and without digests, MDTS splitting (the transport's
// max_io_size is 16 KiB), queue-full behaviour, I/O timeout, AER delivery
// with the namespace map refreshed, disconnect with outstanding I/O.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import {
  type AsyncEvent,
  AsyncEventType,
  NoticeInfo,
  NvmeController,
  type NvmeIoQpair,
  NvmeQueueError,
  NvmeStatusError,
} from '../../src/nvme/index.ts';
import { ChildTarget, freePort, listenerEntry, pattern, waitFor } from '../lib/index.ts';
import { tcpOf } from '../lib/tcp-qpair-of.ts';

const CNODE1 = 'nqn.2016-06.io.spdk:cnode1';
const DISC = 'nqn.2014-08.org.nvmexpress.discovery';
const MAX_IO = 16384;
const ABORTED_SQ_DELETION = 0x08;

// the host identity files go to a temp dir, never to the user's config
const configHome = mkdtempSync(join(tmpdir(), 'nvmf-ts-xdg-'));
process.env.XDG_CONFIG_HOME = configHome;

let target: ChildTarget;
let port = 0;

before(async () => {
  port = await freePort();
  target = await ChildTarget.start({
    cores: '0x1',
    config: {
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 16384, block_size: 512 } },
            { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 2048, block_size: 4096 } },
            { method: 'bdev_null_create', params: { name: 'Null0', num_blocks: 262144, block_size: 512 } },
            {
              method: 'bdev_malloc_create',
              params: { name: 'MallocSlowBase', num_blocks: 1024, block_size: 512 },
            },
            {
              method: 'bdev_delay_create',
              params: {
                base_bdev_name: 'MallocSlowBase',
                name: 'Slow0',
                avg_read_latency: 3_000_000,
                p99_read_latency: 3_000_000,
                avg_write_latency: 3_000_000,
                p99_write_latency: 3_000_000,
              },
            },
          ],
        },
        {
          subsystem: 'nvmf',
          config: [
            {
              method: 'nvmf_create_transport',
              params: {
                trtype: 'TCP',
                max_io_size: MAX_IO,
                io_unit_size: MAX_IO,
                in_capsule_data_size: 4096,
              },
            },
            { method: 'nvmf_create_subsystem', params: { nqn: CNODE1, allow_any_host: true } },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: CNODE1, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
            },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: CNODE1, namespace: { nsid: 2, bdev_name: 'Malloc1' } },
            },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: CNODE1, namespace: { nsid: 3, bdev_name: 'Null0' } },
            },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: CNODE1, namespace: { nsid: 4, bdev_name: 'Slow0' } },
            },
            listenerEntry(DISC, port),
            listenerEntry(CNODE1, port),
          ],
        },
      ],
    },
  });
});

after(async () => {
  await target?.stop();
  rmSync(configHome, { recursive: true, force: true });
});

function tridString(extra = ''): string {
  return `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${CNODE1}${extra}`;
}

/** The callback-API submissions of the running test, with how often each callback ran. */
const callbacks: Array<{ calls: number }> = [];

// checked once the test is over (its later commands, its disconnect): a callback runs once
afterEach(() => {
  const again = callbacks.filter((c) => c.calls !== 1).length;
  callbacks.length = 0;
  assert.equal(again, 0, 'a callback ran more than once');
});

/** Run a callback-API submission; resolve its status (afterEach checks it is not called again). */
function viaCallback(start: (cb: (status: number) => void) => boolean): Promise<number> {
  const count = { calls: 0 };
  callbacks.push(count);
  return new Promise((resolve, reject) => {
    const ok = start((status) => {
      if (++count.calls === 1) resolve(status);
    });
    if (!ok) {
      count.calls = 1;
      reject(new Error('submit refused'));
    }
  });
}

test('connect by string: identify, namespaces map, granted queues, MDTS, host identity kept', async () => {
  const c = await NvmeController.connect(tridString(), { kato: 5000 });
  try {
    assert.ok(c.cdata);
    assert.equal(c.isDiscovery, false);
    assert.ok(c.ioQueuesGranted >= 1, 'Set Features Number of Queues at connect');
    assert.equal(c.maxTransferSize, MAX_IO, 'MDTS in CAP.MPSMIN pages');
    assert.deepEqual([...c.namespaces.keys()].sort(), [1, 2, 3, 4]);
    const ns1 = c.namespaces.get(1);
    assert.equal(ns1?.nsze, 16384);
    assert.equal(ns1?.blockSize, 512);
    assert.equal(ns1?.lbads, 9);
    assert.equal(ns1?.numBlocks, 16384);
    assert.equal(c.namespaces.get(2)?.blockSize, 4096);
    assert.equal(c.namespaces.get(2)?.nsze, 2048);
    assert.equal(c.namespaces.get(3)?.nsze, 262144);
    assert.ok(ns1?.uuid || ns1?.nguid, 'a namespace identifier (UUID or NGUID)');
    // the host NQN the target sees is the default identity, the same on every connect
    const ctrlrs = (await target.call('nvmf_subsystem_get_controllers', { nqn: CNODE1 })) as {
      hostnqn: string;
    }[];
    assert.equal(ctrlrs.length, 1);
    assert.equal(ctrlrs[0].hostnqn, c.trid.hostnqn);
    assert.match(c.trid.hostnqn ?? '', /^nqn\.2014-08\.org\.nvmexpress:uuid:[0-9a-f-]{36}$/);
    const again = await NvmeController.connect(tridString(), { kato: 0, asyncEvents: false });
    assert.equal(again.trid.hostnqn, c.trid.hostnqn);
    assert.equal(again.trid.hostid, c.trid.hostid);
    await again.disconnect();
  } finally {
    await c.disconnect();
  }
});

async function everyCommand(io: NvmeIoQpair, nsid: number, blockSize: number): Promise<void> {
  const blocks = 8192 / blockSize;
  // write / read by callback (in-capsule: 4 KiB; R2T: 8 KiB and up)
  for (const bytes of [blockSize, 4096, 8192, 65536]) {
    const n = bytes / blockSize;
    const data = pattern(bytes, bytes + nsid);
    assert.equal(await viaCallback((cb) => io.write(nsid, 16, n, data, cb)), 0, `write ${bytes}`);
    const back = Buffer.alloc(bytes);
    assert.equal(await viaCallback((cb) => io.read(nsid, 16, n, back, cb)), 0, `read ${bytes}`);
    assert.ok(back.equals(data), `${bytes} bytes read back`);
  }
  // FUA write and compare by promise
  const data = pattern(8192, 99);
  await io.writeAsync(nsid, 200, blocks, data, true);
  await io.compareAsync(nsid, 200, blocks, data);
  await assert.rejects(io.compareAsync(nsid, 200, blocks, pattern(8192, 98)), (e: unknown) => {
    assert.ok(e instanceof NvmeStatusError);
    assert.equal(e.status, 0x285, 'compare failure');
    return true;
  });
  await io.flushAsync(nsid);
  assert.equal(await viaCallback((cb) => io.flush(nsid, cb)), 0);
  // write zeroes on the first half, deallocate the second half
  await io.writeZeroesAsync(nsid, 200, blocks / 2);
  const back = Buffer.alloc(8192);
  await io.readAsync(nsid, 200, blocks, back);
  assert.ok(back.subarray(0, 4096).equals(Buffer.alloc(4096)), 'zeroed');
  assert.ok(back.subarray(4096).equals(data.subarray(4096)), 'rest untouched');
  assert.equal(await viaCallback((cb) => io.dsm(nsid, [[200 + blocks / 2, blocks / 2]], cb)), 0);
  await io.readAsync(nsid, 200, blocks, back);
  assert.ok(back.equals(Buffer.alloc(8192)), 'deallocated blocks read zeroes');
  // out of range
  const nsze = nsid === 1 ? 16384 : 2048;
  await assert.rejects(io.readAsync(nsid, nsze - 1, 2, Buffer.alloc(2 * blockSize)), (e: unknown) => {
    assert.ok(e instanceof NvmeStatusError);
    assert.equal(e.status, 0x80, 'LBA out of range');
    return true;
  });
}

for (const digests of [false, true]) {
  test(`every I/O command, data verified, malloc 512/4096 and null (digests ${digests})`, async () => {
    const c = await NvmeController.connect(tridString(digests ? ' hdgst:true ddgst:true' : ''));
    try {
      const [q1, q2] = await c.createIoQpairs(2, 32);
      assert.equal(tcpOf(q1.qpair).headerDigest, digests);
      assert.equal(tcpOf(q2.qpair).dataDigest, digests);
      await everyCommand(q1, 1, 512);
      await everyCommand(q2, 2, 4096);
      // null bdev: writes are accepted, reads return zeroes (the buffer is overwritten)
      await q1.writeAsync(3, 0, 64, pattern(32768, 1));
      const nb = Buffer.alloc(32768, 0xee);
      await q1.readAsync(3, 0, 64, nb);
      assert.ok(nb.equals(Buffer.alloc(32768)));
      await q1.writeZeroesAsync(3, 0, 8);
      await q1.dsmAsync(3, [[0, 8]]);
      await q1.flushAsync(3);
    } finally {
      await c.disconnect();
    }
  });
}

test('MDTS: a large read/write is split transparently; one callback; first error wins', async () => {
  const c = await NvmeController.connect(tridString());
  try {
    const q = await c.createIoQpair(64);
    assert.equal(q.maxTransferSize, MAX_IO);
    const before = (await target.call('nvmf_get_stats')) as {
      poll_groups: { completed_nvme_io: number }[];
    };
    const big = pattern(256 * 1024, 7); // 16 commands of 16 KiB
    assert.equal(await viaCallback((cb) => q.write(1, 1000, 512, big, cb)), 0);
    assert.equal(q.outstanding, 0);
    const back = Buffer.alloc(big.length);
    assert.equal(await viaCallback((cb) => q.read(1, 1000, 512, back, cb)), 0);
    assert.ok(back.equals(big), 'split read returns what the split write wrote');
    await q.compareAsync(1, 1000, 512, big);
    const after = (await target.call('nvmf_get_stats')) as {
      poll_groups: { completed_nvme_io: number }[];
    };
    const done = (s: typeof before) => s.poll_groups.reduce((a, g) => a + g.completed_nvme_io, 0);
    assert.equal(done(after) - done(before), 48, 'three transfers of 16 commands each');
    // 4 KiB blocks: 64 KiB is 4 commands of 4 blocks
    const b4 = pattern(65536, 3);
    await q.writeAsync(2, 100, 16, b4);
    const r4 = Buffer.alloc(65536);
    await q.readAsync(2, 100, 16, r4);
    assert.ok(r4.equals(b4));
    // Write Zeroes moves no data but NLB is 16 bits: 150000 blocks are three commands
    const mid = (await target.call('nvmf_get_stats')) as typeof before;
    assert.equal(await viaCallback((cb) => q.writeZeroes(3, 0, 150000, cb)), 0);
    const end = (await target.call('nvmf_get_stats')) as typeof before;
    assert.equal(done(end) - done(mid), 3, 'split at 65536 blocks');
    // a transfer whose last part is out of range: one error, LBA out of range
    const status = await viaCallback((cb) => q.read(1, 16384 - 40, 64, Buffer.alloc(32768), cb));
    assert.equal(status, 0x80);
  } finally {
    await c.disconnect();
  }
});

test('queue depth: submit returns false when full; promises reject with NvmeQueueError', async () => {
  const c = await NvmeController.connect(tridString());
  try {
    const q = await c.createIoQpair(4);
    assert.equal(q.queueSize, 4);
    const results: number[] = [];
    let pending = 0;
    const allDone = new Promise<void>((resolve) => {
      const cb = (status: number) => {
        results.push(status);
        if (--pending === 0) resolve();
      };
      for (let i = 0; i < 4; i++) {
        pending++;
        assert.equal(q.read(1, i * 8, 8, Buffer.alloc(4096), cb), true, `command ${i} accepted`);
      }
      assert.equal(q.read(1, 0, 8, Buffer.alloc(4096), cb), false, 'the fifth is refused');
      assert.equal(q.outstanding, 4);
    });
    await assert.rejects(q.readAsync(1, 0, 1, Buffer.alloc(512)), (e: unknown) => {
      assert.ok(e instanceof NvmeQueueError);
      assert.equal(e.code, 'full');
      assert.match(e.message, /queue full \(4 of 4/);
      return true;
    });
    await allDone;
    assert.deepEqual(results, [0, 0, 0, 0]);
    // a split transfer needs all its parts free at once; more parts than entries can never fit
    await assert.rejects(q.readAsync(1, 0, 160, Buffer.alloc(81920)), (e: unknown) => {
      assert.ok(e instanceof NvmeQueueError);
      assert.equal(e.code, 'too-large');
      return true;
    });
    await q.readAsync(1, 0, 128, Buffer.alloc(65536)); // 4 parts fit an empty queue of 4
  } finally {
    await c.disconnect();
  }
});

test('ioTimeoutMs: a command past its time fails with ABORTED_BY_HOST and the queue is failed', async () => {
  const c = await NvmeController.connect(tridString(), { ioTimeoutMs: 400 });
  try {
    const q = await c.createIoQpair(8);
    assert.equal(q.ioTimeoutMs, 400);
    await q.readAsync(1, 0, 1, Buffer.alloc(512)); // a fast namespace is fine
    const started = Date.now();
    const slow = viaCallback((cb) => q.read(4, 0, 1, Buffer.alloc(512), cb)); // delay bdev: 3 s
    const status = await slow;
    const took = Date.now() - started;
    assert.equal(status, 0x371, 'PATH / command aborted by host');
    assert.ok(took >= 350 && took < 2500, `timed out after ${took} ms`);
    assert.equal(q.closed, true);
    assert.match(q.qpair.closeReason ?? '', /timed out after 400 ms/);
    assert.equal(
      q.read(1, 0, 1, Buffer.alloc(512), () => {}),
      false,
    );
  } finally {
    await c.disconnect();
  }
});

test('AER: namespace added and removed by RPC reach onAsyncEvent; namespaces refreshed; AER re-armed', async () => {
  const c = await NvmeController.connect(tridString());
  const events: AsyncEvent[] = [];
  c.onAsyncEvent = (ev) => {
    events.push(ev);
  };
  const waitEvents = (n: number) => waitFor(`${n} events`, () => events.length >= n);
  try {
    await target.call('bdev_malloc_create', { name: 'MallocAdd', num_blocks: 4096, block_size: 512 });
    const nsid = (await target.call('nvmf_subsystem_add_ns', {
      nqn: CNODE1,
      namespace: { bdev_name: 'MallocAdd' },
    })) as number;
    await waitEvents(1);
    assert.equal(events[0].type, AsyncEventType.NOTICE);
    assert.equal(events[0].info, NoticeInfo.NAMESPACE_ATTRIBUTE_CHANGED);
    assert.equal(events[0].logPage, 0x04);
    assert.deepEqual(events[0].changedNamespaces, [nsid]);
    assert.equal(
      c.namespaces.get(nsid)?.nsze,
      4096,
      'new namespace in the map before the event is delivered',
    );
    await target.call('nvmf_subsystem_remove_ns', { nqn: CNODE1, nsid });
    await waitEvents(2);
    assert.deepEqual(events[1].changedNamespaces, [nsid]);
    assert.equal(c.namespaces.has(nsid), false, 'removed namespace left the map');
    await target.call('bdev_malloc_delete', { name: 'MallocAdd' });
  } finally {
    await c.disconnect();
  }
});

test('disconnect with outstanding I/O: every callback once, success or ABORTED_SQ_DELETION', async () => {
  const c = await NvmeController.connect(tridString());
  const q = await c.createIoQpair(128);
  const calls = new Map<number, number[]>();
  let completed = 0;
  for (let i = 0; i < 96; i++) {
    const accepted = q.write(1, i * 32, 32, pattern(16384, i), (status) => {
      const seen = calls.get(i) ?? [];
      seen.push(status);
      calls.set(i, seen);
      completed++;
    });
    assert.ok(accepted);
  }
  await new Promise((r) => setImmediate(r)); // some are on the wire, some still queued
  await c.disconnect();
  assert.equal(completed, 96, 'every callback ran before disconnect resolved');
  for (const [i, seen] of calls) {
    assert.equal(seen.length, 1, `command ${i} completed once`);
    assert.ok(seen[0] === 0 || seen[0] === ABORTED_SQ_DELETION, `status ${seen[0]}`);
  }
  assert.ok([...calls.values()].some((s) => s[0] === ABORTED_SQ_DELETION));
  assert.equal(q.closed, true);
  // nothing is left that could call back: both connections are gone ('close' came) and the
  // queue holds no command
  await waitFor(
    'both connections closed',
    () => tcpOf(q.qpair).socket.closed && tcpOf(c.admin).socket.closed,
  );
  assert.equal(q.outstanding, 0, 'no command left on the queue');
  assert.equal(completed, 96, 'no late callback');
});
