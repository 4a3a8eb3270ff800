// The NVMe/TCP PDU encoders: sizes and offsets (as SPDK asserts them
// statically), bytes of a few PDUs spelled out, and every encoder round-tripped
// through its decoder and through the PduReceiver of the side that receives
// it, with and without digests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { CQE_SIZE, Cqe, initSqe, SQE_SIZE, Sqe } from '../../../src/wire/nvme.ts';
import {
  CapsuleCmd,
  CapsuleResp,
  Ch,
  capsuleRespCid,
  capsuleRespCqe,
  DataPdu,
  DIGEST_SIZE,
  dataDigest,
  dataPduPdo,
  IcDigest,
  IcReq,
  IcResp,
  icDigestBits,
  joinPdu,
  newDataPduHeader,
  newR2tFields,
  PduFlags,
  PduHlen,
  PduType,
  R2t,
  readCapsuleCmdSqe,
  readCapsuleRespCqe,
  readCommonHeader,
  readDataPduHeader,
  readIcReq,
  readIcResp,
  readR2t,
  readTermReq,
  TermReq,
  TermReqFes,
  termReqErrorDataLength,
  termReqFei,
  writeC2HData,
  writeCapsuleCmd,
  writeCapsuleResp,
  writeH2CData,
  writeIcReq,
  writeIcResp,
  writeR2t,
  writeTermReq,
} from '../../../src/wire/tcp.ts';
import { HOST_ACCEPTS, PduReceiver, TARGET_ACCEPTS } from '../../../src/wire/tcp-receiver.ts';

interface Received {
  pdu: Buffer;
  data: Buffer;
  ok: boolean;
}

/** Feed `bytes` to a receiver of one side; returns the PDUs it delivered (copied) and its errors. */
function receive(bytes: Buffer, accepts: readonly number[], hdgst: boolean, ddgst: boolean) {
  const got: Received[] = [];
  const errors: Array<[number, number]> = [];
  const rx = new PduReceiver(
    {
      onPdu(pdu, off, len, ok) {
        got.push({ pdu: Buffer.from(pdu), data: Buffer.from(pdu.subarray(off, off + len)), ok });
      },
      onPduError(fes, fei) {
        errors.push([fes, fei]);
      },
    },
    accepts,
    1 << 20,
  );
  rx.headerDigest = hdgst;
  rx.dataDigest = ddgst;
  rx.push(bytes);
  return { got, errors };
}

const DIGESTS = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

test('PDU header sizes and field offsets', () => {
  assert.equal(Ch.SIZE, 8);
  assert.deepEqual([Ch.TYPE, Ch.FLAGS, Ch.HLEN, Ch.PDO, Ch.PLEN], [0, 1, 2, 3, 4]);
  assert.equal(DIGEST_SIZE, 4);
  assert.deepEqual(
    [PduHlen.IC_REQ, PduHlen.IC_RESP, PduHlen.TERM_REQ, PduHlen.CAPSULE_CMD, PduHlen.CAPSULE_RESP],
    [128, 128, 24, 72, 24],
  );
  assert.deepEqual([PduHlen.H2C_DATA, PduHlen.C2H_DATA, PduHlen.R2T], [24, 24, 24]);
  assert.equal(CapsuleCmd.SQE + SQE_SIZE, CapsuleCmd.HDR_SIZE);
  assert.equal(CapsuleResp.CQE + CQE_SIZE, CapsuleResp.HDR_SIZE);
  assert.equal(DataPdu.RESERVED + 4, DataPdu.HDR_SIZE);
  assert.equal(R2t.RESERVED + 4, R2t.HDR_SIZE);
  assert.equal(TermReq.HDR_SIZE + TermReq.MAX_ERROR_DATA, TermReq.MAX_PLEN);
  assert.deepEqual([IcDigest.HDGST_ENABLE, IcDigest.DDGST_ENABLE], [1, 2]);
});

test('ICReq and ICResp: 128 bytes, fields in place, reserved bytes zero, round trip', () => {
  const b = Buffer.alloc(IcReq.SIZE, 0xee);
  assert.equal(writeIcReq(b, { pfv: 0, hpda: 3, dgst: icDigestBits(true, true), maxr2t: 0x01020304 }), 128);
  assert.equal(b.subarray(0, 16).toString('hex'), '00008000800000000000030304030201');
  assert.ok(b.subarray(16).every((x) => x === 0));
  assert.deepEqual(readIcReq(b), { pfv: 0, hpda: 3, dgst: 3, maxr2t: 0x01020304 });
  const { got, errors } = receive(b, TARGET_ACCEPTS, true, true);
  assert.deepEqual(errors, []);
  assert.equal(got.length, 1, 'IC PDUs never carry digests, whatever was negotiated');
  assert.ok(got[0].pdu.equals(b));

  const r = Buffer.alloc(IcResp.SIZE, 0xee);
  const fields = { pfv: 0, cpda: 0, dgst: IcDigest.DDGST_ENABLE, maxh2cdata: 131072 };
  assert.equal(writeIcResp(r, fields), 128);
  assert.equal(r.subarray(0, 16).toString('hex'), '01008000800000000000000200000200');
  assert.deepEqual(readIcResp(r), fields);
  const host = receive(r, HOST_ACCEPTS, false, false);
  assert.equal(host.got.length, 1);
  assert.equal(host.got[0].pdu[Ch.TYPE], PduType.IC_RESP);
});

