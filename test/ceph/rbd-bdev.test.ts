// The rbd bdev against a real Ceph cluster (test/lib/ceph.ts starts one in a
// temp folder): SPDK's RPCs and their errors, data written through an nvmf-ts
// namespace read back by `rbd export`, every I/O type, resize under I/O and
// from outside, save_config replayed in a second target, and last an OSD
// killed mid-I/O: I/O fails with an NVMe status within its bound while a
// malloc namespace on the same target keeps serving. `npm run test:ceph`.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { RpcError } from '../../src/jsonrpc/index.ts';
import { NvmeController, type NvmeIoQpair, NvmeStatusError } from '../../src/nvme/index.ts';
import { NvmOpcode, SQE_SIZE, Sqe, SqeFlags, setSlba, statusOf } from '../../src/wire/nvme.ts';
import { CephCluster } from '../lib/ceph.ts';
import { ChildTarget, listenerEntry, pattern, waitFor, within } from '../lib/index.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const CLI = new URL('../../src/apps/nvmf-rpc.ts', import.meta.url).pathname;
const NQN = 'nqn.2016-06.io.spdk:rbd1';
const BS = 4096;
const IMAGE_MB = 64;

let ceph: CephCluster;
let tgt: ChildTarget;
const targets: ChildTarget[] = [];

function rpcErr(code: number, re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof RpcError, `an RPC error: ${String(e)}`);
    assert.equal(e.code, code, `code ${code}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  };
}

function cli(sock: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [CLI, '-s', sock, '-t', '60', ...args], { timeout: 70_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout, stderr });
    });
  });
}

async function startTarget(config: unknown = null): Promise<ChildTarget> {
  const t = await ChildTarget.start({ cores: '0x3', config });
  targets.push(t);
  return t;
}

async function exportNs(t: ChildTarget, nqn: string, bdev: string, nsid = 1): Promise<void> {
  await t.call('nvmf_subsystem_add_ns', { nqn, namespace: { nsid, bdev_name: bdev } });
}

/** A host controller with two I/O queues (the target's two poll groups, so both realms). */
async function host(t: ChildTarget, nqn = NQN): Promise<{ c: NvmeController; qs: NvmeIoQpair[] }> {
  const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: t.port, subnqn: nqn });
  await c.setNumQueues(2);
  return { c, qs: [await c.createIoQpair(127), await c.createIoQpair(127)] };
}

async function bdevInfo(t: ChildTarget, name: string): Promise<Record<string, unknown>> {
  const [b] = await t.call<Array<Record<string, unknown>>>('bdev_get_bdevs', { name });
  return b;
}

before(async () => {
  ceph = await CephCluster.start();
  process.stderr.write(`# ceph cluster healthy in ${ceph.startSeconds.toFixed(1)} s\n`);
  await ceph.createImage('img0', IMAGE_MB);
  tgt = await startTarget({
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          {
            method: 'nvmf_create_subsystem',
            params: { nqn: NQN, allow_any_host: true, serial_number: 'RBD0001' },
          },
          listenerEntry(NQN, '$PORT'),
        ],
      },
    ],
  });
});

after(async () => {
  for (const t of targets) await t.stop();
  await ceph?.stop();
});

test('the addon loads in the test process too (librbd and librados versions)', async () => {
  const { rbdAddon } = await import('../../src/modules/bdev/rbd/native.ts');
  const v = rbdAddon().version();
  assert.match(v.librbd, /^\d+\.\d+\.\d+$/);
  assert.match(v.librados, /^\d+\.\d+\.\d+$/);
});

