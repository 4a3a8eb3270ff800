import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CapsuleCmd,
  CapsuleResp,
  Ch,
  DataPdu,
  expectedHlen,
  IcReq,
  IcResp,
  PduFlags,
  PduType,
  R2t,
  TermReq,
  TermReqFes,
  writeCommonHeader,
} from '../../../src/wire/tcp.ts';

test('PDU types, flags and FES codes match the NVMe/TCP spec', () => {
  assert.deepEqual(
    [
      PduType.IC_REQ,
      PduType.IC_RESP,
      PduType.H2C_TERM_REQ,
      PduType.C2H_TERM_REQ,
      PduType.CAPSULE_CMD,
      PduType.CAPSULE_RESP,
    ],
    [0, 1, 2, 3, 4, 5],
  );
  assert.deepEqual([PduType.H2C_DATA, PduType.C2H_DATA, PduType.R2T], [6, 7, 9]);
  assert.deepEqual([PduFlags.HDGST, PduFlags.DDGST, PduFlags.DATA_LAST, PduFlags.DATA_SUCCESS], [1, 2, 4, 8]);
  assert.equal(TermReqFes.INVALID_HEADER_FIELD, 1);
  assert.equal(TermReqFes.UNSUPPORTED_PARAMETER, 6);
});

test('header sizes and field offsets', () => {
  assert.equal(Ch.SIZE, 8);
  assert.equal(IcReq.SIZE, 128);
  assert.equal(IcResp.SIZE, 128);
  assert.deepEqual([IcReq.PFV, IcReq.HPDA, IcReq.DGST, IcReq.MAXR2T], [8, 10, 11, 12]);
  assert.deepEqual([IcResp.PFV, IcResp.CPDA, IcResp.DGST, IcResp.MAXH2CDATA], [8, 10, 11, 12]);
  assert.equal(CapsuleCmd.HDR_SIZE, 72);
  assert.equal(CapsuleResp.HDR_SIZE, 24);
  assert.deepEqual(
    [DataPdu.CCCID, DataPdu.TTAG, DataPdu.DATAO, DataPdu.DATAL, DataPdu.HDR_SIZE],
    [8, 10, 12, 16, 24],
  );
  assert.deepEqual([R2t.CCCID, R2t.TTAG, R2t.R2TO, R2t.R2TL], [8, 10, 12, 16]);
  assert.deepEqual([TermReq.FES, TermReq.FEI, TermReq.MIN_PLEN, TermReq.MAX_PLEN], [8, 10, 24, 152]);
  assert.equal(expectedHlen(PduType.CAPSULE_CMD), 72);
  assert.equal(expectedHlen(PduType.R2T), 24);
  assert.equal(expectedHlen(8), -1);
});

test('writeCommonHeader is little-endian in place', () => {
  const b = Buffer.alloc(8);
  writeCommonHeader(b, PduType.C2H_DATA, PduFlags.DATA_LAST | PduFlags.DATA_SUCCESS, 24, 24, 0x01020304);
  assert.equal(b.toString('hex'), '070c181804030201');
});
