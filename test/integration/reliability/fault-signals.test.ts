// Signals with hosts connected. SIGTERM: every host sees its connections
// close (not a hang) and the target exits 0 within seconds. SIGKILL of a
// target on an aio file bdev: every write acknowledged with FUA, or before a
// completed Flush, is on the file after a restart from the save_config output,
// read back through the target. (test/integration/bdev-aio-durability.test.ts
// checks the same at the bdev layer; this is the end-to-end path.)

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NvmeController, type NvmeIoQpair } from '../../../src/nvme/index.ts';
import { ChildTarget, freePort, pattern, waitFor } from '../../lib/index.ts';
import { simpleConfig } from './fault-config.ts';

const NQN = 'nqn.2016-06.io.spdk:fault-sig';
const opts = { asyncEvents: false };
/** FUA writes acknowledged before the SIGKILL lands on the stream */
const FUA_BEFORE_KILL = 300;

test('SIGTERM with hosts connected and I/O in flight: connections close, exit 0 within seconds', async () => {
  const port = await freePort();
  const tgt = await ChildTarget.start({
    cores: '0x3',
    config: simpleConfig(
      port,
      NQN,
      [
        { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
        {
          method: 'bdev_delay_create',
          params: {
            base_bdev_name: 'Malloc0',
            name: 'Delay0',
            avg_read_latency: 200_000,
            p99_read_latency: 200_000,
            avg_write_latency: 200_000,
            p99_write_latency: 200_000,
          },
        },
      ],
      {},
      ['Delay0'],
    ),
  });
  try {
    const trid = { traddr: '127.0.0.1', trsvcid: String(port), subnqn: NQN };
    const hosts = [await NvmeController.connect(trid, opts), await NvmeController.connect(trid, opts)];
    const queues: NvmeIoQpair[] = [];
    const inflight: Promise<unknown>[] = [];
    for (const h of hosts) {
      await h.setNumQueues(2);
      for (let k = 0; k < 2; k++) {
        const q = await h.createIoQpair(32);
        queues.push(q);
        for (let i = 0; i < 8; i++)
          inflight.push(q.writeAsync(1, i * 8, 8, pattern(4096, i)).catch((e) => e));
      }
    }
    const t0 = Date.now();
    tgt.child.kill('SIGTERM');
    const exit = await Promise.race([tgt.exit, new Promise<null>((r) => setTimeout(() => r(null), 8000))]);
    const elapsed = Date.now() - t0;
    assert.ok(exit !== null, `the target exited (log:\n${tgt.log().slice(-2000)})`);
    assert.equal(exit.code, 0, `exit code 0 (signal ${exit.signal})\n${tgt.log().slice(-2000)}`);
    assert.ok(elapsed < 6000, `exited in ${elapsed} ms`);
    // every host connection ended and no command hangs
    await waitFor(
      'every host connection closed',
      () => queues.every((q) => q.closed) && hosts.every((h) => h.admin.closed),
      { timeoutMs: 2000 },
    );
    const results = await Promise.all(inflight);
    assert.equal(results.length, 32);
    assert.match(tgt.log(), /FINI_DESTROY_TARGET|STOPPED|fini/);
    for (const h of hosts) await h.disconnect();
  } finally {
    await tgt.dispose();
  }
});

test('SIGTERM while a subsystem is paused with I/O and a Connect parked: exit 0, nothing hangs', async () => {
  const port = await freePort();
  const tgt = await ChildTarget.start({
    cores: '0x3',
    config: simpleConfig(port, NQN, [
      { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 2048, block_size: 512 } },
    ]),
  });
  try {
    const trid = { traddr: '127.0.0.1', trsvcid: String(port), subnqn: NQN };
    const c = await NvmeController.connect(trid, opts);
    await c.setNumQueues(1);
    const q = await c.createIoQpair(32);
    await tgt.call('nvmf_subsystem_pause', { nqn: NQN });
    const parked: Promise<unknown>[] = [];
    for (let i = 0; i < 8; i++) parked.push(q.writeAsync(1, i, 1, Buffer.alloc(512, i)).catch((e) => e));
    const late = NvmeController.connect(trid, opts).then(
      (lc) => lc,
      (e: unknown) => e,
    );
    await waitFor('I/O and Connect parked', async () => (await tgt.total('queued_requests')) >= 9, {
      timeoutMs: 5000,
    });
    tgt.child.kill('SIGTERM');
    const exit = await Promise.race([tgt.exit, new Promise<null>((r) => setTimeout(() => r(null), 8000))]);
    assert.ok(exit !== null, `the target exited\n${tgt.log().slice(-2000)}`);
    assert.equal(exit.code, 0);
    const results = await Promise.all(parked);
    assert.ok(
      results.every((r) => r instanceof Error),
      'parked writes fail (the target went away), none hangs',
    );
    const lc = await late;
    if (lc instanceof NvmeController) await lc.disconnect();
    else assert.ok(lc instanceof Error, 'the parked Connect failed');
    await c.disconnect();
  } finally {
    await tgt.dispose();
  }
});