test('CapsuleCmd: header length, PDO/PLEN and digests, through the target receiver', () => {
  const sqe = initSqe(Buffer.alloc(SQE_SIZE), 0x01, 1);
  sqe.writeUInt16LE(0x1234, Sqe.CID);
  for (const [hd, dd] of DIGESTS) {
    for (const data of [null, Buffer.from('in-capsule data, 29 bytes ok.')]) {
      const hdr = Buffer.alloc(CapsuleCmd.HDR_SIZE + DIGEST_SIZE, 0xee);
      const len = writeCapsuleCmd(hdr, sqe, data?.length ?? 0, hd, dd);
      assert.equal(len, 72 + (hd ? 4 : 0));
      const ch = readCommonHeader(hdr);
      assert.equal(ch.type, PduType.CAPSULE_CMD);
      assert.equal(ch.hlen, 72);
      assert.equal(ch.pdo, data ? len : 0);
      assert.equal(ch.plen, len + (data ? data.length + (dd ? 4 : 0) : 0));
      assert.equal(ch.flags, (hd ? PduFlags.HDGST : 0) | (dd && data ? PduFlags.DDGST : 0));
      if (hd) assert.equal(hdr.readUInt32LE(72), crc32c(hdr.subarray(0, 72)));
      const back = Buffer.alloc(SQE_SIZE);
      readCapsuleCmdSqe(hdr, back);
      assert.ok(back.equals(sqe));
      const pdu = joinPdu(hdr, len, data, dd);
      assert.equal(pdu.length, ch.plen);
      const { got, errors } = receive(pdu, TARGET_ACCEPTS, hd, dd);
      assert.deepEqual(errors, [], `hd ${hd} dd ${dd}`);
      assert.equal(got.length, 1);
      assert.ok(got[0].ok, 'data digest');
      assert.equal(got[0].data.toString(), data?.toString() ?? '');
    }
  }
});

test('CapsuleResp: completes a CQE filled in place; the host reads CID and CQE back', () => {
  for (const [hd] of DIGESTS) {
    const pdu = Buffer.alloc(CapsuleResp.HDR_SIZE + DIGEST_SIZE, 0xee);
    const cqe = capsuleRespCqe(pdu);
    cqe.fill(0);
    cqe.writeUInt32LE(0xdeadbeef, Cqe.DW0);
    cqe.writeUInt16LE(7, Cqe.SQHD);
    cqe.writeUInt16LE(0x4321, Cqe.CID);
    const len = writeCapsuleResp(pdu, hd);
    assert.equal(len, hd ? 28 : 24);
    assert.equal(pdu.subarray(0, 8).toString('hex'), hd ? '050118001c000000' : '0500180018000000');
    if (hd) assert.equal(pdu.readUInt32LE(24), crc32c(pdu.subarray(0, 24)));
    assert.equal(capsuleRespCid(pdu), 0x4321);
    const into = Buffer.alloc(CQE_SIZE);
    readCapsuleRespCqe(pdu, into);
    assert.equal(into.readUInt32LE(Cqe.DW0), 0xdeadbeef);
    const { got, errors } = receive(pdu.subarray(0, len), HOST_ACCEPTS, hd, false);
    assert.deepEqual(errors, []);
    assert.equal(got.length, 1);
  }
});

test('C2HData: PDO honours the host alignment, padding zeroed, data digest over the payload', () => {
  assert.equal(dataPduPdo(false, 4), 24);
  assert.equal(dataPduPdo(true, 4), 28);
  assert.equal(dataPduPdo(true, 128), 128);
  const data = Buffer.alloc(100);
  for (let i = 0; i < data.length; i++) data[i] = i;
  for (const [hd, dd] of DIGESTS) {
    for (const align of [4, 32, 128]) {
      const hdr = Buffer.alloc(DataPdu.HDR_SIZE + DIGEST_SIZE + 128, 0xee);
      const flags = PduFlags.DATA_LAST | PduFlags.DATA_SUCCESS;
      const pdo = writeC2HData(hdr, 9, 0, data.length, flags, hd, dd, align);
      assert.equal(pdo, dataPduPdo(hd, align));
      assert.ok(
        hdr.subarray(24 + (hd ? 4 : 0), pdo).every((x) => x === 0),
        'padding zero',
      );
      // over a buffer that held other bytes (the slot's header buffer is reused): reserved zero
      assert.equal(hdr.readUInt32LE(DataPdu.RESERVED), 0, 'reserved zero');
      const fields = readDataPduHeader(hdr, newDataPduHeader());
      assert.deepEqual(fields, {
        flags: flags | (hd ? PduFlags.HDGST : 0) | (dd ? PduFlags.DDGST : 0),
        cccid: 9,
        ttag: 0,
        datao: 0,
        datal: 100,
      });
      const pdu = joinPdu(hdr, pdo, data, dd);
      assert.equal(pdu.length, readCommonHeader(hdr).plen);
      if (dd) assert.equal(pdu.readUInt32LE(pdu.length - 4), dataDigest(data));
      const { got, errors } = receive(pdu, HOST_ACCEPTS, hd, dd);
      assert.deepEqual(errors, []);
      assert.ok(got[0].data.equals(data));
      assert.ok(got[0].ok);
    }
  }
});

