// Fabrics Connect with bad input, raw over TCP against a real nvmf_tgt: the status
// and IATTR/IPO SPDK's target answers (lib/nvmf/ctrlr.c nvmf_ctrlr_cmd_connect,
// _nvmf_ctrlr_connect, _nvmf_ctrlr_add_io_qpair, nvmf_ctrlr_add_io_qpair,
// nvmf_ctrlr_process_fabrics_cmd); after all of them a well-behaved host still
// connects and does verified I/O, and the controller's I/O queue is untouched.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController, type NvmeIoQpair } from '../../../src/nvme/index.ts';
import { FabricsCommandType } from '../../../src/wire/nvme.ts';
import { type ChildTarget, connectCmd, startChildTarget, TEST_NQN } from '../../lib/index.ts';
import { type RawConnectParams, RawQueue, rawConnect, sqe, submitRaw, verifiedIo } from './cmd-lib.ts';

const INVALID_OPCODE = 0x01;
const INVALID_FIELD = 0x02;
const COMMAND_SEQUENCE_ERROR = 0x0c;
const INCOMPATIBLE_FORMAT = 0x180;
const INVALID_PARAM = 0x182;
const INVALID_HOST = 0x184;
/** Connect SQE offsets (IATTR 0) and Connect data offsets (IATTR 1) */
const IPO = { QID: 42, SQSIZE: 44, CNTLID: 16, SUBNQN: 256, HOSTNQN: 512 } as const;

const LOCKED_NQN = 'nqn.2016-06.io.spdk:locked';
const ALLOWED_HOST = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555';
const OTHER_HOST = 'nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555';

let tgt: ChildTarget;
let c: NvmeController;
let q: NvmeIoQpair;

before(async () => {
  tgt = await startChildTarget();
  await tgt.rpc.call('nvmf_create_subsystem', { nqn: LOCKED_NQN, allow_any_host: false });
  await tgt.rpc.call('nvmf_subsystem_add_host', { nqn: LOCKED_NQN, host: ALLOWED_HOST });
  await tgt.rpc.call('nvmf_subsystem_add_listener', {
    nqn: LOCKED_NQN,
    listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: tgt.port },
  });
  c = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN },
    { asyncEvents: false, numIoQueues: 4 },
  );
  q = await c.createIoQpair(16);
});

after(async () => {
  await c?.disconnect().catch(() => {});
  await tgt?.stop();
});

/** An I/O queue Connect of `c`'s controller, with changes. */
function ioParams(p: Partial<RawConnectParams>): RawConnectParams {
  return { qid: 2, cntlid: c.cntlid, subnqn: TEST_NQN, hostnqn: c.trid.hostnqn, hostid: c.hostid, ...p };
}

async function expectConnect(
  what: string,
  p: RawConnectParams,
  status: number,
  invalid?: { iattr: number; ipo: number },
): Promise<void> {
  const r = await rawConnect(tgt.port, p);
  r.conn.destroy();
  assert.equal(r.status, status, `${what}: status 0x${r.status.toString(16)}`);
  assert.ok(r.dnr, `${what}: DNR`);
  if (invalid !== undefined) {
    assert.equal(r.iattr, invalid.iattr, `${what}: IATTR`);
    assert.equal(r.ipo, invalid.ipo, `${what}: IPO`);
  } else assert.equal(r.dw0, 0, `${what}: no IATTR/IPO`);
}

test('admin Connect: subsystem NQN unknown, unterminated or over 223 bytes', async () => {
  const admin = (p: Partial<RawConnectParams>): RawConnectParams => ({ qid: 0, subnqn: TEST_NQN, ...p });
  await expectConnect('unknown subsystem', admin({ subnqn: 'nqn.2016-06.io.spdk:nope' }), INVALID_PARAM, {
    iattr: 1,
    ipo: IPO.SUBNQN,
  });
  const fill = (off: number, len: number) => (_s: Buffer, d: Buffer) => d.fill(0x61, off, off + len);
  await expectConnect('SUBNQN without a NUL in 256 bytes', admin({ mutate: fill(256, 256) }), INVALID_PARAM, {
    iattr: 1,
    ipo: IPO.SUBNQN,
  });
  await expectConnect('SUBNQN of 224 bytes', admin({ mutate: fill(256, 224) }), INVALID_PARAM, {
    iattr: 1,
    ipo: IPO.SUBNQN,
  });
  await expectConnect('HOSTNQN of 240 bytes', admin({ mutate: fill(512, 240) }), INVALID_PARAM, {
    iattr: 1,
    ipo: IPO.HOSTNQN,
  });
});

