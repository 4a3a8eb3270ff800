// The controller's answers to bad admin input, over fake requests (no sockets):
// commands before CC.EN, PSDT/FUSE/NSID checks, illegal CC values that must change
// nothing, Get Log Page and Identify field checks, and the error log entries.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NvmfCtrlr } from '../../../src/nvmf/target-controller.ts';
import type { NvmfQpair } from '../../../src/nvmf/transport.ts';
import { getDnr, statusOf } from '../../../src/wire/nvme.ts';
import { CC_ENABLE, type FakeReq, makeFakeCtrlr, fakeReq as req } from './fake-ctrlr.ts';

function makeCtrlr(discovery = false): { c: NvmfCtrlr; q: NvmfQpair } {
  return makeFakeCtrlr({ discovery, cntlid: 7, hostidFill: 1 });
}

function enable(c: NvmfCtrlr, q: NvmfQpair, value = CC_ENABLE): FakeReq {
  const r = req(q, (cmd) => {
    cmd[0] = 0x7f;
    cmd.writeUInt32LE(0x14, 44);
    cmd.writeUInt32LE(value >>> 0, 48);
  });
  c.propertySet(r);
  return r;
}

/** Run an admin command; returns its status. */
function admin(c: NvmfCtrlr, q: NvmfQpair, fill: (cmd: Buffer) => void, length = 0): FakeReq {
  const r = req(q, fill, length);
  c.admin(r);
  assert.equal(r.done, 1, 'completed once');
  return r;
}

test('admin commands before CC.EN are a command sequence error, logged with SQID and CID', () => {
  const { c, q } = makeCtrlr();
  const id = admin(
    c,
    q,
    (cmd) => {
      cmd[0] = 0x06;
      cmd[40] = 1;
    },
    4096,
  );
  assert.equal(statusOf(id.rsp), 0x0c);
  assert.ok(getDnr(id.rsp));
  assert.equal(c.errorLog[0].cid, id.cmd.readUInt16LE(2));
  assert.equal(c.errorLog[0].sqid, 0);
  assert.equal(c.errorLog[0].status, 0x0c);
  assert.equal(statusOf(enable(c, q).rsp), 0);
  const id2 = admin(
    c,
    q,
    (cmd) => {
      cmd[0] = 0x06;
      cmd[40] = 1;
    },
    4096,
  );
  assert.equal(statusOf(id2.rsp), 0, 'fine once enabled');
});

test('PSDT PRP or reserved, FUSE set, NSID on a controller-scope command → Invalid Field', () => {
  const { c, q } = makeCtrlr();
  enable(c, q);
  const cases: Array<[string, number, number, number]> = [
    // what, opcode, SQE byte 1 (FUSE | PSDT), NSID
    ['PSDT 00b', 0x18, 0x00, 0],
    ['PSDT 11b', 0x18, 0xc0, 0],
    ['FUSE first', 0x18, 0x41, 0],
    ['Keep Alive NSID 1', 0x18, 0x40, 1],
    ['AER NSID 0xffffffff', 0x0c, 0x40, 0xffffffff],
  ];
  for (const [what, opcode, flags, nsid] of cases) {
    const r = admin(c, q, (cmd) => {
      cmd[0] = opcode;
      cmd[1] = flags;
      cmd.writeUInt32LE(nsid, 4);
    });
    assert.equal(statusOf(r.rsp), 0x02, what);
    assert.equal(c.errorLog[0].cid, r.cmd.readUInt16LE(2), `${what}: logged`);
  }
});

