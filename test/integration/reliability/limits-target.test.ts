// Limits enforced with the protocol's answer, never by falling over, against a real
// nvmf_tgt with small limits: queue depth (Connect SQSIZE and a host overrunning its
// SQ), I/O queues per controller, controllers per subsystem (CNTLID range),
// namespaces per subsystem, max I/O size (MDTS), in-capsule data size, R2T per
// command. After each, the target lives and a well-behaved host does verified I/O.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController, type NvmeIoQpair } from '../../../src/nvme/index.ts';
import { Cns, decodeIdentifyController } from '../../../src/wire/identify.ts';
import { Cqe, CqeStatus } from '../../../src/wire/nvme.ts';
import { Ch, capsuleRespCqe, newR2tFields, PduType, readR2t } from '../../../src/wire/tcp.ts';
import {
  type ChildTarget,
  capsuleCmd,
  finalTermReq,
  h2cData,
  ioSqe,
  pattern,
  startChildTarget,
  TEST_NQN,
  waitForValue,
} from '../../lib/index.ts';
import { RawQueue, rawConnect, rwSqe, submitRaw, verifiedIo } from './cmd-lib.ts';

const QUEUE_DEPTH = 16;
const IO_QPAIRS = 4;
const MAX_IO = 65536;
const ICD = 4096;
const LIMITS_NQN = 'nqn.2016-06.io.spdk:limits';

let tgt: ChildTarget;
let c: NvmeController;
let q: NvmeIoQpair;
let seed = 1;

before(async () => {
  tgt = await startChildTarget({
    transport: {
      max_queue_depth: QUEUE_DEPTH,
      max_aq_depth: QUEUE_DEPTH,
      max_io_qpairs_per_ctrlr: IO_QPAIRS,
      max_io_size: MAX_IO,
      io_unit_size: MAX_IO,
      in_capsule_data_size: ICD,
    },
  });
  c = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN },
    { asyncEvents: false, numIoQueues: IO_QPAIRS, adminQueueSize: QUEUE_DEPTH },
  );
  q = await c.createIoQpair(QUEUE_DEPTH);
});

after(async () => {
  await c?.disconnect().catch(() => {});
  await tgt?.stop();
});

/** The target process lives and a second, well-behaved host connects and verifies I/O. */
async function othersUnharmed(): Promise<void> {
  assert.ok(tgt.alive(), 'the target process lives');
  const h = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN },
    { asyncEvents: false, numIoQueues: 1, adminQueueSize: QUEUE_DEPTH },
  );
  try {
    await verifiedIo(await h.createIoQpair(8), 3000, seed++);
  } finally {
    await h.disconnect().catch(() => {});
  }
  await verifiedIo(q, 3100, seed++);
}

function ioConnect(qid: number, queueSize = 8) {
  return rawConnect(tgt.port, {
    qid,
    queueSize,
    cntlid: c.cntlid,
    subnqn: TEST_NQN,
    hostnqn: c.trid.hostnqn,
    hostid: c.hostid,
  });
}

test('queue depth: SQSIZE over max_queue_depth / max_aq_depth is Connect Invalid Parameters (IPO SQSIZE)', async () => {
  const cap = await c.propertyGet(0x00, 8);
  assert.equal(Number(cap & 0xffffn), QUEUE_DEPTH - 1, 'CAP.MQES = max_queue_depth - 1');
  const over = await ioConnect(2, QUEUE_DEPTH + 1);
  over.conn.destroy();
  assert.equal(over.status, 0x182);
  assert.deepEqual([over.iattr, over.ipo], [0, 44]);
  const admin = await rawConnect(tgt.port, { qid: 0, subnqn: TEST_NQN, queueSize: QUEUE_DEPTH + 1 });
  admin.conn.destroy();
  assert.equal(admin.status, 0x182, 'admin queue over max_aq_depth');
  assert.deepEqual([admin.iattr, admin.ipo], [0, 44]);
  const full = await ioConnect(2, QUEUE_DEPTH);
  full.conn.destroy();
  assert.equal(full.status, 0, 'exactly max_queue_depth entries is fine');
  await othersUnharmed();
});

