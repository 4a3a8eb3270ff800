// The in-band authentication messages (wire/auth.ts): each writer's bytes at the
// offsets NVMe base spec 2.0 §8.13 (and SPDK's nvmf_spec.h, Linux's nvme.h) give,
// and each reader returning what was written; the readers' behaviour on short or
// malformed input; the Authentication Send/Receive SQE; the Connect AUTHREQ bits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AUTH_PROTOCOL_DHCHAP,
  AUTH_SECP_NVME,
  AuthFailure,
  AuthMessageId,
  AuthType,
  authFailureName,
  authNegotiateSize,
  ConnectAuthReq,
  connectAuthReq,
  DHCHAP_SUCCESS2_SIZE,
  dhchapChallengeSize,
  dhchapReplySize,
  readAuthCommand,
  readAuthFailure,
  readAuthHeader,
  readAuthNegotiate,
  readDhchapChallenge,
  readDhchapReply,
  readDhchapSuccess1,
  setConnectAuthReq,
  writeAuthFailure,
  writeAuthNegotiate,
  writeAuthReceive,
  writeAuthSend,
  writeDhchapChallenge,
  writeDhchapReply,
  writeDhchapSuccess1,
  writeDhchapSuccess2,
} from '../../../src/wire/auth.ts';
import { FABRICS_OPCODE, FabricsCommandType, SQE_SIZE } from '../../../src/wire/nvme.ts';

test('Authentication Send / Receive SQE: opcode 0x7f, FCTYPE 5/6, SPSP 1/1, SECP 0xe9, TL/AL at byte 44', () => {
  const sqe = Buffer.alloc(SQE_SIZE, 0xee);
  writeAuthSend(sqe, 72);
  assert.equal(sqe[0], FABRICS_OPCODE);
  assert.equal(sqe[4], FabricsCommandType.AUTHENTICATION_SEND);
  assert.equal(sqe[4], 0x05);
  assert.deepEqual([sqe[41], sqe[42], sqe[43]], [1, 1, 0xe9]);
  assert.equal(sqe.readUInt32LE(44), 72);
  assert.deepEqual(readAuthCommand(sqe), { fctype: 5, secp: AUTH_SECP_NVME, spsp0: 1, spsp1: 1, length: 72 });
  writeAuthReceive(sqe, 4096);
  assert.equal(sqe[4], 0x06);
  assert.equal(readAuthCommand(sqe).length, 4096);
});

test('AUTH_Negotiate: header, SC_C, NAPD, a 64-byte descriptor with its id lists at 4 and 34', () => {
  const buf = Buffer.alloc(200, 0xaa);
  const n = writeAuthNegotiate(buf, {
    tid: 0x1234,
    scC: 0,
    protocols: [{ authId: AUTH_PROTOCOL_DHCHAP, hashIds: [1, 2, 3], dhGroupIds: [0, 1, 5] }],
  });
  assert.equal(n, 72);
  assert.equal(authNegotiateSize(1), 72);
  const m = buf.subarray(0, n);
  assert.equal(m.toString('hex', 0, 12), '000000003412000101000303');
  assert.deepEqual([...m.subarray(12, 15)], [1, 2, 3]);
  assert.deepEqual([...m.subarray(42, 45)], [0, 1, 5]);
  assert.equal(m[15], 0, 'unused hash slots are zero');
  const r = readAuthNegotiate(m);
  assert.deepEqual(r, {
    tid: 0x1234,
    scC: 0,
    napd: 1,
    protocols: [{ authId: 1, hashIds: [1, 2, 3], dhGroupIds: [0, 1, 5] }],
    listTooLong: false,
  });
  // a descriptor cut short is not read; HALEN over 30 is flagged
  assert.deepEqual(readAuthNegotiate(m.subarray(0, 40)).protocols, []);
  const bad = Buffer.from(m);
  bad[10] = 31;
  assert.equal(readAuthNegotiate(bad).listTooLong, true);
  assert.equal(readAuthNegotiate(bad).protocols[0].hashIds.length, 30);
});

