// bdev_nvme multipath policies, the gateway side, across two of our targets:
// A1 and A2 are two nvmf_tgt processes exporting the same file (an aio bdev on
// one file, so what one writes the other reads) under the same subsystem NQN,
// namespace UUID and disjoint controller IDs, with ANA reporting (A2's
// namespace is a delay bdev over its aio bdev, so one path can be made slow).
// Gateway B attaches both as one controller (-x multipath) and exports the
// bdev; our host library does I/O through B. Each target's own write count
// (bdev_get_iostat) tells which path carried B's I/O.
//   - active_active round_robin spreads I/O over both paths, rr_min_io at a time;
//   - queue_depth sends most I/O to the path with fewer commands outstanding;
//   - ANA states (nvmf_subsystem_listener_set_ana_state) move I/O to the
//     optimized path, and to a non-optimized one when none is optimized;
//   - active_passive with a preferred path (bdev_nvme_set_preferred_path);
//   - A1 killed under I/O: I/O goes on through A2, every read verified; A1
//     restarted: I/O spreads again;
//   - bdev_nvme_get_io_paths in SPDK's layout; save_config writes
//     bdev_nvme_set_options, the attaches with multipath_opts and
//     bdev_nvme_set_multipath_policy, and a replay rebuilds the same config;
//   - refusals and rpc.py's command lines.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  within,
} from '../lib/index.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const CLI = new URL('../../src/apps/nvmf-rpc.ts', import.meta.url).pathname;
const CNODE_A = 'nqn.2016-06.io.spdk:aaA';
const CNODE_B = 'nqn.2016-06.io.spdk:aaB';
const BDEV = 'Nvme0n1';
const BS = 512;
const BLOCKS = 16384;
const NS_UUID = crypto.randomUUID();
const NGUID = NS_UUID.replaceAll('-', '');

const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-aa-'));
const file = join(dir, 'shared.img');
const started: ChildTarget[] = [];
let a1: ChildTarget;
let a2: ChildTarget;
let b: ChildTarget;
let port1 = '';
let port2 = '';

const listener = tcpListener;

/** A target exporting the shared file; `delayed`: through a delay bdev (its latency set later). */
function exporter(port: string, cntlids: [number, number], delayed: boolean) {
  const bdevs: unknown[] = [
    { method: 'bdev_aio_create', params: { name: 'Aio0', filename: file, block_size: BS } },
  ];
  if (delayed) {
    bdevs.push({
      method: 'bdev_delay_create',
      params: {
        base_bdev_name: 'Aio0',
        name: 'Delay0',
        avg_read_latency: 0,
        p99_read_latency: 0,
        avg_write_latency: 0,
        p99_write_latency: 0,
      },
    });
  }
  return exporterConfig({
    bdevs,
    nqn: CNODE_A,
    subsystem: {
      ana_reporting: true,
      serial_number: 'AA0000000001',
      min_cntlid: cntlids[0],
      max_cntlid: cntlids[1],
    },
    namespace: { bdev_name: delayed ? 'Delay0' : 'Aio0', uuid: NS_UUID, nguid: NGUID },
    ports: [port],
  });
}

function attachParams(port: string, extra: Record<string, unknown> = {}) {
  return reconnectingAttach(CNODE_A, port, extra);
}

async function start(config: unknown, cores: string): Promise<ChildTarget> {
  const t = await ChildTarget.start({ cores, config });
  started.push(t);
  return t;
}

/** Writes the exporter's aio bdev completed: the I/O a gateway sent on that path. */
const writesOn = (t: ChildTarget) => bdevWriteOps(t, 'Aio0');

/** Reads and writes the target's aio bdev completed. */
async function opsOn(t: ChildTarget): Promise<number> {
  const s = await t.call<{ bdevs: Array<{ num_read_ops: number; num_write_ops: number }> }>(
    'bdev_get_iostat',
    {
      name: 'Aio0',
    },
  );
  return s.bdevs[0].num_read_ops + s.bdevs[0].num_write_ops;
}

async function writesOnBoth(): Promise<[number, number]> {
  return [await writesOn(a1), await writesOn(a2)];
}

