// bdev_nvme active_passive failback and per-path statistics, across two of our targets:
// A1 and A2 export one file (an aio bdev on it) under one subsystem NQN and namespace
// UUID with disjoint controller IDs. Two gateways attach both as one multipath
// controller, A1 first: B with SPDK's defaults, S with bdev_nvme_set_options
// disable_auto_failback and io_path_stat. A1 is killed (both fail over to A2) and
// restarted (both reconnect it): B goes back to A1 at once, S stays on A2 until
// bdev_nvme_set_preferred_path names A1. Each exporter's own bdev_get_iostat says which
// path carried a gateway's writes; S's bdev_nvme_get_path_iostat must agree with them.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RpcError } from '../../src/jsonrpc/index.ts';
import { NvmeController, type NvmeIoQpair } from '../../src/nvme/index.ts';
import {
  bdevWriteOps,
  ChildTarget,
  exporterConfig,
  freePort,
  pattern,
  reconnectingAttach,
  tcpListener,
  waitFor,
} from '../lib/index.ts';

const CNODE_A = 'nqn.2016-06.io.spdk:fbA';
const CNODE_G = 'nqn.2016-06.io.spdk:fbG';
const BDEV = 'Nvme0n1';
const BS = 512;
const BLOCKS = 8192;
const NS_UUID = crypto.randomUUID();

const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-fb-'));
const file = join(dir, 'shared.img');
const started: ChildTarget[] = [];
let a1: ChildTarget;
let a2: ChildTarget;
let port1 = '';
let port2 = '';

const listener = tcpListener;

function exporter(port: string, cntlids: [number, number]) {
  return exporterConfig({
    bdevs: [{ method: 'bdev_aio_create', params: { name: 'Aio0', filename: file, block_size: BS } }],
    nqn: CNODE_A,
    subsystem: { serial_number: 'FB0000000001', min_cntlid: cntlids[0], max_cntlid: cntlids[1] },
    namespace: { bdev_name: 'Aio0', uuid: NS_UUID },
    ports: [port],
  });
}

/** A gateway exporting nothing yet; `options`: its bdev_nvme_set_options, before any attach. */
function gateway(options: Record<string, unknown>) {
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          {
            method: 'bdev_nvme_set_options',
            params: { keep_alive_timeout_ms: 5000, multipath_opts: { policy: 'active_passive' }, ...options },
          },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: CNODE_G, allow_any_host: true } },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: CNODE_G, listen_address: listener('$PORT') },
          },
        ],
      },
    ],
  };
}

async function start(config: unknown, cores: string): Promise<ChildTarget> {
  const t = await ChildTarget.start({ cores, config });
  started.push(t);
  return t;
}

function attachParams(port: string, extra: Record<string, unknown> = {}) {
  return reconnectingAttach(CNODE_A, port, extra);
}

/** Writes the exporter's aio bdev completed: the I/O a gateway sent on that path. */
const writesOn = (t: ChildTarget) => bdevWriteOps(t, 'Aio0');

interface Gateway {
  t: ChildTarget;
  c: NvmeController;
  q: NvmeIoQpair;
}

async function openGateway(options: Record<string, unknown>): Promise<Gateway> {
  const t = await start(gateway(options), '0x1');
  assert.deepEqual(await t.call('bdev_nvme_attach_controller', attachParams(port1)), [BDEV]);
  assert.deepEqual(
    await t.call('bdev_nvme_attach_controller', attachParams(port2, { multipath: 'multipath' })),
    [BDEV],
  );
  await t.call('nvmf_subsystem_add_ns', { nqn: CNODE_G, namespace: { bdev_name: BDEV } });
  const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: t.port, subnqn: CNODE_G });
  return { t, c, q: await c.createIoQpair(32) };
}

/** `n` 4 KiB writes through gateway `g`, one after another; which exporter took them: [A1, A2]. */
async function writesThrough(g: Gateway, n: number, seed: number): Promise<[number, number]> {
  const before = [await writesOn(a1), await writesOn(a2)];
  for (let i = 0; i < n; i++)
    await g.q.writeAsync(1, 1024 + ((seed * 64 + i * 8) % 4096), 8, pattern(8 * BS, seed + i));
  return [(await writesOn(a1)) - before[0], (await writesOn(a2)) - before[1]];
}

interface PathIostat {
  name: string;
  stats: Array<{
    trid: { trtype: string; traddr: string; trsvcid: string; subnqn: string };
    stat: Record<string, number>;
  }>;
}

/** S's successful writes per path by bdev_nvme_get_path_iostat: [A1, A2]. */
async function pathWrites(g: Gateway): Promise<[number, number]> {
  const r = await g.t.call<PathIostat>('bdev_nvme_get_path_iostat', { name: BDEV });
  const by = (port: string) => r.stats.find((s) => s.trid.trsvcid === port)?.stat.num_write_ops ?? -1;
  return [by(port1), by(port2)];
}

async function cntlids(g: Gateway): Promise<number[]> {
  const [d] = await g.t.call<Array<{ driver_specific: { nvme: Array<{ ctrlr_data: { cntlid: number } }> } }>>(
    'bdev_get_bdevs',
    { name: BDEV },
  );
  return d.driver_specific.nvme.map((n) => n.ctrlr_data.cntlid);
}