test('DH-HMAC-CHAP_Challenge: HL, hash id, group id, DHVLEN, seqnum, then C1 and the DH value', () => {
  const c1 = Buffer.alloc(32, 0xc1);
  const dh = Buffer.alloc(256, 0xd1);
  const buf = Buffer.alloc(dhchapChallengeSize(32, 256));
  const n = writeDhchapChallenge(buf, {
    tid: 7,
    hashId: 1,
    dhGroupId: 1,
    seqnum: 0xdeadbeef,
    challenge: c1,
    dhValue: dh,
  });
  assert.equal(n, 16 + 32 + 256);
  assert.deepEqual([buf[0], buf[1], buf.readUInt16LE(4), buf[6], buf[8], buf[9]], [1, 1, 7, 32, 1, 1]);
  assert.equal(buf.readUInt16LE(10), 256);
  assert.equal(buf.readUInt32LE(12), 0xdeadbeef);
  assert.equal(buf[16], 0xc1);
  assert.equal(buf[48], 0xd1);
  const r = readDhchapChallenge(buf);
  assert.ok(r.challenge.equals(c1) && r.dhValue.equals(dh));
  assert.equal(r.seqnum, 0xdeadbeef);
  assert.equal(readAuthHeader(buf)?.authId, AuthMessageId.DHCHAP_CHALLENGE);
});

test('DH-HMAC-CHAP_Reply: R1 and C2 always present (HL each), CVALID, seqnum, the DH value last', () => {
  const r1 = Buffer.alloc(48, 0x11);
  const c2 = Buffer.alloc(48, 0x22);
  const dh = Buffer.alloc(384, 0x33);
  const buf = Buffer.alloc(dhchapReplySize(48, 384));
  assert.equal(
    writeDhchapReply(buf, { tid: 9, response: r1, cvalid: 1, seqnum: 5, challenge: c2, dhValue: dh }),
    16 + 96 + 384,
  );
  assert.deepEqual(
    [buf[0], buf[1], buf[6], buf[8], buf.readUInt16LE(10), buf.readUInt32LE(12)],
    [1, 2, 48, 1, 384, 5],
  );
  assert.equal(buf[16 + 48], 0x22);
  assert.equal(buf[16 + 96], 0x33);
  const r = readDhchapReply(buf);
  assert.ok(r.response.equals(r1) && r.challenge.equals(c2) && r.dhValue.equals(dh));
  assert.equal(r.cvalid, 1);
});

test('Success1 (HL set even without R2, RVALID), Success2, Failure1/2 (RC, RCE)', () => {
  const buf = Buffer.alloc(80, 0xff);
  assert.equal(writeDhchapSuccess1(buf, { tid: 3, hl: 64, response: null }), 16);
  assert.deepEqual([buf[0], buf[1], buf[6], buf[8]], [1, 3, 64, 0]);
  assert.deepEqual(readDhchapSuccess1(buf.subarray(0, 16)), { tid: 3, hl: 64, rvalid: 0, response: null });
  const r2 = Buffer.alloc(64, 0x44);
  assert.equal(writeDhchapSuccess1(buf, { tid: 3, hl: 64, response: r2 }), 80);
  assert.ok(readDhchapSuccess1(buf).response?.equals(r2));
  // RVALID with a buffer too short for R2: no response read
  assert.equal(readDhchapSuccess1(buf.subarray(0, 40)).response, null);
  assert.equal(writeDhchapSuccess2(buf, 3), DHCHAP_SUCCESS2_SIZE);
  assert.deepEqual([buf[0], buf[1], buf.readUInt16LE(4)], [1, 4, 3]);
  assert.equal(writeAuthFailure(buf, 1, { tid: 3, rc: 1, rce: AuthFailure.HASH_UNUSABLE }), 8);
  assert.deepEqual([...buf.subarray(0, 8)], [AuthType.COMMON, 0xf1, 0, 0, 3, 0, 1, 4]);
  assert.deepEqual(readAuthFailure(buf), { tid: 3, rc: 1, rce: 4 });
  writeAuthFailure(buf, 2, { tid: 3, rc: 1, rce: AuthFailure.FAILED });
  assert.equal(buf[1], 0xf0);
  assert.equal(authFailureName(AuthFailure.DHGROUP_UNUSABLE), 'DH group not usable');
  assert.equal(readAuthHeader(Buffer.alloc(5)), null);
});

test('Connect response AUTHREQ: DW0 bits 31:16 (ATR bit 1, ASCR bit 2)', () => {
  const rsp = Buffer.alloc(16);
  rsp.writeUInt16LE(0x0042, 0);
  setConnectAuthReq(rsp, ConnectAuthReq.ATR);
  const dw0 = rsp.readUInt32LE(0);
  assert.equal(dw0, 0x0002_0042);
  assert.equal(connectAuthReq(dw0), ConnectAuthReq.ATR);
  assert.equal(connectAuthReq(0x0004_0001) & ConnectAuthReq.ASCR, ConnectAuthReq.ASCR);
});
