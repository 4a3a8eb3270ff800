// The reservation rules of one namespace, against the NVMe specification's tables.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatPtpl,
  MAX_REGISTRANTS,
  NsReservation,
  parsePtpl,
  reservationAccess,
} from '../../../src/nvmf/reservation.ts';
import { GenericStatus, NvmOpcode } from '../../../src/wire/nvme.ts';
import {
  AcquireAction,
  Cptpl,
  encodeResvCdw10,
  encodeResvKey,
  encodeResvKeys,
  RegisterAction,
  ReleaseAction,
  ResvNotifyType,
  ResvType,
  readResvReport,
} from '../../../src/wire/reservation.ts';

const A = { hostId: 'aa'.repeat(16) };
const B = { hostId: 'bb'.repeat(16) };
const C = { hostId: 'cc'.repeat(16) };
const { SUCCESS, RESERVATION_CONFLICT: CONFLICT, INVALID_FIELD } = GenericStatus;

function register(
  ns: NsReservation,
  who: { hostId: string },
  nrkey: bigint,
  action = RegisterAction.REGISTER,
) {
  return ns.register(who, encodeResvCdw10({ action }), encodeResvKeys(0n, nrkey));
}
function acquire(
  ns: NsReservation,
  who: { hostId: string },
  crkey: bigint,
  rtype: number,
  action = 0,
  prkey = 0n,
) {
  return ns.acquire(who, encodeResvCdw10({ action, rtype }), encodeResvKeys(crkey, prkey));
}
function release(ns: NsReservation, who: { hostId: string }, crkey: bigint, rtype: number, action = 0) {
  return ns.release(who, encodeResvCdw10({ action, rtype }), encodeResvKey(crkey));
}

// Spec: NVM Command Set, "Command Behavior in the Presence of a Reservation".
// Columns: read by holder, registrant, non-registrant; write by the same three.
const TABLE: Record<number, [boolean, boolean, boolean, boolean, boolean, boolean]> = {
  [ResvType.WRITE_EXCLUSIVE]: [true, true, true, true, false, false],
  [ResvType.EXCLUSIVE_ACCESS]: [true, false, false, true, false, false],
  [ResvType.WRITE_EXCLUSIVE_REG_ONLY]: [true, true, true, true, true, false],
  [ResvType.EXCLUSIVE_ACCESS_REG_ONLY]: [true, true, false, true, true, false],
  [ResvType.WRITE_EXCLUSIVE_ALL_REGS]: [true, true, true, true, true, false],
  [ResvType.EXCLUSIVE_ACCESS_ALL_REGS]: [true, true, false, true, true, false],
};
const READ_GROUP = [NvmOpcode.READ, NvmOpcode.COMPARE, NvmOpcode.VERIFY];
const WRITE_GROUP = [
  NvmOpcode.WRITE,
  NvmOpcode.WRITE_UNCORRECTABLE,
  NvmOpcode.WRITE_ZEROES,
  NvmOpcode.DATASET_MANAGEMENT,
  NvmOpcode.FLUSH,
  NvmOpcode.COPY,
];
const RESERVATION_GROUP = [
  NvmOpcode.RESERVATION_REGISTER,
  NvmOpcode.RESERVATION_REPORT,
  NvmOpcode.RESERVATION_ACQUIRE,
  NvmOpcode.RESERVATION_RELEASE,
];

for (const [typeText, row] of Object.entries(TABLE)) {
  const rtype = Number(typeText);
  test(`reservation type ${rtype}: holder / registrant / non-registrant × read / write groups follow the spec table`, () => {
    const ns = new NsReservation(false);
    assert.equal(register(ns, A, 1n).sc, SUCCESS);
    assert.equal(register(ns, B, 2n).sc, SUCCESS);
    assert.equal(acquire(ns, A, 1n, rtype).sc, SUCCESS);
    const v = ns.view();
    const roles = [A, B, C];
    for (let r = 0; r < 3; r++) {
      for (const op of READ_GROUP) {
        assert.equal(
          reservationAccess(v, roles[r].hostId, op) === SUCCESS,
          row[r],
          `read 0x${op.toString(16)} role ${r}`,
        );
      }
      for (const op of WRITE_GROUP) {
        assert.equal(
          reservationAccess(v, roles[r].hostId, op) === SUCCESS,
          row[3 + r],
          `write 0x${op.toString(16)} role ${r}`,
        );
      }
      // reservation commands are judged when they execute, never by the access table
      for (const op of RESERVATION_GROUP) assert.equal(reservationAccess(v, roles[r].hostId, op), SUCCESS);
    }
  });
}

