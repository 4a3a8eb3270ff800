// The NVMe-oF target as a real process (-m 0x3) driven by our host library:
// Connect, Identify, verified writes/reads on I/O queues spread over both poll
// groups, discovery log, a disallowed host refused at Connect, namespace
// hot-add raising an AEN, save_config carrying the nvmf section.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RpcClient } from '../../src/jsonrpc/index.ts';
import { NvmeController, NvmeStatusError } from '../../src/nvme/index.ts';
import {
  DISCOVERY_LOG_ENTRY_SIZE,
  DISCOVERY_LOG_HEADER_SIZE,
  type DiscoveryLogRecord,
  decodeDiscoveryEntry,
  decodeDiscoveryLogHeader,
  TrType,
} from '../../src/wire/discovery.ts';
import {
  Cns,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeNsidList,
  lbaFormatIndex,
} from '../../src/wire/identify.ts';
import {
  AnaState,
  AsyncEventType,
  decodeAnaLog,
  decodeAsyncEvent,
  decodeErrorLogEntry,
  ERROR_LOG_ENTRY_SIZE,
  LogPage,
} from '../../src/wire/log.ts';
import {
  AdminOpcode,
  FeatureId,
  initSqe,
  NvmOpcode,
  SQE_SIZE,
  Sqe,
  SqeFlags,
  statusOf,
  writeRwCommand,
} from '../../src/wire/nvme.ts';
import { ChildTarget, freePort, listenerEntry, pattern, waitFor, within } from '../lib/index.ts';

const CNODE1 = 'nqn.2016-06.io.spdk:cnode1';
const CNODE2 = 'nqn.2016-06.io.spdk:cnode2';
const DISC = 'nqn.2014-08.org.nvmexpress.discovery';
const ALLOWED = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555';
const OTHER = 'nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555';

let target: ChildTarget | null = null;
let port = '';

before(async () => {
  port = String(await freePort());
  const cfg = {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 16384, block_size: 512 } },
          { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 8192, block_size: 4096 } },
          { method: 'bdev_malloc_create', params: { name: 'Malloc2', num_blocks: 2048, block_size: 512 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP', min_kato: 1000 } },
          {
            method: 'nvmf_create_subsystem',
            params: {
              nqn: CNODE1,
              allow_any_host: true,
              serial_number: 'SPDK00000000000001',
              model_number: 'SPDK bdev Controller',
            },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: CNODE1, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
          },
          { method: 'nvmf_create_subsystem', params: { nqn: CNODE2, serial_number: 'SPDK2' } },
          { method: 'nvmf_subsystem_add_host', params: { nqn: CNODE2, host: ALLOWED } },
          { method: 'nvmf_subsystem_add_ns', params: { nqn: CNODE2, namespace: { bdev_name: 'Malloc1' } } },
          listenerEntry(DISC, port),
          listenerEntry(CNODE1, port),
          listenerEntry(CNODE2, port),
        ],
      },
    ],
  };
  target = await ChildTarget.start({ cores: '0x3', config: cfg, startTimeoutMs: 20_000 });
});

after(async () => {
  await target?.stop();
});

/** what the target logged so far */
function logText(): string {
  return target?.log() ?? '';
}

function api(): RpcClient {
  assert.ok(target, 'target running, RPC client connected');
  return target.rpc;
}

function trid(subnqn: string, hostnqn?: string) {
  return { traddr: '127.0.0.1', trsvcid: port, subnqn, hostnqn };
}

test('start-up logs the nvme discover/connect lines', () => {
  assert.match(logText(), new RegExp(`nvme discover -t tcp -a 127\\.0\\.0\\.1 -s ${port}`));
  assert.match(
    logText(),
    new RegExp(`nvme connect -t tcp -a 127\\.0\\.0\\.1 -s ${port} -n ${CNODE1.replace(/\./g, '\\.')}`),
  );
});

