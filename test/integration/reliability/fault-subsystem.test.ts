// Changes under live hosts: pause/resume (SPDK's semantics: in-flight I/O
// drains, new I/O waits, admin goes on), a bdev deleted while exported and
// under I/O, a subsystem deleted with hosts connected, a listener removed
// under live connections. Each ends with the leak counters back to zero.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { NvmeController, type NvmeIoQpair, NvmeStatusError } from '../../../src/nvme/index.ts';
import { GenericStatus } from '../../../src/wire/nvme.ts';
import {
  ChildTarget,
  freePort,
  ioQueueRoundTrip,
  listenerEntry,
  pattern,
  type WaitOptions,
  waitFor,
} from '../../lib/index.ts';
import { tcpOf } from '../../lib/tcp-qpair-of.ts';
import { simpleConfig } from './fault-config.ts';

const NQN = 'nqn.2016-06.io.spdk:fault-sub';
let tgt: ChildTarget;
let port = 0;

function delay(name: string, base: string, us: number) {
  return {
    method: 'bdev_delay_create',
    params: {
      base_bdev_name: base,
      name,
      avg_read_latency: us,
      p99_read_latency: us,
      avg_write_latency: us,
      p99_write_latency: us,
    },
  };
}

before(async () => {
  port = await freePort();
  // two poll groups: queues of one controller land on both
  tgt = await ChildTarget.start({
    cores: '0x3',
    config: simpleConfig(
      port,
      NQN,
      [
        { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
        { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 8192, block_size: 512 } },
        delay('Delay1', 'Malloc1', 1_000_000),
      ],
      {},
      ['Malloc0', 'Delay1'], // nsid 1 fast, nsid 2 slow (a delay's base is claimed by it)
    ),
  });
});

after(async () => {
  await tgt?.dispose();
});

const trid = (nqn = NQN, p = port) => ({ traddr: '127.0.0.1', trsvcid: String(p), subnqn: nqn });

const logTail: WaitOptions = { detail: () => tgt.log().slice(-3000) };

test('pause: in-flight I/O drains before the RPC returns, new I/O waits (not failed), admin goes on; resume runs it', async () => {
  const c = await NvmeController.connect(trid());
  try {
    await c.setNumQueues(2);
    const q = await c.createIoQpair(64);
    const q2 = await c.createIoQpair(64);
    // 8 slow writes (nsid 2 = Delay1, 1 s)
    let slowDone = 0;
    const slow: Promise<void>[] = [];
    for (let i = 0; i < 8; i++)
      slow.push(
        q.writeAsync(2, i * 8, 8, pattern(4096, i)).then(() => {
          slowDone++;
        }),
      );
    await waitFor('slow writes in flight', async () => (await tgt.total('pending_bdev_io')) >= 8, logTail);
    assert.equal(await tgt.call('nvmf_subsystem_pause', { nqn: NQN }), true);
    // the 8 writes (1 s each) were at the bdev when pause was called: it waited for them
    assert.equal(await tgt.total('pending_bdev_io'), 0, 'nothing in flight once paused');
    await Promise.all(slow);
    assert.equal(slowDone, 8);
    // new I/O waits
    let waitingDone = 0;
    const waiting: Promise<void>[] = [];
    for (let i = 0; i < 16; i++) {
      const qq = i % 2 === 0 ? q : q2;
      waiting.push(
        qq.writeAsync(1, 1000 + i * 8, 8, pattern(4096, 100 + i)).then(() => {
          waitingDone++;
        }),
      );
    }
    await waitFor(
      'I/O queued while paused',
      async () => (await tgt.total('queued_requests')) === 16,
      logTail,
    );
    // every write waits at the paused subsystem; a command answered at once, sent after them on the
    // same queue, comes back while none of them has: no response of theirs was on the way either
    for (const qq of [q, q2])
      assert.equal(await ioQueueRoundTrip(qq), GenericStatus.INVALID_OPCODE, 'probe answered');
    assert.equal(q.outstanding + q2.outstanding, 16, 'every write still outstanding at the host');
    assert.equal(waitingDone, 0, 'no I/O completes while paused');
    // admin still answers
    const id = await c.identify(1, 0);
    assert.equal(id.toString('latin1', 4, 16).trim(), 'SPDKFAULT001');
    await c.keepAlive();
    const subs = await tgt.call<{ nqn: string }[]>('nvmf_get_subsystems', { nqn: NQN });
    assert.equal(subs.length, 1);
    // a new host's Connect waits for the resume too (as SPDK queues it)
    let lateConnected = false;
    const late = NvmeController.connect(trid()).then((lc) => {
      lateConnected = true;
      return lc;
    });
    await waitFor('the Connect parked', async () => (await tgt.total('queued_requests')) === 17, logTail);
    assert.equal(lateConnected, false, 'Connect to a paused subsystem waits');
    // RPC errors name the problem
    await assert.rejects(
      tgt.call('nvmf_subsystem_resume', { nqn: 'nqn.2016-06.io.spdk:nope' }),
      /Unable to find/,
    );
    assert.equal(await tgt.total('queued_requests'), 17, 'the writes and the Connect still wait');
    assert.equal(lateConnected, false, 'Connect to a paused subsystem waits until the resume');
    assert.equal(await tgt.call('nvmf_subsystem_resume', { nqn: NQN }), true);
    await Promise.all(waiting);
    assert.equal(waitingDone, 16, 'every queued write ran after resume');
    const lc = await late;
    await lc.disconnect();
    for (let i = 0; i < 16; i++) {
      const r = Buffer.alloc(4096);
      await q2.readAsync(1, 1000 + i * 8, 8, r);
      assert.ok(r.equals(pattern(4096, 100 + i)), `write ${i} landed`);
    }
    await assert.rejects(tgt.call('nvmf_subsystem_resume', { nqn: NQN }), /not paused/);
  } finally {
    await c.disconnect();
  }
  await tgt.settled();
});

