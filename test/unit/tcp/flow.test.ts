// Byte-level checks of the target's PDU flow: SQHD, C2H SUCCESS, R2T and
// H2CData split in several PDUs, driven by a raw socket.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { PduFlags, PduType, writeCommonHeader } from '../../../src/wire/tcp.ts';
import { type FakeTarget, startFakeTarget } from '../../lib/fake-core.ts';

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
    while (this.buf.length < 8 || this.buf.length < this.buf.readUInt32LE(4)) {
      if (Date.now() > deadline) throw new Error('no PDU');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    const plen = this.buf.readUInt32LE(4);
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

function icReq(hpda = 0): Buffer {
  const b = Buffer.alloc(128);
  writeCommonHeader(b, PduType.IC_REQ, 0, 128, 0, 128);
  b[10] = hpda;
  return b;
}

function connectCapsule(cattr: number): Buffer {
  const b = Buffer.alloc(72 + 1024);
  writeCommonHeader(b, PduType.CAPSULE_CMD, 0, 72, 72, b.length);
  const sqe = b.subarray(8, 72);
  sqe[0] = 0x7f;
  sqe.writeUInt16LE(1, 2);
  sqe[4] = 0x01;
  sqe.writeUInt32LE(1024, 32);
  sqe[39] = 0x01;
  sqe.writeUInt16LE(0, 42); // qid 1 would be an I/O queue; the fake core does not care
  sqe.writeUInt16LE(31, 44);
  sqe[46] = cattr;
  return b;
}

function ioCapsule(opcode: number, cid: number, lba: number, bytes: number): Buffer {
  const b = Buffer.alloc(72);
  writeCommonHeader(b, PduType.CAPSULE_CMD, 0, 72, 0, 72);
  const sqe = b.subarray(8, 72);
  sqe[0] = opcode;
  sqe.writeUInt16LE(cid, 2);
  sqe.writeUInt32LE(1, 4);
  sqe.writeUInt32LE(bytes, 32);
  sqe[39] = 0x5a;
  sqe.writeUInt32LE(lba, 40);
  sqe.writeUInt16LE(bytes / 512 - 1, 48);
  return b;
}

async function connectedHost(cattr: number, ioQueue: boolean, hpda = 0): Promise<RawHost> {
  const h = new RawHost(target.port);
  const c = connectCapsule(cattr);
  if (ioQueue) c.writeUInt16LE(1, 8 + 42);
  h.send(icReq(hpda), c);
  assert.equal((await h.next())[0], PduType.IC_RESP);
  const rsp = await h.next();
  assert.equal(rsp[0], PduType.CAPSULE_RESP);
  assert.equal(rsp.readUInt16LE(8 + 14) >> 1, 0, 'Connect succeeded');
  assert.equal(rsp.readUInt16LE(8 + 8), cattr & 4 ? 0xffff : 1, 'SQHD');
  return h;
}

test('write through R2T with the data in two H2CData PDUs, then a read: SQHD advances', async () => {
  const h = await connectedHost(0, true);
  h.send(ioCapsule(0x01, 7, 4, 1024));
  const r2t = await h.next();
  assert.equal(r2t[0], PduType.R2T);
  assert.equal(r2t.readUInt16LE(8), 7);
  assert.equal(r2t.readUInt32LE(12), 0);
  assert.equal(r2t.readUInt32LE(16), 1024);
  const ttag = r2t.readUInt16LE(10);
  for (const [off, last] of [
    [0, false],
    [512, true],
  ] as const) {
    const d = Buffer.alloc(24 + 512, off === 0 ? 0x11 : 0x22);
    writeCommonHeader(d, PduType.H2C_DATA, last ? PduFlags.DATA_LAST : 0, 24, 24, d.length);
    d.writeUInt16LE(7, 8);
    d.writeUInt16LE(ttag, 10);
    d.writeUInt32LE(off, 12);
    d.writeUInt32LE(512, 16);
    h.send(d);
  }
  const wrsp = await h.next();
  assert.equal(wrsp[0], PduType.CAPSULE_RESP);
  assert.equal(wrsp.readUInt16LE(8 + 12), 7);
  assert.equal(wrsp.readUInt16LE(8 + 14) >> 1, 0);
  assert.equal(wrsp.readUInt16LE(8 + 8), 2, 'SQHD after two commands');
  assert.equal(wrsp.readUInt16LE(8 + 10), 1, 'SQID');
  assert.ok(target.core.disk.subarray(4 * 512, 5 * 512).equals(Buffer.alloc(512, 0x11)));
  assert.ok(target.core.disk.subarray(5 * 512, 6 * 512).equals(Buffer.alloc(512, 0x22)));
  h.send(ioCapsule(0x02, 8, 4, 1024));
  const c2h = await h.next();
  assert.equal(c2h[0], PduType.C2H_DATA);
  assert.equal(c2h[1], PduFlags.DATA_LAST, 'no SUCCESS while SQ flow control is on');
  assert.equal(c2h.readUInt32LE(16), 1024);
  assert.equal(c2h[24], 0x11);
  const rrsp = await h.next();
  assert.equal(rrsp[0], PduType.CAPSULE_RESP);
  assert.equal(rrsp.readUInt16LE(8 + 8), 3);
  h.socket.destroy();
});

test('with SQ flow control disabled a read ends with C2HData LAST|SUCCESS and no CapsuleResp', async () => {
  const h = await connectedHost(0x4, true);
  h.send(ioCapsule(0x02, 9, 0, 512));
  const c2h = await h.next();
  assert.equal(c2h[0], PduType.C2H_DATA);
  assert.equal(c2h[1], PduFlags.DATA_LAST | PduFlags.DATA_SUCCESS);
  // a flush (no data) still gets a CapsuleResp, SQHD 0xFFFF; nothing came in between
  const flush = ioCapsule(0x00, 10, 0, 512);
  flush.writeUInt32LE(0, 8 + 32);
  h.send(flush);
  const rsp = await h.next();
  assert.equal(rsp[0], PduType.CAPSULE_RESP);
  assert.equal(rsp.readUInt16LE(8 + 12), 10);
  assert.equal(rsp.readUInt16LE(8 + 8), 0xffff);
  assert.equal(h.pending(), 0);
  h.socket.destroy();
});

test('C2HData honours the host PDU data alignment (hpda)', async () => {
  target.core.disk.fill(0x5c, 0, 512);
  const h = await connectedHost(0, true, 3); // data aligned to 16 bytes
  h.send(ioCapsule(0x02, 11, 0, 512));
  const c2h = await h.next();
  assert.equal(c2h[0], PduType.C2H_DATA);
  assert.equal(c2h[3], 32, 'PDO rounded up from 24 to 32');
  assert.equal(c2h.readUInt32LE(4), 32 + 512);
  assert.ok(c2h.subarray(32).equals(Buffer.alloc(512, 0x5c)));
  assert.equal((await h.next())[0], PduType.CAPSULE_RESP);
  h.socket.destroy();
});