test('R2T and H2CData: the host answers an R2T with data the target receiver takes', () => {
  for (const [hd, dd] of DIGESTS) {
    const r2t = Buffer.alloc(R2t.HDR_SIZE + DIGEST_SIZE, 0xee);
    const len = writeR2t(r2t, 5, 17, 4096, 8192, hd);
    assert.equal(len, hd ? 28 : 24);
    assert.equal(
      r2t.subarray(0, 24).toString('hex').slice(0, 16),
      `09${hd ? '01' : '00'}1800${hd ? '1c' : '18'}000000`,
    );
    assert.equal(r2t.readUInt32LE(R2t.RESERVED), 0);
    const fields = readR2t(r2t, newR2tFields());
    assert.deepEqual(fields, { cccid: 5, ttag: 17, r2to: 4096, r2tl: 8192 });
    const host = receive(r2t.subarray(0, len), HOST_ACCEPTS, hd, dd);
    assert.deepEqual(host.errors, []);
    assert.equal(host.got.length, 1);

    const data = Buffer.alloc(fields.r2tl, 0x5a);
    const h2c = Buffer.alloc(DataPdu.HDR_SIZE + DIGEST_SIZE, 0xee);
    const pdo = writeH2CData(
      h2c,
      fields.cccid,
      fields.ttag,
      fields.r2to,
      data.length,
      PduFlags.DATA_LAST,
      hd,
      dd,
    );
    assert.equal(pdo, hd ? 28 : 24);
    assert.equal(h2c.readUInt32LE(DataPdu.RESERVED), 0);
    assert.deepEqual(readDataPduHeader(h2c, newDataPduHeader()), {
      flags: PduFlags.DATA_LAST | (hd ? PduFlags.HDGST : 0) | (dd ? PduFlags.DDGST : 0),
      cccid: 5,
      ttag: 17,
      datao: 4096,
      datal: 8192,
    });
    const { got, errors } = receive(joinPdu(h2c, pdo, data, dd), TARGET_ACCEPTS, hd, dd);
    assert.deepEqual(errors, []);
    assert.ok(got[0].data.equals(data));
    assert.ok(got[0].ok);
  }
});

test('TermReq: FES, FEI, the offending header as error data (at most 128 bytes, never data)', () => {
  const offending = Buffer.alloc(CapsuleCmd.HDR_SIZE + 512, 0x11);
  writeCapsuleCmd(offending, Buffer.alloc(SQE_SIZE), 512, false, false);
  assert.equal(termReqErrorDataLength(offending), 72, 'the header, not its data');
  assert.equal(termReqErrorDataLength(null), 0);
  assert.equal(termReqErrorDataLength(Buffer.alloc(4)), 4, 'a fragment shorter than a common header');
  const ic = Buffer.alloc(200);
  writeIcReq(ic, { pfv: 0, hpda: 0, dgst: 0, maxr2t: 0 });
  assert.equal(termReqErrorDataLength(ic), 128);
  assert.equal(termReqFei(TermReqFes.INVALID_HEADER_FIELD, 10), 10);
  assert.equal(termReqFei(TermReqFes.UNSUPPORTED_PARAMETER, 32), 32);
  assert.equal(termReqFei(TermReqFes.PDU_SEQUENCE_ERROR, 10), 0, 'reserved for other FES');

  const pdu = Buffer.alloc(TermReq.HDR_SIZE + 72, 0xee);
  const len = writeTermReq(pdu, PduType.C2H_TERM_REQ, TermReqFes.INVALID_HEADER_FIELD, 2, offending);
  assert.equal(len, 96);
  assert.equal(pdu.subarray(0, 24).toString('hex'), `0300180060000000010002000000${'00'.repeat(10)}`);
  const t = readTermReq(pdu);
  assert.equal(t.fes, TermReqFes.INVALID_HEADER_FIELD);
  assert.equal(t.fei, 2);
  assert.ok(t.errorData.equals(offending.subarray(0, 72)));
  assert.equal(readTermReq(pdu.subarray(0, 30)).errorData.length, 6, 'cut short with the buffer');
  const host = receive(pdu, HOST_ACCEPTS, true, true);
  assert.deepEqual(host.errors, []);
  assert.equal(host.got[0].data.length, 72);

  const h2c = Buffer.alloc(TermReq.HDR_SIZE, 0xee);
  assert.equal(writeTermReq(h2c, PduType.H2C_TERM_REQ, TermReqFes.HDGST_ERROR, 0, null), 24);
  assert.equal(h2c.toString('hex'), `0200180018000000030000000000${'00'.repeat(10)}`);
  assert.equal(receive(h2c, TARGET_ACCEPTS, false, false).got.length, 1);
});