test('admin Connect: host not allowed, RECFMT, SQSIZE 0 or over max_aq_depth, static CNTLID', async () => {
  await expectConnect(
    'host not on the allow list',
    { qid: 0, subnqn: LOCKED_NQN, hostnqn: OTHER_HOST },
    INVALID_HOST,
  );
  const ok = await rawConnect(tgt.port, { qid: 0, subnqn: LOCKED_NQN, hostnqn: ALLOWED_HOST });
  ok.conn.destroy();
  assert.equal(ok.status, 0, 'the allowed host gets in');
  await expectConnect(
    'RECFMT 1',
    { qid: 0, subnqn: TEST_NQN, mutate: (s) => s.writeUInt16LE(1, 40) },
    INCOMPATIBLE_FORMAT,
  );
  await expectConnect('SQSIZE 0', { qid: 0, subnqn: TEST_NQN, queueSize: 1 }, INVALID_PARAM, {
    iattr: 0,
    ipo: IPO.SQSIZE,
  });
  // max_aq_depth 128: SQSIZE (0's based) must be below it
  await expectConnect('admin SQSIZE 128', { qid: 0, subnqn: TEST_NQN, queueSize: 129 }, INVALID_PARAM, {
    iattr: 0,
    ipo: IPO.SQSIZE,
  });
  // dynamic controller model only: an admin Connect names CNTLID 0xffff
  await expectConnect('admin Connect with CNTLID 5', { qid: 0, subnqn: TEST_NQN, cntlid: 5 }, INVALID_PARAM, {
    iattr: 1,
    ipo: IPO.CNTLID,
  });
  const short = await rawConnect(tgt.port, {
    qid: 0,
    subnqn: TEST_NQN,
    dataBytes: 512, // only 512 of the 1024 Connect data bytes (SGL length 512)
  });
  short.conn.destroy();
  assert.equal(short.status, INVALID_FIELD, 'Connect data shorter than 1024 bytes');
});

test('I/O Connect: unknown CNTLID, CNTLID of another host, QID in use or over the limit, SQSIZE', async () => {
  await expectConnect('unknown CNTLID', ioParams({ cntlid: 0x1234 }), INVALID_PARAM, {
    iattr: 1,
    ipo: IPO.CNTLID,
  });
  await expectConnect('CNTLID of another host', ioParams({ hostnqn: OTHER_HOST }), INVALID_PARAM, {
    iattr: 1,
    ipo: IPO.HOSTNQN,
  });
  await expectConnect('QID 1 already connected', ioParams({ qid: q.qid }), INVALID_PARAM, {
    iattr: 0,
    ipo: IPO.QID,
  });
  // max_io_qpairs_per_ctrlr 127 (SPDK's default): QIDs 1..127
  await expectConnect('QID 128', ioParams({ qid: 128 }), INVALID_PARAM, { iattr: 0, ipo: IPO.QID });
  await expectConnect('I/O SQSIZE 0', ioParams({ queueSize: 1 }), INVALID_PARAM, {
    iattr: 0,
    ipo: IPO.SQSIZE,
  });
  await expectConnect('I/O SQSIZE 128 (max_queue_depth 128)', ioParams({ queueSize: 129 }), INVALID_PARAM, {
    iattr: 0,
    ipo: IPO.SQSIZE,
  });
  const good = await rawConnect(tgt.port, ioParams({ qid: 127, queueSize: 128 }));
  good.conn.destroy();
  assert.equal(good.status, 0, 'QID 127 with 128 entries is within the limits');
  await verifiedIo(q, 2000, 1);
});

