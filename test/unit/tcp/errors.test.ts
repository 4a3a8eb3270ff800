import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { GenericStatus, getStatusCode } from '../../../src/wire/nvme.ts';
import { IcReq, PduFlags, PduType, TermReqFes, writeCommonHeader } from '../../../src/wire/tcp.ts';
import { type FakeTarget, startFakeTarget } from '../../lib/fake-core.ts';

let target: FakeTarget;
before(async () => {
  target = await startFakeTarget(64);
});
after(async () => {
  await target.close();
});

/** Send raw bytes, collect what the target sends until it closes or `enough` bytes came (bounded to 2 s). */
async function exchange(...writes: Buffer[]): Promise<Buffer> {
  return exchangeUntil(Number.POSITIVE_INFINITY, ...writes);
}

async function exchangeUntil(enough: number, ...writes: Buffer[]): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port: target.port });
  const chunks: Buffer[] = [];
  let got = 0;
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    got += c.length;
    if (got >= enough) socket.destroy();
  });
  await new Promise<void>((r) => socket.once('connect', () => r()));
  for (const w of writes) socket.write(w);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, 2000);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('error', () => {});
  });
  return Buffer.concat(chunks);
}

function icReq(pfv = 0, hpda = 0, dgst = 0): Buffer {
  const b = Buffer.alloc(128);
  writeCommonHeader(b, PduType.IC_REQ, 0, 128, 0, 128);
  b.writeUInt16LE(pfv, IcReq.PFV);
  b[IcReq.HPDA] = hpda;
  b[IcReq.DGST] = dgst;
  return b;
}

function capsuleCmd(sqe: Buffer, hd = false): Buffer {
  const h = hd ? 4 : 0;
  const b = Buffer.alloc(72 + h);
  writeCommonHeader(b, PduType.CAPSULE_CMD, hd ? PduFlags.HDGST : 0, 72, 0, 72 + h);
  sqe.copy(b, 8);
  if (hd) b.writeUInt32LE(crc32c(b.subarray(0, 72)), 72);
  return b;
}

function termReqOf(reply: Buffer, skip: number): { type: number; fes: number; fei: number } {
  const t = reply.subarray(skip);
  return { type: t[0], fes: t.readUInt16LE(8), fei: t.readUInt32LE(10) };
}

test('ICResp echoes digests, cpda 0, maxh2cdata = max_io_size', async () => {
  const reply = await exchangeUntil(128, icReq(0, 0, 3));
  assert.ok(reply.length >= 128);
  assert.equal(reply[0], PduType.IC_RESP);
  assert.equal(reply.readUInt32LE(4), 128);
  assert.equal(reply.readUInt16LE(8), 0);
  assert.equal(reply[10], 0);
  assert.equal(reply[11], 3);
  assert.equal(reply.readUInt32LE(12), 131072);
});

test('a capsule before ICReq is a PDU sequence error', async () => {
  const reply = await exchange(capsuleCmd(Buffer.alloc(64)));
  assert.deepEqual(termReqOf(reply, 0), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.PDU_SEQUENCE_ERROR,
    fei: 0,
  });
  assert.equal(reply.readUInt32LE(4), reply.length);
});

test('ICReq with pfv 1 or hpda 32 is an invalid header field at its offset', async () => {
  let reply = await exchange(icReq(1));
  assert.deepEqual(termReqOf(reply, 0), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.INVALID_HEADER_FIELD,
    fei: IcReq.PFV,
  });
  reply = await exchange(icReq(0, 32));
  assert.deepEqual(termReqOf(reply, 0), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.INVALID_HEADER_FIELD,
    fei: IcReq.HPDA,
  });
});

test('a wrong header digest ends the connection with FES 3', async () => {
  const bad = capsuleCmd(Buffer.alloc(64), true);
  bad[72] ^= 1;
  const reply = await exchange(icReq(0, 0, 1), bad);
  assert.equal(reply[0], PduType.IC_RESP);
  assert.deepEqual(termReqOf(reply, 128), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.HDGST_ERROR,
    fei: 0,
  });
});

test('H2CData with an unknown transfer tag is rejected; a second ICReq too', async () => {
  const h2c = Buffer.alloc(28);
  writeCommonHeader(h2c, PduType.H2C_DATA, PduFlags.DATA_LAST, 24, 24, 28);
  h2c.writeUInt16LE(77, 10);
  h2c.writeUInt32LE(4, 16);
  let reply = await exchange(icReq(), h2c);
  assert.deepEqual(termReqOf(reply, 128), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.INVALID_HEADER_FIELD,
    fei: 10,
  });
  reply = await exchange(icReq(), icReq());
  assert.deepEqual(termReqOf(reply, 128), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.PDU_SEQUENCE_ERROR,
    fei: 0,
  });
});

test('bad SGLs get NVMe statuses, not a dead connection', async () => {
  const sqe = Buffer.alloc(64);
  sqe[0] = 0x01; // write
  sqe.writeUInt16LE(5, 2);
  sqe.writeUInt32LE(1 << 20, 32); // 1 MiB > max_io_size
  sqe[39] = 0x5a;
  const sqe2 = Buffer.from(sqe);
  sqe2.writeUInt16LE(6, 2);
  sqe2.writeUInt32LE(512, 32);
  sqe2[39] = 0x20; // segment descriptor: unsupported
  const reply = await exchangeUntil(176, icReq(), capsuleCmd(sqe), capsuleCmd(sqe2));
  // two CapsuleResp PDUs after the ICResp; the connection stays open until the test closes it
  const r1 = reply.subarray(128, 152);
  const r2 = reply.subarray(152, 176);
  assert.equal(r1[0], PduType.CAPSULE_RESP);
  assert.equal(r1.readUInt16LE(8 + 12), 5);
  assert.equal(getStatusCode(r1.subarray(8)), GenericStatus.DATA_SGL_LENGTH_INVALID);
  assert.equal(r2.readUInt16LE(8 + 12), 6);
  assert.equal(getStatusCode(r2.subarray(8)), GenericStatus.SGL_DESCRIPTOR_TYPE_INVALID);
});