test('bdev_rbd_register_cluster / get_clusters_info, and their refusals', async () => {
  assert.equal(
    await tgt.call('bdev_rbd_register_cluster', {
      name: 'ceph0',
      user_id: 'admin',
      config_file: ceph.conf,
      key_file: ceph.keyring,
    }),
    'ceph0',
  );
  assert.deepEqual(await tgt.call('bdev_rbd_get_clusters_info', { name: 'ceph0' }), {
    cluster_name: 'ceph0',
    user_id: 'admin',
    config_file: ceph.conf,
    key_file: ceph.keyring,
  });
  assert.deepEqual(await tgt.call('bdev_rbd_get_clusters_info'), [
    { cluster_name: 'ceph0', user_id: 'admin', config_file: ceph.conf, key_file: ceph.keyring },
  ]);
  await assert.rejects(
    tgt.call('bdev_rbd_register_cluster', { name: 'ceph0', config_file: ceph.conf }),
    rpcErr(-17, /ceph0 is already registered/),
  );
  await assert.rejects(tgt.call('bdev_rbd_get_clusters_info', { name: 'nope' }), rpcErr(-2, /nope/));
  await assert.rejects(
    tgt.call('bdev_rbd_register_cluster', { name: 'bad', config_file: '/nonexistent/ceph.conf' }),
    rpcErr(-2, /cannot read the config file \/nonexistent\/ceph.conf/),
  );
  await assert.rejects(
    tgt.call('bdev_rbd_register_cluster', { name: 'bad', config_param: { no_such_option: '1' } }),
    rpcErr(-2, /cannot set no_such_option = 1/),
  );
  // a monitor nobody listens on: the connect gives up after client_mount_timeout, the target goes on
  const t0 = Date.now();
  await assert.rejects(
    tgt.call('bdev_rbd_register_cluster', {
      name: 'gone',
      config_file: ceph.conf,
      config_param: { mon_host: '127.0.0.1:1', client_mount_timeout: '3' },
    }),
    rpcErr(-110, /cannot connect to the cluster/),
  );
  assert.ok(
    Date.now() - t0 < 20_000,
    `the dead cluster was given up within its bound (${Date.now() - t0} ms)`,
  );
  assert.equal(tgt.alive(), true);
});

test('bdev_rbd_create: SPDK parameters, the bad ones refused with what is wrong', async () => {
  await assert.rejects(
    tgt.call('bdev_rbd_create', {
      name: 'X',
      pool_name: 'nopool',
      rbd_name: 'img0',
      block_size: BS,
      cluster_name: 'ceph0',
    }),
    rpcErr(-2, /cannot open pool nopool/),
  );
  await assert.rejects(
    tgt.call('bdev_rbd_create', {
      name: 'X',
      pool_name: 'rbd',
      rbd_name: 'noimg',
      block_size: BS,
      cluster_name: 'ceph0',
    }),
    rpcErr(-2, /cannot open image noimg in pool rbd/),
  );
  await assert.rejects(
    tgt.call('bdev_rbd_create', {
      name: 'X',
      pool_name: 'rbd',
      rbd_name: 'img0',
      block_size: BS,
      cluster_name: 'nocl',
    }),
    rpcErr(-2, /cluster nocl is not registered/),
  );
  await assert.rejects(
    tgt.call('bdev_rbd_create', {
      name: 'X',
      pool_name: 'rbd',
      rbd_name: 'img0',
      block_size: 1000,
      cluster_name: 'ceph0',
    }),
    rpcErr(-22, /block_size 1000/),
  );
  await assert.rejects(
    tgt.call('bdev_rbd_create', { pool_name: 'rbd', block_size: BS }),
    rpcErr(-32602, /rbd_name/),
  );
  const uuid = crypto.randomUUID();
  assert.equal(
    await tgt.call('bdev_rbd_create', {
      name: 'Rbd0',
      pool_name: 'rbd',
      rbd_name: 'img0',
      block_size: BS,
      cluster_name: 'ceph0',
      uuid,
    }),
    'Rbd0',
  );
  const b = await bdevInfo(tgt, 'Rbd0');
  assert.equal(b.uuid, uuid);
  assert.equal(b.block_size, BS);
  assert.equal(b.num_blocks, (IMAGE_MB << 20) / BS);
  assert.equal(b.product_name, 'Ceph Rbd Disk');
  assert.deepEqual((b.driver_specific as Record<string, unknown>).rbd, {
    pool_name: 'rbd',
    rbd_name: 'img0',
    cluster_name: 'ceph0',
    user_id: 'admin',
    config_file: ceph.conf,
    key_file: ceph.keyring,
  });
  const io = b.supported_io_types as Record<string, boolean>;
  // compare_and_write: librbd 16 does it within one 512-byte sector only, so the bdev layer emulates it
  for (const t of ['read', 'write', 'unmap', 'write_zeroes', 'flush', 'reset', 'compare_and_write'])
    assert.equal(io[t], true, t);
  await assert.rejects(
    tgt.call('bdev_rbd_create', {
      name: 'Rbd0',
      pool_name: 'rbd',
      rbd_name: 'img0',
      block_size: BS,
      cluster_name: 'ceph0',
    }),
    rpcErr(-17, /Rbd0 already exists/),
  );
  await assert.rejects(
    tgt.call('bdev_rbd_unregister_cluster', { name: 'ceph0' }),
    rpcErr(-16, /still used by bdev Rbd0/),
  );
  await exportNs(tgt, NQN, 'Rbd0');
});

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