/** A host controller on B with two I/O queues (B's two poll groups, so both of B's realms). */
async function hostOnB(): Promise<{ c: NvmeController; qs: NvmeIoQpair[] }> {
  const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: b.port, subnqn: CNODE_B });
  await c.setNumQueues(2);
  return { c, qs: [await c.createIoQpair(64), await c.createIoQpair(64)] };
}

/** `n` 4 KiB writes on `q` one after another, each read back (through whichever path) and compared. */
async function writeVerified(q: NvmeIoQpair, n: number, lba0: number, seed: number): Promise<void> {
  const back = Buffer.alloc(8 * BS);
  for (let i = 0; i < n; i++) {
    const lba = lba0 + ((i * 8) % 4096);
    const data = pattern(8 * BS, seed + i);
    await q.writeAsync(1, lba, 8, data);
    await q.readAsync(1, lba, 8, back);
    assert.ok(back.equals(data), `write ${i} at LBA ${lba} read back`);
  }
}

/** `n` 4 KiB writes on `q` one after another (no reads: each target's write count is then exact). */
async function writesOnly(q: NvmeIoQpair, n: number, lba0: number, seed: number): Promise<void> {
  for (let i = 0; i < n; i++) await q.writeAsync(1, lba0 + i * 8, 8, pattern(8 * BS, seed + i));
}

/** Each queue keeps `depth` writes outstanding until `n` were done on it. */
async function concurrentWrites(qs: NvmeIoQpair[], n: number, depth: number): Promise<void> {
  await Promise.all(
    qs.flatMap((q, k) =>
      Array.from({ length: depth }, async (_, d) => {
        for (let i = d; i < n; i += depth)
          await q.writeAsync(1, 8192 + k * 2048 + ((i * 8) % 2048), 8, pattern(8 * BS, i));
      }),
    ),
  );
}

interface IoPath {
  bdev_name: string;
  cntlid: number;
  current: boolean;
  connected: boolean;
  accessible: boolean;
  transport: { trtype: string; traddr: string; trsvcid: string; adrfam: string };
}

async function ioPaths(t = b, name?: string): Promise<Array<{ thread: string; io_paths: IoPath[] }>> {
  return (
    await t.call<{ poll_groups: Array<{ thread: string; io_paths: IoPath[] }> }>(
      'bdev_nvme_get_io_paths',
      name === undefined ? {} : { name },
    )
  ).poll_groups;
}

/** B's ANA state of the namespace through each path (bdev_get_bdevs), by port. */
async function anaStates(): Promise<Record<string, string>> {
  const [d] = await b.call<
    Array<{
      driver_specific: { nvme: Array<{ trid: { trsvcid: string }; ns_data: { ana_state?: string } }> };
    }>
  >('bdev_get_bdevs', { name: BDEV });
  return Object.fromEntries(d.driver_specific.nvme.map((n) => [n.trid.trsvcid, n.ns_data.ana_state ?? '']));
}

async function setAna(t: ChildTarget, port: string, state: string): Promise<void> {
  await t.call('nvmf_subsystem_listener_set_ana_state', {
    nqn: CNODE_A,
    listen_address: listener(port),
    ana_state: state,
  });
}

/** Set both listeners' ANA states and wait until B has read them. */
async function anaBoth(s1: string, s2: string): Promise<void> {
  await setAna(a1, port1, s1);
  await setAna(a2, port2, s2);
  await waitFor(`B to see ANA ${s1}/${s2}`, async () => {
    const st = await anaStates();
    return st[port1] === s1 && st[port2] === s2;
  });
}

function cli(sock: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [CLI, '-s', sock, '-t', '30', ...args], { timeout: 40_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout, stderr });
    });
  });
}

let host: { c: NvmeController; qs: NvmeIoQpair[] };

before(async () => {
  writeFileSync(file, Buffer.alloc(BLOCKS * BS));
  port1 = String(await freePort());
  port2 = String(await freePort());
  a1 = await start(exporter(port1, [1, 999], false), '0x1');
  a2 = await start(exporter(port2, [1000, 1999], true), '0x1');
  b = await start(
    {
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            // the default policy of an attach that names none: active_active, round_robin, 1 I/O per path
            {
              method: 'bdev_nvme_set_options',
              params: { keep_alive_timeout_ms: 5000, multipath_opts: { policy: 'active_active' } },
            },
          ],
        },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            { method: 'nvmf_create_subsystem', params: { nqn: CNODE_B, allow_any_host: true } },
            {
              method: 'nvmf_subsystem_add_listener',
              params: { nqn: CNODE_B, listen_address: listener('$PORT') },
            },
          ],
        },
      ],
    },
    '0x3',
  );
});

