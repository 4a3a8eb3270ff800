// bdev_nvme, the target as a gateway: target A (one reactor) exports a
// malloc bdev; target B (two reactors) attaches A with bdev_nvme and exports
// Nvme0n1. Our host library writes through B and reads back through B and A;
// every I/O command passes through (with NVMe errors); A is killed and
// restarted (B reconnects, I/O resumes); with a short ctrlr_loss_timeout_sec
// and A left down the bdev is removed and B keeps serving.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RpcError } from '../../src/jsonrpc/index.ts';
import { NvmeController, type NvmeIoQpair, NvmeStatusError } from '../../src/nvme/index.ts';
import { NvmOpcode, SQE_SIZE, Sqe, SqeFlags, setSlba, statusOf } from '../../src/wire/nvme.ts';
import { ChildTarget, freePort, pattern, spawnTarget, waitFor, within } from '../lib/index.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const CLI = new URL('../../src/apps/nvmf-rpc.ts', import.meta.url).pathname;
const CNODE_A = 'nqn.2016-06.io.spdk:cnodeA';
const CNODE_B = 'nqn.2016-06.io.spdk:cnodeB';
const BS = 512;
const BLOCKS = 16384;

/** A target of this test: one of test/lib's, named for the logs. */
type Target = ChildTarget & { name: string };

const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-bdev-nvme-'));
const started: Target[] = [];
let portA = '';
let portB = '';
let a: Target | null = null;
let b: Target | null = null;
let mallocUuid = '';

async function freePortText(): Promise<string> {
  return String(await freePort());
}

function listener(port: string) {
  return { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: port };
}

const CNODE_A2 = 'nqn.2016-06.io.spdk:cnodeA2';

/** A's config; `second` adds a subsystem CNODE_A2 with its own malloc bdev. */
function configA(second = false) {
  const extraBdev = second
    ? [{ method: 'bdev_malloc_create', params: { name: 'Malloc2', num_blocks: 1024, block_size: BS } }]
    : [];
  const extraNvmf = second
    ? [
        { method: 'nvmf_create_subsystem', params: { nqn: CNODE_A2, allow_any_host: true } },
        { method: 'nvmf_subsystem_add_ns', params: { nqn: CNODE_A2, namespace: { bdev_name: 'Malloc2' } } },
        { method: 'nvmf_subsystem_add_listener', params: { nqn: CNODE_A2, listen_address: listener(portA) } },
      ]
    : [];
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          {
            method: 'bdev_malloc_create',
            params: { name: 'Malloc0', num_blocks: BLOCKS, block_size: BS, uuid: mallocUuid },
          },
          ...extraBdev,
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP', max_queue_depth: 16 } },
          {
            method: 'nvmf_create_subsystem',
            params: {
              nqn: CNODE_A,
              allow_any_host: true,
              serial_number: 'SPDKA0001',
              model_number: 'Gateway A',
            },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: CNODE_A, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: CNODE_A, listen_address: listener(portA) },
          },
          ...extraNvmf,
        ],
      },
    ],
  };
}

/** Start a target named `name` (its log is printed at the end when BDEV_NVME_TEST_LOGS is set). */
async function startTarget(name: string, mask: string, config?: unknown): Promise<Target> {
  const t = Object.assign(await ChildTarget.start({ cores: mask, config: config ?? null }), { name });
  started.push(t);
  return t;
}

function cli(sock: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [CLI, '-s', sock, '-t', '30', ...args], { timeout: 40_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout, stderr });
    });
  });
}

function tgtA(): Target {
  assert.ok(a, 'target A runs');
  return a;
}
function tgtB(): Target {
  assert.ok(b, 'target B runs');
  return b;
}

async function exportOnB(bdev: string): Promise<void> {
  await tgtB().rpc.call('nvmf_subsystem_add_ns', { nqn: CNODE_B, namespace: { nsid: 1, bdev_name: bdev } });
}

/** Host I/O B's poll groups have handed to its bdevs and not seen complete (nvmf_get_stats). */
function pendingOnB(): Promise<number> {
  return tgtB().total('pending_bdev_io');
}

/** A host controller on B with two I/O queues (B's two poll groups, so both of B's realms). */
async function hostOnB(): Promise<{ c: NvmeController; qs: NvmeIoQpair[] }> {
  const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: portB, subnqn: CNODE_B });
  await c.setNumQueues(2);
  return { c, qs: [await c.createIoQpair(127), await c.createIoQpair(127)] };
}