test('connect, identify, verified I/O over both poll groups', async () => {
  const c = await NvmeController.connect(trid(CNODE1));
  try {
    const id = decodeIdentifyController(await c.identify(Cns.CONTROLLER, 0));
    assert.equal(id.sn, 'SPDK00000000000001');
    assert.equal(id.mn, 'SPDK bdev Controller');
    assert.equal(id.mdts, 5, 'MDTS for 128 KiB');
    assert.equal(id.ioccsz, (4096 + 64) / 16, 'IOCCSZ');
    assert.equal(id.subnqn, CNODE1);
    const ns = decodeIdentifyNamespace(await c.identify(Cns.NAMESPACE, 1));
    assert.equal(ns.nsze, 16384, 'NSZE');
    assert.equal(ns.lbafs[lbaFormatIndex(ns.flbas, ns.nlbaf)].ds, 9, 'LBADS 512');
    assert.deepEqual(decodeNsidList(await c.identify(Cns.ACTIVE_NS_LIST, 0)), [1]);
    const q = await c.setNumQueues(4);
    assert.ok(q.sq >= 2);
    const qs = [
      await c.createIoQpair(32),
      await c.createIoQpair(32),
      await c.createIoQpair(32),
      await c.createIoQpair(32),
    ];
    // writes on each queue, read back through another queue
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 32; i++) writes.push(qs[i % 4].writeAsync(1, i * 64, 64, pattern(64 * 512, i)));
    await Promise.all(writes);
    for (let i = 0; i < 32; i++) {
      const r = Buffer.alloc(64 * 512);
      await qs[(i + 1) % 4].readAsync(1, i * 64, 64, r);
      assert.ok(r.equals(pattern(64 * 512, i)), `block range ${i} reads back what was written`);
    }
    // largest transfer (MDTS) and an out-of-range read
    const big = pattern(131072, 77);
    await qs[0].writeAsync(1, 4096, 256, big);
    const rb = Buffer.alloc(131072);
    await qs[1].readAsync(1, 4096, 256, rb);
    assert.ok(rb.equals(big));
    await assert.rejects(qs[0].readAsync(1, 16380, 8, Buffer.alloc(4096)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x80, 'LBA out of range');
      return true;
    });
    const stats = (await api().call('nvmf_get_stats')) as {
      poll_groups: { name: string; current_io_qpairs: number; completed_nvme_io: number }[];
    };
    assert.equal(stats.poll_groups.length, 2);
    for (const g of stats.poll_groups) {
      assert.ok(g.current_io_qpairs >= 1, `${g.name} holds I/O queues`);
      assert.ok(g.completed_nvme_io > 0, `${g.name} completed I/O`);
    }
    const ctrlrs = (await api().call('nvmf_subsystem_get_controllers', { nqn: CNODE1 })) as {
      num_io_qpairs: number;
    }[];
    assert.equal(ctrlrs.length, 1);
    assert.equal(ctrlrs[0].num_io_qpairs, 4);
  } finally {
    await c.disconnect();
  }
});

test('flush, write zeroes, deallocate, compare, fused compare-and-write, bad commands', async () => {
  const c = await NvmeController.connect(trid(CNODE1));
  try {
    await c.setNumQueues(1);
    const q = await c.createIoQpair(32);
    const data = pattern(8 * 512, 5);
    await q.writeAsync(1, 200, 8, data, true);
    await q.flushAsync(1);
    await q.compareAsync(1, 200, 8, data);
    await assert.rejects(q.compareAsync(1, 200, 8, pattern(8 * 512, 6)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x285, 'media / compare failure');
      return true;
    });
    await q.writeZeroesAsync(1, 200, 4);
    const r = Buffer.alloc(8 * 512);
    await q.readAsync(1, 200, 8, r);
    assert.ok(r.subarray(0, 2048).equals(Buffer.alloc(2048)), 'zeroed');
    assert.ok(r.subarray(2048).equals(data.subarray(2048)), 'rest untouched');
    await q.dsmAsync(1, [[204, 4]]);
    await q.readAsync(1, 200, 8, r);
    assert.ok(r.equals(Buffer.alloc(4096)), 'deallocated blocks read zeroes');
    // fused compare (FUSE_FIRST) + write (FUSE_SECOND)
    const fused = (first: Buffer, second: Buffer): Promise<[number, number]> =>
      new Promise((resolve) => {
        const st: number[] = [];
        const done = (i: number) => (cpl: Buffer) => {
          st[i] = statusOf(cpl);
          if (st[0] !== undefined && st[1] !== undefined) resolve([st[0], st[1]]);
        };
        const cmp = Buffer.alloc(SQE_SIZE);
        writeRwCommand(cmp, NvmOpcode.COMPARE, 1, 300, 8, 0);
        cmp[Sqe.FLAGS] = SqeFlags.FUSE_FIRST;
        const wr = Buffer.from(cmp);
        wr[Sqe.OPCODE] = NvmOpcode.WRITE;
        wr[Sqe.FLAGS] = SqeFlags.FUSE_SECOND;
        q.submit(cmp, first, false, done(0));
        q.submit(wr, second, false, done(1));
      });
    await q.writeAsync(1, 300, 8, data);
    const next = pattern(4096, 9);
    assert.deepEqual(await fused(data, next), [0, 0], 'compare matched, write done');
    await q.readAsync(1, 300, 8, r);
    assert.ok(r.equals(next));
    assert.deepEqual(await fused(data, pattern(4096, 10)), [0x285, 0x09], 'miscompare aborts the write');
    await q.readAsync(1, 300, 8, r);
    assert.ok(r.equals(next), 'write not applied');
    // unknown namespace and opcode
    await assert.rejects(q.readAsync(7, 0, 1, Buffer.alloc(512)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x0b);
      return true;
    });
    const elog = await c.getLogPage(LogPage.ERROR, Buffer.alloc(ERROR_LOG_ENTRY_SIZE));
    assert.ok(
      Number(decodeErrorLogEntry(elog, 0).error_count) >= 1,
      'I/O errors reach the controller error log',
    );
  } finally {
    await c.disconnect();
  }
});

