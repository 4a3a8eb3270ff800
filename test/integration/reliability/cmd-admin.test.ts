// Command-level bad input on the admin queue, against a real nvmf_tgt over TCP:
// unknown opcodes, Identify / Get Log Page / Features with bad CNS, LID, FID,
// NSIDs and offsets, Property Get/Set of unknown offsets, bad sizes and illegal CC
// values, admin commands and I/O Connect before CC.EN. Statuses as SPDK's
// lib/nvmf/ctrlr.c answers (Linux drivers/nvme/target/ noted where it differs);
// error log entries checked for what the controller logs; the admin queue and an
// I/O queue keep working after each case.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController, type NvmeIoQpair } from '../../../src/nvme/index.ts';
import { FabricsSqe, writePropertySet } from '../../../src/wire/fabrics.ts';
import { writeIdentifyCommand } from '../../../src/wire/identify.ts';
import { writeGetLogPage } from '../../../src/wire/log.ts';
import { SQE_SIZE, Sqe } from '../../../src/wire/nvme.ts';
import { type ChildTarget, startChildTarget, TEST_NQN } from '../../lib/index.ts';
import { expectErrorLogged, rawConnect, sqe, submitRaw, verifiedIo } from './cmd-lib.ts';

const INVALID_OPCODE = 0x01;
const INVALID_FIELD = 0x02;
const INVALID_NAMESPACE = 0x0b;
const COMMAND_SEQUENCE_ERROR = 0x0c;
const INVALID_LOG_PAGE = 0x109;
const FEATURE_ID_NOT_SAVEABLE = 0x10d;
const FEATURE_NOT_CHANGEABLE = 0x10e;
const CONNECT_INVALID_PARAM = 0x182;

const CC_GOOD = 1 | (6 << 16) | (4 << 20);

let tgt: ChildTarget;
let c: NvmeController;
let q: NvmeIoQpair;
let nn = 0;
let seed = 1;

before(async () => {
  tgt = await startChildTarget();
  c = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN },
    { asyncEvents: false, numIoQueues: 2 },
  );
  q = await c.createIoQpair(16);
  nn = (await c.identify(1, 0)).readUInt32LE(516);
});

after(async () => {
  await c?.disconnect().catch(() => {});
  await tgt?.stop();
});

/** The admin queue and the I/O queue still work: Identify Controller, verified I/O. */
async function stillWorks(): Promise<void> {
  const id = await c.identify(1, 0);
  assert.equal(id.readUInt16LE(78), c.cntlid, 'Identify Controller answers on the same admin queue');
  await verifiedIo(q, 1000, seed++);
}

async function expectAdmin(
  what: string,
  cmd: Buffer,
  status: number,
  data: Buffer | null = null,
  isRead = false,
  logged = true,
): Promise<void> {
  const r = await submitRaw(c.admin, cmd, data, isRead);
  assert.equal(r.status, status, `${what}: status 0x${r.status.toString(16)}`);
  if (logged) await expectErrorLogged(c, { sqid: 0, cid: r.cid, status }, what);
  await stillWorks();
}

function identifySqe(cns: number, nsid: number): Buffer {
  const cmd = Buffer.alloc(SQE_SIZE);
  writeIdentifyCommand(cmd, cns, nsid);
  return cmd;
}

function getLogSqe(lid: number, bytes: number, offset = 0, nsid = 0xffffffff): Buffer {
  const cmd = Buffer.alloc(SQE_SIZE);
  writeGetLogPage(cmd, lid, nsid, bytes, offset);
  return cmd;
}

/** A Property Get/Set with any FCTYPE and any size code (valid or not). */
function propSqe(fctype: number, ofst: number, sizeCode: number, value = 0): Buffer {
  const cmd = Buffer.alloc(SQE_SIZE);
  writePropertySet(cmd, ofst, value, 4);
  cmd[Sqe.FCTYPE] = fctype;
  cmd[FabricsSqe.PROP_ATTRIB] = sizeCode;
  return cmd;
}

test('unknown admin opcodes, I/O opcodes and queue management on the admin queue → INVALID_OPCODE', async () => {
  // SPDK nvmf_ctrlr_process_admin_cmd: Create/Delete I/O SQ/CQ are not allowed on fabrics
  await expectAdmin('vendor opcode 0xc0', sqe(0xc0), INVALID_OPCODE);
  await expectAdmin('Create I/O SQ (= I/O Write opcode 0x01)', sqe(0x01), INVALID_OPCODE);
  await expectAdmin('Create I/O CQ (= I/O Compare opcode 0x05)', sqe(0x05), INVALID_OPCODE);
  await expectAdmin('Format NVM 0x80', sqe(0x80, 1), INVALID_OPCODE);
  await expectAdmin('Namespace Management 0x0d', sqe(0x0d), INVALID_OPCODE);
});