before(async () => {
  portA = await freePortText();
  portB = await freePortText();
  mallocUuid = crypto.randomUUID();
  a = await startTarget('A', '0x1', configA());
  b = await startTarget('B', '0x3');
  const rb = tgtB().rpc;
  // a hung A is noticed after 3 s without a Keep Alive answer
  await rb.call('bdev_nvme_set_options', { keep_alive_timeout_ms: 3000 });
  await rb.call('nvmf_create_transport', { trtype: 'TCP' });
  await rb.call('nvmf_create_subsystem', { nqn: CNODE_B, allow_any_host: true, serial_number: 'SPDKB0001' });
  await rb.call('nvmf_subsystem_add_listener', { nqn: CNODE_B, listen_address: listener(portB) });
});

after(async () => {
  if (process.env.BDEV_NVME_TEST_LOGS)
    for (const t of started) process.stderr.write(`--- ${t.name}\n${t.log()}`);
  for (const t of started) await t.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The bdev_nvme_set_options entry of SPDK v26.05's save_config (all of its parameters). */
const SPDK_NVME_OPTIONS = {
  action_on_timeout: 'none',
  timeout_us: 0,
  timeout_admin_us: 0,
  keep_alive_timeout_ms: 10000,
  arbitration_burst: 0,
  low_priority_weight: 0,
  medium_priority_weight: 0,
  high_priority_weight: 0,
  nvme_adminq_poll_period_us: 10000,
  nvme_ioq_poll_period_us: 0,
  io_queue_requests: 0,
  delay_cmd_submit: true,
  transport_retry_count: 4,
  bdev_retry_count: 3,
  transport_ack_timeout: 0,
  ctrlr_loss_timeout_sec: 0,
  reconnect_delay_sec: 0,
  fast_io_fail_timeout_sec: 0,
  disable_auto_failback: false,
  generate_uuids: false,
  transport_tos: 0,
  nvme_error_stat: false,
  rdma_srq_size: 0,
  io_path_stat: false,
  allow_accel_sequence: false,
  rdma_max_cq_size: 0,
  rdma_cm_event_timeout_ms: 0,
  dhchap_digests: ['sha256', 'sha384', 'sha512'],
  dhchap_dhgroups: ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'],
  rdma_umr_per_io: false,
  tcp_connect_timeout_ms: 0,
  enable_flush: false,
  multipath_opts: { policy: 'active_passive' },
};

test("SPDK's bdev_nvme_set_options and bdev_nvme_set_hotplug config entries replay", async () => {
  const rb = tgtB().rpc;
  assert.equal(await rb.call('bdev_nvme_set_options', SPDK_NVME_OPTIONS), true);
  assert.equal(await rb.call('bdev_nvme_set_hotplug', { period_us: 100000, enable: false }), true);
  // save_config writes them back as SPDK does, before any attach
  const cfg = (await rb.call('save_config')) as {
    subsystems: Array<{ subsystem: string; config: Array<{ method: string; params?: unknown }> }>;
  };
  const bdevCfg = cfg.subsystems.find((s) => s.subsystem === 'bdev')!.config;
  assert.deepEqual(
    bdevCfg.filter((e) => e.method.startsWith('bdev_nvme_')),
    [
      { method: 'bdev_nvme_set_options', params: SPDK_NVME_OPTIONS },
      { method: 'bdev_nvme_set_hotplug', params: { period_us: 100000, enable: false } },
    ],
  );
  await assert.rejects(
    rb.call('bdev_nvme_set_options', { ctrlr_loss_timeout_sec: 10, reconnect_delay_sec: 0 }),
    (e: unknown) => e instanceof RpcError && e.code === -22,
  );
  await assert.rejects(
    rb.call('bdev_nvme_set_options', { timeout_admin_us: 5 }),
    (e: unknown) => e instanceof RpcError && e.code === -22,
  );
  await assert.rejects(
    rb.call('bdev_nvme_set_options', { multipath_opts: { policy: 'active_active', min_io: 0 } }),
    (e: unknown) => e instanceof RpcError && e.code === -22,
  );
  // back to the short keep-alive the hung-target test relies on
  assert.equal(await rb.call('bdev_nvme_set_options', { keep_alive_timeout_ms: 3000 }), true);
});

test('attach: bad parameters and an unreachable target are RPC errors naming the problem', async () => {
  const rb = tgtB().rpc;
  const base = { name: 'Bad0', trtype: 'tcp', traddr: '127.0.0.1', adrfam: 'ipv4', subnqn: CNODE_A };
  await assert.rejects(
    rb.call('bdev_nvme_attach_controller', { ...base, trsvcid: portA, ctrlr_loss_timeout_sec: 5 }),
    (e: unknown) => e instanceof RpcError && e.code === -22 && /reconnect_delay_sec/.test(e.message),
  );
  await assert.rejects(
    rb.call('bdev_nvme_attach_controller', { ...base, trtype: 'fc', trsvcid: portA }),
    (e: unknown) => e instanceof RpcError && e.code === -22 && /fc/.test(e.message),
  );
  await assert.rejects(
    rb.call('bdev_nvme_attach_controller', {
      ...base,
      trsvcid: portA,
      subnqn: 'nqn.2014-08.org.nvmexpress.discovery',
    }),
    (e: unknown) => e instanceof RpcError && e.code === -22 && /discovery/.test(e.message),
  );
  await assert.rejects(
    rb.call('bdev_nvme_attach_controller', { ...base, trsvcid: portA, prchk_guard: true }),
    (e: unknown) => e instanceof RpcError && e.code === -22 && /prchk_guard/.test(e.message),
  );
  const closedPort = await freePortText();
  await assert.rejects(
    rb.call('bdev_nvme_attach_controller', { ...base, trsvcid: closedPort }),
    (e: unknown) => e instanceof RpcError && e.code === -19 && e.message.includes(closedPort),
  );
  assert.deepEqual(await rb.call('bdev_nvme_get_controllers'), []);
  await assert.rejects(
    rb.call('bdev_nvme_detach_controller', { name: 'Bad0' }),
    (e: unknown) => e instanceof RpcError && e.code === -19,
  );
});

test('attach creates Nvme0n1 with the remote namespace geometry; get_controllers in SPDK shape', async () => {
  const rb = tgtB().rpc;
  const names = await rb.call('bdev_nvme_attach_controller', {
    name: 'Nvme0',
    trtype: 'tcp',
    traddr: '127.0.0.1',
    adrfam: 'ipv4',
    trsvcid: portA,
    subnqn: CNODE_A,
    ctrlr_loss_timeout_sec: -1,
    reconnect_delay_sec: 1,
  });
  assert.deepEqual(names, ['Nvme0n1']);
  const [bdev] = (await rb.call('bdev_get_bdevs', { name: 'Nvme0n1' })) as Array<Record<string, unknown>>;
  assert.equal(bdev.block_size, BS);
  assert.equal(bdev.num_blocks, BLOCKS);
  assert.equal(bdev.uuid, mallocUuid, 'the namespace UUID of A becomes the bdev UUID');
  assert.equal(bdev.product_name, 'NVMe disk');
  const io = bdev.supported_io_types as Record<string, boolean>;
  for (const t of ['read', 'write', 'flush', 'unmap', 'write_zeroes', 'compare', 'reset']) {
    assert.equal(io[t], true, `${t} supported`);
  }
  const ds = (
    bdev.driver_specific as {
      nvme: Array<{ trid: Record<string, string>; ctrlr_data: Record<string, unknown> }>;
    }
  ).nvme[0];
  assert.equal(ds.trid.trsvcid, portA);
  assert.equal(ds.ctrlr_data.serial_number, 'SPDKA0001');
  assert.equal(ds.ctrlr_data.model_number, 'Gateway A');

  const ctrlrs = (await rb.call('bdev_nvme_get_controllers')) as Array<{
    name: string;
    ctrlrs: Array<{ state: string; trid: Record<string, string>; cntlid: number; host: { nqn: string } }>;
  }>;
  assert.equal(ctrlrs.length, 1);
  assert.equal(ctrlrs[0].name, 'Nvme0');
  const c0 = ctrlrs[0].ctrlrs[0];
  assert.equal(c0.state, 'enabled');
  assert.deepEqual(c0.trid, {
    trtype: 'TCP',
    adrfam: 'IPv4',
    traddr: '127.0.0.1',
    trsvcid: portA,
    subnqn: CNODE_A,
  });
  assert.ok(c0.cntlid > 0);
  assert.match(c0.host.nqn, /^nqn\.2014-08\.org\.nvmexpress:uuid:/);
  // A sees that host as the controller's host
  const onA = (await tgtA().rpc.call('nvmf_subsystem_get_controllers', { nqn: CNODE_A })) as Array<{
    cntlid: number;
    hostnqn: string;
  }>;
  assert.equal(onA.length, 1);
  assert.equal(onA[0].cntlid, c0.cntlid);
  assert.equal(onA[0].hostnqn, c0.host.nqn);
  await assert.rejects(rb.call('bdev_nvme_get_controllers', { name: 'Nope' }), RpcError);
  await assert.rejects(
    rb.call('bdev_nvme_attach_controller', {
      name: 'Nvme0',
      trtype: 'tcp',
      traddr: '127.0.0.1',
      trsvcid: portA,
      subnqn: CNODE_A,
    }),
    (e: unknown) => e instanceof RpcError && e.code === -114,
  );
});

test('I/O through B: verified through B and A; flush, write zeroes, deallocate, compare pass through', async () => {
  await exportOnB('Nvme0n1');
  const { c, qs } = await hostOnB();
  const direct = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: portA, subnqn: CNODE_A });
  const qa = await direct.createIoQpair(16);
  try {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 16; i++) writes.push(qs[i % 2].writeAsync(1, i * 32, 32, pattern(32 * BS, i)));
    await within(30_000, 'writes through B', Promise.all(writes));
    for (let i = 0; i < 16; i++) {
      const viaB = Buffer.alloc(32 * BS);
      await qs[(i + 1) % 2].readAsync(1, i * 32, 32, viaB);
      assert.ok(viaB.equals(pattern(32 * BS, i)), `range ${i} reads back through B`);
      const viaA = Buffer.alloc(32 * BS);
      await qa.readAsync(1, i * 32, 32, viaA);
      assert.ok(viaA.equals(pattern(32 * BS, i)), `range ${i} reads back through A`);
    }
    // 2 x 100 writes at once: B's queues to A hold 16 (A's max_queue_depth), the rest wait in B
    const burst: Promise<void>[] = [];
    for (let i = 0; i < 200; i++)
      burst.push(qs[i % 2].writeAsync(1, 8192 + i * 8, 8, pattern(8 * BS, 1000 + i)));
    await within(30_000, 'a burst deeper than the remote queue', Promise.all(burst));
    const burstBack = Buffer.alloc(200 * 8 * BS);
    await qa.readAsync(1, 8192, 200 * 8, burstBack);
    for (let i = 0; i < 200; i++) {
      assert.ok(
        burstBack.subarray(i * 8 * BS, (i + 1) * 8 * BS).equals(pattern(8 * BS, 1000 + i)),
        `burst write ${i} landed on A`,
      );
    }
    // a transfer of 1 MiB (split by B below A's MDTS), FUA
    const big = pattern(1 << 20, 99);
    await qs[0].writeAsync(1, 4096, (1 << 20) / BS, big, true);
    const bigA = Buffer.alloc(1 << 20);
    await qa.readAsync(1, 4096, (1 << 20) / BS, bigA);
    assert.ok(bigA.equals(big), '1 MiB write through B lands on A');

    await qs[0].flushAsync(1);
    await qs[1].writeZeroesAsync(1, 0, 8);
    const z = Buffer.alloc(8 * BS, 0xff);
    await qa.readAsync(1, 0, 8, z);
    assert.ok(z.equals(Buffer.alloc(8 * BS)), 'write zeroes through B zeroed the blocks on A');
    await qs[1].dsmAsync(1, [
      [64, 32],
      [256, 16],
    ]);

    await qs[0].compareAsync(1, 32, 32, pattern(32 * BS, 1));
    await assert.rejects(qs[1].compareAsync(1, 32, 32, pattern(32 * BS, 2)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x285, 'Compare Failure from A passes through B');
      return true;
    });
    await assert.rejects(qs[0].readAsync(1, BLOCKS - 4, 8, Buffer.alloc(8 * BS)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x80, 'LBA out of range');
      return true;
    });
    // each of B's realms connected its own I/O queue to the one controller on A
    const onA = (await tgtA().rpc.call('nvmf_subsystem_get_controllers', { nqn: CNODE_A })) as Array<{
      num_io_qpairs: number;
      hostnqn: string;
    }>;
    const gateway = onA.find((x) => x.num_io_qpairs === 2);
    assert.ok(gateway, `B holds two I/O queues on A: ${JSON.stringify(onA)}`);
  } finally {
    await direct.disconnect();
    await c.disconnect();
  }
});

