// bdev_nvme multipath, the gateway side: target A exports one malloc bdev on
// two listeners (two paths to the same namespace, ANA reporting on); gateway B
// attaches the first with bdev_nvme_attach_controller and adds the second with
// -x multipath (the same bdev Nvme0n1, two controllers on A). B's I/O goes on
// the first path; a listener set inaccessible turns its I/O to the other path;
// the first listener removed (its connections cut) leaves the second carrying
// I/O in flight and new I/O with no error; the path comes back; save_config
// writes both attaches and a replay rebuilds the two paths; a path filter on
// detach removes one path only.

import assert from 'node:assert/strict';
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

const CNODE_A = 'nqn.2016-06.io.spdk:mpA';
const CNODE_B = 'nqn.2016-06.io.spdk:mpB';
const BS = 512;
const BLOCKS = 16384;

const started: ChildTarget[] = [];
let a: ChildTarget;
let b: ChildTarget;
let portA1 = '';
let portA2 = '';

const listener = tcpListener;

function attachParams(port: string, extra: Record<string, unknown> = {}) {
  return reconnectingAttach(CNODE_A, port, extra);
}

async function start(config: unknown, cores = '0x3'): Promise<ChildTarget> {
  const t = await ChildTarget.start({ cores, config });
  started.push(t);
  return t;
}

/** Writes A's Malloc0 completed (every path's). */
const writesOnA = () => bdevWriteOps(a, 'Malloc0');

async function hostOnB(): Promise<{ c: NvmeController; qs: NvmeIoQpair[] }> {
  const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: b.port, subnqn: CNODE_B });
  await c.setNumQueues(2);
  return { c, qs: [await c.createIoQpair(64), await c.createIoQpair(64)] };
}

/** B's two controllers on A, as A sees them (cntlid, by the listener port they came in on). */
async function controllersOnA(): Promise<Array<{ cntlid: number; port: string }>> {
  const qp = await a.call<Array<{ cntlid: number; listen_address: { trsvcid: string } }>>(
    'nvmf_subsystem_get_qpairs',
    { nqn: CNODE_A },
  );
  const seen = new Map<number, string>();
  for (const q of qp) seen.set(q.cntlid, q.listen_address.trsvcid);
  return [...seen].map(([cntlid, port]) => ({ cntlid, port }));
}

before(async () => {
  portA1 = String(await freePort());
  portA2 = String(await freePort());
  a = await start(
    exporterConfig({
      bdevs: [
        { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: BLOCKS, block_size: BS } },
      ],
      nqn: CNODE_A,
      subsystem: { ana_reporting: true },
      namespace: { bdev_name: 'Malloc0' },
      ports: [portA1, portA2],
    }),
    '0x1',
  );
  b = await start({
    subsystems: [
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
  });
});

after(async () => {
  for (const t of started) await t.stop();
});

test('-x multipath adds a second path to Nvme0 (same bdev); without it the name is refused', async () => {
  assert.deepEqual(await b.call('bdev_nvme_attach_controller', attachParams(portA1)), ['Nvme0n1']);
  await assert.rejects(b.call('bdev_nvme_attach_controller', attachParams(portA2)), (e: unknown) => {
    assert.ok(e instanceof RpcError);
    assert.equal(e.code, -114);
    assert.match(e.message, /already exists and multipath is disabled/);
    return true;
  });
  assert.deepEqual(
    await b.call('bdev_nvme_attach_controller', attachParams(portA2, { multipath: 'multipath' })),
    ['Nvme0n1'],
  );
  await assert.rejects(
    b.call('bdev_nvme_attach_controller', attachParams(portA2, { multipath: 'multipath' })),
    (e: unknown) => e instanceof RpcError && e.code === -114 && /already has the path/.test(e.message),
  );
  await assert.rejects(
    b.call(
      'bdev_nvme_attach_controller',
      attachParams(portA2, { multipath: 'multipath', subnqn: 'nqn.2016-06.io.spdk:other' }),
    ),
    (e: unknown) => e instanceof RpcError && e.code === -22 && /cannot join it/.test(e.message),
  );
  const [ctrl] = await b.call<
    Array<{ name: string; ctrlrs: Array<{ trid: { trsvcid: string }; state: string; cntlid: number }> }>
  >('bdev_nvme_get_controllers', { name: 'Nvme0' });
  assert.deepEqual(
    ctrl.ctrlrs.map((c) => [c.trid.trsvcid, c.state]),
    [
      [portA1, 'enabled'],
      [portA2, 'enabled'],
    ],
  );
  assert.notEqual(ctrl.ctrlrs[0].cntlid, ctrl.ctrlrs[1].cntlid, 'two controllers on A');
  const bdevs = await b.call<unknown[]>('bdev_get_bdevs');
  assert.equal(bdevs.length, 1, 'one bdev for the two paths');
  await b.call('nvmf_subsystem_add_ns', { nqn: CNODE_B, namespace: { nsid: 1, bdev_name: 'Nvme0n1' } });
});