let b: Gateway;
let s: Gateway;

before(async () => {
  writeFileSync(file, Buffer.alloc(BLOCKS * BS));
  port1 = String(await freePort());
  port2 = String(await freePort());
  a1 = await start(exporter(port1, [1, 999]), '0x1');
  a2 = await start(exporter(port2, [1000, 1999]), '0x1');
  b = await openGateway({});
  s = await openGateway({ disable_auto_failback: true, io_path_stat: true });
});

after(async () => {
  for (const g of [b, s]) await g?.c.disconnect().catch(() => undefined);
  // every target stops before anything is asserted (a leftover one would keep the file running)
  const uncaught = started.map((t) => t.uncaughtErrors());
  for (const t of started) await t.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(uncaught.flat(), []);
});

test('io_path_stat off: bdev_nvme_get_path_iostat is refused as SPDK refuses it; on: every path listed, counts of what each carried', async () => {
  await assert.rejects(
    b.t.call('bdev_nvme_get_path_iostat', { name: BDEV }),
    (e: unknown) => e instanceof RpcError && e.code === -1 && /enable_io_path_stat/.test(e.message),
  );
  await assert.rejects(
    s.t.call('bdev_nvme_get_path_iostat', { name: 'Nope' }),
    (e: unknown) => e instanceof RpcError && e.code === -19,
  );
  const before = await pathWrites(s);
  assert.deepEqual(await writesThrough(s, 12, 1), [12, 0], 'active_passive: the first path');
  const now = await pathWrites(s);
  assert.deepEqual(
    [now[0] - before[0], now[1] - before[1]],
    [12, 0],
    'the path counts agree with the exporters',
  );
  const r = await s.t.call<PathIostat>('bdev_nvme_get_path_iostat', { name: BDEV });
  assert.equal(r.name, BDEV);
  assert.deepEqual(
    r.stats.map((x) => [x.trid.trtype, x.trid.traddr, x.trid.trsvcid, x.trid.subnqn]),
    [
      ['TCP', '127.0.0.1', port1, CNODE_A],
      ['TCP', '127.0.0.1', port2, CNODE_A],
    ],
    'both paths, in attach order, with their transport IDs',
  );
  const a1Stat = r.stats[0].stat;
  assert.equal(a1Stat.bytes_written, a1Stat.num_write_ops * 8 * BS);
  assert.ok(a1Stat.write_latency_ticks >= a1Stat.num_write_ops * a1Stat.min_write_latency_ticks);
  assert.ok(
    a1Stat.max_write_latency_ticks >= a1Stat.min_write_latency_ticks && a1Stat.min_write_latency_ticks > 0,
  );
});

test('A1 killed and restarted: the default gateway fails back to A1, the one with disable_auto_failback stays on A2 until set_preferred_path', async () => {
  await a1.kill('SIGKILL');
  // both fail over (the first writes may wait for the lost path to be noticed)
  for (const g of [b, s]) {
    await g.q.writeAsync(1, 0, 8, pattern(8 * BS, 7));
    const before2 = await writesOn(a2);
    for (let i = 0; i < 4; i++) await g.q.writeAsync(1, 8 + i * 8, 8, pattern(8 * BS, 8 + i));
    assert.equal((await writesOn(a2)) - before2, 4, 'A2 carries the I/O');
  }
  await a1.restart();
  for (const g of [b, s]) {
    await waitFor(
      'A1 reconnected on the gateway',
      async () => {
        const [ctrl] = await g.t.call<Array<{ ctrlrs: Array<{ state: string }> }>>(
          'bdev_nvme_get_controllers',
          {
            name: 'Nvme0',
          },
        );
        return ctrl.ctrlrs.length === 2 && ctrl.ctrlrs.every((x) => x.state === 'enabled');
      },
      { timeoutMs: 30_000 },
    );
  }
  // B: failback as soon as A1's path is usable again (its I/O queue connects on the first I/O)
  await waitFor('B back on A1', async () => (await writesThrough(b, 4, 20))[0] === 4, { timeoutMs: 30_000 });
  // S: A1 usable too, but the I/O stays where it failed over
  const before = await pathWrites(s);
  assert.deepEqual(await writesThrough(s, 16, 40), [0, 16], 'S stays on A2');
  const now = await pathWrites(s);
  assert.deepEqual([now[0] - before[0], now[1] - before[1]], [0, 16], 'and its path counts say so');
  const [c1] = await cntlids(s);
  const paths = await s.t.call<{
    poll_groups: Array<{ io_paths: Array<{ cntlid: number; current: boolean; connected: boolean }> }>;
  }>('bdev_nvme_get_io_paths', { name: BDEV });
  for (const g of paths.poll_groups) {
    const p1 = g.io_paths.find((p) => p.cntlid === c1);
    assert.equal(p1?.current, false, 'get_io_paths: A1 is not the current path');
  }
  // the manual failback SPDK documents for disable_auto_failback
  assert.equal(await s.t.call('bdev_nvme_set_preferred_path', { name: BDEV, cntlid: c1 }), true);
  assert.deepEqual(await writesThrough(s, 8, 60), [8, 0], 'set_preferred_path: back on A1');
});