async function controllerState(name: string): Promise<{ state: string; cntlid: number }> {
  const ctrlrs = (await tgtB().rpc.call('bdev_nvme_get_controllers', { name })) as Array<{
    ctrlrs: Array<{ state: string; cntlid: number }>;
  }>;
  return ctrlrs[0].ctrlrs[0];
}

/** A fused compare-and-write pair on one queue; resolves both statuses. */
function compareAndWrite(
  q: NvmeIoQpair,
  lba: number,
  blocks: number,
  cmp: Buffer,
  data: Buffer,
): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const statuses = [-1, -1];
    let left = 2;
    const half = (i: number, opcode: number, fuse: number, buf: Buffer) => {
      const cmd = Buffer.alloc(SQE_SIZE);
      cmd[Sqe.OPCODE] = opcode;
      cmd[Sqe.FLAGS] = fuse;
      cmd.writeUInt32LE(1, Sqe.NSID);
      setSlba(cmd, lba);
      cmd.writeUInt32LE(blocks - 1, Sqe.CDW12);
      const ok = q.submit(cmd, buf, false, (cpl) => {
        statuses[i] = statusOf(cpl);
        if (--left === 0) resolve(statuses);
      });
      if (!ok) reject(new Error('queue full'));
    };
    half(0, NvmOpcode.COMPARE, SqeFlags.FUSE_FIRST, cmp);
    half(1, NvmOpcode.WRITE, SqeFlags.FUSE_SECOND, data);
  });
}

