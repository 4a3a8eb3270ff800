// Reservations and namespace masking on a real nvmf_tgt -m 0x3, with our host
// library as two hosts (two host NQNs, two host IDs) whose I/O queues sit on
// different reactors: register / acquire / report / release, the permission
// table on I/O, notices (log page 80h, AEN, the mask feature), the features
// 81h-83h, bad input answered with the spec's status (never a crash, also for
// a rejected Preempt and Abort), Preempt and Abort waiting for the preempted
// host's writes at a slow bdev, Persist Through Power Loss across SIGKILL, the
// `nvmf resv-*` commands acting as one registrant across invocations, and a
// namespace only one host sees (nvmf_ns_add_host, AEN, save_config).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  AcquireAction,
  type AsyncEvent,
  Cptpl,
  NvmeController,
  type NvmeIoQpair,
  NvmeStatusError,
  RegisterAction,
  ReleaseAction,
  ResvType,
} from '../../src/nvme/index.ts';
import { Cns, decodeNsidList, IdCtrl, IdNs } from '../../src/wire/identify.ts';
import { AsyncEventType, LogPage } from '../../src/wire/log.ts';
import {
  FeatureId,
  GenericStatus,
  initSqe,
  NvmOpcode,
  SQE_SIZE,
  Sqe,
  statusOf,
} from '../../src/wire/nvme.ts';
import {
  encodeResvCdw10,
  ResvNotifyMask,
  ResvNotifyType,
  readResvNotificationLog,
  writeReservationCommand,
} from '../../src/wire/reservation.ts';
import { ChildTarget, listenerEntry, waitFor } from '../lib/index.ts';

const NQN = 'nqn.2016-06.io.spdk:cnode1';
const HOST_A = 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-00000000000a';
const HOST_B = 'nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-00000000000b';
const HOSTID_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const HOSTID_B = 'bbbbbbbb-0000-4000-8000-00000000000b';
const MALLOC0_UUID = '6f5a0c1e-3b7d-4c2a-9e1f-0a1b2c3d4e5f';
const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const CLI = new URL('../../bin/nvmf.mjs', import.meta.url).pathname;
/** nsid 1: PTPL; nsid 2: a delay bdev (writes 300 ms); nsid 3: masked (no_auto_visible) */
const NS_PTPL = 1;
const NS_SLOW = 2;
const NS_MASKED = 3;
const WRITE_DELAY_US = 300_000;

const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-resv-'));
const ptplFile = join(dir, 'ns1.ptpl.json');
let target: ChildTarget;

interface Host {
  c: NvmeController;
  /** an I/O queue on poll group 0 and one on poll group 1 */
  io: NvmeIoQpair[];
  events: AsyncEvent[];
}
let A: Host;
let B: Host;

function config() {
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          {
            method: 'bdev_malloc_create',
            params: { name: 'Malloc0', num_blocks: 8192, block_size: 512, uuid: MALLOC0_UUID },
          },
          { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 8192, block_size: 512 } },
          { method: 'bdev_malloc_create', params: { name: 'Malloc2', num_blocks: 2048, block_size: 512 } },
          {
            method: 'bdev_delay_create',
            params: {
              base_bdev_name: 'Malloc1',
              name: 'Delay0',
              avg_read_latency: 0,
              p99_read_latency: 0,
              avg_write_latency: WRITE_DELAY_US,
              p99_write_latency: WRITE_DELAY_US,
            },
          },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: NS_PTPL, bdev_name: 'Malloc0', ptpl_file: ptplFile } },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: NS_SLOW, bdev_name: 'Delay0' } },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: NS_MASKED, bdev_name: 'Malloc2', no_auto_visible: true } },
          },
          listenerEntry(NQN, '$PORT'),
        ],
      },
    ],
  };
}

function trid(hostnqn: string, hostid: string) {
  return { traddr: '127.0.0.1', trsvcid: target.port, subnqn: NQN, hostnqn, hostid };
}

type QpairInfo = { cntlid: number; qid: number; thread: string };