test('a host that overruns its SQ is cut off with a C2HTermReq (PDU sequence error); the others go on', async () => {
  const r = await ioConnect(3, 8);
  try {
    assert.equal(r.status, 0);
    // 200 reads in one burst on a queue of 8 entries: no flow control respected at all
    const burst: Buffer[] = [];
    for (let i = 0; i < 200; i++) burst.push(capsuleCmd(ioSqe(0x02, 100 + i, 1, i * 8, 8, 4096)));
    await r.conn.write(Buffer.concat(burst));
    assert.ok(await r.conn.waitClosed(10_000), 'the target closed the connection');
    const term = finalTermReq(r.conn.data.subarray(r.offset));
    assert.ok(term !== null, 'its last PDU is a C2HTermReq');
    assert.equal(term.fes, 2, 'FES: PDU sequence error');
  } finally {
    r.conn.destroy();
  }
  await othersUnharmed();
});

test('I/O queues per controller: Number of Queues reports the limit, QID over it is refused (IPO QID)', async () => {
  // a fresh controller (Number of Queues belongs before the first I/O queue)
  const fresh = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN },
    { asyncEvents: false, numIoQueues: 0, adminQueueSize: QUEUE_DEPTH },
  );
  try {
    const nq = await fresh.setNumQueues(64);
    assert.deepEqual([nq.sq, nq.cq], [IO_QPAIRS, IO_QPAIRS], 'granted max_io_qpairs_per_ctrlr');
  } finally {
    await fresh.disconnect().catch(() => {});
  }
  const ok = await ioConnect(IO_QPAIRS);
  ok.conn.destroy();
  assert.equal(ok.status, 0, `QID ${IO_QPAIRS} is the last one`);
  const over = await ioConnect(IO_QPAIRS + 1);
  over.conn.destroy();
  assert.equal(over.status, 0x182, 'QID over max_io_qpairs_per_ctrlr');
  assert.deepEqual([over.iattr, over.ipo], [0, 42]);
  await othersUnharmed();
});

test('controllers per subsystem: an exhausted CNTLID range answers Controller Busy', async () => {
  await tgt.rpc.call('nvmf_create_subsystem', {
    nqn: LIMITS_NQN,
    allow_any_host: true,
    min_cntlid: 10,
    max_cntlid: 11,
    max_namespaces: 2,
  });
  await tgt.rpc.call('nvmf_subsystem_add_listener', {
    nqn: LIMITS_NQN,
    listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: tgt.port },
  });
  const a = await rawConnect(tgt.port, { qid: 0, subnqn: LIMITS_NQN, queueSize: 8 });
  const b = await rawConnect(tgt.port, { qid: 0, subnqn: LIMITS_NQN, queueSize: 8 });
  try {
    assert.deepEqual([a.status, b.status], [0, 0]);
    assert.deepEqual([a.dw0 & 0xffff, b.dw0 & 0xffff].sort(), [10, 11], 'CNTLIDs from the configured range');
    // Linux nvmet_alloc_ctrl: no free CNTLID → Connect Controller Busy (SPDK: Internal Device Error)
    const third = await rawConnect(tgt.port, { qid: 0, subnqn: LIMITS_NQN, queueSize: 8 });
    third.conn.destroy();
    assert.equal(third.status, 0x181, 'Controller Busy');
  } finally {
    a.conn.destroy();
    b.conn.destroy();
  }
  // a CNTLID comes back when its controller goes
  const again = await waitForValue(
    'a freed CNTLID to be reused',
    async () => {
      const r = await rawConnect(tgt.port, { qid: 0, subnqn: LIMITS_NQN, queueSize: 8 });
      r.conn.destroy();
      return r.status === 0 ? r : undefined;
    },
    { timeoutMs: 5000, intervalMs: 100 },
  );
  assert.ok(again !== null, 'a freed CNTLID is reused');
  await othersUnharmed();
});

test('namespaces per subsystem: adding one over max_namespaces is an RPC error, nothing changes', async () => {
  for (const name of ['LimA', 'LimB', 'LimC'])
    await tgt.rpc.call('bdev_malloc_create', { name, num_blocks: 256, block_size: 512 });
  await tgt.rpc.call('nvmf_subsystem_add_ns', { nqn: LIMITS_NQN, namespace: { bdev_name: 'LimA' } });
  await tgt.rpc.call('nvmf_subsystem_add_ns', { nqn: LIMITS_NQN, namespace: { bdev_name: 'LimB' } });
  await assert.rejects(
    tgt.rpc.call('nvmf_subsystem_add_ns', { nqn: LIMITS_NQN, namespace: { bdev_name: 'LimC' } }),
    (e: Error) => /namespace|NSID|max/i.test(e.message),
    'a third namespace',
  );
  await assert.rejects(
    tgt.rpc.call('nvmf_subsystem_add_ns', { nqn: LIMITS_NQN, namespace: { bdev_name: 'LimC', nsid: 3 } }),
    /max_namespaces|NSID/i,
    'NSID 3 over max_namespaces 2',
  );
  const subs = (await tgt.rpc.call('nvmf_get_subsystems')) as { nqn: string; namespaces: unknown[] }[];
  assert.equal(subs.find((s) => s.nqn === LIMITS_NQN)?.namespaces.length, 2, 'still two namespaces');
  await othersUnharmed();
});