test('fused compare-and-write through B is a fused pair on A (match writes, miscompare does not)', async () => {
  const [bdev] = (await tgtB().rpc.call('bdev_get_bdevs', { name: 'Nvme0n1' })) as Array<{
    supported_io_types: Record<string, boolean>;
  }>;
  assert.equal(bdev.supported_io_types.compare_and_write, true);
  const { c, qs } = await hostOnB();
  try {
    const old = pattern(4 * BS, 41);
    const fresh = pattern(4 * BS, 42);
    await qs[0].writeAsync(1, 800, 4, old);
    assert.deepEqual(await compareAndWrite(qs[0], 800, 4, old, fresh), [0, 0]);
    const back = Buffer.alloc(4 * BS);
    await qs[1].readAsync(1, 800, 4, back);
    assert.ok(back.equals(fresh), 'the compare matched: written');
    assert.deepEqual(await compareAndWrite(qs[1], 800, 4, old, pattern(4 * BS, 43)), [0x285, 0x009]);
    await qs[0].readAsync(1, 800, 4, back);
    assert.ok(back.equals(fresh), 'miscompare: nothing written');
  } finally {
    await c.disconnect();
  }
});

test("bdev_nvme_get_controller_health_info: A's SMART / health log in SPDK's fields; its counters move with B's I/O", async () => {
  const health = async () =>
    (await tgtB().rpc.call('bdev_nvme_get_controller_health_info', { name: 'Nvme0' })) as Record<
      string,
      unknown
    >;
  const info = await health();
  assert.deepEqual(Object.keys(info), [
    'model_number',
    'serial_number',
    'firmware_revision',
    'traddr',
    'critical_warning',
    'temperature_celsius',
    'available_spare_percentage',
    'available_spare_threshold_percentage',
    'percentage_used',
    'data_units_read',
    'data_units_written',
    'host_read_commands',
    'host_write_commands',
    'controller_busy_time',
    'power_cycles',
    'power_on_hours',
    'unsafe_shutdowns',
    'media_errors',
    'num_err_log_entries',
    'warning_temperature_time_minutes',
    'critical_composite_temperature_time_minutes',
  ]);
  assert.equal(info.traddr, '127.0.0.1');
  assert.ok((info.host_write_commands as number) > 200, "the tests before wrote through B's controller on A");
  // ten 4 KiB reads through B: ten more read commands on A's log page for B's controller, no write
  const { c, qs } = await hostOnB();
  try {
    for (let i = 0; i < 10; i++) await qs[0].readAsync(1, i * 8, 8, Buffer.alloc(8 * BS));
  } finally {
    await c.disconnect();
  }
  const now = await health();
  assert.equal((now.host_read_commands as number) - (info.host_read_commands as number), 10);
  assert.equal(now.host_write_commands, info.host_write_commands);
  await assert.rejects(
    tgtB().rpc.call('bdev_nvme_get_controller_health_info', { name: 'Nope' }),
    (e: unknown) => e instanceof RpcError && e.code === -32603 && e.message === 'Device not found',
  );
});