/** A host with one I/O queue on each poll group (connections go to the poll groups in turn). */
async function connectHost(hostnqn: string, hostid: string): Promise<Host> {
  const events: AsyncEvent[] = [];
  const c = await NvmeController.connect(trid(hostnqn, hostid), { kato: 0 });
  c.onAsyncEvent = (ev) => events.push(ev);
  const queues = await c.createIoQpairs(3, 32);
  const qpairs = (await target.call('nvmf_subsystem_get_qpairs', { nqn: NQN })) as QpairInfo[];
  const threadOf = (q: NvmeIoQpair) => qpairs.find((p) => p.cntlid === c.cntlid && p.qid === q.qid)?.thread;
  const io = ['nvmf_tgt_poll_group_0', 'nvmf_tgt_poll_group_1'].map((t) => {
    const q = queues.find((x) => threadOf(x) === t);
    assert.ok(q, `${hostnqn} has no I/O queue on ${t}: ${JSON.stringify(qpairs)}`);
    return q;
  });
  return { c, io, events };
}

before(async () => {
  target = await ChildTarget.start({ cores: '0x3', config: config(), dir });
  A = await connectHost(HOST_A, HOSTID_A);
  B = await connectHost(HOST_B, HOSTID_B);
});

after(async () => {
  for (const h of [A, B]) await h?.c.disconnect().catch(() => {});
  await target?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** The status a command failed with, 0 when it succeeded. */
async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (e) {
    assert.ok(e instanceof NvmeStatusError, String(e));
    return e.status;
  }
}

const block = (fill: number) => Buffer.alloc(512, fill);
const hex = (uuid: string) => uuid.replace(/-/g, '');

test('two hosts on two reactors: register, acquire Write Exclusive, the other host reads but may not write, report, release', async () => {
  // A's commands go through poll group 0, B's through poll group 1: one owner of the state
  const a = A.io[0];
  const b = B.io[1];
  await a.reservationRegister(NS_PTPL, { nrkey: 0xa1n });
  await b.reservationRegister(NS_PTPL, { nrkey: 0xb1n });
  let r = await b.reservationReport(NS_PTPL);
  assert.equal(r.regctl, 2);
  assert.equal(r.generation, 2);
  assert.deepEqual(
    r.registrants.map((g) => [g.hostId, g.rkey, g.holder, g.cntlid]),
    [
      [hex(HOSTID_A), 0xa1n, false, 0xffff],
      [hex(HOSTID_B), 0xb1n, false, 0xffff],
    ],
  );
  await a.reservationAcquire(NS_PTPL, { crkey: 0xa1n, rtype: ResvType.WRITE_EXCLUSIVE });
  // the non-holder on the other reactor: write → Reservation Conflict (DNR), read passes
  const e = await b.writeAsync(NS_PTPL, 0, 1, block(0xbb)).catch((x) => x);
  assert.ok(e instanceof NvmeStatusError);
  assert.equal(e.sc, GenericStatus.RESERVATION_CONFLICT);
  assert.equal(e.dnr, true);
  await b.readAsync(NS_PTPL, 0, 1, Buffer.alloc(512));
  // its queue on poll group 0 sees the same state
  assert.equal(
    await status(B.io[0].writeAsync(NS_PTPL, 0, 1, block(0xbb))),
    GenericStatus.RESERVATION_CONFLICT,
  );
  // the holder writes from both reactors
  await a.writeAsync(NS_PTPL, 0, 1, block(0xaa));
  await A.io[1].writeAsync(NS_PTPL, 1, 1, block(0xaa));
  r = await a.reservationReport(NS_PTPL);
  assert.equal(r.rtype, ResvType.WRITE_EXCLUSIVE);
  assert.deepEqual(
    r.registrants.map((g) => g.holder),
    [true, false],
  );
  // a release with another type is an invalid field; one by a non-holder changes nothing
  assert.equal(
    await status(a.reservationRelease(NS_PTPL, { crkey: 0xa1n, rtype: ResvType.EXCLUSIVE_ACCESS })),
    GenericStatus.INVALID_FIELD,
  );
  await b.reservationRelease(NS_PTPL, { crkey: 0xb1n, rtype: ResvType.WRITE_EXCLUSIVE });
  assert.equal((await b.reservationReport(NS_PTPL)).rtype, ResvType.WRITE_EXCLUSIVE);
  await a.reservationRelease(NS_PTPL, { crkey: 0xa1n, rtype: ResvType.WRITE_EXCLUSIVE });
  await b.writeAsync(NS_PTPL, 0, 1, block(0xbb));
  // clean up: clear every registration
  await a.reservationRelease(NS_PTPL, { crkey: 0xa1n, rtype: 0, action: ReleaseAction.CLEAR });
  assert.equal((await a.reservationReport(NS_PTPL)).regctl, 0);
});

test('Identify: ONCS reservations, RESCAP (with PTPL where a PTPL file is set); the effects log lists the commands', async () => {
  const id = await A.c.identify(Cns.CONTROLLER, 0);
  assert.equal(id.readUInt16LE(IdCtrl.ONCS) & 0x20, 0x20, 'ONCS bit 5');
  assert.equal((await A.c.identify(Cns.NAMESPACE, NS_PTPL))[IdNs.RESCAP], 0xff, 'all types, IEKEY, PTPL');
  assert.equal((await A.c.identify(Cns.NAMESPACE, NS_SLOW))[IdNs.RESCAP], 0xfe, 'no PTPL file');
  const effects = await A.c.getLogPage(LogPage.COMMAND_EFFECTS, Buffer.alloc(4096), 0, 0);
  for (const op of [0x0d, 0x0e, 0x11, 0x15])
    assert.equal(effects.readUInt32LE(1024 + op * 4) & 1, 1, `opcode 0x${op.toString(16)}`);
});

/** The next Reservation Notification log entry of a host (reading removes it). */
async function takeNotice(h: Host) {
  return readResvNotificationLog(await h.c.getLogPage(LogPage.RESERVATION_NOTIFICATION, Buffer.alloc(64)));
}

test('notices: Registration Preempted, Reservation Released, Reservation Preempted in log page 80h with an AEN; the mask (82h) keeps one out', async () => {
  const a = A.io[0];
  const b = B.io[1];
  const aens = (h: Host) =>
    h.events.filter((e) => e.type === AsyncEventType.IO_COMMAND_SET && e.logPage === 0x80).length;
  const aensA = aens(A);
  await a.reservationRegister(NS_PTPL, { nrkey: 0xa2n });
  await b.reservationRegister(NS_PTPL, { nrkey: 0xb2n });
  // B preempts A's registration (no reservation held): A hears Registration Preempted
  await b.reservationAcquire(NS_PTPL, {
    crkey: 0xb2n,
    prkey: 0xa2n,
    rtype: ResvType.WRITE_EXCLUSIVE,
    action: AcquireAction.PREEMPT,
  });
  await waitFor('the AEN at host A', () => aens(A) > aensA);
  let n = await takeNotice(A);
  assert.equal(n.type, ResvNotifyType.REGISTRATION_PREEMPTED);
  assert.equal(n.nsid, NS_PTPL);
  assert.equal(n.available, 0);
  const firstCount = n.count;
  assert.ok(firstCount > 0n);
  assert.deepEqual(await takeNotice(A), { count: 0n, type: 0, available: 0, nsid: 0 }, 'then empty');
  // A registers again and masks Registration Preempted; B takes Write Exclusive Registrants
  // Only and preempts A's registration again: the notice is masked
  await a.reservationRegister(NS_PTPL, { nrkey: 0xa3n });
  await A.c.setFeatures(FeatureId.HOST_RESERVE_MASK, ResvNotifyMask.REGISTRATION_PREEMPTED, NS_PTPL);
  assert.equal(
    (await A.c.getFeatures(FeatureId.HOST_RESERVE_MASK, 0, NS_PTPL)).dw0,
    ResvNotifyMask.REGISTRATION_PREEMPTED,
  );
  await b.reservationAcquire(NS_PTPL, { crkey: 0xb2n, rtype: ResvType.WRITE_EXCLUSIVE_REG_ONLY });
  await b.reservationAcquire(NS_PTPL, {
    crkey: 0xb2n,
    prkey: 0xa3n,
    rtype: ResvType.WRITE_EXCLUSIVE_REG_ONLY,
    action: AcquireAction.PREEMPT,
  });
  await A.c.setFeatures(FeatureId.HOST_RESERVE_MASK, 0, 0xffffffff);
  // A registers again; B releases its registrants-only reservation: A hears Reservation Released
  await a.reservationRegister(NS_PTPL, { nrkey: 0xa4n });
  const before = aens(A);
  await b.reservationRelease(NS_PTPL, { crkey: 0xb2n, rtype: ResvType.WRITE_EXCLUSIVE_REG_ONLY });
  await waitFor('the AEN at host A', () => aens(A) > before);
  n = await takeNotice(A);
  // the masked notice never reached the log: this is the next one
  assert.equal(n.type, ResvNotifyType.RESERVATION_RELEASED);
  assert.equal(n.count, firstCount + 1n);
  // B clears: A hears Reservation Preempted
  const before2 = aens(A);
  await b.reservationRelease(NS_PTPL, { crkey: 0xb2n, rtype: 0, action: ReleaseAction.CLEAR });
  await waitFor('the AEN at host A', () => aens(A) > before2);
  assert.equal((await takeNotice(A)).type, ResvNotifyType.RESERVATION_PREEMPTED);
});

test('features: Host Identifier (81h) from Connect, 128-bit only, not settable; the mask (82h) per namespace; Persistence (83h)', async () => {
  const sqe = initSqe(Buffer.alloc(SQE_SIZE), 0x0a); // Get Features
  sqe.writeUInt32LE(FeatureId.HOST_IDENTIFIER, Sqe.CDW10);
  sqe.writeUInt32LE(1, Sqe.CDW11); // EXHID
  const id = Buffer.alloc(16);
  await A.c.adminCommand(sqe, id, true);
  assert.equal(id.toString('hex'), hex(HOSTID_A));
  sqe.writeUInt32LE(0, Sqe.CDW11);
  assert.equal(
    await status(A.c.adminCommand(sqe, Buffer.alloc(16), true)),
    GenericStatus.INVALID_FIELD,
    '64-bit',
  );
  assert.equal(
    await status(A.c.setFeatures(FeatureId.HOST_IDENTIFIER, 1)),
    GenericStatus.COMMAND_SEQUENCE_ERROR,
  );
  assert.equal(
    await status(A.c.getFeatures(FeatureId.HOST_RESERVE_MASK, 0, 0xffffffff)),
    GenericStatus.INVALID_FIELD,
  );
  assert.equal(
    await status(A.c.setFeatures(FeatureId.HOST_RESERVE_MASK, 1, NS_PTPL)),
    GenericStatus.INVALID_FIELD,
    'reserved bit',
  );
  assert.equal(
    await status(A.c.setFeatures(FeatureId.HOST_RESERVE_MASK, 0, NS_MASKED)),
    GenericStatus.INVALID_FIELD,
    'a namespace A does not see',
  );
  assert.equal((await A.c.getFeatures(FeatureId.HOST_RESERVE_PERSIST, 0, NS_PTPL)).dw0, 0);
  // PTPL changes with Register CPTPL (written to the file first); Set Features answers as SPDK
  assert.equal(await status(A.c.setFeatures(FeatureId.HOST_RESERVE_PERSIST, 1, NS_PTPL)), 0x10d);
  assert.equal(
    await status(A.c.setFeatures(FeatureId.HOST_RESERVE_PERSIST, 1, NS_SLOW)),
    GenericStatus.INVALID_FIELD,
    'no PTPL file',
  );
  assert.equal((await A.c.getFeatures(FeatureId.HOST_RESERVE_PERSIST, 0, NS_PTPL)).dw0, 0, 'unchanged');
});

/** A raw reservation command on A's queue: status only. */
function raw(opcode: number, nsid: number, cdw10: number, data: Buffer | null, read = false, cdw11 = 0) {
  const sqe = Buffer.alloc(SQE_SIZE);
  writeReservationCommand(sqe, opcode, nsid, cdw10, cdw11);
  return new Promise<number>((resolve) => {
    const ok = A.io[0].submit(sqe, data, read, (cpl) => resolve(statusOf(cpl)));
    assert.ok(ok);
  });
}

test('bad input gets the spec status and nothing else (a rejected Preempt and Abort included); the target lives on', async () => {
  const keys = (a: bigint, b: bigint) => {
    const d = Buffer.alloc(16);
    d.writeBigUInt64LE(a, 0);
    d.writeBigUInt64LE(b, 8);
    return d;
  };
  const INVALID = GenericStatus.INVALID_FIELD;
  const CONFLICT = GenericStatus.RESERVATION_CONFLICT;
  const R = NvmOpcode;
  await A.io[0].reservationRegister(NS_SLOW, { nrkey: 0x51n });
  await B.io[1].reservationRegister(NS_SLOW, { nrkey: 0x52n });
  await B.io[1].reservationAcquire(NS_SLOW, { crkey: 0x52n, rtype: ResvType.WRITE_EXCLUSIVE });
  const cases: Array<[string, Promise<number>, number]> = [
    [
      'register action 3',
      raw(R.RESERVATION_REGISTER, NS_SLOW, encodeResvCdw10({ action: 3 }), keys(0n, 9n)),
      INVALID,
    ],
    [
      'register CPTPL 01b (reserved)',
      raw(R.RESERVATION_REGISTER, NS_SLOW, encodeResvCdw10({ action: 0, cptpl: 1 }), keys(0n, 9n)),
      INVALID,
    ],
    [
      'register CPTPL persist without a PTPL file',
      raw(
        R.RESERVATION_REGISTER,
        NS_SLOW,
        encodeResvCdw10({ action: 0, cptpl: Cptpl.PERSIST }),
        keys(0n, 0x51n),
      ),
      INVALID,
    ],
    [
      'register another key again',
      raw(R.RESERVATION_REGISTER, NS_SLOW, encodeResvCdw10({ action: 0 }), keys(0n, 0x99n)),
      CONFLICT,
    ],
    [
      'unregister with a wrong key',
      raw(
        R.RESERVATION_REGISTER,
        NS_SLOW,
        encodeResvCdw10({ action: RegisterAction.UNREGISTER }),
        keys(0x99n, 0n),
      ),
      CONFLICT,
    ],
    [
      'register data shorter than 16 bytes',
      raw(R.RESERVATION_REGISTER, NS_SLOW, 0, Buffer.alloc(8)),
      INVALID,
    ],
    [
      'acquire type 7',
      raw(R.RESERVATION_ACQUIRE, NS_SLOW, encodeResvCdw10({ action: 0, rtype: 7 }), keys(0x51n, 0n)),
      INVALID,
    ],
    [
      'acquire type 0',
      raw(R.RESERVATION_ACQUIRE, NS_SLOW, encodeResvCdw10({ action: 0, rtype: 0 }), keys(0x51n, 0n)),
      INVALID,
    ],
    [
      'acquire action 3',
      raw(R.RESERVATION_ACQUIRE, NS_SLOW, encodeResvCdw10({ action: 3, rtype: 1 }), keys(0x51n, 0n)),
      INVALID,
    ],
    [
      'acquire with IEKEY',
      raw(
        R.RESERVATION_ACQUIRE,
        NS_SLOW,
        encodeResvCdw10({ action: 0, rtype: 1, iekey: true }),
        keys(0x51n, 0n),
      ),
      INVALID,
    ],
    [
      'acquire held by another',
      raw(R.RESERVATION_ACQUIRE, NS_SLOW, encodeResvCdw10({ action: 0, rtype: 1 }), keys(0x51n, 0n)),
      CONFLICT,
    ],
    [
      'acquire with a wrong key',
      raw(R.RESERVATION_ACQUIRE, NS_SLOW, encodeResvCdw10({ action: 0, rtype: 1 }), keys(0x77n, 0n)),
      CONFLICT,
    ],
    [
      'preempt and abort of a key nobody holds',
      raw(
        R.RESERVATION_ACQUIRE,
        NS_SLOW,
        encodeResvCdw10({ action: AcquireAction.PREEMPT_AND_ABORT, rtype: 1 }),
        keys(0x51n, 0x1234n),
      ),
      CONFLICT,
    ],
    [
      'preempt and abort with PRKEY 0, not the holder key',
      raw(
        R.RESERVATION_ACQUIRE,
        NS_SLOW,
        encodeResvCdw10({ action: AcquireAction.PREEMPT_AND_ABORT, rtype: 1 }),
        keys(0x51n, 0n),
      ),
      INVALID,
    ],
    [
      'preempt and abort with a wrong current key',
      raw(
        R.RESERVATION_ACQUIRE,
        NS_SLOW,
        encodeResvCdw10({ action: AcquireAction.PREEMPT_AND_ABORT, rtype: 1 }),
        keys(0x1n, 0x52n),
      ),
      CONFLICT,
    ],
    [
      'release action 2',
      raw(
        R.RESERVATION_RELEASE,
        NS_SLOW,
        encodeResvCdw10({ action: 2, rtype: 1 }),
        keys(0x51n, 0n).subarray(0, 8),
      ),
      INVALID,
    ],
    [
      'release with IEKEY',
      raw(
        R.RESERVATION_RELEASE,
        NS_SLOW,
        encodeResvCdw10({ action: 0, rtype: 1, iekey: true }),
        keys(0x51n, 0n).subarray(0, 8),
      ),
      INVALID,
    ],
    [
      'release with a wrong key',
      raw(
        R.RESERVATION_RELEASE,
        NS_SLOW,
        encodeResvCdw10({ action: 0, rtype: 1 }),
        keys(0x77n, 0n).subarray(0, 8),
      ),
      CONFLICT,
    ],
    [
      'report without EDS (64-bit host IDs)',
      raw(R.RESERVATION_REPORT, NS_SLOW, 63, Buffer.alloc(256), true, 0),
      GenericStatus.HOSTID_INCONSISTENT_FORMAT,
    ],
    [
      'report smaller than its 64-byte header',
      raw(R.RESERVATION_REPORT, NS_SLOW, 3, Buffer.alloc(16), true, 1),
      INVALID,
    ],
    [
      'a namespace that does not exist',
      raw(R.RESERVATION_REPORT, 9, 63, Buffer.alloc(256), true, 1),
      GenericStatus.INVALID_NAMESPACE_OR_FORMAT,
    ],
    [
      'a namespace A does not see',
      raw(R.RESERVATION_REPORT, NS_MASKED, 63, Buffer.alloc(256), true, 1),
      GenericStatus.INVALID_NAMESPACE_OR_FORMAT,
    ],
  ];
  const got = await Promise.all(cases.map(([, p]) => p));
  cases.forEach(([what, , want], i) => {
    assert.equal(got[i], want, `${what}: status 0x${got[i].toString(16)}`);
  });
  // nothing changed the state, the target and the queue live on
  const r = await A.io[0].reservationReport(NS_SLOW);
  assert.equal(r.regctl, 2);
  assert.equal(r.rtype, ResvType.WRITE_EXCLUSIVE);
  assert.deepEqual(
    r.registrants.map((g) => g.rkey),
    [0x51n, 0x52n],
  );
  await A.io[0].readAsync(NS_SLOW, 0, 1, Buffer.alloc(512));
  assert.ok(target.alive());
  assert.deepEqual(target.uncaughtErrors(), []);
  await B.io[1].reservationRelease(NS_SLOW, { crkey: 0x52n, rtype: 0, action: ReleaseAction.CLEAR });
});

test('preempt and abort completes only once the preempted host writes at the bdev have ended', async () => {
  const a = A.io[0];
  const b = B.io[1];
  await a.reservationRegister(NS_SLOW, { nrkey: 0x61n });
  await b.reservationRegister(NS_SLOW, { nrkey: 0x62n });
  await a.reservationAcquire(NS_SLOW, { crkey: 0x61n, rtype: ResvType.WRITE_EXCLUSIVE_REG_ONLY });
  // B, a registrant, may write: 6 writes that each spend 300 ms at the delay bdev
  const ended: number[] = [];
  const writes = Array.from({ length: 6 }, (_, i) =>
    b.writeAsync(NS_SLOW, 100 + i, 1, block(0x60 + i)).then(() => ended.push(performance.now())),
  );
  await waitFor("B's writes at the bdev", async () => (await target.total('pending_bdev_io')) >= 6, {
    intervalMs: 5,
  });
  // A preempts B's registration and aborts its commands: B's writes run to their end first
  await a.reservationAcquire(NS_SLOW, {
    crkey: 0x61n,
    prkey: 0x62n,
    rtype: ResvType.WRITE_EXCLUSIVE_REG_ONLY,
    action: AcquireAction.PREEMPT_AND_ABORT,
  });
  const acquired = performance.now();
  assert.equal(ended.length, 6, 'every preempted write ended before the Acquire completed');
  assert.ok(Math.max(...ended) <= acquired);
  await Promise.all(writes);
  assert.match(
    target.log(),
    /preempt and abort on nqn\.2016-06\.io\.spdk:cnode1 nsid 2: 0 waiting command\(s\) aborted, [1-6] at the bdevs/,
  );
  // B is no registrant now: its writes conflict, reads pass
  assert.equal(await status(b.writeAsync(NS_SLOW, 100, 1, block(1))), GenericStatus.RESERVATION_CONFLICT);
  await b.readAsync(NS_SLOW, 100, 1, Buffer.alloc(512));
  await a.reservationRelease(NS_SLOW, { crkey: 0x61n, rtype: 0, action: ReleaseAction.CLEAR });
});

test('the nvmf resv-* commands: nvme-cli options and output; separate invocations of one host NQN act as one registrant', () => {
  const host = 'nqn.2014-08.org.example:cli-host';
  const cli = (...args: string[]) => {
    const r = spawnSync(
      NODE,
      [
        CLI,
        ...args,
        '--transport',
        'tcp',
        '--traddr',
        '127.0.0.1',
        '--trsvcid',
        target.port,
        '--nqn',
        NQN,
        '-q',
        host,
      ],
      { encoding: 'utf8' },
    );
    return r;
  };
  let r = cli('resv-register', '-n', '2', '-k', '0xc1');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'NVME Reservation  success\n');
  // another process, the same host: registering the same key again is no error (one registrant)
  r = cli('resv-register', '-n', '2', '-k', '0xc1');
  assert.equal(r.status, 0, r.stderr);
  r = cli('resv-acquire', '-n', '2', '-c', '0xc1', '-t', '2', '-a', '0');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'NVME Reservation Acquire success\n');
  r = cli('resv-report', '-n', '2');
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /^\nNVME Reservation status:\n\ngen {7}: \d+\nrtype {5}: 2\nregctl {4}: 1\nptpls {5}: 0\nregctlext\[0\] :\n {2}cntlid {5}: ffff\n {2}rcsts {6}: 1\n {2}rkey {7}: c1\n {2}hostid {5}: [0-9a-f]+\n\n$/,
  );
  r = cli('resv-report', '-n', '2', '-o', 'json');
  const j = JSON.parse(r.stdout) as { regctlext: { rkey: number; hostid: string }[] };
  assert.equal(j.regctlext[0].rkey, 0xc1);
  assert.match(j.regctlext[0].hostid, /^[0-9a-f]{32}$/);
  // a wrong key: nvme-cli's exit status 1 and the status named
  r = cli('resv-release', '-n', '2', '-c', '0xc2', '-t', '2');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /RESERVATION_CONFLICT/);
  r = cli('resv-release', '-n', '2', '-c', '0xc1', '-t', '2', '-a', '1');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'NVME Reservation Release success\n');
  r = cli('resv-report', '-n', '2');
  assert.match(r.stdout, /regctl {4}: 0\n/);
});