test('I/O goes on the first path; an inaccessible first path turns it to the second', async () => {
  const { c, qs } = await hostOnB();
  try {
    await qs[0].writeAsync(1, 0, 8, pattern(8 * BS, 1));
    await qs[1].writeAsync(1, 8, 8, pattern(8 * BS, 2));
    const ports = new Set((await controllersOnA()).filter((x) => x.port === portA1).map((x) => x.port));
    assert.ok(ports.has(portA1));
    // the first listener inaccessible: A answers its I/O with an ANA status, B sends it on the second path
    await a.call('nvmf_subsystem_listener_set_ana_state', {
      nqn: CNODE_A,
      listen_address: listener(portA1),
      ana_state: 'inaccessible',
    });
    const before = await writesOnA();
    for (let i = 0; i < 16; i++) await qs[i % 2].writeAsync(1, 64 + i * 8, 8, pattern(8 * BS, 100 + i));
    assert.equal((await writesOnA()) - before, 16, 'every write reached A (through the second path)');
    const back = Buffer.alloc(8 * BS);
    for (let i = 0; i < 16; i++) {
      await qs[(i + 1) % 2].readAsync(1, 64 + i * 8, 8, back);
      assert.ok(back.equals(pattern(8 * BS, 100 + i)), `write ${i} read back`);
    }
    await a.call('nvmf_subsystem_listener_set_ana_state', {
      nqn: CNODE_A,
      listen_address: listener(portA1),
      ana_state: 'optimized',
    });
  } finally {
    await c.disconnect();
  }
});

test('the first path cut under I/O: in-flight and new I/O complete through the second, no error', async () => {
  const { c, qs } = await hostOnB();
  try {
    let stop = false;
    let ok = 0;
    const errors: string[] = [];
    const loops = qs.map(async (q, k) => {
      const rb = Buffer.alloc(8 * BS);
      for (let i = 0; !stop; i++) {
        const lba = 1024 + k * 2048 + ((i * 8) % 2048);
        const data = pattern(8 * BS, k * 100000 + i);
        try {
          await q.writeAsync(1, lba, 8, data);
          await q.readAsync(1, lba, 8, rb);
          if (!rb.equals(data)) errors.push(`queue ${k} I/O ${i}: read back differs`);
          ok++;
        } catch (e) {
          errors.push(`queue ${k} I/O ${i}: ${(e as Error).message}`);
        }
      }
    });
    await waitFor('I/O running', () => ok > 50, { timeoutMs: 30_000 });
    // cut path 1: A drops the listener and the connections that came through it
    await a.call('nvmf_subsystem_remove_listener', { nqn: CNODE_A, listen_address: listener(portA1) });
    const at = ok;
    await waitFor('I/O going on through the second path', () => ok > at + 100, { timeoutMs: 30_000 });
    await waitFor(
      'B to see path 1 down',
      async () => {
        const [ctrl] = await b.call<Array<{ ctrlrs: Array<{ state: string }> }>>(
          'bdev_nvme_get_controllers',
          { name: 'Nvme0' },
        );
        return ctrl.ctrlrs[0].state !== 'enabled' && ctrl.ctrlrs[1].state === 'enabled';
      },
      { timeoutMs: 30_000 },
    );
    // every controller left on A came in through the second listener
    assert.deepEqual([...new Set((await controllersOnA()).map((x) => x.port))], [portA2]);
    // path 1 back: B reconnects it (reconnect_delay_sec 1)
    await a.call('nvmf_subsystem_add_listener', { nqn: CNODE_A, listen_address: listener(portA1) });
    await waitFor(
      'path 1 reconnected',
      async () => {
        const [ctrl] = await b.call<Array<{ ctrlrs: Array<{ state: string }> }>>(
          'bdev_nvme_get_controllers',
          { name: 'Nvme0' },
        );
        return ctrl.ctrlrs.every((x) => x.state === 'enabled');
      },
      { timeoutMs: 30_000 },
    );
    const again = ok;
    await waitFor('I/O after the path came back', () => ok > again + 50, { timeoutMs: 30_000 });
    stop = true;
    await within(30_000, 'the I/O loops', Promise.all(loops));
    assert.deepEqual(errors, []);
  } finally {
    await c.disconnect();
  }
});