after(async () => {
  await host?.c.disconnect().catch(() => undefined);
  for (const t of started) {
    assert.deepEqual(t.uncaughtErrors(), []);
    await t.stop();
  }
  rmSync(dir, { recursive: true, force: true });
});

test('two paths under one controller; a path with other multipath_opts is refused; get_io_paths lists both in SPDK layout', async () => {
  assert.deepEqual(await b.call('bdev_nvme_attach_controller', attachParams(port1)), [BDEV]);
  await assert.rejects(
    b.call(
      'bdev_nvme_attach_controller',
      attachParams(port2, { multipath: 'multipath', multipath_opts: { policy: 'active_passive' } }),
    ),
    (e: unknown) => e instanceof RpcError && e.code === -22 && /Multipath opts mismatch/.test(e.message),
  );
  await assert.rejects(
    b.call(
      'bdev_nvme_attach_controller',
      attachParams(port2, { multipath: 'multipath', multipath_opts: { policy: 'active_active', min_io: 0 } }),
    ),
    (e: unknown) => e instanceof RpcError && e.code === -22,
  );
  assert.deepEqual(
    await b.call('bdev_nvme_attach_controller', attachParams(port2, { multipath: 'multipath' })),
    [BDEV],
  );
  await b.call('nvmf_subsystem_add_ns', { nqn: CNODE_B, namespace: { nsid: 1, bdev_name: BDEV } });
  const [bdev] = await b.call<Array<{ driver_specific: Record<string, unknown> }>>('bdev_get_bdevs', {
    name: BDEV,
  });
  const ds = bdev.driver_specific as {
    nvme: Array<{
      trid: { trsvcid: string };
      ctrlr_data: { cntlid: number };
      ns_data: Record<string, unknown>;
    }>;
    mp_policy: string;
    selector: string;
    rr_min_io: number;
  };
  assert.deepEqual(
    ds.nvme.map((n) => [n.trid.trsvcid, n.ns_data]),
    [
      [port1, { id: 1, ana_state: 'optimized' }],
      [port2, { id: 1, ana_state: 'optimized' }],
    ],
  );
  assert.ok(ds.nvme[0].ctrlr_data.cntlid < 1000 && ds.nvme[1].ctrlr_data.cntlid >= 1000, 'disjoint cntlids');
  assert.deepEqual([ds.mp_policy, ds.selector, ds.rr_min_io], ['active_active', 'round_robin', 1]);

  host = await hostOnB();
  for (const [k, q] of host.qs.entries()) await writeVerified(q, 4, k * 4096, 10 + k);
  const groups = await ioPaths();
  assert.ok(
    groups.length >= 2,
    `a poll group per thread with a channel of the bdev: ${JSON.stringify(groups)}`,
  );
  for (const g of groups) {
    assert.match(g.thread, /\S/);
    assert.deepEqual(
      g.io_paths.map((p) => ({ ...p, cntlid: p.cntlid >= 1000 ? 'A2' : 'A1' })),
      [
        {
          bdev_name: BDEV,
          cntlid: 'A1',
          current: true,
          connected: g.io_paths[0].connected,
          accessible: true,
          transport: { trtype: 'TCP', traddr: '127.0.0.1', trsvcid: port1, adrfam: 'IPv4' },
        },
        {
          bdev_name: BDEV,
          cntlid: 'A2',
          current: true,
          connected: g.io_paths[1].connected,
          accessible: true,
          transport: { trtype: 'TCP', traddr: '127.0.0.1', trsvcid: port2, adrfam: 'IPv4' },
        },
      ],
    );
  }
  // the realms that carried I/O have both queues connected (round robin used both)
  assert.ok(groups.some((g) => g.io_paths.every((p) => p.connected)));
  // a name filter: the poll groups stay, the other bdevs' paths go
  for (const g of await ioPaths(b, 'Nope')) assert.deepEqual(g.io_paths, []);
  assert.equal((await ioPaths(b, BDEV)).length, groups.length);
});