test('Connect to an unknown subsystem fails with INVALID_PARAM', async () => {
  await assert.rejects(NvmeController.connect(trid('nqn.2016-06.io.spdk:nope')), (e: unknown) => {
    assert.ok(e instanceof NvmeStatusError, String(e));
    assert.equal(e.status, 0x182);
    return true;
  });
});

test('discovery log lists the subsystems the host may reach', async () => {
  const d = await NvmeController.connect(trid(DISC, OTHER), { kato: 0 });
  try {
    const page = await d.getLogPage(LogPage.DISCOVERY, Buffer.alloc(4096));
    const numrec = Number(decodeDiscoveryLogHeader(page).numrec);
    const entries: DiscoveryLogRecord[] = [];
    for (let i = 0; i < numrec; i++) {
      const off = DISCOVERY_LOG_HEADER_SIZE + i * DISCOVERY_LOG_ENTRY_SIZE;
      if (off + DISCOVERY_LOG_ENTRY_SIZE > page.length) break;
      entries.push(decodeDiscoveryEntry(page, off));
    }
    const names = entries.map((e) => e.subnqn);
    assert.ok(names.includes(CNODE1));
    assert.ok(!names.includes(CNODE2), 'cnode2 is hidden from a host not on its list');
    assert.equal(entries[0].trtype, TrType.TCP, 'TRTYPE TCP');
  } finally {
    await d.disconnect();
  }
});

test('a host not on the allow list is refused at Connect; an allowed one gets in', async () => {
  await assert.rejects(NvmeController.connect(trid(CNODE2, OTHER)), (e: unknown) => {
    assert.ok(e instanceof NvmeStatusError, String(e));
    assert.equal(e.status, 0x184, 'SCT 1 / INVALID_HOST');
    return true;
  });
  const c = await NvmeController.connect(trid(CNODE2, ALLOWED));
  try {
    const ns = decodeIdentifyNamespace(await c.identify(Cns.NAMESPACE, 1));
    assert.equal(ns.lbafs[lbaFormatIndex(ns.flbas, ns.nlbaf)].ds, 12, 'LBADS 4096');
  } finally {
    await c.disconnect();
  }
});