test('I/O through the namespace lands in the image: rbd export reads what the host wrote', async () => {
  const { c, qs } = await host(tgt);
  try {
    // librbd's cache is off by default: every completed write is on the OSDs, no volatile cache
    assert.equal((await c.identify(1, 0))[525] & 1, 0, 'Identify Controller VWC = 0');
    // bursts from both queues (both realms submit to the one process-wide image)
    const burst: Promise<void>[] = [];
    for (let i = 0; i < 64; i++) burst.push(qs[i % 2].writeAsync(1, i * 4, 4, pattern(4 * BS, i)));
    await within(60_000, 'a burst of writes from both realms', Promise.all(burst));
    const big = pattern(1 << 20, 777);
    await qs[1].writeAsync(1, 1024, 256, big, true);
    await qs[0].flushAsync(1);
    const exported = await ceph.exportRange('img0', 0, 2048 * BS);
    for (let i = 0; i < 64; i++)
      assert.ok(
        exported.subarray(i * 4 * BS, (i + 1) * 4 * BS).equals(pattern(4 * BS, i)),
        `write ${i} in the image`,
      );
    assert.ok(exported.subarray(1024 * BS, 1280 * BS).equals(big), 'the 1 MiB FUA write is in the image');
    // reads back through the target, one I/O over several buffers' worth
    const back = Buffer.alloc(64 * 4 * BS);
    await qs[0].readAsync(1, 0, 256, back);
    assert.ok(back.equals(exported.subarray(0, 256 * BS)), 'the target reads what rbd export reads');
    // write zeroes and deallocate read back as zeroes
    await qs[1].writeZeroesAsync(1, 8, 8);
    await qs[0].dsmAsync(1, [[16, 8]]);
    const z = Buffer.alloc(16 * BS, 0xff);
    await qs[0].readAsync(1, 8, 16, z);
    assert.ok(z.equals(Buffer.alloc(16 * BS)), 'write zeroes and deallocate leave zeroes');
    // compare, and a fused compare-and-write (emulated by the bdev layer: compare, then write)
    await qs[0].compareAsync(1, 0, 4, pattern(4 * BS, 0));
    await assert.rejects(qs[1].compareAsync(1, 0, 4, pattern(4 * BS, 99)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x285, 'Compare Failure');
      return true;
    });
    const fresh = pattern(BS, 4242);
    assert.deepEqual(await compareAndWrite(qs[0], 0, 1, pattern(4 * BS, 0).subarray(0, BS), fresh), [0, 0]);
    assert.deepEqual(await compareAndWrite(qs[1], 0, 1, pattern(BS, 1), pattern(BS, 2)), [0x285, 0x009]);
    const one = Buffer.alloc(BS);
    await qs[1].readAsync(1, 0, 1, one);
    assert.ok(one.equals(fresh), 'the matching compare-and-write wrote, the miscompare did not');
    assert.ok((await ceph.exportRange('img0', 0, BS)).equals(fresh), 'and the image holds it');
    // past the end: LBA Out of Range from the bdev layer
    await assert.rejects(
      qs[0].readAsync(1, (IMAGE_MB << 20) / BS - 1, 2, Buffer.alloc(2 * BS)),
      (e: unknown) => {
        assert.ok(e instanceof NvmeStatusError);
        assert.equal(e.status, 0x80);
        return true;
      },
    );
  } finally {
    await c.disconnect();
  }
});

/** Spin this thread until it has been given `us` µs of CPU time, however long that takes. */
function spinForCpu(us: number): void {
  const start = process.threadCpuUsage();
  for (;;) {
    const got = process.threadCpuUsage(start);
    if (got.user + got.system >= us) return;
  }
}