test('illegal CC values are refused (0x182) and change neither CC nor CSTS', () => {
  const { c, q } = makeCtrlr();
  const bad = [
    ['IOSQES 0 at enable', 1 | (4 << 20)],
    ['IOCQES 5', (CC_ENABLE & ~(0xf << 20)) | (5 << 20)],
    ['IOSQES 7', (CC_ENABLE & ~(0xf << 16)) | (7 << 16)],
    ['MPS 1', CC_ENABLE | (1 << 7)],
    ['AMS 1', CC_ENABLE | (1 << 11)],
    ['AMS 7 (vendor)', CC_ENABLE | (7 << 11)],
    ['CSS 1', CC_ENABLE | (1 << 4)],
    ['CSS 7 (admin only, not in CAP.CSS)', CC_ENABLE | (7 << 4)],
    ['SHN 11b', CC_ENABLE | (3 << 14)],
  ] as const;
  for (const [what, value] of bad) {
    const r = enable(c, q, value);
    assert.equal(statusOf(r.rsp), 0x182, what);
    assert.equal(c.cc, 0, `${what}: CC unchanged`);
    assert.equal(c.csts, 0, `${what}: CSTS unchanged (not ready, no CFS)`);
  }
  assert.equal(statusOf(enable(c, q).rsp), 0);
  assert.equal(c.csts & 1, 1);
  for (const [what, value] of bad.slice(1)) {
    assert.equal(statusOf(enable(c, q, value).rsp), 0x182, `${what} while enabled`);
    assert.equal(c.cc, CC_ENABLE);
    assert.equal(c.csts, 1);
  }
  // the discovery controller has no I/O queues: enabling without IOSQES/IOCQES is fine
  const d = makeCtrlr(true);
  assert.equal(statusOf(enable(d.c, d.q, 1).rsp), 0);
  assert.equal(d.c.csts & 1, 1);
});

test('property sizes and offsets: reserved size codes, CC as 8 bytes, read-only registers', () => {
  const { c, q } = makeCtrlr();
  const prop = (set: boolean, ofst: number, size: number) => {
    const r = req(q, (cmd) => {
      cmd[0] = 0x7f;
      cmd[40] = size;
      cmd.writeUInt32LE(ofst, 44);
    });
    if (set) c.propertySet(r);
    else c.propertyGet(r);
    return statusOf(r.rsp);
  };
  assert.equal(prop(false, 0x00, 1), 0, 'CAP as 8 bytes');
  assert.equal(prop(false, 0x00, 2), 0x182, 'size code 2 is reserved');
  assert.equal(prop(false, 0x14, 1), 0x182, 'CC is 4 bytes');
  assert.equal(prop(false, 0x44, 0), 0x182, 'reserved offset');
  assert.equal(prop(true, 0x00, 1), 0x182, 'CAP is read-only');
  assert.equal(prop(true, 0x14, 1), 0x182, 'CC set as 8 bytes');
  assert.equal(c.cc, 0);
});

test('Get Log Page and Identify field checks; the error log is bounded and paged by offset', () => {
  const { c, q } = makeCtrlr();
  enable(c, q);
  const log = (lid: number, bytes: number, length: number, offset = 0, nsid = 0xffffffff) =>
    admin(
      c,
      q,
      (cmd) => {
        cmd[0] = 0x02;
        cmd.writeUInt32LE(nsid, 4);
        cmd.writeUInt32LE((lid | ((bytes / 4 - 1) << 16)) >>> 0, 40);
        cmd.writeUInt32LE(offset, 48);
      },
      length,
    );
  assert.equal(statusOf(log(0x02, 4096, 512).rsp), 0x02, 'NUMD over the data buffer');
  assert.equal(statusOf(log(0x01, 64, 64, 128 * 64 + 64).rsp), 0x02, 'offset past the 128-entry error log');
  assert.equal(statusOf(log(0x01, 64, 64, 0, 3).rsp), 0x02, 'error log for NSID 3');
  assert.equal(statusOf(log(0x02, 512, 512, 0, 1).rsp), 0, 'SMART for NSID 1 is fine');
  assert.equal(statusOf(log(0x99, 64, 64).rsp), 0x109, 'unknown LID: Invalid Log Page');
  const idAll = admin(
    c,
    q,
    (cmd) => {
      cmd[0] = 0x06;
      cmd.writeUInt32LE(0xffffffff, 4);
    },
    4096,
  );
  assert.equal(statusOf(idAll.rsp), 0x0b, 'Identify Namespace 0xffffffff');
  const idShort = admin(
    c,
    q,
    (cmd) => {
      cmd[0] = 0x06;
      cmd[40] = 1;
    },
    512,
  );
  assert.equal(statusOf(idShort.rsp), 0x02, 'Identify into 512 bytes');
  // more errors than the log holds: 128 newest kept, paged by offset
  for (let i = 0; i < 140; i++)
    admin(c, q, (cmd) => {
      cmd[0] = 0xc1;
    });
  assert.equal(c.errorLog.length, 128);
  const second = log(0x01, 64, 64, 64);
  assert.equal(statusOf(second.rsp), 0);
  assert.equal(second.iov[0].readUInt32LE(0), c.errorCount - 1, 'entry 1 is the second newest');
  assert.equal((second.iov[0].readUInt16LE(12) >> 1) & 0xff, 0x01, 'its status: Invalid Opcode');
});

