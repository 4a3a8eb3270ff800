// The app-thread half of Fabrics Connect (connect.ts): controller IDs handed
// out round-robin within a subsystem's range, and the I/O queue admission
// answers (the Connect status, IATTR/IPO naming the field at fault).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admitAdminConnect, admitIoConnect, type CtrlrRecord } from '../../../src/nvmf/connect.ts';
import type { ThreadRef } from '../../../src/thread/index.ts';
import { ConnectData, FabricsSqe } from '../../../src/wire/fabrics.ts';
import { FabricsStatus, StatusCodeType } from '../../../src/wire/nvme.ts';

const pg0: ThreadRef = { id: 10, name: 'nvmf_tgt_poll_group_0', reactor: 0 };
const pg1: ThreadRef = { id: 11, name: 'nvmf_tgt_poll_group_1', reactor: 1 };
const SUBNQN = 'nqn.2016-06.io.spdk:cnode1';

function admin(token: number, pg = pg0) {
  return { token, pg, subnqn: SUBNQN, hostnqn: 'nqn.h1', hostid: '00'.repeat(16), kato: 15_000 };
}

test('admin Connect: IDs from the cursor on, wrapping inside the range; -1 when full or unknown', () => {
  const ctrlrs = new Map<number, CtrlrRecord>();
  const range = { minCntlid: 5, maxCntlid: 7 };
  assert.equal(admitAdminConnect(ctrlrs, range, 5, admin(1)), 5);
  assert.equal(admitAdminConnect(ctrlrs, range, 6, admin(2)), 6);
  // a cursor outside the range lands on it modulo its size: (1 - 5) mod 3 -> 7
  assert.equal(admitAdminConnect(ctrlrs, range, 1, admin(3, pg1)), 7);
  assert.equal(admitAdminConnect(ctrlrs, range, 8, admin(4)), -1, 'range full');
  assert.deepEqual(
    [...ctrlrs.values()].map((c) => [c.cntlid, c.owner.name, c.enabled]),
    [
      [5, pg0.name, false],
      [6, pg0.name, false],
      [7, pg1.name, false],
    ],
  );
  ctrlrs.delete(6);
  assert.equal(admitAdminConnect(ctrlrs, range, 8, admin(5)), 6, 'the freed ID, found by wrapping');
  assert.equal(admitAdminConnect(ctrlrs, undefined, 1, admin(6)), -1, 'no such subsystem');
});

test('I/O Connect: unknown controller, other host, not enabled, qid taken, then admitted (with its KATO)', () => {
  const ctrlrs = new Map<number, CtrlrRecord>();
  admitAdminConnect(ctrlrs, { minCntlid: 1, maxCntlid: 10 }, 1, admin(1));
  const io = (o: Partial<{ cntlid: number; hostnqn: string; qid: number }> = {}) =>
    admitIoConnect(ctrlrs, { token: 9, pg: pg1, cntlid: 1, subnqn: SUBNQN, hostnqn: 'nqn.h1', qid: 1, ...o });
  const invalid = (iattr: number, ipo: number) => ({
    token: 9,
    hostid: '',
    owner: null,
    sct: StatusCodeType.COMMAND_SPECIFIC,
    sc: FabricsStatus.INVALID_PARAM,
    iattr,
    ipo,
    kato: 0,
  });

  assert.deepEqual(io({ cntlid: 2 }), { cntlid: 2, ...invalid(1, ConnectData.CNTLID) });
  assert.deepEqual(io({ hostnqn: 'nqn.h2' }), { cntlid: 1, ...invalid(1, ConnectData.HOSTNQN) });
  assert.deepEqual(io(), { cntlid: 1, ...invalid(0, FabricsSqe.CONNECT_QID) }, 'before CC.EN = 1');

  const rec = ctrlrs.get(1);
  assert.ok(rec);
  rec.enabled = true;
  // admitted: the queue learns the controller's host ID (its identity to reservations) and
  // KATO (it bounds the I/O queue's authentication)
  assert.deepEqual(io(), {
    token: 9,
    cntlid: 1,
    hostid: '00'.repeat(16),
    owner: pg0,
    sct: 0,
    sc: 0,
    iattr: -1,
    ipo: 0,
    kato: 15_000,
  });
  assert.equal(rec.ioQueues.get(1), pg1, 'the queue is recorded on the poll group that asked');
  assert.deepEqual(io(), { cntlid: 1, ...invalid(0, FabricsSqe.CONNECT_QID) }, 'qid 1 is taken');
});
