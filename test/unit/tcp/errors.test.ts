import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import {
  GenericStatus,
  getStatusCode,
  initSqe,
  SglType,
  SQE_SIZE,
  Sqe,
  setSqeSgl,
} from '../../../src/wire/nvme.ts';
import {
  CapsuleCmd,
  CapsuleResp,
  Ch,
  capsuleRespCid,
  capsuleRespCqe,
  DataPdu,
  IcReq,
  IcResp,
  PduType,
  readIcResp,
  TermReqFes,
} from '../../../src/wire/tcp.ts';
import { type FakeTarget, startFakeTarget } from '../../lib/fake-core.ts';
import { capsuleCmd, h2cData, icDigests, icReq, termReqAt } from '../../lib/raw-pdu.ts';

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

function termReqOf(reply: Buffer, skip: number): { type: number; fes: number; fei: number } | null {
  const t = termReqAt(reply, skip);
  return t && { type: t.type, fes: t.fes, fei: t.fei };
}

test('ICResp echoes digests, cpda 0, maxh2cdata = max_io_size', async () => {
  const reply = await exchangeUntil(IcResp.SIZE, icReq({ dgst: icDigests({ hdgst: true, ddgst: true }) }));
  assert.ok(reply.length >= IcResp.SIZE);
  assert.equal(reply[Ch.TYPE], PduType.IC_RESP);
  assert.equal(reply.readUInt32LE(Ch.PLEN), IcResp.SIZE);
  assert.deepEqual(readIcResp(reply), { pfv: 0, cpda: 0, dgst: 3, maxh2cdata: 131072 });
});

test('a capsule before ICReq is a PDU sequence error', async () => {
  const reply = await exchange(capsuleCmd(Buffer.alloc(SQE_SIZE)));
  assert.deepEqual(termReqOf(reply, 0), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.PDU_SEQUENCE_ERROR,
    fei: 0,
  });
  assert.equal(reply.readUInt32LE(Ch.PLEN), reply.length);
});

test('ICReq with pfv 1 or hpda 32 is an invalid header field at its offset', async () => {
  let reply = await exchange(icReq({ pfv: 1 }));
  assert.deepEqual(termReqOf(reply, 0), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.INVALID_HEADER_FIELD,
    fei: IcReq.PFV,
  });
  reply = await exchange(icReq({ hpda: 32 }));
  assert.deepEqual(termReqOf(reply, 0), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.INVALID_HEADER_FIELD,
    fei: IcReq.HPDA,
  });
});

test('a wrong header digest ends the connection with FES 3', async () => {
  const bad = capsuleCmd(Buffer.alloc(SQE_SIZE), null, { hdgst: true });
  bad[CapsuleCmd.HDR_SIZE] ^= 1; // the digest
  const reply = await exchange(icReq({ dgst: icDigests({ hdgst: true }) }), bad);
  assert.equal(reply[Ch.TYPE], PduType.IC_RESP);
  assert.deepEqual(termReqOf(reply, IcResp.SIZE), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.HDGST_ERROR,
    fei: 0,
  });
});

test('H2CData with an unknown transfer tag is rejected; a second ICReq too', async () => {
  const h2c = h2cData({ cccid: 0, ttag: 77, datao: 0 }, Buffer.alloc(4));
  let reply = await exchange(icReq(), h2c);
  assert.deepEqual(termReqOf(reply, IcResp.SIZE), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.INVALID_HEADER_FIELD,
    fei: DataPdu.TTAG,
  });
  reply = await exchange(icReq(), icReq());
  assert.deepEqual(termReqOf(reply, IcResp.SIZE), {
    type: PduType.C2H_TERM_REQ,
    fes: TermReqFes.PDU_SEQUENCE_ERROR,
    fei: 0,
  });
});

test('bad SGLs get NVMe statuses, not a dead connection', async () => {
  const sqe = initSqe(Buffer.alloc(SQE_SIZE), 0x01); // write
  sqe.writeUInt16LE(5, Sqe.CID);
  setSqeSgl(sqe, 1 << 20, false); // 1 MiB > max_io_size
  const sqe2 = Buffer.from(sqe);
  sqe2.writeUInt16LE(6, Sqe.CID);
  setSqeSgl(sqe2, 512, false);
  sqe2[Sqe.SGL_TYPE] = SglType.SEGMENT << 4; // segment descriptor: unsupported
  const end = IcResp.SIZE + 2 * CapsuleResp.HDR_SIZE;
  const reply = await exchangeUntil(end, icReq(), capsuleCmd(sqe), capsuleCmd(sqe2));
  // two CapsuleResp PDUs after the ICResp; the connection stays open until the test closes it
  const r1 = reply.subarray(IcResp.SIZE, IcResp.SIZE + CapsuleResp.HDR_SIZE);
  const r2 = reply.subarray(IcResp.SIZE + CapsuleResp.HDR_SIZE, end);
  assert.equal(r1[Ch.TYPE], PduType.CAPSULE_RESP);
  assert.equal(capsuleRespCid(r1), 5);
  assert.equal(getStatusCode(capsuleRespCqe(r1)), GenericStatus.DATA_SGL_LENGTH_INVALID);
  assert.equal(capsuleRespCid(r2), 6);
  assert.equal(getStatusCode(capsuleRespCqe(r2)), GenericStatus.SGL_DESCRIPTOR_TYPE_INVALID);
});