test('an idle target holding an rbd bdev (both realms have completion queues) does not spin', () => {
  const cpuTicks = (): number => {
    const f = readFileSync(`/proc/${tgt.pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  };
  const before = cpuTicks();
  spinForCpu(1_500_000);
  const used = cpuTicks() - before;
  // 150 ticks would be one busy core; librados' own timers take a few
  assert.ok(used < 20, `idle target used ${used} ticks while a spinning thread got 1.5 s of CPU`);
});

test('bdev_rbd_resize under I/O: no I/O fails, the namespace grows; a shrink is refused', async () => {
  const { c, qs } = await host(tgt);
  try {
    let stop = false;
    let done = 0;
    const loops = qs.map(async (q, k) => {
      const buf = pattern(8 * BS, 50 + k);
      const rb = Buffer.alloc(8 * BS);
      for (let i = 0; !stop; i++) {
        const lba = 2048 + ((i * 8 + k * 4096) % 8192);
        await q.writeAsync(1, lba, 8, buf);
        await q.readAsync(1, lba, 8, rb);
        assert.ok(rb.equals(buf), 'read back what was written during the resize');
        done++;
      }
    });
    await waitFor('I/O running', () => done > 20, { timeoutMs: 30_000 });
    assert.equal(await tgt.call('bdev_rbd_resize', { name: 'Rbd0', new_size: IMAGE_MB * 2 }), true);
    const before = done;
    await waitFor('I/O going on after the resize', () => done > before + 20, { timeoutMs: 30_000 });
    stop = true;
    await within(30_000, 'the I/O loops', Promise.all(loops));
    assert.equal((await bdevInfo(tgt, 'Rbd0')).num_blocks, ((IMAGE_MB * 2) << 20) / BS);
    assert.match(await ceph.rbd('info', 'rbd/img0'), /size 128 MiB/);
    // the host sees the new size (Identify Namespace NSZE)
    const ns = await c.identify(0, 1);
    assert.equal(Number(ns.readBigUInt64LE(0)), ((IMAGE_MB * 2) << 20) / BS);
    await assert.rejects(
      tgt.call('bdev_rbd_resize', { name: 'Rbd0', new_size: IMAGE_MB }),
      rpcErr(-22, /smaller than the current 128 MiB/),
    );
    await assert.rejects(
      tgt.call('bdev_rbd_resize', { name: 'Malloc0', new_size: 512 }),
      rpcErr(-19, /rbd bdev Malloc0 does not exist/),
    );
  } finally {
    await c.disconnect();
  }
});

test('a resize by another client (rbd resize) reaches the bdev through the image watch', async () => {
  await ceph.rbd('resize', '--size', String(IMAGE_MB * 3), 'rbd/img0');
  await waitFor(
    'the bdev to follow the image',
    async () => (await bdevInfo(tgt, 'Rbd0')).num_blocks === ((IMAGE_MB * 3) << 20) / BS,
    { timeoutMs: 30_000 },
  );
});

test('a bdev with its own connection (config, no cluster_name), read-only, and the CLI', async () => {
  await ceph.createImage('img1', 16);
  const key = /key = (\S+)/.exec(await ceph.ceph('auth', 'get', 'client.admin'))![1];
  const mon = /mon host = (\S+)/.exec(readFileSync(ceph.conf, 'utf8'))![1];
  assert.equal(
    await tgt.call('bdev_rbd_create', {
      name: 'Rbd1',
      pool_name: 'rbd',
      rbd_name: 'img1',
      block_size: 512,
      user_id: 'admin',
      config: { mon_host: mon, key },
    }),
    'Rbd1',
  );
  const r = await cli(
    tgt.rpcPath,
    'bdev_rbd_create',
    'rbd',
    'img1',
    '512',
    '-b',
    'Rbd1ro',
    '-c',
    'ceph0',
    '-r',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'Rbd1ro');
  const ro = await bdevInfo(tgt, 'Rbd1ro');
  assert.equal((ro.supported_io_types as Record<string, boolean>).write, false);
  const info = await cli(tgt.rpcPath, 'bdev_rbd_get_clusters_info', '-b', 'ceph0');
  assert.equal(info.code, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout).cluster_name, 'ceph0');
  assert.equal((await cli(tgt.rpcPath, 'bdev_rbd_delete', 'Rbd1ro')).code, 0);
  const d = (await bdevInfo(tgt, 'Rbd1')).driver_specific as { rbd: Record<string, unknown> };
  assert.deepEqual(d.rbd, {
    pool_name: 'rbd',
    rbd_name: 'img1',
    user_id: 'admin',
    config: { mon_host: mon, key },
  });
});

test('save_config writes the cluster before its bdevs; a second target replays it and reads the data', async () => {
  const cfg = await tgt.call<{
    subsystems: Array<{
      subsystem: string;
      config: Array<{ method: string; params?: Record<string, unknown> }>;
    }>;
  }>('save_config');
  const bdev = cfg.subsystems.find((s) => s.subsystem === 'bdev')!.config;
  const methods = bdev.map((e) => e.method);
  const reg = methods.indexOf('bdev_rbd_register_cluster');
  assert.ok(reg >= 0 && reg < methods.indexOf('bdev_rbd_create'), methods.join(','));
  const rbd0 = bdev.find((e) => e.method === 'bdev_rbd_create' && e.params?.name === 'Rbd0')!;
  assert.deepEqual(rbd0.params, {
    name: 'Rbd0',
    pool_name: 'rbd',
    rbd_name: 'img0',
    block_size: BS,
    cluster_name: 'ceph0',
    uuid: (await bdevInfo(tgt, 'Rbd0')).uuid,
  });
  // the replica target gets the rbd bdevs only (its own subsystem on its own port)
  const replay = {
    subsystems: [
      { subsystem: 'bdev', config: bdev.filter((e) => e.method.startsWith('bdev_rbd')) },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Rbd0' } },
          },
          listenerEntry(NQN, '$PORT'),
        ],
      },
    ],
  };
  const second = await startTarget(replay);
  const again = await second.call<typeof cfg>('save_config');
  assert.deepEqual(
    again.subsystems
      .find((s) => s.subsystem === 'bdev')!
      .config.filter((e) => e.method.startsWith('bdev_rbd')),
    bdev.filter((e) => e.method.startsWith('bdev_rbd')),
    'save → load → save is identical',
  );
  const { c, qs } = await host(second);
  try {
    const b = Buffer.alloc(4 * BS);
    await qs[0].readAsync(1, 4, 4, b);
    assert.ok(b.equals(pattern(4 * BS, 1)), 'the second gateway reads what the first wrote');
  } finally {
    await c.disconnect();
  }
  await second.stop();
  targets.splice(targets.indexOf(second), 1);
});

test('bdev_rbd_delete, then bdev_rbd_unregister_cluster', async () => {
  await tgt.call('nvmf_subsystem_remove_ns', { nqn: NQN, nsid: 1 });
  assert.equal(await tgt.call('bdev_rbd_delete', { name: 'Rbd0' }), true);
  assert.equal(await tgt.call('bdev_rbd_delete', { name: 'Rbd1' }), true);
  await assert.rejects(tgt.call('bdev_rbd_delete', { name: 'Rbd0' }), rpcErr(-19, /Rbd0 does not exist/));
  assert.equal(await tgt.call('bdev_rbd_unregister_cluster', { name: 'ceph0' }), true);
  await assert.rejects(tgt.call('bdev_rbd_get_clusters_info'), rpcErr(-2, /no cluster/));
  await assert.rejects(
    tgt.call('bdev_rbd_unregister_cluster', { name: 'ceph0' }),
    rpcErr(-2, /not registered/),
  );
  // nothing of ours still watches the image
  assert.match(await ceph.rbd('status', 'rbd/img0'), /Watchers: none/);
});

test('the OSD killed mid-I/O: I/O fails with an NVMe status within rados_osd_op_timeout, the target and a malloc namespace go on', async () => {
  await ceph.createImage('img2', 16);
  await tgt.call('bdev_rbd_register_cluster', {
    name: 'short',
    config_file: ceph.conf,
    config_param: { rados_osd_op_timeout: '5' },
  });
  await tgt.call('bdev_rbd_create', {
    name: 'Rbd2',
    pool_name: 'rbd',
    rbd_name: 'img2',
    block_size: BS,
    cluster_name: 'short',
  });
  await exportNs(tgt, NQN, 'Rbd2', 1);
  await exportNs(tgt, NQN, 'Malloc0', 2);
  const { c, qs } = await host(tgt);
  try {
    await qs[0].writeAsync(1, 0, 4, pattern(4 * BS, 5));
    process.kill(ceph.pid('osd.0'), 'SIGKILL');
    const t0 = Date.now();
    const inflight = [
      qs[0].writeAsync(1, 8, 4, pattern(4 * BS, 6)),
      qs[1].readAsync(1, 0, 4, Buffer.alloc(4 * BS)),
    ].map((p) =>
      p.then(
        () => 0,
        (e: unknown) => (e instanceof NvmeStatusError ? e.status : -1),
      ),
    );
    // meanwhile the malloc namespace answers at once
    const m = pattern(8 * 512, 9);
    await within(5_000, 'malloc I/O while the cluster is gone', qs[1].writeAsync(2, 0, 8, m));
    const mb = Buffer.alloc(8 * 512);
    await qs[0].readAsync(2, 0, 8, mb);
    assert.ok(mb.equals(m));
    const statuses = await within(60_000, 'the rbd I/O to fail', Promise.all(inflight));
    const ms = Date.now() - t0;
    assert.deepEqual(statuses, [0x006, 0x006], 'Internal Device Error for both');
    assert.ok(ms < 30_000, `failed within the bound (${ms} ms, rados_osd_op_timeout 5 s)`);
    assert.equal(tgt.alive(), true);
    assert.deepEqual(tgt.uncaughtErrors(), []);
  } finally {
    await c.disconnect();
  }
});
