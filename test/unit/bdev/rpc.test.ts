import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { RpcError, RpcRegistry, RpcState } from '../../../src/jsonrpc/index.ts';
import { bdevRpcMethods, bdevWriteConfigJson } from '../../../src/modules/event/bdev.ts';
import { settle, until } from './harness.ts';

const reg = new RpcRegistry();
reg.registerAll(bdevRpcMethods());
reg.setState(RpcState.RUNTIME);
const call = (method: string, params?: Record<string, unknown>) => settle(reg.invoke(method, params));

async function rpcError(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof RpcError, String(e));
    return e;
  }
  assert.fail('expected an RPC error');
}

test('every bdev method has a summary and help for each parameter', () => {
  for (const m of bdevRpcMethods()) {
    assert.ok(m.summary.length > 0, m.name);
    for (const p of m.params) assert.ok(p.help.length > 0, `${m.name}.${p.name}`);
  }
});

test('bdev_malloc_create / bdev_get_bdevs / delete with SPDK shapes and errors', async () => {
  const uuid = '0f7b3b4e-6d7a-4a57-9a53-5d0c0d3c1a11';
  assert.equal(
    await call('bdev_malloc_create', { name: 'RpcMalloc0', num_blocks: 2048, block_size: 512, uuid }),
    'RpcMalloc0',
  );
  const dup = await rpcError(
    call('bdev_malloc_create', { name: 'RpcMalloc0', num_blocks: 8, block_size: 512 }),
  );
  assert.equal(dup.code, -17);
  assert.match(dup.message, /RpcMalloc0 already exists/);
  const bad = await rpcError(call('bdev_malloc_create', { num_blocks: 8, block_size: 100 }));
  assert.equal(bad.code, -32602);
  const huge = await rpcError(
    call('bdev_malloc_create', { name: 'Huge', num_blocks: 2 ** 50, block_size: 4096 }),
  );
  assert.equal(huge.code, -12);
  assert.match(huge.message, /cannot back Huge with RAM: it needs \d+ MiB/);
  const badUuid = await rpcError(call('bdev_malloc_create', { num_blocks: 8, block_size: 512, uuid: 'xyz' }));
  assert.equal(badUuid.code, -22);
  assert.match(badUuid.message, /not a valid UUID/);
  const md = await rpcError(call('bdev_malloc_create', { num_blocks: 8, block_size: 512, md_size: 8 }));
  assert.match(md.message, /md_size/);
  const [info] = (await call('bdev_get_bdevs', { name: 'RpcMalloc0' })) as Array<Record<string, unknown>>;
  assert.equal(info.name, 'RpcMalloc0');
  assert.equal(info.uuid, uuid);
  assert.equal(info.block_size, 512);
  assert.equal(info.num_blocks, 2048);
  assert.equal(info.product_name, 'Malloc disk');
  assert.equal(info.claimed, false);
  assert.equal((info.supported_io_types as Record<string, boolean>).compare_and_write, true);
  assert.equal((info.supported_io_types as Record<string, boolean>).nvme_admin, false);
  const gone = await rpcError(call('bdev_get_bdevs', { name: 'Nope' }));
  assert.equal(gone.code, -19);
  assert.equal(await call('bdev_malloc_delete', { name: 'RpcMalloc0' }), true);
  assert.equal((await rpcError(call('bdev_malloc_delete', { name: 'RpcMalloc0' }))).code, -19);
});

test('rpc.py-style CLI sizes: cliTransform turns total_size MB into num_blocks', () => {
  const m = bdevRpcMethods().find((x) => x.name === 'bdev_malloc_create')!;
  assert.deepEqual(m.cliTransform!({ name: 'Malloc0', total_size: 64, block_size: 512 }), {
    name: 'Malloc0',
    block_size: 512,
    num_blocks: 131072,
  });
  const n = bdevRpcMethods().find((x) => x.name === 'bdev_null_create')!;
  assert.equal(n.cliTransform!({ name: 'Null0', total_size: 1, block_size: 4096 }).num_blocks, 256);
});

