// The whole target in one process, deterministic: the thread test harness,
// the real NvmfTarget on the app thread, one real NvmfPollGroup on its own
// thread, a malloc bdev, and a transport with no socket driven by the test
// (test/lib/fake-transport.ts). No timers: every step is a poll of the
// threads, and the fake clock moves only when the test says so. Covers admin
// Connect → enable → I/O Connect → executeIo write/read round trip, a pause
// that parks I/O until the resume, the keep-alive expiry, and disconnects
// (with and without I/O parked).
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { after, before, test } from 'node:test';
import { createMallocBdev } from '../../../src/modules/bdev/malloc/malloc.ts';
import { IoQueue } from '../../../src/nvmf/io-queue.ts';
import { type NvmfTarget, setTarget } from '../../../src/nvmf/target.ts';
import { NvmfCtrlr } from '../../../src/nvmf/target-controller.ts';
import { TCP_DEFAULT_OPTIONS } from '../../../src/nvmf/tcp/index.ts';
import type { TransportAddress } from '../../../src/nvmf/transport.ts';
import * as T from '../../../src/thread/testing.ts';
import { type ControllerEvent, traceChannels } from '../../../src/util/trace.ts';
import {
  ConnectData,
  writeConnectCommand,
  writeConnectData,
  writePropertySet,
} from '../../../src/wire/fabrics.ts';
import {
  ControllerRegister,
  Cqe,
  FabricsStatus,
  GenericStatus,
  NvmOpcode,
  SQE_SIZE,
  Sqe,
  StatusCodeType,
  setSqeSgl,
  statusOf,
} from '../../../src/wire/nvme.ts';
import {
  type FakePollGroup,
  type FakeQpair,
  type FakeRequest,
  fakeTransport,
} from '../../lib/fake-transport.ts';
import { startInProcessTarget } from '../../lib/in-process-target.ts';
import { pattern } from '../../lib/pattern.ts';
import { ioSqe } from '../../lib/raw-pdu.ts';
import { pollIdle, settle } from '../bdev/harness.ts';
import { CC_ENABLE } from './fake-ctrlr.ts';

const NQN = 'nqn.2016-06.io.spdk:cnode1';
const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:in-process-host';
const LISTEN: TransportAddress = { trtype: 'FAKE', adrfam: 'IPv4', traddr: '10.0.0.1', trsvcid: '4420' };
const BS = 512;
const KATO_MS = 10_000;

const fake = fakeTransport();
let tgt: NvmfTarget;
let group: FakePollGroup;
let nextCid = 1;

before(async () => {
  T.useFakeClock(1_000_000);
  tgt = await startInProcessTarget(settle, fake.plugin, { ...TCP_DEFAULT_OPTIONS, trtype: 'FAKE' });
  const bdev = await settle(createMallocBdev({ name: 'Malloc0', numBlocks: 1024, blockSize: BS }));
  await settle(
    tgt.createSubsystem({
      nqn: NQN,
      serial: 'SN-IN-PROCESS',
      model: 'in-process',
      allowAnyHost: true,
      maxNamespaces: 8,
      minCntlid: 1,
      maxCntlid: 0xffef,
      anaReporting: false,
    }),
  );
  await settle(tgt.addNamespace(NQN, { bdevName: bdev, nsid: 1 }));
  await settle(tgt.addListener(NQN, LISTEN));
  assert.equal(fake.groups.length, 1, 'one poll group, one fake transport poll group');
  group = fake.groups[0];
});

after(async () => {
  await settle(tgt.stop());
  setTarget(null);
});

function connectSqe(qid: number, kato: number): Buffer {
  const sqe = Buffer.alloc(SQE_SIZE);
  writeConnectCommand(sqe, { recfmt: 0, qid, sqsize: 31, cattr: 0, kato });
  setSqeSgl(sqe, ConnectData.SIZE, true);
  return sqe;
}

function withCid(sqe: Buffer): Buffer {
  sqe.writeUInt16LE(nextCid++ & 0xffff, Sqe.CID);
  return sqe;
}

/** Submit and run the threads until nothing is left to do. */
function run(q: FakeQpair, sqe: Buffer, data?: Buffer): FakeRequest {
  const req = q.submit(withCid(sqe), data);
  pollIdle();
  return req;
}