test('namespace hot-add raises a namespace attribute AEN and shows in the changed list', async () => {
  // this test sends its own AER: the library's own AERs are off
  const c = await NvmeController.connect(trid(CNODE1), { asyncEvents: false });
  try {
    await c.setFeatures(FeatureId.ASYNC_EVENT_CONFIGURATION, 0x100); // namespace attribute notices
    const aer = initSqe(Buffer.alloc(SQE_SIZE), AdminOpcode.ASYNC_EVENT_REQUEST);
    const pending = c.adminCommand(aer, null, false);
    const nsid = await api().call('nvmf_subsystem_add_ns', {
      nqn: CNODE1,
      namespace: { bdev_name: 'Malloc2' },
    });
    assert.equal(nsid, 2);
    const cpl = await within(5000, 'the AEN', pending);
    const ev = decodeAsyncEvent(cpl.dw0);
    assert.equal(ev.type, AsyncEventType.NOTICE, 'notice');
    assert.equal(ev.logPage, LogPage.CHANGED_NS_LIST, 'changed namespace list log');
    const changed = decodeNsidList(await c.getLogPage(LogPage.CHANGED_NS_LIST, Buffer.alloc(4096)));
    assert.equal(changed[0], 2);
    const list = decodeNsidList(await c.identify(Cns.ACTIVE_NS_LIST, 0));
    assert.deepEqual(list.slice(0, 2), [1, 2]);
  } finally {
    await c.disconnect();
  }
});

test('keep alive: a silent host is disconnected after KATO', async () => {
  const c = await NvmeController.connect(trid(CNODE1), { kato: 1000 });
  // stop the host library's keep-alive timer: the host goes silent
  clearInterval((c as unknown as { keepAliveTimer: NodeJS.Timeout }).keepAliveTimer);
  const before = (await api().call('nvmf_subsystem_get_controllers', { nqn: CNODE1 })) as unknown[];
  assert.equal(before.length, 1);
  await waitFor(
    'controller destroyed after keep-alive timeout',
    async () =>
      ((await api().call('nvmf_subsystem_get_controllers', { nqn: CNODE1 })) as unknown[]).length === 0,
    { timeoutMs: 6000, intervalMs: 200 },
  );
  assert.match(logText(), /keep alive timeout/);
  await c.disconnect().catch(() => {});
});

test('deleting a subsystem disconnects its hosts', async () => {
  await api().call('bdev_malloc_create', { name: 'Malloc3', num_blocks: 1024, block_size: 512 });
  await api().call('nvmf_create_subsystem', { nqn: 'nqn.2016-06.io.spdk:cnode3', allow_any_host: true });
  await api().call('nvmf_subsystem_add_ns', {
    nqn: 'nqn.2016-06.io.spdk:cnode3',
    namespace: { bdev_name: 'Malloc3' },
  });
  await api().call('nvmf_subsystem_add_listener', {
    nqn: 'nqn.2016-06.io.spdk:cnode3',
    listen_address: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: port },
  });
  const c = await NvmeController.connect(trid('nqn.2016-06.io.spdk:cnode3'));
  await c.setNumQueues(1);
  const q = await c.createIoQpair(8);
  await q.writeAsync(1, 0, 1, Buffer.alloc(512, 1));
  const qpairs = (await api().call('nvmf_subsystem_get_qpairs', { nqn: 'nqn.2016-06.io.spdk:cnode3' })) as {
    qid: number;
  }[];
  assert.deepEqual(qpairs.map((x) => x.qid).sort(), [0, 1]);
  await api().call('nvmf_delete_subsystem', { nqn: 'nqn.2016-06.io.spdk:cnode3' });
  await assert.rejects(q.readAsync(1, 0, 1, Buffer.alloc(512)));
  await assert.rejects(
    api().call('nvmf_subsystem_get_qpairs', { nqn: 'nqn.2016-06.io.spdk:cnode3' }) as Promise<unknown>,
    /Unable to find subsystem/,
  );
  await c.disconnect().catch(() => {});
});

test('bdev hot-remove under I/O removes the namespace; the target keeps serving', async () => {
  await api().call('bdev_malloc_create', { name: 'MallocX', num_blocks: 8192, block_size: 512 });
  const nsid = (await api().call('nvmf_subsystem_add_ns', {
    nqn: CNODE1,
    namespace: { bdev_name: 'MallocX' },
  })) as number;
  const c = await NvmeController.connect(trid(CNODE1));
  try {
    await c.setNumQueues(1);
    const q = await c.createIoQpair(128);
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i++)
      writes.push(q.writeAsync(nsid, i * 8, 8, Buffer.alloc(4096, 2)).catch((e) => e));
    await api().call('bdev_malloc_delete', { name: 'MallocX' });
    const results = await Promise.all(writes);
    for (const r of results) if (r !== undefined) assert.ok(r instanceof NvmeStatusError, String(r));
    const subs = (await api().call('nvmf_get_subsystems', { nqn: CNODE1 })) as {
      namespaces: { bdev_name: string }[];
    }[];
    assert.ok(!subs[0].namespaces.some((n) => n.bdev_name === 'MallocX'));
    await assert.rejects(q.readAsync(nsid, 0, 1, Buffer.alloc(512)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x0b);
      return true;
    });
    const r = Buffer.alloc(512);
    await q.readAsync(1, 0, 1, r);
  } finally {
    await c.disconnect();
  }
});