test('active_active round_robin: I/O alternates between the paths, rr_min_io at a time; data written through one path reads back through the other', async () => {
  const q = host.qs[0];
  for (const minIo of [1, 8]) {
    assert.equal(
      await b.call('bdev_nvme_set_multipath_policy', {
        name: BDEV,
        policy: 'active_active',
        selector: 'round_robin',
        rr_min_io: minIo,
      }),
      true,
    );
    const before = await writesOnBoth();
    // one host queue: one of B's realms, whose replica starts a fresh rotation at the first path
    await writesOnly(q, 32, 2048, minIo * 100);
    const now = await writesOnBoth();
    assert.deepEqual(
      [now[0] - before[0], now[1] - before[1]],
      [16, 16],
      `rr_min_io ${minIo}: 16 writes each`,
    );
  }
  // 64 writes then reads of the same blocks: half of them cross paths
  await writeVerified(q, 64, 0, 1000);
  const [bdev] = await b.call<Array<{ driver_specific: { rr_min_io: number } }>>('bdev_get_bdevs', {
    name: BDEV,
  });
  assert.equal(bdev.driver_specific.rr_min_io, 8);
});

test('queue_depth: the path with fewer commands outstanding gets the I/O (a slow A2 gets few, round_robin still half)', async () => {
  await a2.call('bdev_delay_update_latency', {
    delay_bdev_name: 'Delay0',
    latency_type: 'avg_write',
    latency_us: 50_000,
  });
  await a2.call('bdev_delay_update_latency', {
    delay_bdev_name: 'Delay0',
    latency_type: 'p99_write',
    latency_us: 50_000,
  });
  try {
    await b.call('bdev_nvme_set_multipath_policy', {
      name: BDEV,
      policy: 'active_active',
      selector: 'queue_depth',
    });
    const [bdev] = await b.call<Array<{ driver_specific: Record<string, unknown> }>>('bdev_get_bdevs', {
      name: BDEV,
    });
    assert.equal(bdev.driver_specific.selector, 'queue_depth');
    assert.equal(bdev.driver_specific.rr_min_io, undefined, 'rr_min_io only with round_robin');
    let before = await writesOnBoth();
    await concurrentWrites(host.qs, 100, 16);
    let now = await writesOnBoth();
    const qd = [now[0] - before[0], now[1] - before[1]];
    assert.equal(qd[0] + qd[1], 200);
    assert.ok(qd[1] > 0, `the slow path still takes I/O when the fast one is busier: ${qd}`);
    assert.ok(qd[0] > 3 * qd[1], `queue_depth: most writes on the fast path A1: ${qd}`);
    // the same load with round_robin: half each, whatever the latency
    await b.call('bdev_nvme_set_multipath_policy', { name: BDEV, policy: 'active_active' });
    before = await writesOnBoth();
    await concurrentWrites(host.qs, 48, 16);
    now = await writesOnBoth();
    assert.deepEqual([now[0] - before[0], now[1] - before[1]], [48, 48], 'round_robin: half each');
  } finally {
    for (const t of ['avg_write', 'p99_write'])
      await a2.call('bdev_delay_update_latency', {
        delay_bdev_name: 'Delay0',
        latency_type: t,
        latency_us: 0,
      });
  }
});

test('ANA: I/O goes to the optimized path; to a non-optimized one only when no path is optimized; active_passive follows ANA too', async () => {
  const q = host.qs[1];
  const run = async (n: number): Promise<[number, number]> => {
    const before = await writesOnBoth();
    await writeVerified(q, n, 3000, n);
    const now = await writesOnBoth();
    return [now[0] - before[0], now[1] - before[1]];
  };
  await anaBoth('optimized', 'non_optimized');
  for (const g of await ioPaths()) {
    assert.deepEqual(
      g.io_paths.map((p) => [p.transport.trsvcid, p.current, p.accessible]),
      [
        [port1, true, true],
        [port2, false, true],
      ],
    );
  }
  assert.deepEqual(await run(20), [20, 0], 'all on the optimized A1');
  await anaBoth('non_optimized', 'optimized');
  assert.deepEqual(await run(20), [0, 20], 'all on the optimized A2');
  // no optimized path: the non-optimized one; an inaccessible one is not used
  await anaBoth('inaccessible', 'non_optimized');
  for (const g of await ioPaths()) {
    assert.deepEqual(
      g.io_paths.map((p) => [p.transport.trsvcid, p.current, p.accessible]),
      [
        [port1, false, false],
        [port2, true, true],
      ],
    );
  }
  assert.deepEqual(await run(20), [0, 20], 'all on the non-optimized A2');
  // active_passive: the first optimized path in order, not simply the first path
  await b.call('bdev_nvme_set_multipath_policy', { name: BDEV, policy: 'active_passive' });
  await anaBoth('non_optimized', 'optimized');
  assert.deepEqual(await run(10), [0, 10], 'active_passive on the optimized A2');
  await anaBoth('optimized', 'optimized');
  assert.deepEqual(await run(10), [10, 0], 'active_passive back on the first path A1');
});