function connect(q: FakeQpair, qid: number, cntlid: number, kato = 0): FakeRequest {
  const data = Buffer.alloc(ConnectData.SIZE);
  writeConnectData(data, { hostid: Buffer.alloc(16, 0x11), cntlid, subnqn: NQN, hostnqn: HOSTNQN });
  return run(q, connectSqe(qid, kato), data);
}

/** Admin Connect and CC.EN = 1: the controller's ID and its admin queue. */
function openController(kato = 0): { cntlid: number; admin: FakeQpair } {
  const admin = group.connect(LISTEN);
  const c = connect(admin, 0, 0xffff, kato);
  assert.equal(statusOf(c.rsp), 0, 'admin Connect succeeds');
  const cntlid = c.rsp.readUInt16LE(Cqe.DW0);
  const sqe = Buffer.alloc(SQE_SIZE);
  writePropertySet(sqe, ControllerRegister.CC, CC_ENABLE, 4);
  assert.equal(statusOf(run(admin, sqe).rsp), 0, 'Property Set CC.EN = 1');
  return { cntlid, admin };
}

function rw(opcode: number, lba: number, blocks: number): Buffer {
  return ioSqe(opcode, 0, 1, lba, blocks, blocks * BS);
}

function stats() {
  return settle(tgt.stats());
}

test('admin Connect, enable, I/O Connect, write and read back through executeIo', async () => {
  const { cntlid, admin } = openController();
  assert.ok(admin.context instanceof NvmfCtrlr, 'the admin queue carries its controller');
  assert.equal(admin.context.cntlid, cntlid);
  assert.equal(tgt.ctrlrs.get(cntlid)?.enabled, true, 'the app thread knows the controller is enabled');

  const io = group.connect(LISTEN);
  const ioc = connect(io, 1, cntlid);
  assert.equal(statusOf(ioc.rsp), 0, 'I/O Connect succeeds');
  assert.ok(io.context instanceof IoQueue, 'the I/O queue carries an IoQueue');
  assert.equal(io.qid, 1);
  assert.equal(tgt.ctrlrs.get(cntlid)?.ioQueues.has(1), true, 'the app thread recorded queue 1');

  const data = pattern(8 * BS, 42);
  const w = io.submit(withCid(rw(NvmOpcode.WRITE, 100, 8)), data);
  assert.equal(w.completions, 0, 'handed to the core only when the poll group polls');
  pollIdle();
  assert.equal(w.completions, 1);
  assert.equal(statusOf(w.rsp), 0, 'write succeeds');
  const r = run(io, rw(NvmOpcode.READ, 100, 8));
  assert.equal(statusOf(r.rsp), 0, 'read succeeds');
  assert.deepEqual(r.data(), data, 'the read returns what was written');

  const beyond = run(io, rw(NvmOpcode.READ, 1020, 8));
  assert.equal(statusOf(beyond.rsp), (StatusCodeType.GENERIC << 8) | GenericStatus.LBA_OUT_OF_RANGE);

  const [pg] = await stats();
  assert.equal(pg.completed_nvme_io, 3, 'the poll group counted the three NVM commands');
  assert.equal(pg.controllers, 1);
  assert.equal(pg.current_io_qpairs, 1);

  // the host drops the I/O queue, then the admin queue: the queue, then the controller, go
  io.hostClose();
  pollIdle();
  assert.equal(io.disconnectReported, true);
  assert.equal(io.context, null, 'the core detached the I/O queue');
  assert.equal(tgt.ctrlrs.get(cntlid)?.ioQueues.has(1), false, 'the app thread released qid 1');
  admin.hostClose();
  pollIdle();
  assert.equal(admin.disconnectReported, true);
  assert.equal(tgt.ctrlrs.has(cntlid), false, 'the app thread released the controller ID');
  assert.equal((await stats())[0].controllers, 0);
});