test('without a reservation every host may read and write, registered or not', () => {
  const ns = new NsReservation(false);
  register(ns, A, 5n);
  for (const who of [A, C])
    for (const op of [...READ_GROUP, ...WRITE_GROUP])
      assert.equal(reservationAccess(ns.view(), who.hostId, op), SUCCESS);
});

test('register: same key again succeeds, another key conflicts, a zero key is invalid; unregister needs the key or IEKEY', () => {
  const ns = new NsReservation(false);
  assert.equal(register(ns, A, 0n).sc, INVALID_FIELD);
  assert.equal(register(ns, A, 7n).sc, SUCCESS);
  assert.equal(register(ns, A, 7n).sc, SUCCESS);
  assert.equal(register(ns, A, 8n).sc, CONFLICT);
  const unreg = (crkey: bigint, iekey: boolean) =>
    ns.register(A, encodeResvCdw10({ action: RegisterAction.UNREGISTER, iekey }), encodeResvKeys(crkey, 0n));
  assert.equal(unreg(9n, false).sc, CONFLICT);
  assert.equal(ns.registrants.length, 1);
  assert.equal(unreg(9n, true).sc, SUCCESS);
  assert.equal(ns.registrants.length, 0);
  assert.equal(unreg(7n, false).sc, CONFLICT, 'not registered any more');
  // the generation counts each successful Register command
  assert.equal(ns.generation, 3);
});

test('replace: new key with the current key, or any with IEKEY (registering a new host, as SPDK); a short payload is invalid', () => {
  const ns = new NsReservation(false);
  const replace = (who: { hostId: string }, crkey: bigint, nrkey: bigint, iekey = false) =>
    ns.register(
      who,
      encodeResvCdw10({ action: RegisterAction.REPLACE, iekey }),
      encodeResvKeys(crkey, nrkey),
    );
  register(ns, A, 1n);
  acquire(ns, A, 1n, ResvType.WRITE_EXCLUSIVE);
  assert.equal(replace(A, 2n, 3n).sc, CONFLICT);
  assert.equal(replace(A, 1n, 3n).sc, SUCCESS);
  assert.equal(ns.holder?.rkey, 3n, 'the holder keeps the reservation under its new key');
  assert.equal(replace(B, 0n, 4n).sc, CONFLICT);
  assert.equal(replace(B, 0n, 4n, true).sc, SUCCESS);
  assert.equal(ns.find(B.hostId)?.rkey, 4n);
  assert.equal(ns.register(A, encodeResvCdw10({ action: 0 }), Buffer.alloc(8)).sc, INVALID_FIELD);
  assert.equal(ns.register(A, encodeResvCdw10({ action: 5 }), encodeResvKeys(0n, 1n)).sc, INVALID_FIELD);
});

test('acquire: needs the registrant key; a second holder conflicts; the holder may acquire its type again but not another', () => {
  const ns = new NsReservation(false);
  register(ns, A, 1n);
  register(ns, B, 2n);
  assert.equal(acquire(ns, C, 0n, ResvType.WRITE_EXCLUSIVE).sc, CONFLICT, 'not a registrant');
  assert.equal(acquire(ns, A, 9n, ResvType.WRITE_EXCLUSIVE).sc, CONFLICT, 'wrong key');
  assert.equal(acquire(ns, A, 1n, 0).sc, INVALID_FIELD, 'type 0');
  assert.equal(acquire(ns, A, 1n, 7).sc, INVALID_FIELD, 'type 7');
  assert.equal(
    ns.acquire(A, encodeResvCdw10({ action: 0, rtype: 1, iekey: true }), encodeResvKeys(1n, 0n)).sc,
    INVALID_FIELD,
    'IEKEY is not defined for Acquire',
  );
  assert.equal(acquire(ns, A, 1n, ResvType.WRITE_EXCLUSIVE).sc, SUCCESS);
  assert.equal(acquire(ns, B, 2n, ResvType.WRITE_EXCLUSIVE).sc, CONFLICT);
  assert.equal(acquire(ns, A, 1n, ResvType.WRITE_EXCLUSIVE).sc, SUCCESS);
  assert.equal(acquire(ns, A, 1n, ResvType.EXCLUSIVE_ACCESS).sc, CONFLICT);
  assert.equal(ns.rtype, ResvType.WRITE_EXCLUSIVE);
  assert.equal(ns.holder?.hostId, A.hostId);
});