test('Abort of a command waiting on a paused subsystem aborts it (dw0 bit 0 = 0, status 0x07); others run on resume', async () => {
  const c = await NvmeController.connect(trid());
  try {
    await c.setNumQueues(2);
    await c.createIoQpair(16); // qid 1 on one poll group…
    const q = await c.createIoQpair(16); // …qid 2 likely on the other: the Abort crosses poll groups
    await tgt.call('nvmf_subsystem_pause', { nqn: NQN });
    // a fresh queue hands out CIDs 0, 1, 2 to these three writes
    const writes = [0, 1, 2].map((i) =>
      q.writeAsync(1, 3000 + i, 1, Buffer.alloc(512, 0x40 + i)).then(
        () => 0,
        (e: unknown) => (e instanceof NvmeStatusError ? e.status : -1),
      ),
    );
    await waitFor('queued', async () => (await tgt.total('queued_requests')) === 3, logTail);
    const abort = (cid: number) => {
      const cmd = Buffer.alloc(64);
      cmd[0] = 0x08;
      cmd.writeUInt32LE(((cid << 16) | q.qid) >>> 0, 40);
      return c.adminCommand(cmd, null, false);
    };
    const cpl = await abort(1);
    assert.equal(cpl.dw0 & 1, 0, 'aborted');
    const unknown = await abort(77);
    assert.equal(unknown.dw0 & 1, 1, 'an unknown command is reported not aborted');
    assert.equal(await tgt.total('queued_requests'), 2);
    await tgt.call('nvmf_subsystem_resume', { nqn: NQN });
    const statuses = await Promise.all(writes);
    assert.deepEqual([...statuses].sort(), [0, 0, 0x07], 'one write aborted by request, two written');
  } finally {
    await c.disconnect();
  }
  await tgt.settled();
});

test('a host that drops its queues while its I/O waits on a paused subsystem leaks nothing', async () => {
  const c = await NvmeController.connect(trid());
  await c.setNumQueues(1);
  const q = await c.createIoQpair(32);
  await tgt.call('nvmf_subsystem_pause', { nqn: NQN });
  try {
    const waiting: Promise<unknown>[] = [];
    for (let i = 0; i < 8; i++) waiting.push(q.writeAsync(1, i, 1, Buffer.alloc(512, i)).catch((e) => e));
    await waitFor('queued', async () => (await tgt.total('queued_requests')) === 8, logTail);
    tcpOf(q.qpair).socket.destroy();
    tcpOf(c.admin).socket.destroy();
    await Promise.all(waiting);
    await tgt.settled();
  } finally {
    await tgt.call('nvmf_subsystem_resume', { nqn: NQN });
  }
});