test('stacked modules, QoS, iostat, histogram and save_config over RPC', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nvmf-ts-rpc-'));
  try {
    const file = path.join(dir, 'f.img');
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    await call('bdev_null_create', { name: 'RpcNull0', num_blocks: 1024, block_size: 4096 });
    await call('bdev_aio_create', { name: 'RpcAio0', filename: file, block_size: 4096 });
    await call('bdev_passthru_create', { base_bdev_name: 'RpcNull0', name: 'RpcPT0' });
    assert.equal(await call('bdev_error_create', { base_name: 'RpcPT0' }), 'EE_RpcPT0');
    await call('bdev_delay_create', {
      base_bdev_name: 'RpcAio0',
      name: 'RpcDelay0',
      avg_read_latency: 10,
      p99_read_latency: 20,
      avg_write_latency: 30,
      p99_write_latency: 40,
    });
    await call('bdev_delay_update_latency', {
      delay_bdev_name: 'RpcDelay0',
      latency_type: 'p99_write',
      latency_us: 50,
    });
    await call('bdev_error_inject_error', {
      name: 'EE_RpcPT0',
      io_type: 'read',
      error_type: 'failure',
      num: 3,
    });
    const busy = await rpcError(call('bdev_passthru_create', { base_bdev_name: 'RpcNull0', name: 'RpcPT1' }));
    assert.equal(busy.code, -16);
    assert.equal(
      (await rpcError(call('bdev_set_qos_limit', { name: 'Nope', rw_ios_per_sec: 1000 }))).code,
      -19,
    );
    await call('bdev_set_qos_limit', { name: 'RpcDelay0', rw_ios_per_sec: 20000 });
    const [d] = (await call('bdev_get_bdevs', { name: 'RpcDelay0' })) as Array<Record<string, unknown>>;
    assert.equal((d.assigned_rate_limits as Record<string, number>).rw_ios_per_sec, 20000);
    const [b] = (await call('bdev_get_bdevs', { name: 'RpcAio0' })) as Array<Record<string, unknown>>;
    assert.equal(b.claimed, true);
    const stat = (await call('bdev_get_iostat', { name: 'RpcDelay0' })) as {
      tick_rate: number;
      bdevs: unknown[];
    };
    assert.equal(stat.tick_rate, 1e9);
    assert.equal(stat.bdevs.length, 1);
    await call('bdev_enable_histogram', { name: 'RpcNull0', enable: true });
    const h = (await call('bdev_get_histogram', { name: 'RpcNull0' })) as { histogram: string };
    assert.equal(Buffer.from(h.histogram, 'base64').length % 8, 0);
    const cfg = bdevWriteConfigJson();
    const names = cfg.map((c) => `${c.method}:${(c.params?.name ?? c.params?.base_name ?? '') as string}`);
    const idx = (s: string) => names.indexOf(s);
    assert.equal(names[0], 'bdev_set_options:');
    assert.equal(names.at(-1), 'bdev_wait_for_examine:');
    assert.ok(idx('bdev_null_create:RpcNull0') < idx('bdev_passthru_create:RpcPT0'));
    assert.ok(idx('bdev_passthru_create:RpcPT0') < idx('bdev_error_create:RpcPT0'));
    assert.ok(idx('bdev_aio_create:RpcAio0') < idx('bdev_delay_create:RpcDelay0'));
    assert.ok(idx('bdev_delay_create:RpcDelay0') < idx('bdev_set_qos_limit:RpcDelay0'));
    const delayCfg = cfg.find((c) => c.method === 'bdev_delay_create')!.params!;
    assert.equal(delayCfg.p99_write_latency, 50);
    // every written entry is accepted back by its own method's schema
    const reg2 = new RpcRegistry();
    reg2.registerAll(bdevRpcMethods());
    for (const c of cfg) {
      const m = reg2.get(c.method)!;
      assert.ok(m, c.method);
      const known = new Set(m.params.map((p) => p.name));
      for (const k of Object.keys(c.params ?? {})) assert.ok(known.has(k), `${c.method}.${k}`);
    }
    // deleting the aio base removes the delay bdev on it
    await call('bdev_aio_delete', { name: 'RpcAio0' });
    assert.equal((await rpcError(call('bdev_get_bdevs', { name: 'RpcDelay0' }))).code, -19);
    await call('bdev_null_delete', { name: 'RpcNull0' });
    assert.deepEqual(await call('bdev_get_bdevs'), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bdev_get_iostat per_channel names the threads that hold channels', async () => {
  const { bdevOpen, bdevGetIoChannel, bdevRead, bdevFreeIo } = await import('../../../src/bdev/index.ts');
  const { currentThread } = await import('../../../src/thread/index.ts');
  await call('bdev_malloc_create', { name: 'RpcStat0', num_blocks: 64, block_size: 512 });
  const desc = bdevOpen('RpcStat0', false, () => {});
  const ch = bdevGetIoChannel(desc);
  let done = false;
  bdevRead(
    desc,
    ch,
    [Buffer.alloc(512)],
    0,
    1,
    (io) => {
      bdevFreeIo(io);
      done = true;
    },
    null,
  );
  await until(() => done);
  assert.equal(done, true);
  const st = (await call('bdev_get_iostat', { name: 'RpcStat0', per_channel: true })) as {
    name: string;
    channels: Array<{ thread_id: number; num_read_ops: number }>;
  };
  assert.equal(st.name, 'RpcStat0');
  assert.deepEqual(st.channels, [{ ...st.channels[0], thread_id: currentThread().ref.id, num_read_ops: 1 }]);
});