test('active_passive: bdev_nvme_set_preferred_path moves I/O to the path of that cntlid; a cntlid without a path is refused', async () => {
  const [bdev] = await b.call<
    Array<{ driver_specific: { nvme: Array<{ ctrlr_data: { cntlid: number } }> } }>
  >('bdev_get_bdevs', { name: BDEV });
  const [c1, c2] = bdev.driver_specific.nvme.map((n) => n.ctrlr_data.cntlid);
  assert.equal(await b.call('bdev_nvme_set_preferred_path', { name: BDEV, cntlid: c2 }), true);
  let before = await writesOnBoth();
  await writesOnly(host.qs[0], 10, 5000, 1);
  await writesOnly(host.qs[1], 10, 5100, 2);
  let now = await writesOnBoth();
  assert.deepEqual([now[0] - before[0], now[1] - before[1]], [0, 20]);
  for (const g of await ioPaths()) {
    assert.deepEqual(
      g.io_paths.map((p) => [p.cntlid, p.current]),
      [
        [c2, true],
        [c1, false],
      ],
      'the preferred path first and current',
    );
  }
  await assert.rejects(
    b.call('bdev_nvme_set_preferred_path', { name: BDEV, cntlid: 4000 }),
    (e: unknown) => e instanceof RpcError && e.code === -19,
  );
  await assert.rejects(
    b.call('bdev_nvme_set_preferred_path', { name: 'Nope', cntlid: c1 }),
    (e: unknown) => e instanceof RpcError && e.code === -19,
  );
  assert.equal(await b.call('bdev_nvme_set_preferred_path', { name: BDEV, cntlid: c1 }), true);
  before = await writesOnBoth();
  await writesOnly(host.qs[0], 10, 5200, 3);
  now = await writesOnBoth();
  assert.deepEqual([now[0] - before[0], now[1] - before[1]], [10, 0]);
});

test('set_multipath_policy refusals: no such bdev, a selector with active_passive, rr_min_io 0', async () => {
  const refused = async (params: Record<string, unknown>, code: number) =>
    assert.rejects(
      b.call('bdev_nvme_set_multipath_policy', params),
      (e: unknown) => e instanceof RpcError && e.code === code,
    );
  await refused({ name: 'Nope', policy: 'active_active' }, -19);
  await refused({ name: BDEV, policy: 'active_passive', selector: 'queue_depth' }, -32603);
  await refused({ name: BDEV, policy: 'active_active', rr_min_io: 0 }, -22);
  await refused({ name: BDEV, policy: 'sideways' }, -32602);
});