test('masking: a namespace added with no_auto_visible appears to host A with nvmf_ns_add_host (AEN, no reconnect), never to B', async () => {
  const listOf = async (c: NvmeController) => decodeNsidList(await c.identify(Cns.ACTIVE_NS_LIST, 0));
  assert.deepEqual(await listOf(A.c), [1, 2]);
  assert.ok(!A.c.namespaces.has(NS_MASKED));
  assert.equal(
    await status(A.io[0].readAsync(NS_MASKED, 0, 1, Buffer.alloc(512))),
    GenericStatus.INVALID_NAMESPACE_OR_FORMAT,
  );
  assert.ok(
    (await A.c.identify(Cns.NAMESPACE, NS_MASKED)).every((x) => x === 0),
    'inactive to A: zeroes',
  );
  assert.equal(
    await status(A.c.identify(Cns.NS_DESCRIPTOR_LIST, NS_MASKED)),
    GenericStatus.INVALID_NAMESPACE_OR_FORMAT,
  );
  const eventsB = B.events.length;
  await target.call('nvmf_ns_add_host', { nqn: NQN, nsid: NS_MASKED, host: HOST_A });
  // the Namespace Attribute Changed AEN makes the library read the changed list and identify again
  await waitFor('namespace 3 at host A', () => A.c.namespaces.has(NS_MASKED));
  const notice = A.events.find(
    (e) => e.type === AsyncEventType.NOTICE && e.changedNamespaces?.includes(NS_MASKED),
  );
  assert.ok(notice, JSON.stringify(A.events));
  assert.deepEqual(await listOf(A.c), [1, 2, 3]);
  await A.io[1].writeAsync(NS_MASKED, 0, 1, block(0x33));
  // B: not on its list, I/O refused, no notice about it
  assert.deepEqual(await listOf(B.c), [1, 2]);
  assert.equal(
    await status(B.io[0].readAsync(NS_MASKED, 0, 1, Buffer.alloc(512))),
    GenericStatus.INVALID_NAMESPACE_OR_FORMAT,
  );
  assert.ok(!B.events.slice(eventsB).some((e) => e.changedNamespaces?.includes(NS_MASKED)));
  // a new controller of A sees it from the start; one of B does not
  const b2 = await NvmeController.connect(trid(HOST_B, HOSTID_B), { kato: 0 });
  assert.ok(!b2.namespaces.has(NS_MASKED));
  await b2.disconnect();
  // what the RPCs show and save_config writes
  const subs = (await target.call('nvmf_get_subsystems', { nqn: NQN })) as {
    namespaces: { nsid: number; no_auto_visible: boolean; hosts?: { nqn: string }[]; ptpl_file?: string }[];
  }[];
  const ns3 = subs[0].namespaces.find((n) => n.nsid === NS_MASKED);
  assert.deepEqual([ns3?.no_auto_visible, ns3?.hosts], [true, [{ nqn: HOST_A }]]);
  assert.equal(subs[0].namespaces.find((n) => n.nsid === NS_PTPL)?.ptpl_file, ptplFile);
  const saved = JSON.stringify(await target.call('save_config'));
  assert.ok(
    saved.includes(`{"method":"nvmf_ns_add_host","params":{"nqn":"${NQN}","nsid":3,"host":"${HOST_A}"}}`),
    saved,
  );
  assert.ok(saved.includes(`"ptpl_file":"${ptplFile}"`));
  // errors as SPDK's: an auto-visible namespace, one that does not exist (Invalid Parameters)
  await assert.rejects(
    target.call('nvmf_ns_add_host', { nqn: NQN, nsid: NS_PTPL, host: HOST_B }),
    /visible to every host/,
  );
  await assert.rejects(
    target.call('nvmf_ns_add_host', { nqn: NQN, nsid: 7, host: HOST_B }),
    /no such namespace/,
  );
  // and away again: A's controller hears of it
  await target.call('nvmf_ns_remove_host', { nqn: NQN, nsid: NS_MASKED, host: HOST_A });
  await waitFor('namespace 3 gone at host A', () => !A.c.namespaces.has(NS_MASKED));
  assert.equal(
    await status(A.io[0].readAsync(NS_MASKED, 0, 1, Buffer.alloc(512))),
    GenericStatus.INVALID_NAMESPACE_OR_FORMAT,
  );
});