test('Connect on a connected queue, and commands before Connect', async () => {
  // a second Connect on an admin queue: SPDK answers Invalid Opcode (only Property Get/Set there)
  const r = await rawConnect(tgt.port, { qid: 0, subnqn: TEST_NQN });
  try {
    assert.equal(r.status, 0);
    const again = connectCmd(2, 0, 32, 0xffff, TEST_NQN);
    const raw = new RawQueue(r.conn, r.offset);
    const a = await raw.command(again.sqe, again.data);
    assert.equal(a.status, INVALID_OPCODE, 'second Connect on the admin queue');
    const get = sqe(0x7f);
    get.writeUInt16LE(3, 2);
    get[1] = 0x40;
    get[4] = FabricsCommandType.PROPERTY_GET;
    get.writeUInt32LE(0x08, 44);
    const vs = await raw.command(get);
    assert.equal(vs.status, 0, 'the admin queue still answers Property Get');
    assert.equal(vs.dw0, 0x20000, 'VS 2.0 (as SPDK v26.05)');
  } finally {
    r.conn.destroy();
  }
  // on a fresh connection, anything but Connect first: Command Sequence Error (SPDK spdk_nvmf_request_exec)
  const first = await rawConnect(tgt.port, {
    qid: 0,
    subnqn: TEST_NQN,
    mutate: (s) => {
      s[4] = FabricsCommandType.PROPERTY_GET; // no data direction: the capsule data is ignored
      s.writeUInt32LE(0x08, 44);
    },
  });
  first.conn.destroy();
  assert.equal(first.status, COMMAND_SEQUENCE_ERROR, 'Property Get before Connect');
  const conn = (await rawConnect(tgt.port, { qid: 0, subnqn: TEST_NQN })).conn;
  conn.destroy();
  await verifiedIo(q, 2100, 2);
});

test('a well-behaved host still connects and does verified I/O after all of it', async () => {
  const h = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN },
    { asyncEvents: false, numIoQueues: 1 },
  );
  try {
    const hq = await h.createIoQpair(8);
    await verifiedIo(hq, 2200, 3);
  } finally {
    await h.disconnect().catch(() => {});
  }
  await verifiedIo(q, 2300, 4);
  assert.ok(tgt.alive(), 'the target process lives');
});

test('discovery controller: no I/O queues, only its own admin commands and log page', async () => {
  const DISC = 'nqn.2014-08.org.nvmexpress.discovery';
  await tgt.rpc.call('nvmf_subsystem_add_listener', {
    nqn: DISC,
    listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: tgt.port },
  });
  const d = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: DISC },
    { kato: 0 },
  );
  try {
    // SPDK nvmf_ctrlr_add_io_qpair: "I/O connect not allowed on discovery controller"
    await expectConnect(
      'I/O Connect to the discovery controller',
      { qid: 1, cntlid: d.cntlid, subnqn: DISC, hostnqn: d.trid.hostnqn, hostid: d.hostid },
      INVALID_PARAM,
      { iattr: 0, ipo: IPO.QID },
    );
    const run = async (cmd: Buffer, len: number) =>
      (await submitRaw(d.admin, cmd, len > 0 ? Buffer.alloc(len) : null, len > 0)).status;
    const identifyNs = sqe(0x06, 1);
    assert.equal(await run(identifyNs, 4096), INVALID_FIELD, 'Identify Namespace on discovery');
    const smart = sqe(0x02, 0xffffffff);
    smart.writeUInt32LE(0x02 | (127 << 16), 40);
    assert.equal(await run(smart, 512), 0x109, 'SMART log on discovery: Invalid Log Page');
    const past = sqe(0x02, 0);
    past.writeUInt32LE(0x70 | (255 << 16), 40);
    past.writeUInt32LE(1 << 20, 48);
    assert.equal(await run(past, 1024), INVALID_FIELD, 'discovery log at offset 1 MiB');
    const nq = sqe(0x09);
    nq.writeUInt32LE(0x07, 40);
    assert.equal(await run(nq, 0), INVALID_FIELD, 'Number of Queues on discovery');
    assert.equal(
      await run(sqe(0x08), 0),
      INVALID_OPCODE,
      'Abort on discovery (SPDK: not a discovery command)',
    );
    const log = await d.getDiscoveryLog();
    assert.ok(
      log.entries.some((e) => e.subnqn === TEST_NQN),
      'the discovery log still answers',
    );
  } finally {
    await d.disconnect().catch(() => {});
  }
});
