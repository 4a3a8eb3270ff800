// Byte-level checks of the target's PDU flow: SQHD, C2H SUCCESS, R2T and
// H2CData split in several PDUs, driven by a raw socket.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { ConnectData, writeConnectCommand } from '../../../src/wire/fabrics.ts';
import { Cqe, CqeStatus, SQE_SIZE, Sqe, setSqeSgl } from '../../../src/wire/nvme.ts';
import {
  Ch,
  capsuleRespCqe,
  newDataPduHeader,
  newR2tFields,
  PduFlags,
  PduType,
  readCommonHeader,
  readDataPduHeader,
  readR2t,
} from '../../../src/wire/tcp.ts';
import { type FakeTarget, startFakeTarget } from '../../lib/fake-core.ts';
import { capsuleCmd, h2cData, icReq, ioSqe } from '../../lib/raw-pdu.ts';

let target: FakeTarget;
before(async () => {
  target = await startFakeTarget(64);
});
after(async () => {
  await target.close();
});

class RawHost {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      for (const w of this.waiters.splice(0)) w();
    });
    this.socket.on('error', () => {});
  }
  /** next PDU (bounded wait) */
  async next(): Promise<Buffer> {
    const deadline = Date.now() + 2000;
    while (this.buf.length < Ch.SIZE || this.buf.length < this.buf.readUInt32LE(Ch.PLEN)) {
      if (Date.now() > deadline) throw new Error('no PDU');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    const plen = this.buf.readUInt32LE(Ch.PLEN);
    const pdu = this.buf.subarray(0, plen);
    this.buf = this.buf.subarray(plen);
    return pdu;
  }
  pending(): number {
    return this.buf.length;
  }
  send(...b: Buffer[]): void {
    for (const x of b) this.socket.write(x);
  }
}

/** A Connect capsule (the fake core reads only qid, sqsize and cattr). */
function connectCapsule(cattr: number, qid: number): Buffer {
  const sqe = Buffer.alloc(SQE_SIZE);
  writeConnectCommand(sqe, { recfmt: 0, qid, sqsize: 31, cattr, kato: 0 });
  sqe.writeUInt16LE(1, Sqe.CID);
  setSqeSgl(sqe, ConnectData.SIZE, true);
  return capsuleCmd(sqe, Buffer.alloc(ConnectData.SIZE));
}

/** A read, write or flush of `bytes` at `lba` (namespace 1, 512-byte blocks), data by R2T / C2HData. */
function ioCapsule(opcode: number, cid: number, lba: number, bytes: number): Buffer {
  return capsuleCmd(ioSqe(opcode, cid, 1, lba, Math.max(1, bytes / 512), bytes));
}

/** The CQE of a CapsuleResp and its fields. */
function cqe(rsp: Buffer): { status: number; sqhd: number; sqid: number; cid: number } {
  assert.equal(rsp[Ch.TYPE], PduType.CAPSULE_RESP);
  const c = capsuleRespCqe(rsp);
  return {
    // the whole status field but the phase bit: SC, SCT, CRD, MORE, DNR
    status: c.readUInt16LE(Cqe.STATUS) & ~CqeStatus.PHASE,
    sqhd: c.readUInt16LE(Cqe.SQHD),
    sqid: c.readUInt16LE(Cqe.SQID),
    cid: c.readUInt16LE(Cqe.CID),
  };
}

async function connectedHost(cattr: number, ioQueue: boolean, hpda = 0): Promise<RawHost> {
  const h = new RawHost(target.port);
  // qid 1 is an I/O queue (SQHD counts its commands); the fake core does not check it
  h.send(icReq({ hpda }), connectCapsule(cattr, ioQueue ? 1 : 0));
  assert.equal((await h.next())[Ch.TYPE], PduType.IC_RESP);
  const rsp = cqe(await h.next());
  assert.equal(rsp.status, 0, 'Connect succeeded');
  assert.equal(rsp.sqhd, cattr & 4 ? 0xffff : 1, 'SQHD');
  return h;
}

test('write through R2T with the data in two H2CData PDUs, then a read: SQHD advances', async () => {
  const h = await connectedHost(0, true);
  h.send(ioCapsule(0x01, 7, 4, 1024));
  const r2tPdu = await h.next();
  assert.equal(r2tPdu[Ch.TYPE], PduType.R2T);
  const r2t = readR2t(r2tPdu, newR2tFields());
  assert.equal(r2t.cccid, 7);
  assert.equal(r2t.r2to, 0);
  assert.equal(r2t.r2tl, 1024);
  for (const [off, last] of [
    [0, false],
    [512, true],
  ] as const) {
    const data = Buffer.alloc(512, off === 0 ? 0x11 : 0x22);
    h.send(h2cData({ cccid: 7, ttag: r2t.ttag, datao: off, last }, data));
  }
  const wrsp = cqe(await h.next());
  assert.equal(wrsp.cid, 7);
  assert.equal(wrsp.status, 0);
  assert.equal(wrsp.sqhd, 2, 'SQHD after two commands');
  assert.equal(wrsp.sqid, 1, 'SQID');
  assert.ok(target.core.disk.subarray(4 * 512, 5 * 512).equals(Buffer.alloc(512, 0x11)));
  assert.ok(target.core.disk.subarray(5 * 512, 6 * 512).equals(Buffer.alloc(512, 0x22)));
  h.send(ioCapsule(0x02, 8, 4, 1024));
  const c2h = await h.next();
  assert.equal(c2h[Ch.TYPE], PduType.C2H_DATA);
  const hdr = readDataPduHeader(c2h, newDataPduHeader());
  assert.equal(hdr.flags, PduFlags.DATA_LAST, 'no SUCCESS while SQ flow control is on');
  assert.equal(hdr.datal, 1024);
  assert.equal(c2h[readCommonHeader(c2h).pdo], 0x11);
  assert.equal(cqe(await h.next()).sqhd, 3);
  h.socket.destroy();
});

test('with SQ flow control disabled a read ends with C2HData LAST|SUCCESS and no CapsuleResp', async () => {
  const h = await connectedHost(0x4, true);
  h.send(ioCapsule(0x02, 9, 0, 512));
  const c2h = await h.next();
  assert.equal(c2h[Ch.TYPE], PduType.C2H_DATA);
  assert.equal(c2h[Ch.FLAGS], PduFlags.DATA_LAST | PduFlags.DATA_SUCCESS);
  // a flush (no data) still gets a CapsuleResp, SQHD 0xFFFF; nothing came in between
  h.send(ioCapsule(0x00, 10, 0, 0));
  const rsp = cqe(await h.next());
  assert.equal(rsp.cid, 10);
  assert.equal(rsp.sqhd, 0xffff);
  assert.equal(h.pending(), 0);
  h.socket.destroy();
});

test('C2HData honours the host PDU data alignment (hpda)', async () => {
  target.core.disk.fill(0x5c, 0, 512);
  const h = await connectedHost(0, true, 3); // data aligned to 16 bytes
  h.send(ioCapsule(0x02, 11, 0, 512));
  const c2h = await h.next();
  const ch = readCommonHeader(c2h);
  assert.equal(ch.type, PduType.C2H_DATA);
  assert.equal(ch.pdo, 32, 'PDO rounded up from 24 to 32');
  assert.equal(ch.plen, 32 + 512);
  assert.equal(readDataPduHeader(c2h, newDataPduHeader()).datal, 512);
  assert.ok(c2h.subarray(32).equals(Buffer.alloc(512, 0x5c)));
  assert.equal((await h.next())[Ch.TYPE], PduType.CAPSULE_RESP);
  h.socket.destroy();
});