test('ANA reporting: CMIC, ANA log, listener state change → AEN and path status', async () => {
  const nqn = 'nqn.2016-06.io.spdk:ana';
  await api().call('bdev_malloc_create', { name: 'MallocA', num_blocks: 1024, block_size: 512 });
  await api().call('nvmf_create_subsystem', { nqn, allow_any_host: true, ana_reporting: true });
  await api().call('nvmf_subsystem_add_ns', { nqn, namespace: { bdev_name: 'MallocA' } });
  const listen_address = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: port };
  await api().call('nvmf_subsystem_add_listener', { nqn, listen_address });
  const c = await NvmeController.connect(trid(nqn), { asyncEvents: false }); // its own AER below
  try {
    const id = decodeIdentifyController(await c.identify(Cns.CONTROLLER, 0));
    assert.equal(id.cmic & 0x8, 0x8, 'CMIC ANA');
    const ana = decodeAnaLog(await c.getLogPage(LogPage.ANA, Buffer.alloc(4096)));
    assert.equal(ana.groups.length, 1, 'one ANA group');
    assert.equal(ana.groups[0].grpid, 1, 'group 1');
    assert.equal(ana.groups[0].state, AnaState.optimized, 'optimized');
    assert.deepEqual(ana.groups[0].nsids, [1], 'nsid 1 in it');
    await c.setFeatures(FeatureId.ASYNC_EVENT_CONFIGURATION, 0x800);
    const aer = initSqe(Buffer.alloc(SQE_SIZE), AdminOpcode.ASYNC_EVENT_REQUEST);
    const pending = c.adminCommand(aer, null, false);
    await c.setNumQueues(1);
    const q = await c.createIoQpair(8);
    await q.writeAsync(1, 0, 1, Buffer.alloc(512, 3));
    await api().call('nvmf_subsystem_listener_set_ana_state', {
      nqn,
      listen_address,
      ana_state: 'inaccessible',
    });
    const cpl = await pending;
    assert.equal(decodeAsyncEvent(cpl.dw0).logPage, LogPage.ANA, 'ANA change notice');
    const ana2 = decodeAnaLog(await c.getLogPage(LogPage.ANA, Buffer.alloc(4096)));
    assert.equal(ana2.groups[0].state, AnaState.inaccessible, 'inaccessible');
    await assert.rejects(q.readAsync(1, 0, 1, Buffer.alloc(512)), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status, 0x302, 'path: asymmetric access inaccessible');
      return true;
    });
    await api().call('nvmf_subsystem_listener_set_ana_state', {
      nqn,
      listen_address,
      ana_state: 'optimized',
    });
    await q.readAsync(1, 0, 1, Buffer.alloc(512));
  } finally {
    await c.disconnect();
    await api().call('nvmf_delete_subsystem', { nqn });
  }
});