test('Get Features SEL: reserved values and supported capabilities of an unknown FID → Invalid Field', () => {
  const { c, q } = makeCtrlr();
  enable(c, q);
  const get = (fid: number, sel: number) =>
    admin(c, q, (cmd) => {
      cmd[0] = 0x0a;
      cmd.writeUInt32LE(fid | (sel << 8), 40);
    });
  assert.equal(statusOf(get(0x0f, 4).rsp), 0x02, 'SEL 100b');
  assert.equal(statusOf(get(0x0f, 7).rsp), 0x02, 'SEL 111b');
  assert.equal(statusOf(get(0x7e, 3).rsp), 0x02, 'capabilities of FID 0x7e');
  const caps = get(0x0f, 3);
  assert.equal(statusOf(caps.rsp), 0, 'capabilities of Keep Alive Timer');
  assert.equal(caps.rsp.readUInt32LE(0), 0);
  const dflt = get(0x07, 1);
  assert.equal(statusOf(dflt.rsp), 0, 'default value of Number of Queues');
  assert.equal(dflt.rsp.readUInt32LE(0), (126 << 16) | 126);
});

test('error log entries name the offending SQE field (Parameter Error Location)', () => {
  const { c, q } = makeCtrlr();
  enable(c, q);
  // what, opcode, SQE byte 1, NSID, CDW10, CDW12, expected location (byte | bit << 8)
  const cases: Array<[string, number, number, number, number, number, number]> = [
    ['unknown opcode → byte 0', 0xc2, 0x40, 0, 0, 0, 0],
    ['PSDT PRP → byte 1 bit 6', 0x18, 0x00, 0, 0, 0, 1 | (6 << 8)],
    ['FUSE → byte 1 bit 0', 0x18, 0x41, 0, 0, 0, 1],
    ['Keep Alive NSID → byte 4', 0x18, 0x40, 1, 0, 0, 4],
    ['Identify CNS 0xff → byte 40', 0x06, 0x40, 0, 0xff, 0, 40],
    ['Get Log offset 2 → byte 48', 0x02, 0x40, 0xffffffff, 0x000f0001, 2, 48],
    ['Set Features SV → byte 43 bit 7', 0x09, 0x40, 0, 0x8000000f, 0, 43 | (7 << 8)],
  ];
  for (const [what, opcode, flags, nsid, cdw10, cdw12, loc] of cases) {
    const r = admin(
      c,
      q,
      (cmd) => {
        cmd[0] = opcode;
        cmd[1] = flags;
        cmd.writeUInt32LE(nsid, 4);
        cmd.writeUInt32LE(cdw10 >>> 0, 40);
        cmd.writeUInt32LE(cdw12, 48);
      },
      4096,
    );
    assert.notEqual(statusOf(r.rsp), 0, what);
    const page = admin(
      c,
      q,
      (cmd) => {
        cmd[0] = 0x02;
        cmd.writeUInt32LE(0x01 | (15 << 16), 40);
      },
      64,
    );
    assert.equal(page.iov[0].readUInt16LE(10), r.cmd.readUInt16LE(2), `${what}: CID`);
    assert.equal(page.iov[0].readUInt16LE(14), loc, `${what}: location`);
  }
});