test('release: a wrong type is an invalid field, a non-holder release changes nothing; registrants-only release notifies the others', () => {
  const ns = new NsReservation(false);
  register(ns, A, 1n);
  register(ns, B, 2n);
  acquire(ns, A, 1n, ResvType.WRITE_EXCLUSIVE_REG_ONLY);
  assert.equal(release(ns, A, 1n, ResvType.WRITE_EXCLUSIVE).sc, INVALID_FIELD);
  const byOther = release(ns, B, 2n, ResvType.WRITE_EXCLUSIVE_REG_ONLY);
  assert.deepEqual([byOther.sc, byOther.changed], [SUCCESS, false]);
  assert.equal(release(ns, A, 2n, ResvType.WRITE_EXCLUSIVE_REG_ONLY).sc, CONFLICT, 'wrong key');
  const r = release(ns, A, 1n, ResvType.WRITE_EXCLUSIVE_REG_ONLY);
  assert.equal(r.sc, SUCCESS);
  assert.equal(ns.rtype, ResvType.NONE);
  assert.deepEqual(r.notices, [{ hostId: B.hostId, type: ResvNotifyType.RESERVATION_RELEASED }]);
  // a plain Write Exclusive release notifies nobody (registrants had no rights from it)
  acquire(ns, A, 1n, ResvType.WRITE_EXCLUSIVE);
  assert.deepEqual(release(ns, A, 1n, ResvType.WRITE_EXCLUSIVE).notices, []);
});

test('clear removes every registration and the reservation; the other registrants hear Reservation Preempted', () => {
  const ns = new NsReservation(false);
  register(ns, A, 1n);
  register(ns, B, 2n);
  register(ns, C, 3n);
  acquire(ns, A, 1n, ResvType.EXCLUSIVE_ACCESS);
  const r = release(ns, B, 2n, 0, ReleaseAction.CLEAR);
  assert.equal(r.sc, SUCCESS);
  assert.equal(ns.registrants.length, 0);
  assert.equal(ns.rtype, ResvType.NONE);
  assert.deepEqual(
    r.notices.map((n) => [n.hostId, n.type]),
    [
      [A.hostId, ResvNotifyType.RESERVATION_PREEMPTED],
      [C.hostId, ResvNotifyType.RESERVATION_PREEMPTED],
    ],
  );
});

test('preempt the holder: the preempted registration goes, the requester holds with the new type; preempt-and-abort names it', () => {
  const ns = new NsReservation(false);
  register(ns, A, 1n);
  register(ns, B, 2n);
  register(ns, C, 3n);
  acquire(ns, A, 1n, ResvType.WRITE_EXCLUSIVE);
  const r = acquire(ns, B, 2n, ResvType.EXCLUSIVE_ACCESS, AcquireAction.PREEMPT_AND_ABORT, 1n);
  assert.equal(r.sc, SUCCESS);
  assert.equal(ns.holder?.hostId, B.hostId);
  assert.equal(ns.rtype, ResvType.EXCLUSIVE_ACCESS);
  assert.equal(ns.find(A.hostId), undefined);
  assert.deepEqual(r.abortHosts, [A.hostId]);
  assert.deepEqual(r.notices, [
    { hostId: A.hostId, type: ResvNotifyType.REGISTRATION_PREEMPTED },
    { hostId: C.hostId, type: ResvNotifyType.RESERVATION_RELEASED },
  ]);
  // A lost every right; C (registrant) too under Exclusive Access
  assert.equal(reservationAccess(ns.view(), A.hostId, NvmOpcode.READ), CONFLICT);
  assert.equal(reservationAccess(ns.view(), C.hostId, NvmOpcode.READ), CONFLICT);
});