test('max I/O size: MDTS reported; NLB over it is Invalid Field, an SGL over it Data SGL Length Invalid', async () => {
  const id = decodeIdentifyController(await c.identify(Cns.CONTROLLER, 0));
  assert.equal(id.mdts, 4, 'MDTS = 2^4 × 4 KiB = 64 KiB');
  const atMax = await submitRaw(q, rwSqe(0x02, 1, 0, 0, MAX_IO / 512 - 1), Buffer.alloc(MAX_IO), true);
  assert.equal(atMax.status, 0, 'a read of exactly max_io_size');
  const nlbOver = await submitRaw(q, rwSqe(0x02, 1, 0, 0, MAX_IO / 512), Buffer.alloc(4096), true);
  assert.equal(nlbOver.status, 0x02, 'NLB over MDTS with a small SGL: Invalid Field');
  const sglOver = await submitRaw(q, rwSqe(0x02, 1, 0, 0, MAX_IO / 512), Buffer.alloc(MAX_IO + 512), true);
  assert.equal(sglOver.status, 0x0f, 'SGL over max_io_size: Data SGL Length Invalid (transport)');
  await othersUnharmed();
});

test('in-capsule data over the capsule size ends the connection (TermReq FES 5)', async () => {
  const r = await ioConnect(2, 8);
  try {
    assert.equal(r.status, 0);
    const raw = new RawQueue(r.conn, r.offset);
    const ok = await raw.command(ioSqe(0x01, 7, 1, 64, ICD / 512, ICD, true), pattern(ICD, 1));
    assert.equal(ok.status, 0, 'a write of exactly IOCCSZ in-capsule data');
    await r.conn.write(
      capsuleCmd(ioSqe(0x01, 8, 1, 64, (2 * ICD) / 512, 2 * ICD, true), pattern(2 * ICD, 2)),
    );
    assert.ok(await r.conn.waitClosed(10_000), 'closed');
    const term = finalTermReq(r.conn.data.subarray(r.offset));
    assert.ok(term !== null, 'C2HTermReq before closing');
    assert.equal(term.fes, 5, 'FES: data transfer limit exceeded');
  } finally {
    r.conn.destroy();
  }
  await othersUnharmed();
});

test('R2T: one R2T covering the whole write (MAXR2T 0 means one outstanding per command)', async () => {
  const r = await ioConnect(2, 8);
  try {
    assert.equal(r.status, 0);
    const raw = new RawQueue(r.conn, r.offset);
    const data = pattern(32768, 9);
    await r.conn.write(capsuleCmd(ioSqe(0x01, 21, 1, 128, 64, data.length)));
    const pdu = await raw.nextPdu();
    assert.ok(pdu !== null && pdu[Ch.TYPE] === PduType.R2T, 'an R2T');
    const r2t = readR2t(pdu, newR2tFields());
    assert.equal(r2t.cccid, 21, 'CCCID');
    assert.equal(r2t.r2to, 0, 'R2TO 0');
    assert.equal(r2t.r2tl, data.length, 'R2TL = the whole transfer');
    await r.conn.write(h2cData({ cccid: 21, ttag: r2t.ttag, datao: 0 }, data));
    const resp = await raw.nextPdu();
    assert.ok(resp !== null && resp[Ch.TYPE] === PduType.CAPSULE_RESP, 'then the response, no second R2T');
    assert.equal(capsuleRespCqe(resp).readUInt16LE(Cqe.STATUS) & ~CqeStatus.PHASE, 0, 'write succeeded');
    const back = await raw.command(ioSqe(0x02, 22, 1, 128, 64, data.length));
    assert.ok(back.c2h.equals(data), 'and reads back');
  } finally {
    r.conn.destroy();
  }
  await othersUnharmed();
});