test('SIGKILL on an aio file bdev: FUA and flushed writes are there after a restart from save_config', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-sigkill-'));
  const file = join(dir, 'disk.img');
  const BLOCKS = 2048; // 4 KiB blocks: 8 MiB
  writeFileSync(file, Buffer.alloc(BLOCKS * 4096));
  const port = await freePort();
  let tgt = await ChildTarget.start({
    cores: '0x1',
    dir,
    config: simpleConfig(port, NQN, [
      { method: 'bdev_aio_create', params: { name: 'Aio0', filename: file, block_size: 4096 } },
    ]),
  });
  const trid = { traddr: '127.0.0.1', trsvcid: String(port), subnqn: NQN };
  const saved = join(dir, 'saved.json');
  const acked = new Map<number, number>(); // lba -> seed of the last acknowledged durable write
  const inflight = new Map<number, number>(); // lba -> seed of a write not acknowledged at the kill
  let durable = 0;
  try {
    writeFileSync(saved, JSON.stringify(await tgt.call('save_config')));
    const c = await NvmeController.connect(trid, opts);
    await c.setNumQueues(4);
    const qs = [await c.createIoQpair(128), await c.createIoQpair(128), await c.createIoQpair(128)];
    // phase 1: plain writes, then a Flush; everything acked before the Flush completed is durable
    const plain: Promise<void>[] = [];
    for (let lba = 0; lba < 256; lba++) plain.push(qs[lba % 3].writeAsync(1, lba, 1, pattern(4096, lba + 1)));
    await Promise.all(plain);
    await qs[0].flushAsync(1);
    for (let lba = 0; lba < 256; lba++) acked.set(lba, lba + 1);
    // phase 2: FUA writes streaming on 3 queues (overwriting, round after round) when the SIGKILL lands
    let stop = false;
    let fuaAcked = 0;
    const writer = async (q: NvmeIoQpair, k: number) => {
      for (let round = 1; !stop; round++) {
        for (let lba = 256 + k; lba < BLOCKS && !stop; lba += 3) {
          const seed = round * 100_000 + lba;
          inflight.set(lba, seed);
          try {
            await q.writeAsync(1, lba, 1, pattern(4096, seed), true);
          } catch {
            return; // the connection went down with the target
          }
          inflight.delete(lba);
          acked.set(lba, seed);
          fuaAcked++;
        }
      }
    };
    const writers = qs.map((q, k) => writer(q, k));
    // the kill lands on a stream under way: FUA writes acknowledged, the next ones in flight
    await waitFor(`${FUA_BEFORE_KILL} FUA writes acknowledged`, () => fuaAcked >= FUA_BEFORE_KILL, {
      timeoutMs: 30_000,
    });
    assert.equal(inflight.size, qs.length, 'a write in flight on every queue at the kill');
    const r = await tgt.kill('SIGKILL');
    stop = true;
    assert.equal(r.signal, 'SIGKILL');
    await Promise.all(writers);
    c.admin.close();
    durable = fuaAcked;
    assert.ok(fuaAcked > 0, 'FUA writes were acknowledged before the kill');
    // restart from the saved configuration and read everything back through the target
    tgt = await ChildTarget.start({ cores: '0x1', dir, configFile: saved });
    const c2 = await NvmeController.connect(trid, opts);
    try {
      await c2.setNumQueues(1);
      const q = await c2.createIoQpair(64);
      const buf = Buffer.alloc(4096);
      let lost = 0;
      for (const [lba, seed] of acked) {
        await q.readAsync(1, lba, 1, buf);
        // a newer write in flight at the kill may or may not have landed; the acked one or that
        const pending = inflight.get(lba);
        if (
          !buf.equals(pattern(4096, seed)) &&
          !(pending !== undefined && buf.equals(pattern(4096, pending)))
        )
          lost++;
      }
      assert.equal(lost, 0, `${lost} of ${acked.size} acknowledged durable writes lost`);
    } finally {
      await c2.disconnect();
    }
    console.log(
      `# sigkill: ${256 + durable} durable writes acknowledged (256 flushed, ${durable} FUA), ${acked.size} blocks verified, 0 lost`,
    );
  } finally {
    await tgt.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