test('preempt: PRKEY 0 that is not the holder key is an invalid field; a key nobody holds conflicts; a registrant key only unregisters', () => {
  const ns = new NsReservation(false);
  register(ns, A, 1n);
  register(ns, B, 2n);
  register(ns, C, 3n);
  assert.equal(acquire(ns, B, 2n, 1, AcquireAction.PREEMPT, 9n).sc, CONFLICT, 'no reservation, key unknown');
  acquire(ns, A, 1n, ResvType.WRITE_EXCLUSIVE);
  assert.equal(acquire(ns, B, 2n, 1, AcquireAction.PREEMPT, 0n).sc, INVALID_FIELD);
  const r = acquire(ns, B, 2n, 1, AcquireAction.PREEMPT, 3n);
  assert.equal(r.sc, SUCCESS);
  assert.equal(ns.holder?.hostId, A.hostId, 'the reservation stays with A');
  assert.equal(ns.find(C.hostId), undefined);
  assert.deepEqual(r.abortHosts, [], 'plain preempt aborts nothing');
  assert.deepEqual(r.notices, [{ hostId: C.hostId, type: ResvNotifyType.REGISTRATION_PREEMPTED }]);
});

test('all-registrants types: every registrant holds; the reservation outlives the acquirer and ends with the last registrant', () => {
  const ns = new NsReservation(false);
  register(ns, A, 1n);
  register(ns, B, 2n);
  acquire(ns, A, 1n, ResvType.WRITE_EXCLUSIVE_ALL_REGS);
  assert.equal(ns.isHolder(ns.find(B.hostId)), true);
  assert.equal(
    acquire(ns, B, 2n, ResvType.WRITE_EXCLUSIVE_ALL_REGS).sc,
    SUCCESS,
    'B holds that type already',
  );
  ns.register(A, encodeResvCdw10({ action: RegisterAction.UNREGISTER }), encodeResvKeys(1n, 0n));
  assert.equal(ns.rtype, ResvType.WRITE_EXCLUSIVE_ALL_REGS);
  const report = Buffer.alloc(4096);
  assert.equal(ns.report(1, report), SUCCESS);
  assert.equal(readResvReport(report, true).registrants[0].holder, true);
  ns.register(B, encodeResvCdw10({ action: RegisterAction.UNREGISTER }), encodeResvKeys(2n, 0n));
  assert.equal(ns.rtype, ResvType.NONE);
  // preempt with PRKEY 0 under all-registrants: the requester alone holds, with the new type
  register(ns, A, 1n);
  register(ns, B, 2n);
  acquire(ns, A, 1n, ResvType.EXCLUSIVE_ACCESS_ALL_REGS);
  const r = acquire(ns, B, 2n, ResvType.EXCLUSIVE_ACCESS, AcquireAction.PREEMPT, 0n);
  assert.equal(r.sc, SUCCESS);
  assert.deepEqual(
    [ns.rtype, ns.holder?.hostId, ns.registrants.length],
    [ResvType.EXCLUSIVE_ACCESS, B.hostId, 1],
  );
});

test('unregistering the holder of a registrants-only reservation releases it and notifies the other registrants', () => {
  const ns = new NsReservation(false);
  register(ns, A, 1n);
  register(ns, B, 2n);
  acquire(ns, A, 1n, ResvType.EXCLUSIVE_ACCESS_REG_ONLY);
  const r = ns.register(A, encodeResvCdw10({ action: RegisterAction.UNREGISTER }), encodeResvKeys(1n, 0n));
  assert.equal(ns.rtype, ResvType.NONE);
  assert.deepEqual(r.notices, [{ hostId: B.hostId, type: ResvNotifyType.RESERVATION_RELEASED }]);
});

test('report: extended structure only (EDS = 0 is Host Identifier Inconsistent Format), truncated to the buffer, REGCTL counts all', () => {
  const ns = new NsReservation(false);
  register(ns, A, 0x1122334455667788n);
  register(ns, B, 2n);
  acquire(ns, A, 0x1122334455667788n, ResvType.WRITE_EXCLUSIVE);
  assert.equal(ns.report(0, Buffer.alloc(4096)), GenericStatus.HOSTID_INCONSISTENT_FORMAT);
  assert.equal(ns.report(1, Buffer.alloc(32)), INVALID_FIELD);
  const full = Buffer.alloc(64 + 2 * 64);
  assert.equal(ns.report(1, full), SUCCESS);
  const d = readResvReport(full, true);
  assert.deepEqual([d.generation, d.rtype, d.regctl, d.ptpls], [2, ResvType.WRITE_EXCLUSIVE, 2, false]); // two Registers; Acquire does not count
  assert.deepEqual(d.registrants[0], {
    cntlid: 0xffff,
    holder: true,
    rkey: 0x1122334455667788n,
    hostId: A.hostId,
  });
  assert.equal(d.registrants[1].holder, false);
  const short = Buffer.alloc(64 + 64);
  ns.report(1, short);
  assert.equal(readResvReport(short, true).regctl, 2);
  assert.equal(readResvReport(short, true).registrants.length, 1);
});