test('a bdev deleted under I/O: namespace removed, AEN + Changed NS List, I/O to it fails, others unaffected', async () => {
  await tgt.call('bdev_malloc_create', { name: 'MallocX', num_blocks: 4096, block_size: 512 });
  await tgt.call('bdev_delay_create', delay('DelayX', 'MallocX', 1_000_000).params);
  const nsid = await tgt.call<number>('nvmf_subsystem_add_ns', {
    nqn: NQN,
    namespace: { bdev_name: 'DelayX' },
  });
  // this test sends its own AER (the host library keeps its own outstanding unless told not to)
  const c = await NvmeController.connect(trid(), { asyncEvents: false });
  try {
    await c.setFeatures(0x0b, 0x100); // namespace attribute notices
    const aer = Buffer.alloc(64);
    aer[0] = 0x0c;
    const event = c.adminCommand(aer, null, false);
    await c.setNumQueues(2);
    const q = await c.createIoQpair(128);
    const q2 = await c.createIoQpair(32);
    const inflight: Promise<unknown>[] = [];
    for (let i = 0; i < 64; i++)
      inflight.push(q.writeAsync(nsid, i * 8, 8, pattern(4096, i)).catch((e: unknown) => e));
    // the other namespace keeps working throughout
    const other = q2.writeAsync(1, 0, 8, pattern(4096, 7));
    await waitFor('I/O in flight', async () => (await tgt.total('pending_bdev_io')) >= 32, logTail);
    await tgt.call('bdev_malloc_delete', { name: 'MallocX' });
    const cpl = await event;
    assert.equal(cpl.dw0 & 0x7, 2, 'notice');
    assert.equal((cpl.dw0 >> 8) & 0xff, 0, 'namespace attribute changed');
    assert.equal((cpl.dw0 >> 16) & 0xff, 0x04, 'read the Changed Namespace List');
    const log = await c.getLogPage(0x04, Buffer.alloc(4096));
    const listed: number[] = [];
    for (let i = 0; i < 1024 && log.readUInt32LE(i * 4) !== 0; i++) listed.push(log.readUInt32LE(i * 4));
    assert.ok(listed.includes(nsid), `nsid ${nsid} in the changed list ${listed}`);
    const results = await Promise.all(inflight);
    let failed = 0;
    for (const r of results) {
      if (r === undefined) continue;
      assert.ok(r instanceof NvmeStatusError, String(r));
      assert.ok([0x0b, 0x07, 0x08, 0x04].includes(r.status), `in-flight status 0x${r.status.toString(16)}`);
      failed++;
    }
    assert.ok(failed > 0, 'the writes held by the deleted bdev failed');
    await assert.rejects(q.readAsync(nsid, 0, 1, Buffer.alloc(512)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x0b, 'Invalid Namespace or Format');
      return true;
    });
    await other;
    const r = Buffer.alloc(4096);
    await q2.readAsync(1, 0, 8, r);
    assert.ok(r.equals(pattern(4096, 7)));
    const list = await c.identify(2, 0);
    assert.ok(![list.readUInt32LE(0), list.readUInt32LE(4), list.readUInt32LE(8)].includes(nsid));
    const subs = await tgt.call<{ namespaces: { nsid: number }[] }[]>('nvmf_get_subsystems', { nqn: NQN });
    assert.ok(!subs[0].namespaces.some((n) => n.nsid === nsid));
  } finally {
    await c.disconnect();
  }
  await tgt.settled();
});