test('fused admin commands and NSIDs on commands of controller scope → INVALID_FIELD', async () => {
  // SPDK nvmf_ctrlr_process_admin_cmd: cmd->fuse != 0 or (controller scope and NSID != 0)
  const fused = identifySqe(1, 0);
  fused[1] = 0x01;
  await expectAdmin('Identify with FUSE_FIRST', fused, INVALID_FIELD, Buffer.alloc(4096), true);
  await expectAdmin('Keep Alive with NSID 1', sqe(0x18, 1), INVALID_FIELD);
  await expectAdmin('Abort with NSID 1', sqe(0x08, 1), INVALID_FIELD);
});

test('Identify: bad CNS, bad and inactive NSIDs, short buffer', async () => {
  // SPDK nvmf_ctrlr_identify / spdk_nvmf_ns_identify / ..._id_descriptor_list
  const buf = () => Buffer.alloc(4096);
  await expectAdmin('CNS 0xff', identifySqe(0xff, 0), INVALID_FIELD, buf(), true);
  await expectAdmin('CNS 0, NSID 0', identifySqe(0, 0), INVALID_NAMESPACE, buf(), true);
  await expectAdmin('CNS 0, NSID 0xffffffff', identifySqe(0, 0xffffffff), INVALID_NAMESPACE, buf(), true);
  await expectAdmin('CNS 0, NSID NN + 1', identifySqe(0, nn + 1), INVALID_NAMESPACE, buf(), true);
  await expectAdmin('CNS 3, inactive NSID 2', identifySqe(3, 2), INVALID_NAMESPACE, buf(), true);
  await expectAdmin('CNS 2, NSID 0xfffffffe', identifySqe(2, 0xfffffffe), INVALID_NAMESPACE, buf(), true);
  await expectAdmin('Identify into 512 bytes', identifySqe(1, 0), INVALID_FIELD, Buffer.alloc(512), true);
  // an inactive NSID within NN is not an error: zeroed data
  const z = await submitRaw(c.admin, identifySqe(0, 2), Buffer.alloc(4096, 0xee), true);
  assert.equal(z.status, 0, 'CNS 0 for an inactive namespace succeeds');
});

test('Get Log Page: unknown LID, offsets past or inside a dword, NUMD over the buffer, NSID', async () => {
  // SPDK nvmf_ctrlr_get_log_page
  await expectAdmin('LID 0xbf', getLogSqe(0xbf, 512), INVALID_LOG_PAGE, Buffer.alloc(512), true);
  await expectAdmin(
    'SMART log at offset 4096 (past its 512 bytes)',
    getLogSqe(0x02, 512, 4096),
    INVALID_FIELD,
    Buffer.alloc(512),
    true,
  );
  await expectAdmin(
    'error log at offset 2 (not dword aligned)',
    getLogSqe(0x01, 64, 2),
    INVALID_FIELD,
    Buffer.alloc(64),
    true,
  );
  await expectAdmin(
    'NUMD 4 KiB into a 512-byte buffer',
    getLogSqe(0x02, 4096),
    INVALID_FIELD,
    Buffer.alloc(512),
    true,
  );
  await expectAdmin(
    'error log (controller scope) for NSID 5',
    getLogSqe(0x01, 64, 0, 5),
    INVALID_FIELD,
    Buffer.alloc(64),
    true,
  );
  const ok = await submitRaw(c.admin, getLogSqe(0x02, 512, 0, 0xffffffff), Buffer.alloc(512), true);
  assert.equal(ok.status, 0, 'a good Get Log Page right after');
});

test('Get/Set Features: unknown FID, save, unchangeable feature, 0xffff queues', async () => {
  const feat = (opc: number, fid: number, cdw11 = 0) => {
    const cmd = sqe(opc);
    cmd.writeUInt32LE(fid >>> 0, 40);
    cmd.writeUInt32LE(cdw11 >>> 0, 44);
    return cmd;
  };
  await expectAdmin('Get Features FID 0x7e', feat(0x0a, 0x7e), INVALID_FIELD);
  await expectAdmin('Set Features FID 0x7e', feat(0x09, 0x7e), INVALID_FIELD);
  await expectAdmin('Set Features with SV (save)', feat(0x09, 0x0b | 0x80000000), FEATURE_ID_NOT_SAVEABLE);
  await expectAdmin('Set Volatile Write Cache', feat(0x09, 0x06, 1), FEATURE_NOT_CHANGEABLE);
  // Linux nvmet_set_feat_num_queues: 0xffff (65536 queues) is invalid
  await expectAdmin('Set Number of Queues 0xffff', feat(0x09, 0x07, 0xffffffff), INVALID_FIELD);
});