test('CPTPL: persist needs a PTPL file; clear and persist toggle the state; a reserved value is invalid', () => {
  const plain = new NsReservation(false);
  const reg = (ns: NsReservation, cptpl: number) =>
    ns.register(A, encodeResvCdw10({ action: RegisterAction.REGISTER, cptpl }), encodeResvKeys(0n, 1n));
  assert.equal(reg(plain, Cptpl.PERSIST).sc, INVALID_FIELD);
  const ns = new NsReservation(true);
  assert.equal(reg(ns, 1).sc, INVALID_FIELD);
  assert.equal(reg(ns, Cptpl.PERSIST).sc, SUCCESS);
  assert.equal(ns.ptplActivated, true);
  assert.equal(reg(ns, Cptpl.CLEAR).sc, SUCCESS);
  assert.equal(ns.ptplActivated, false);
});

test('the registration table is bounded: one more registrant is an internal error, the table is unchanged', () => {
  const ns = new NsReservation(false);
  for (let i = 0; i < MAX_REGISTRANTS; i++)
    assert.equal(register(ns, { hostId: i.toString(16).padStart(32, '0') }, BigInt(i + 1)).sc, SUCCESS);
  assert.equal(register(ns, A, 1n).sc, GenericStatus.INTERNAL_DEVICE_ERROR);
  assert.equal(ns.registrants.length, MAX_REGISTRANTS);
});

test('PTPL file: SPDK format, 64-bit keys exact, holder and type restored; a file of another bdev is refused', () => {
  const bdevUuid = '3c8f1a2b-0d4e-4f61-9a7b-2c3d4e5f6071';
  const ns = new NsReservation(true);
  const big = 0xfedcba9876543210n;
  ns.register(A, encodeResvCdw10({ action: 0, cptpl: Cptpl.PERSIST }), encodeResvKeys(0n, big));
  register(ns, B, 2n);
  acquire(ns, A, big, ResvType.WRITE_EXCLUSIVE_REG_ONLY);
  const text = formatPtpl(ns.toPtpl(bdevUuid));
  assert.match(text, /"crkey": 18364758544493064720,/);
  assert.match(text, /"host_uuid": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"/);
  const parsed = parsePtpl(text);
  assert.ok(parsed);
  const restored = new NsReservation(true);
  restored.restore(parsed, bdevUuid);
  assert.deepEqual(restored.view(), ns.view());
  assert.equal(restored.holder?.rkey, big);
  assert.equal(restored.ptplActivated, true);
  assert.throws(
    () => new NsReservation(true).restore(parsed, '00000000-0000-0000-0000-000000000000'),
    /belongs to bdev/,
  );
  // what SPDK writes (its field order and spacing) parses too
  const spdk =
    '{"ptpl":true,"rtype":1,"crkey":18446744073709551615,"bdev_uuid":"3c8f1a2b-0d4e-4f61-9a7b-2c3d4e5f6071",' +
    '"holder_uuid":"bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb","registrants":[{"rkey":18446744073709551615,' +
    '"host_uuid":"bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"}]}';
  const s = parsePtpl(spdk);
  assert.ok(s);
  const fromSpdk = new NsReservation(true);
  fromSpdk.restore(s, bdevUuid);
  assert.equal(fromSpdk.holder?.rkey, 0xffffffffffffffffn);
  assert.equal(fromSpdk.rtype, ResvType.WRITE_EXCLUSIVE);
  // an empty file (SPDK's "PTPL cleared") restores nothing; malformed files name the problem
  assert.equal(parsePtpl(''), null);
  assert.throws(() => parsePtpl('[]'), /not a JSON object/);
  assert.throws(() => parsePtpl('{"bdev_uuid":"x","registrants":[{"rkey":"1"}]}'), /rkey \(integer\)/);
  assert.equal(formatPtpl(new NsReservation(true).toPtpl(bdevUuid)), '', 'PTPL off: the file is emptied');
});