test('a paused subsystem parks I/O and a Connect; the resume runs them in order', async () => {
  const { cntlid, admin } = openController();
  const io = group.connect(LISTEN);
  assert.equal(statusOf(connect(io, 1, cntlid).rsp), 0);
  const data = pattern(4 * BS, 7);
  assert.equal(statusOf(run(io, rw(NvmOpcode.WRITE, 8, 4), data).rsp), 0);

  await settle(tgt.pauseSubsystem(NQN));
  const r = run(io, rw(NvmOpcode.READ, 8, 4));
  const w = run(io, rw(NvmOpcode.WRITE, 16, 4), pattern(4 * BS, 8));
  const late = group.connect(LISTEN);
  const lateConnect = connect(late, 0, 0xffff);
  assert.deepEqual([r.completions, w.completions, lateConnect.completions], [0, 0, 0], 'all wait');
  assert.equal((await stats())[0].queued_requests, 3, 'parked on the subsystem, not failed');
  // admin commands go on while paused
  const sqe = Buffer.alloc(SQE_SIZE);
  writePropertySet(sqe, ControllerRegister.CC, CC_ENABLE, 4);
  assert.equal(statusOf(run(admin, sqe).rsp), 0);

  await settle(tgt.resumeSubsystem(NQN));
  pollIdle();
  assert.deepEqual([r.completions, w.completions, lateConnect.completions], [1, 1, 1]);
  assert.equal(statusOf(r.rsp), 0);
  assert.deepEqual(r.data(), data, 'the parked read ran after the resume');
  assert.equal(statusOf(w.rsp), 0);
  assert.deepEqual(
    io.completed.slice(-2).map((q) => q.cmd[Sqe.OPCODE]),
    [NvmOpcode.READ, NvmOpcode.WRITE],
    'in arrival order',
  );
  assert.equal(statusOf(lateConnect.rsp), 0, 'the parked Connect made a controller');
  assert.equal((await stats())[0].queued_requests, 0);

  // a queue closing with I/O parked gets it back aborted, then is reported gone
  await settle(tgt.pauseSubsystem(NQN));
  const parked = run(io, rw(NvmOpcode.READ, 0, 1));
  assert.equal(parked.completions, 0);
  io.hostClose();
  pollIdle();
  assert.equal(parked.completions, 1);
  assert.equal(statusOf(parked.rsp), (StatusCodeType.GENERIC << 8) | GenericStatus.ABORTED_SQ_DELETION);
  assert.equal(io.disconnectReported, true);
  await settle(tgt.resumeSubsystem(NQN));
  for (const q of [admin, late]) q.hostClose();
  pollIdle();
  assert.equal((await stats())[0].controllers, 0);
});

test('an I/O Connect naming no controller is refused; nothing but Connect before Connect', () => {
  const q = group.connect(LISTEN);
  const early = run(q, rw(NvmOpcode.READ, 0, 1));
  assert.equal(statusOf(early.rsp), (StatusCodeType.GENERIC << 8) | GenericStatus.COMMAND_SEQUENCE_ERROR);
  const c = connect(q, 1, 0x1234);
  assert.equal(statusOf(c.rsp), (StatusCodeType.COMMAND_SPECIFIC << 8) | FabricsStatus.INVALID_PARAM);
  assert.equal(q.context, null);
  q.hostClose();
  pollIdle();
  assert.equal(q.disconnectReported, true);
});

test('keep-alive: a controller silent past its KATO is disconnected by the poll group', (t) => {
  const expired: ControllerEvent[] = [];
  const onExpired = (m: unknown) => expired.push(m as ControllerEvent);
  diagnosticsChannel.subscribe(traceChannels.keepAliveExpired.name, onExpired);
  t.after(() => diagnosticsChannel.unsubscribe(traceChannels.keepAliveExpired.name, onExpired));
  const { cntlid, admin } = openController(KATO_MS);
  assert.ok(admin.context instanceof NvmfCtrlr);
  assert.equal(admin.context.kato, KATO_MS);
  T.advance((KATO_MS / 2) * 1000);
  const ka = Buffer.alloc(SQE_SIZE);
  ka[Sqe.OPCODE] = 0x18; // Keep Alive
  ka[Sqe.FLAGS] = 0x40;
  assert.equal(statusOf(run(admin, ka).rsp), 0);
  T.advance((KATO_MS - 1000) * 1000);
  pollIdle();
  assert.equal(admin.disconnectReason, null, 'the Keep Alive reset the timer');
  assert.equal(expired.length, 0);
  T.advance(2000 * 1000);
  pollIdle();
  assert.equal(admin.disconnectReason, 'keep alive timeout');
  assert.deepEqual(expired, [
    { cntlid, subnqn: NQN, hostnqn: HOSTNQN, kato: KATO_MS, thread: 'nvmf_tgt_poll_group_0' },
  ]);
  // the expiry poller reports idle; with TCP the socket's close would then wake the reactor,
  // here a second round of polls stands for that wake-up
  pollIdle();
  assert.equal(admin.disconnectReported, true);
  assert.equal(tgt.ctrlrs.has(cntlid), false);
});