test('Property Get/Set: unknown offsets, bad sizes, read-only registers, illegal CC values', async () => {
  // SPDK nvmf_property_get/set and nvmf_prop_set_cc: Invalid Parameter (SCT 1 / 0x82), nothing
  // changes. (Linux answers Invalid Field, and sets CSTS.CFS for a bad CC instead.)
  const GET = 0x04;
  const SET = 0x00;
  const cases: Array<[string, Buffer]> = [
    ['Get of reserved offset 0x40', propSqe(GET, 0x40, 0)],
    ['Get of CC with size 8', propSqe(GET, 0x14, 1)],
    ['Get with reserved size code 2', propSqe(GET, 0x08, 2)],
    ['Set of VS (read-only)', propSqe(SET, 0x08, 0, 0)],
    ['Set of CSTS (read-only)', propSqe(SET, 0x1c, 0, 0)],
    ['Set of CC with size 8', propSqe(SET, 0x14, 1, CC_GOOD)],
    ['Set CC.IOSQES = 5 (32-byte SQEs)', propSqe(SET, 0x14, 0, (CC_GOOD & ~(0xf << 16)) | (5 << 16))],
    ['Set CC.IOCQES = 5', propSqe(SET, 0x14, 0, (CC_GOOD & ~(0xf << 20)) | (5 << 20))],
    ['Set CC.MPS = 1 (8 KiB pages)', propSqe(SET, 0x14, 0, CC_GOOD | (1 << 7))],
    ['Set CC.AMS = 1 (weighted round robin)', propSqe(SET, 0x14, 0, CC_GOOD | (1 << 11))],
    ['Set CC.CSS = 1 (reserved)', propSqe(SET, 0x14, 0, CC_GOOD | (1 << 4))],
    ['Set CC.SHN = 11b (reserved)', propSqe(SET, 0x14, 0, CC_GOOD | (3 << 14))],
  ];
  for (const [what, cmd] of cases) {
    const r = await submitRaw(c.admin, cmd);
    assert.equal(r.status, CONNECT_INVALID_PARAM, `${what}: status 0x${r.status.toString(16)}`);
    assert.ok(r.dnr, `${what}: DNR`);
    assert.equal(Number(await c.propertyGet(0x14, 4)), CC_GOOD, `${what}: CC unchanged`);
    assert.equal(Number(await c.propertyGet(0x1c, 4)), 1, `${what}: CSTS still RDY, no CFS, no shutdown`);
  }
  await stillWorks();
});

test('admin commands and I/O Connect before CC.EN; an illegal CC does not enable', async () => {
  const raw = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN },
    { skipIdentify: true, kato: 0 },
  );
  try {
    // SPDK: "Admin command sent to disabled controller" → Command Sequence Error
    const id = await submitRaw(raw.admin, identifySqe(1, 0), Buffer.alloc(4096), true);
    assert.equal(id.status, COMMAND_SEQUENCE_ERROR, 'Identify before CC.EN');
    const ka = await submitRaw(raw.admin, sqe(0x18));
    assert.equal(ka.status, COMMAND_SEQUENCE_ERROR, 'Keep Alive before CC.EN');
    // SPDK nvmf_ctrlr_add_io_qpair: "I/O connect before ctrlr was enabled" → 0x82, IATTR 0, IPO = QID
    const io = await rawConnect(tgt.port, {
      qid: 1,
      cntlid: raw.cntlid,
      subnqn: TEST_NQN,
      hostnqn: raw.trid.hostnqn,
      hostid: raw.hostid,
    });
    io.conn.destroy();
    assert.equal(io.status, CONNECT_INVALID_PARAM, 'I/O Connect before CC.EN');
    assert.equal(io.iattr, 0, 'IATTR: the command');
    assert.equal(io.ipo, 42, 'IPO: QID');
    // enabling with IOSQES 0 is refused and leaves the controller disabled
    const bad = await submitRaw(raw.admin, propSqe(0x00, 0x14, 0, 1 | (4 << 20)));
    assert.equal(bad.status, CONNECT_INVALID_PARAM, 'CC.EN = 1 with IOSQES 0');
    assert.equal(Number(await raw.propertyGet(0x1c, 4)) & 3, 0, 'CSTS: not ready, no fatal status');
    await raw.propertySet(0x14, CC_GOOD);
    assert.equal(Number(await raw.propertyGet(0x1c, 4)) & 1, 1, 'a legal CC enables it');
    const id2 = await submitRaw(raw.admin, identifySqe(1, 0), Buffer.alloc(4096), true);
    assert.equal(id2.status, 0, 'Identify once enabled');
    // a reset (EN 1 → 0): admin commands are refused again until the next enable
    await raw.propertySet(0x14, CC_GOOD & ~1);
    const id3 = await submitRaw(raw.admin, identifySqe(1, 0), Buffer.alloc(4096), true);
    assert.equal(id3.status, COMMAND_SEQUENCE_ERROR, 'Identify after a reset');
  } finally {
    await raw.disconnect().catch(() => {});
  }
  await stillWorks();
});