test('save_config writes both paths (multipath); a replay rebuilds them; detach by path removes one', async () => {
  const cfg = await b.call<{
    subsystems: Array<{
      subsystem: string;
      config: Array<{ method: string; params: Record<string, unknown> }>;
    }>;
  }>('save_config');
  const attaches = cfg.subsystems
    .find((s) => s.subsystem === 'bdev')!
    .config.filter((e) => e.method === 'bdev_nvme_attach_controller');
  assert.deepEqual(
    attaches.map((e) => [e.params.name, e.params.trsvcid, e.params.multipath]),
    [
      ['Nvme0', portA1, 'multipath'],
      ['Nvme0', portA2, 'multipath'],
    ],
  );
  assert.equal(attaches[0].params.hostnqn, attaches[1].params.hostnqn, 'one host identity on both paths');
  const replay = await start({ subsystems: cfg.subsystems.filter((s) => s.subsystem === 'bdev') });
  const [ctrl] = await replay.call<Array<{ ctrlrs: Array<{ trid: { trsvcid: string } }> }>>(
    'bdev_nvme_get_controllers',
    { name: 'Nvme0' },
  );
  assert.deepEqual(
    ctrl.ctrlrs.map((x) => x.trid.trsvcid),
    [portA1, portA2],
  );
  await replay.stop();
  started.splice(started.indexOf(replay), 1);

  assert.equal(
    await b.call('bdev_nvme_detach_controller', { name: 'Nvme0', traddr: '127.0.0.1', trsvcid: portA2 }),
    true,
  );
  const [left] = await b.call<Array<{ ctrlrs: Array<{ trid: { trsvcid: string } }> }>>(
    'bdev_nvme_get_controllers',
    { name: 'Nvme0' },
  );
  assert.deepEqual(
    left.ctrlrs.map((x) => x.trid.trsvcid),
    [portA1],
  );
  const { c, qs } = await hostOnB();
  try {
    const back = Buffer.alloc(8 * BS);
    await qs[0].readAsync(1, 0, 8, back);
    assert.ok(back.equals(pattern(8 * BS, 1)), 'the bdev stays on the path left');
  } finally {
    await c.disconnect();
  }
  assert.equal(await b.call('bdev_nvme_detach_controller', { name: 'Nvme0' }), true);
  assert.deepEqual(await b.call('bdev_get_bdevs'), []);
});

test('the first path past its ctrlr_loss_timeout_sec stops; the bdev stays on the second; detach removes all', async () => {
  await a
    .call('nvmf_subsystem_add_listener', { nqn: CNODE_A, listen_address: listener(portA1) })
    .catch(() => undefined);
  assert.deepEqual(
    await b.call(
      'bdev_nvme_attach_controller',
      attachParams(portA1, { ctrlr_loss_timeout_sec: 2, reconnect_delay_sec: 1 }),
    ),
    ['Nvme0n1'],
  );
  await b.call('bdev_nvme_attach_controller', attachParams(portA2, { multipath: 'multipath' }));
  await b.call('nvmf_subsystem_add_ns', { nqn: CNODE_B, namespace: { nsid: 1, bdev_name: 'Nvme0n1' } });
  await a.call('nvmf_subsystem_remove_listener', { nqn: CNODE_A, listen_address: listener(portA1) });
  await waitFor(
    'path 1 given up after its loss timeout',
    async () => {
      const [ctrl] = await b.call<Array<{ ctrlrs: Array<{ state: string }> }>>('bdev_nvme_get_controllers', {
        name: 'Nvme0',
      });
      return ctrl.ctrlrs[0].state === 'deleting' && ctrl.ctrlrs[1].state === 'enabled';
    },
    { timeoutMs: 30_000 },
  );
  assert.equal((await b.call<unknown[]>('bdev_get_bdevs', { name: 'Nvme0n1' })).length, 1, 'the bdev stays');
  const { c, qs } = await hostOnB();
  try {
    await qs[0].writeAsync(1, 4000, 8, pattern(8 * BS, 7));
    const back = Buffer.alloc(8 * BS);
    await qs[1].readAsync(1, 4000, 8, back);
    assert.ok(back.equals(pattern(8 * BS, 7)), 'I/O through the second path');
  } finally {
    await c.disconnect();
  }
  assert.equal(await b.call('bdev_nvme_detach_controller', { name: 'Nvme0' }), true);
  assert.deepEqual(await b.call('bdev_get_bdevs'), []);
  await assert.rejects(b.call('bdev_nvme_get_controllers', { name: 'Nvme0' }), RpcError);
});