test('an aio file bdev deleted under a stream of writes: no crash, I/O fails cleanly, nothing leaks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-aio-del-'));
  const file = join(dir, 'disk.img');
  writeFileSync(file, Buffer.alloc(4 << 20));
  try {
    await tgt.call('bdev_aio_create', { name: 'AioDel', filename: file, block_size: 4096 });
    const nsid = await tgt.call<number>('nvmf_subsystem_add_ns', {
      nqn: NQN,
      namespace: { bdev_name: 'AioDel' },
    });
    const c = await NvmeController.connect(trid());
    try {
      await c.setNumQueues(2);
      const q = await c.createIoQpair(128);
      let stop = false;
      let ok = 0;
      const failures = new Map<number, number>();
      const lane = async (k: number) => {
        for (let i = 0; !stop; i++) {
          try {
            await q.writeAsync(nsid, (k * 64 + (i % 64)) % 1024, 1, Buffer.alloc(4096, k));
            ok++;
          } catch (e) {
            const st = e instanceof NvmeStatusError ? e.status : -1;
            failures.set(st, (failures.get(st) ?? 0) + 1);
            if (st === 0x0b) return; // the namespace is gone
          }
        }
      };
      const lanes = Array.from({ length: 32 }, (_, k) => lane(k));
      await waitFor('writes flowing', () => ok > 200, logTail);
      await tgt.call('bdev_aio_delete', { name: 'AioDel' });
      await Promise.race([Promise.all(lanes), new Promise((r) => setTimeout(r, 5000))]);
      stop = true;
      await Promise.all(lanes);
      assert.ok(failures.has(0x0b), `new writes fail with Invalid Namespace (${[...failures]})`);
      for (const st of failures.keys())
        assert.ok([0x0b, 0x07, 0x08, 0x06].includes(st), `status 0x${st.toString(16)}`);
      // the other namespace still serves
      await q.writeAsync(1, 10, 1, Buffer.alloc(512, 9));
    } finally {
      await c.disconnect();
    }
    await tgt.settled();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a listener removed under live connections: its queues disconnect, the other listener serves on', async () => {
  const port2 = await freePort();
  await tgt.call('nvmf_subsystem_add_listener', listenerEntry(NQN, port2).params);
  const a = await NvmeController.connect(trid(NQN, port));
  const b = await NvmeController.connect(trid(NQN, port2));
  try {
    await a.setNumQueues(1);
    await b.setNumQueues(1);
    const qa = await a.createIoQpair(16);
    const qb = await b.createIoQpair(16);
    await qb.writeAsync(1, 2000, 1, Buffer.alloc(512, 1));
    await tgt.call('nvmf_subsystem_remove_listener', listenerEntry(NQN, port2).params);
    await waitFor('queues of the removed listener closed', () => qb.closed && b.admin.closed, logTail);
    assert.equal(qa.closed, false);
    await qa.writeAsync(1, 2001, 1, Buffer.alloc(512, 2));
    const r = Buffer.alloc(1024);
    await qa.readAsync(1, 2000, 2, r);
    assert.equal(r[0], 1);
    assert.equal(r[512], 2);
    const ctrlrs = await tgt.call<unknown[]>('nvmf_subsystem_get_controllers', { nqn: NQN });
    assert.equal(ctrlrs.length, 1);
  } finally {
    await a.disconnect();
    await b.disconnect();
  }
  await tgt.settled();
});

test('a subsystem deleted with hosts connected (I/O in flight): their connections end cleanly', async () => {
  const nqn2 = 'nqn.2016-06.io.spdk:fault-doomed';
  await tgt.call('bdev_malloc_create', { name: 'MallocD', num_blocks: 2048, block_size: 512 });
  await tgt.call('bdev_delay_create', delay('DelayD', 'MallocD', 1_000_000).params);
  await tgt.call('nvmf_create_subsystem', { nqn: nqn2, allow_any_host: true });
  await tgt.call('nvmf_subsystem_add_ns', { nqn: nqn2, namespace: { bdev_name: 'DelayD' } });
  await tgt.call('nvmf_subsystem_add_listener', listenerEntry(nqn2, port).params);
  const hosts = [await NvmeController.connect(trid(nqn2)), await NvmeController.connect(trid(nqn2))];
  const inflight: Promise<unknown>[] = [];
  const queues: NvmeIoQpair[] = [];
  for (const h of hosts) {
    await h.setNumQueues(2);
    for (let k = 0; k < 2; k++) {
      const q = await h.createIoQpair(32);
      queues.push(q);
      for (let i = 0; i < 8; i++) inflight.push(q.writeAsync(1, i, 1, Buffer.alloc(512)).catch((e) => e));
    }
  }
  await waitFor('I/O in flight', async () => (await tgt.total('pending_bdev_io')) >= 16, logTail);
  await tgt.call('nvmf_delete_subsystem', { nqn: nqn2 });
  await waitFor(
    'every queue closed',
    () => queues.every((q) => q.closed) && hosts.every((h) => h.admin.closed),
    logTail,
  );
  await Promise.all(inflight); // none hangs
  await tgt.settled();
  for (const h of hosts) await h.disconnect();
  await tgt.call('bdev_delay_delete', { name: 'DelayD' });
  await tgt.call('bdev_malloc_delete', { name: 'MallocD' });
  // the target keeps serving the other subsystem
  const c = await NvmeController.connect(trid());
  await c.disconnect();
});