test('A1 killed under active_active I/O: every I/O completes through A2 with its data verified; A1 back: I/O spreads again', async () => {
  await b.call('bdev_nvme_set_multipath_policy', { name: BDEV, policy: 'active_active' });
  let stop = false;
  let ok = 0;
  const errors: string[] = [];
  const loops = host.qs.map(async (q, k) => {
    const back = Buffer.alloc(8 * BS);
    for (let i = 0; !stop; i++) {
      const lba = 6144 + k * 2048 + ((i * 8) % 2048);
      const data = pattern(8 * BS, k * 1_000_000 + i);
      try {
        await q.writeAsync(1, lba, 8, data);
        await q.readAsync(1, lba, 8, back);
        if (!back.equals(data)) errors.push(`queue ${k} I/O ${i}: read back differs`);
        ok++;
      } catch (e) {
        errors.push(`queue ${k} I/O ${i}: ${(e as Error).message}`);
      }
    }
  });
  try {
    await waitFor('I/O running', () => ok > 50, { timeoutMs: 30_000 });
    const before2 = await opsOn(a2);
    await a1.kill('SIGKILL');
    const at = ok;
    await waitFor('I/O going on without A1', () => ok > at + 200, { timeoutMs: 30_000 });
    assert.ok((await opsOn(a2)) > before2 + 200, 'A2 carries it');
    await waitFor('B to see path A1 down', async () =>
      (await ioPaths()).every((g) => g.io_paths[0].current === false && g.io_paths[1].current === true),
    );
    // A1 back, same port and file: B reconnects it (reconnect_delay_sec 1) and uses it again
    await a1.restart();
    await waitFor(
      'path A1 reconnected',
      async () => {
        const [ctrl] = await b.call<Array<{ ctrlrs: Array<{ state: string }> }>>(
          'bdev_nvme_get_controllers',
          {
            name: 'Nvme0',
          },
        );
        return ctrl.ctrlrs.every((x) => x.state === 'enabled');
      },
      { timeoutMs: 30_000 },
    );
    let seen = '';
    await waitFor(
      'I/O on A1 again',
      async () => {
        seen = JSON.stringify({ paths: await ioPaths(), ana: await anaStates() });
        // a realm alternating paths per I/O may send all its writes one way and its reads the other
        return (await opsOn(a1)) > 20;
      },
      {
        timeoutMs: 30_000,
        detail: () =>
          `I/O done: ${ok}, errors: ${errors.slice(0, 3).join('; ')}\n${seen}\nB's log:\n${b.log().slice(-4000)}`,
      },
    );
  } finally {
    stop = true;
    await within(30_000, 'the I/O loops', Promise.all(loops));
  }
  assert.deepEqual(errors, []);
  assert.ok(ok > 300);
});

test('save_config writes bdev_nvme_set_options, multipath_opts on both attaches and the bdev policy; a replay rebuilds the same bdev config', async () => {
  await b.call('bdev_nvme_set_multipath_policy', { name: BDEV, policy: 'active_active', rr_min_io: 4 });
  type Cfg = {
    subsystems: Array<{
      subsystem: string;
      config: Array<{ method: string; params?: Record<string, unknown> }>;
    }>;
  };
  const cfg = await b.call<Cfg>('save_config');
  const bdevCfg = cfg.subsystems.find((s) => s.subsystem === 'bdev')!.config;
  const methods = bdevCfg.map((e) => e.method);
  const at = (m: string) => methods.indexOf(m);
  assert.ok(
    at('bdev_nvme_set_options') >= 0 && at('bdev_nvme_set_options') < at('bdev_nvme_attach_controller'),
  );
  const opts = bdevCfg[at('bdev_nvme_set_options')].params!;
  assert.equal(opts.keep_alive_timeout_ms, 5000);
  assert.deepEqual(opts.multipath_opts, { policy: 'active_active', selector: 'round_robin', min_io: 1 });
  assert.deepEqual(opts.dhchap_digests, ['sha256', 'sha384', 'sha512']);
  assert.equal(Object.keys(opts).length, 33, "every one of SPDK's options");
  const attaches = bdevCfg.filter((e) => e.method === 'bdev_nvme_attach_controller');
  assert.deepEqual(
    attaches.map((e) => [e.params!.trsvcid, e.params!.multipath, e.params!.multipath_opts]),
    [
      [port1, 'multipath', { policy: 'active_active', selector: 'round_robin', min_io: 1 }],
      [port2, 'multipath', { policy: 'active_active', selector: 'round_robin', min_io: 1 }],
    ],
  );
  const policy = bdevCfg.filter((e) => e.method === 'bdev_nvme_set_multipath_policy');
  assert.deepEqual(policy, [
    {
      method: 'bdev_nvme_set_multipath_policy',
      params: { name: BDEV, policy: 'active_active', selector: 'round_robin', rr_min_io: 4 },
    },
  ]);
  assert.ok(at('bdev_nvme_set_multipath_policy') > methods.lastIndexOf('bdev_nvme_attach_controller'));

  const cfgFile = join(dir, 'b.json');
  writeFileSync(
    cfgFile,
    JSON.stringify({ subsystems: cfg.subsystems.filter((s) => s.subsystem === 'bdev') }),
  );
  const replay = await ChildTarget.start({ cores: '0x3', configFile: cfgFile });
  try {
    const again = await replay.call<Cfg>('save_config');
    assert.deepEqual(again.subsystems.find((s) => s.subsystem === 'bdev')!.config, bdevCfg);
    const [bdev] = await replay.call<Array<{ driver_specific: Record<string, unknown> }>>('bdev_get_bdevs', {
      name: BDEV,
    });
    assert.deepEqual(
      [bdev.driver_specific.mp_policy, bdev.driver_specific.selector, bdev.driver_specific.rr_min_io],
      ['active_active', 'round_robin', 4],
    );
    // nothing has a channel of the bdev there: no poll group, as in SPDK
    assert.deepEqual(await ioPaths(replay), []);
    // set_options after an attach: refused, as SPDK
    await assert.rejects(
      replay.call('bdev_nvme_set_options', { multipath_opts: { policy: 'active_passive' } }),
      (e: unknown) => e instanceof RpcError && e.code === -1,
    );
    assert.deepEqual(replay.uncaughtErrors(), []);
  } finally {
    await replay.stop();
  }
  // the file replayed is the one written (no secret, no surprise)
  assert.match(readFileSync(cfgFile, 'utf8'), /bdev_nvme_set_multipath_policy/);
});