test('bdev_nvme_reset_controller: a new controller on A, I/O through B goes on', async () => {
  const { c, qs } = await hostOnB();
  try {
    await qs[0].writeAsync(1, 500, 8, pattern(8 * BS, 21));
    const before = await controllerState('Nvme0');
    // I/O in flight across the reset waits and completes
    const across = [
      qs[0].writeAsync(1, 600, 8, pattern(8 * BS, 22)),
      qs[1].readAsync(1, 500, 8, Buffer.alloc(8 * BS)),
    ];
    assert.equal(await tgtB().rpc.call('bdev_nvme_reset_controller', { name: 'Nvme0' }), true);
    await within(30_000, 'I/O across the reset', Promise.all(across));
    const after = await controllerState('Nvme0');
    assert.equal(after.state, 'enabled');
    assert.notEqual(after.cntlid, before.cntlid, 'a new controller on A');
    const back = Buffer.alloc(8 * BS);
    await qs[1].readAsync(1, 600, 8, back);
    assert.ok(back.equals(pattern(8 * BS, 22)));
    await assert.rejects(
      tgtB().rpc.call('bdev_nvme_reset_controller', { name: 'Nope' }),
      (e: unknown) => e instanceof RpcError && e.code === -19,
    );
    await assert.rejects(
      tgtB().rpc.call('bdev_nvme_set_options', { keep_alive_timeout_ms: 5000 }),
      (e: unknown) => e instanceof RpcError && /already attached/.test(e.message),
    );
  } finally {
    await c.disconnect();
  }
});