test('referrals and discovery_filter shape the discovery log', async () => {
  const address = { trtype: 'TCP', adrfam: 'IPv4', traddr: '10.9.9.9', trsvcid: '8009' };
  await api().call('nvmf_discovery_add_referral', { address });
  const refs = (await api().call('nvmf_discovery_get_referrals')) as { address: { traddr: string } }[];
  assert.deepEqual(
    refs.map((r) => r.address.traddr),
    ['10.9.9.9'],
  );
  const read = async (): Promise<{ subnqn: string; subtype: number; traddr: string }[]> => {
    const d = await NvmeController.connect(trid(DISC), { kato: 0 });
    try {
      const log = await d.getLogPage(0x70, Buffer.alloc(8192));
      const out = [];
      for (let i = 0; i < log.readUInt32LE(8) && 1024 * (i + 2) <= log.length; i++) {
        const e = 1024 * (i + 1);
        out.push({
          subtype: log[e + 2],
          subnqn: log.toString('latin1', e + 256, e + 512).replace(/\0+$/, ''),
          traddr: log.toString('latin1', e + 512, e + 768).trimEnd(),
        });
      }
      return out;
    } finally {
      await d.disconnect();
    }
  };
  const withRef = await read();
  assert.ok(
    withRef.some((e) => e.subtype === 1 && e.traddr === '10.9.9.9'),
    'referral entry',
  );
  // only listeners on the address the host came through
  await api().call('nvmf_subsystem_add_listener', {
    nqn: CNODE1,
    listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.2', trsvcid: port },
  });
  assert.ok(
    (await read()).some((e) => e.traddr === '127.0.0.2'),
    'match_any lists every listener',
  );
  await api().call('nvmf_set_config', { discovery_filter: 'address' });
  assert.ok(!(await read()).some((e) => e.traddr === '127.0.0.2'), 'address filter hides other addresses');
  await api().call('nvmf_set_config', { discovery_filter: 'match_any' });
  await api().call('nvmf_subsystem_remove_listener', {
    nqn: CNODE1,
    listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.2', trsvcid: port },
  });
  await api().call('nvmf_discovery_remove_referral', { address });
  assert.ok(!(await read()).some((e) => e.subtype === 1));
});

test('RPC errors name the problem', async () => {
  await assert.rejects(
    api().call('nvmf_create_subsystem', { nqn: 'iqn.2016-06.io.spdk:bad' }),
    /must begin with "nqn\."/,
  );
  await assert.rejects(api().call('nvmf_create_subsystem', { nqn: CNODE1 }), /already exists/);
  await assert.rejects(
    api().call('nvmf_subsystem_add_ns', { nqn: CNODE1, namespace: { bdev_name: 'NoSuchBdev' } }),
    /NoSuchBdev/,
  );
  await assert.rejects(
    api().call('nvmf_subsystem_add_host', { nqn: 'nqn.2016-06.io.spdk:none', host: ALLOWED }),
    /Unable to find subsystem/,
  );
  await assert.rejects(
    api().call('nvmf_subsystem_add_listener', {
      nqn: CNODE1,
      listen_address: { trtype: 'RDMA', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '4420' },
    }),
    /RDMA/,
  );
  await assert.rejects(api().call('nvmf_create_transport', { trtype: 'TCP' }), /already exists/);
  const t = (await api().call('nvmf_get_transports')) as { trtype: string; max_io_size: number }[];
  assert.equal(t[0].trtype, 'TCP');
  assert.equal(t[0].max_io_size, 131072);
});

test('controller reset (CC.EN 1→0) ends its I/O queues; I/O Connect needs EN again', async () => {
  const c = await NvmeController.connect(trid(CNODE1));
  try {
    await c.setNumQueues(1);
    const q = await c.createIoQpair(8);
    await q.readAsync(1, 0, 1, Buffer.alloc(512));
    await c.propertySet(0x14, (6 << 16) | (4 << 20)); // EN = 0
    const csts = await c.propertyGet(0x1c, 4);
    assert.equal(csts & 1n, 0n, 'CSTS.RDY cleared');
    await assert.rejects(q.readAsync(1, 0, 1, Buffer.alloc(512)));
    await assert.rejects(c.createIoQpair(8), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError, String(e));
      assert.equal(e.status, 0x182, 'Connect Invalid Parameters (SPDK: I/O connect before enable)');
      assert.equal(e.dw0, 42 << 16, 'IATTR 0 (command), IPO = QID');
      return true;
    });
  } finally {
    await c.disconnect().catch(() => {});
  }
});

test('save_config carries the nvmf section', async () => {
  const cfg = (await api().call('save_config')) as {
    subsystems: { subsystem: string; config: { method: string; params: Record<string, unknown> }[] }[];
  };
  const nvmf = cfg.subsystems.find((s) => s.subsystem === 'nvmf');
  assert.ok(nvmf);
  const methods = nvmf.config.map((e) => e.method);
  assert.ok(methods.includes('nvmf_create_transport'));
  assert.equal(methods.filter((m) => m === 'nvmf_create_subsystem').length, 2);
  assert.equal(methods.filter((m) => m === 'nvmf_subsystem_add_ns').length, 3);
  assert.equal(methods.filter((m) => m === 'nvmf_subsystem_add_listener').length, 3);
  assert.ok(methods.includes('nvmf_subsystem_add_host'));
});