test("nvmf-rpc takes rpc.py's command lines: set_multipath_policy -b -p -s -r, get_io_paths -n, set_preferred_path -b -c, set_options --policy --selector --min-io", async () => {
  let r = await cli(
    b.rpcPath,
    'bdev_nvme_set_multipath_policy',
    '-b',
    BDEV,
    '-p',
    'active_active',
    '-s',
    'round_robin',
    '-r',
    '3',
  );
  assert.equal(r.code, 0, r.stderr);
  const [bdev] = await b.call<Array<{ driver_specific: Record<string, unknown> }>>('bdev_get_bdevs', {
    name: BDEV,
  });
  assert.equal(bdev.driver_specific.rr_min_io, 3);
  r = await cli(b.rpcPath, 'bdev_nvme_get_io_paths', '-n', BDEV);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { poll_groups: Array<{ io_paths: IoPath[] }> };
  assert.ok(out.poll_groups.length > 0 && out.poll_groups[0].io_paths.length === 2);
  const c2 = out.poll_groups[0].io_paths[1].cntlid;
  r = await cli(b.rpcPath, 'bdev_nvme_set_preferred_path', '-b', BDEV, '-c', String(c2));
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await ioPaths())[0].io_paths[0].cntlid, c2);
  r = await cli(b.rpcPath, 'bdev_nvme_set_multipath_policy', '-b', BDEV, '-p', 'nope');
  assert.notEqual(r.code, 0);
  // set_options on a target without controllers: the flags become multipath_opts
  const fresh = await ChildTarget.start({ cores: '0x1', config: null });
  try {
    r = await cli(
      fresh.rpcPath,
      'bdev_nvme_set_options',
      '--policy',
      'active_active',
      '--selector',
      'queue_depth',
    );
    assert.equal(r.code, 0, r.stderr);
    const cfg = await fresh.call<{
      subsystems: Array<{
        subsystem: string;
        config: Array<{ method: string; params: Record<string, unknown> }>;
      }>;
    }>('save_config');
    const opts = cfg.subsystems
      .find((s) => s.subsystem === 'bdev')!
      .config.find((e) => e.method === 'bdev_nvme_set_options')!;
    assert.deepEqual(opts.params.multipath_opts, { policy: 'active_active', selector: 'queue_depth' });
  } finally {
    await fresh.stop();
  }
});

test('rpc_get_methods lists the multipath methods (SPDK v26.05 names)', async () => {
  const ours = await b.call<string[]>('rpc_get_methods');
  for (const m of [
    'bdev_nvme_get_io_paths',
    'bdev_nvme_set_preferred_path',
    'bdev_nvme_set_multipath_policy',
  ]) {
    assert.ok(ours.includes(m), `${m} is listed`);
  }
});