async function waitBdev(name: string, present: boolean): Promise<Record<string, unknown> | null> {
  let found: Record<string, unknown> | null = null;
  await waitFor(
    `bdev ${name} to ${present ? 'appear' : 'go'}`,
    async () => {
      found = await tgtB()
        .rpc.call('bdev_get_bdevs', { name })
        .then(
          (r) => (r as Array<Record<string, unknown>>)[0],
          () => null,
        );
      return (found !== null) === present;
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  return found;
}

test('a namespace added on A appears on B (namespace-changed event); removed, it goes', async () => {
  const ra = tgtA().rpc;
  await ra.call('bdev_malloc_create', { name: 'Malloc1', num_blocks: 2048, block_size: 4096 });
  await ra.call('nvmf_subsystem_add_ns', { nqn: CNODE_A, namespace: { nsid: 2, bdev_name: 'Malloc1' } });
  const added = await waitBdev('Nvme0n2', true);
  assert.equal(added?.block_size, 4096);
  assert.equal(added?.num_blocks, 2048);
  await ra.call('nvmf_subsystem_remove_ns', { nqn: CNODE_A, nsid: 2 });
  await waitBdev('Nvme0n2', false);
  await ra.call('bdev_malloc_delete', { name: 'Malloc1' });
  assert.equal((await controllerState('Nvme0')).state, 'enabled', 'the controller stays');
  await waitBdev('Nvme0n1', true);
});

test('A hung (SIGSTOP): B notices by keep-alive, I/O waits; after SIGCONT it reconnects and I/O completes', async () => {
  const { c, qs } = await hostOnB();
  const A = tgtA();
  try {
    await qs[0].writeAsync(1, 700, 8, pattern(8 * BS, 31));
    A.child.kill('SIGSTOP');
    let resumed = false;
    try {
      const data = pattern(8 * BS, 32);
      const pending = qs[1].writeAsync(1, 700, 8, data);
      await waitFor(
        'the unanswered Keep Alive to reset the controller',
        async () => (await controllerState('Nvme0')).state !== 'enabled',
        { timeoutMs: 20_000, intervalMs: 100 },
      );
      A.child.kill('SIGCONT');
      resumed = true;
      await within(30_000, 'the write held over the hang', pending);
      const back = Buffer.alloc(8 * BS);
      await qs[0].readAsync(1, 700, 8, back);
      assert.ok(back.equals(data));
      assert.equal((await controllerState('Nvme0')).state, 'enabled');
    } finally {
      if (!resumed) A.child.kill('SIGCONT');
    }
  } finally {
    await c.disconnect();
  }
});

test('save_config of B carries the attach; a fresh target replays it', async () => {
  const cfg = (await tgtB().rpc.call('save_config')) as {
    subsystems: Array<{
      subsystem: string;
      config: Array<{ method: string; params?: Record<string, unknown> }>;
    }>;
  };
  const bdevSection = cfg.subsystems.find((s) => s.subsystem === 'bdev');
  assert.ok(bdevSection);
  const attach = bdevSection.config.filter((c) => c.method === 'bdev_nvme_attach_controller');
  assert.equal(attach.length, 1);
  const p = attach[0].params!;
  assert.equal(p.name, 'Nvme0');
  assert.equal(p.trtype, 'TCP');
  assert.equal(p.traddr, '127.0.0.1');
  assert.equal(p.trsvcid, portA);
  assert.equal(p.subnqn, CNODE_A);
  assert.equal(p.ctrlr_loss_timeout_sec, -1);
  assert.equal(p.fast_io_fail_timeout_sec, 0);
  assert.equal(p.reconnect_delay_sec, 1);
  assert.match(String(p.hostnqn), /^nqn\.2014-08\.org\.nvmexpress:uuid:/);
  // replay the bdev section in another process: it attaches A again (another controller there)
  const c = await startTarget('C', '0x1', { subsystems: [bdevSection] });
  try {
    const [bdev] = (await c.rpc.call('bdev_get_bdevs', { name: 'Nvme0n1' })) as Array<
      Record<string, unknown>
    >;
    assert.equal(bdev.num_blocks, BLOCKS);
    const again = (await c.rpc.call('save_config')) as typeof cfg;
    const replayed = again.subsystems
      .find((s) => s.subsystem === 'bdev')
      ?.config.find((x) => x.method === 'bdev_nvme_attach_controller');
    assert.deepEqual(replayed?.params, p, 'save → load → save gives the same attach entry');
  } finally {
    await c.stop();
  }
});

test('A killed with -9 and restarted: B reconnects, waiting I/O completes, I/O resumes', async () => {
  const { c, qs } = await hostOnB();
  try {
    await qs[0].writeAsync(1, 1000, 8, pattern(8 * BS, 5));
    await tgtA().kill('SIGKILL');
    // I/O sent while A is down waits in B (ctrlr_loss_timeout_sec -1)
    const during = pattern(16 * BS, 6);
    const pending = [
      qs[0].writeAsync(1, 2000, 16, during),
      qs[1].writeAsync(1, 3000, 16, pattern(16 * BS, 7)),
    ];
    const settled = { done: false };
    void Promise.allSettled(pending).then(() => {
      settled.done = true;
    });
    let state = '';
    await waitFor(
      'B to notice the loss',
      async () => {
        const ctrlrs = (await tgtB().rpc.call('bdev_nvme_get_controllers', { name: 'Nvme0' })) as Array<{
          ctrlrs: Array<{ state: string }>;
        }>;
        state = ctrlrs[0].ctrlrs[0].state;
        return state !== 'enabled';
      },
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    assert.match(state, /resetting|reconnect_is_delayed/, 'B noticed the loss');
    // both writes reached B's namespace, whose bdev holds them (not failed) while A is down
    await waitFor('the two writes held at B', async () => (await pendingOnB()) === 2);
    assert.equal(settled.done, false, 'I/O waits while A is down');
    a = await startTarget('A', '0x1', configA());
    await within(30_000, 'I/O waiting across the reconnect', Promise.all(pending));
    const back = Buffer.alloc(16 * BS);
    await qs[1].readAsync(1, 2000, 16, back);
    assert.ok(back.equals(during), 'the write that waited reads back through B');
    const direct = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: portA, subnqn: CNODE_A });
    try {
      const qa = await direct.createIoQpair(8);
      const viaA = Buffer.alloc(16 * BS);
      await qa.readAsync(1, 2000, 16, viaA);
      assert.ok(viaA.equals(during), 'and it is on the restarted A');
    } finally {
      await direct.disconnect();
    }
    const ctrlrs = (await tgtB().rpc.call('bdev_nvme_get_controllers')) as Array<{
      ctrlrs: Array<{ state: string }>;
    }>;
    assert.equal(ctrlrs[0].ctrlrs[0].state, 'enabled');
  } finally {
    await c.disconnect();
  }
});

test('detach removes the bdev (and the namespace B exported)', async () => {
  const rb = tgtB().rpc;
  assert.equal(await rb.call('bdev_nvme_detach_controller', { name: 'Nvme0' }), true);
  await assert.rejects(rb.call('bdev_get_bdevs', { name: 'Nvme0n1' }), RpcError);
  assert.deepEqual(await rb.call('bdev_nvme_get_controllers'), []);
  const subs = (await rb.call('nvmf_get_subsystems')) as Array<{ nqn: string; namespaces?: unknown[] }>;
  assert.deepEqual(subs.find((s) => s.nqn === CNODE_B)?.namespaces ?? [], []);
  const controllersOnA = async () =>
    ((await tgtA().rpc.call('nvmf_subsystem_get_controllers', { nqn: CNODE_A })) as unknown[]).length;
  // A drops B's controller when the close of B's connections reaches it, after the detach returned
  await waitFor('B disconnected from A', async () => (await controllersOnA()) === 0);
  assert.equal(await controllersOnA(), 0, 'B disconnected from A');
});

test('nvmf-rpc CLI attach; A down past ctrlr_loss_timeout_sec: bdev removed, I/O fails, B lives', async () => {
  const B = tgtB();
  const out = await cli(
    B.rpcPath,
    'bdev_nvme_attach_controller',
    '-b',
    'Nvme1',
    '-t',
    'tcp',
    '-a',
    '127.0.0.1',
    '-f',
    'ipv4',
    '-s',
    portA,
    '-n',
    CNODE_A,
    '-l',
    '4',
    '-o',
    '1',
    '-u',
    '1',
    '-e',
    '-d',
    '--policy',
    'active_passive',
  );
  assert.equal(out.code, 0, `${out.stdout}${out.stderr}\n${B.log()}`);
  assert.equal(out.stdout.trim(), 'Nvme1n1');
  await exportOnB('Nvme1n1');
  const { c, qs } = await hostOnB();
  try {
    // header and data digests on B's queues to A (-e -d)
    await qs[0].writeAsync(1, 0, 64, pattern(64 * BS, 11));
    const back = Buffer.alloc(64 * BS);
    await qs[1].readAsync(1, 0, 64, back);
    assert.ok(back.equals(pattern(64 * BS, 11)));
    const saved = (await B.rpc.call('save_config')) as {
      subsystems: Array<{
        subsystem: string;
        config: Array<{ method: string; params?: Record<string, unknown> }>;
      }>;
    };
    const entry = saved.subsystems
      .find((s) => s.subsystem === 'bdev')
      ?.config.find((x) => x.method === 'bdev_nvme_attach_controller');
    assert.equal(entry?.params?.hdgst, true);
    assert.equal(entry?.params?.ddgst, true);
    await tgtA().kill('SIGKILL');
    const started = Date.now();
    // waits in B until fast_io_fail_timeout_sec (1 s), then fails; the bdev goes at 4 s
    const err = await within(
      30_000,
      'read while A stays down',
      qs[1].readAsync(1, 0, 8, Buffer.alloc(8 * BS)).then(
        () => null,
        (e: unknown) => e,
      ),
    );
    assert.ok(err instanceof NvmeStatusError, `the read failed with an NVMe status: ${String(err)}`);
    assert.equal(err.status, 0x06, 'Internal Device Error once fast_io_fail_timeout_sec passed');
    assert.ok(Date.now() - started >= 900, 'it waited for fast_io_fail_timeout_sec first');
    assert.equal((await controllerState('Nvme1')).state === 'deleting', false, 'still reconnecting');
    // new I/O now fails at once
    const quick = Date.now();
    await assert.rejects(qs[0].readAsync(1, 0, 8, Buffer.alloc(8 * BS)), NvmeStatusError);
    assert.ok(Date.now() - quick < 900);
    await waitBdev('Nvme1n1', false);
    assert.deepEqual(await B.rpc.call('bdev_nvme_get_controllers'), []);
    assert.ok(((await B.rpc.call('spdk_get_version')) as { version: string }).version, 'B still answers');
    assert.equal(B.child.exitCode, null);
  } finally {
    await c.disconnect();
  }
});

test('SPDK default ctrlr_loss_timeout_sec 0 deletes at once; B shuts down promptly while I/O waits for a dead A', async () => {
  a = await startTarget('A', '0x1', configA(true));
  const B = tgtB();
  const names = await B.rpc.call('bdev_nvme_attach_controller', {
    name: 'Nvme2',
    trtype: 'tcp',
    traddr: '127.0.0.1',
    trsvcid: portA,
    subnqn: CNODE_A,
    ctrlr_loss_timeout_sec: -1,
    reconnect_delay_sec: 1,
  });
  assert.deepEqual(names, ['Nvme2n1']);
  // defaults: ctrlr_loss_timeout_sec 0 = one reconnect attempt, then the controller goes
  assert.deepEqual(
    await B.rpc.call('bdev_nvme_attach_controller', {
      name: 'Nvme3',
      trtype: 'tcp',
      traddr: '127.0.0.1',
      trsvcid: portA,
      subnqn: CNODE_A2,
    }),
    ['Nvme3n1'],
  );
  await exportOnB('Nvme2n1');
  const { c, qs } = await hostOnB();
  try {
    await qs[0].writeAsync(1, 0, 8, pattern(8 * BS, 51));
    await tgtA().kill('SIGKILL');
    await waitBdev('Nvme3n1', false);
    const left = (await B.rpc.call('bdev_nvme_get_controllers')) as Array<{ name: string }>;
    assert.deepEqual(
      left.map((x) => x.name),
      ['Nvme2'],
      'Nvme3 (loss timeout 0) is deleted, Nvme2 (-1) keeps trying',
    );
    const waiting = qs[1].writeAsync(1, 8, 8, pattern(8 * BS, 52)).then(
      () => 'completed',
      () => 'failed',
    );
    // the write reached B's namespace, whose bdev holds it for the dead A
    await waitFor('the write held at B', async () => (await pendingOnB()) === 1);
    const started = Date.now();
    const exited = new Promise<number | null>((r) => B.child.once('exit', (code) => r(code)));
    B.child.kill('SIGTERM');
    const code = await within(20_000, 'B exits', exited);
    assert.equal(code, 0, `B exit code\n${B.log().slice(-3000)}`);
    assert.ok(Date.now() - started < 15_000, 'no hang on the waiting I/O');
    assert.equal(await within(10_000, 'the host I/O ends', waiting), 'failed');
  } finally {
    await c.disconnect().catch(() => undefined);
  }
});

test('--json with an attach to an unreachable target: the error is logged and the target exits non-zero', async () => {
  const file = join(dir, 'unreachable.json');
  const closedPort = await freePortText();
  writeFileSync(
    file,
    JSON.stringify({
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            {
              method: 'bdev_nvme_attach_controller',
              params: {
                name: 'Gone0',
                trtype: 'TCP',
                traddr: '127.0.0.1',
                trsvcid: closedPort,
                subnqn: CNODE_A,
              },
            },
          ],
        },
      ],
    }),
  );
  const d = spawnTarget({ cores: '0x1', rpcPath: join(dir, 'D.sock'), configPath: file });
  const { code } = await within(30_000, 'the target with a bad config exits', d.exit).finally(() => {
    if (d.alive()) d.child.kill('SIGKILL');
  });
  const log = d.log();
  assert.notEqual(code, 0, log);
  assert.match(log, /bdev_nvme_attach_controller/);
  assert.match(log, new RegExp(`cannot attach controller Gone0.*${closedPort}`));
});