test('Persist Through Power Loss: registrations and the holder survive a SIGKILL right after the completion and a restart', async () => {
  const a = A.io[0];
  await a.reservationRegister(NS_PTPL, { nrkey: 0x7777_0000_0000_0001n, cptpl: Cptpl.PERSIST });
  await B.io[1].reservationRegister(NS_PTPL, { nrkey: 0xffff_ffff_ffff_fff0n });
  await a.reservationAcquire(NS_PTPL, { crkey: 0x7777_0000_0000_0001n, rtype: ResvType.EXCLUSIVE_ACCESS });
  // no graceful stop: what was completed is on disk
  await target.kill('SIGKILL');
  const file = JSON.parse(readFileSync(ptplFile, 'utf8').replace(/(\d{16,})/g, '"$1"'));
  assert.equal(file.ptpl, true);
  assert.equal(file.rtype, ResvType.EXCLUSIVE_ACCESS);
  assert.equal(file.holder_uuid, HOSTID_A);
  assert.equal(file.bdev_uuid, MALLOC0_UUID);
  await A.c.disconnect().catch(() => {});
  await B.c.disconnect().catch(() => {});
  await target.restart();
  A = await connectHost(HOST_A, HOSTID_A);
  B = await connectHost(HOST_B, HOSTID_B);
  const r = await B.io[0].reservationReport(NS_PTPL);
  assert.equal(r.rtype, ResvType.EXCLUSIVE_ACCESS);
  assert.equal(r.ptpls, true);
  assert.deepEqual(
    r.registrants.map((g) => [g.hostId, g.rkey, g.holder]),
    [
      [hex(HOSTID_A), 0x7777_0000_0000_0001n, true],
      [hex(HOSTID_B), 0xffff_ffff_ffff_fff0n, false],
    ],
  );
  assert.equal((await A.c.getFeatures(FeatureId.HOST_RESERVE_PERSIST, 0, NS_PTPL)).dw0, 1);
  // Exclusive Access: the other host may neither read nor write; the holder may
  assert.equal(
    await status(B.io[0].readAsync(NS_PTPL, 0, 1, Buffer.alloc(512))),
    GenericStatus.RESERVATION_CONFLICT,
  );
  await A.io[1].readAsync(NS_PTPL, 0, 1, Buffer.alloc(512));
  // clearing with CPTPL clear empties the file (SPDK's "nothing persisted")
  await A.io[0].reservationRegister(NS_PTPL, {
    action: RegisterAction.REPLACE,
    crkey: 0x7777_0000_0000_0001n,
    nrkey: 0x7777_0000_0000_0002n,
    cptpl: Cptpl.CLEAR,
  });
  assert.equal(readFileSync(ptplFile, 'utf8'), '');
});
