import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CommandSpecificStatus,
  CQE_SIZE,
  Cqe,
  GenericStatus,
  getDnr,
  getNumBlocks,
  getSlba,
  getStatusCode,
  getStatusCodeType,
  isSuccess,
  MediaErrorStatus,
  SglDescriptor,
  SQE_SIZE,
  Sqe,
  StatusCodeType,
  setCqeIds,
  setSlba,
  setStatus,
  statusOf,
  statusToString,
  u16le,
  u32le,
} from '../../../src/wire/nvme.ts';

test('SQE and CQE sizes and field offsets', () => {
  assert.equal(SQE_SIZE, 64);
  assert.equal(CQE_SIZE, 16);
  assert.equal(Sqe.CID, 2);
  assert.equal(Sqe.NSID, 4);
  assert.equal(Sqe.MPTR, 16);
  assert.equal(Sqe.SGL_ADDRESS, 24);
  assert.equal(Sqe.SGL_LENGTH, 32);
  assert.equal(Sqe.SGL_TYPE, 39);
  assert.equal(Sqe.CDW10, 40);
  assert.equal(Sqe.CDW15 + 4, SQE_SIZE);
  assert.equal(Cqe.SQHD, 8);
  assert.equal(Cqe.SQID, 10);
  assert.equal(Cqe.CID, 12);
  assert.equal(Cqe.STATUS + 2, CQE_SIZE);
  assert.equal(SglDescriptor.IN_CAPSULE, 0x01);
  assert.equal(SglDescriptor.TRANSPORT, 0x5a);
});

test('setStatus packs SC in bits 1-8, SCT in 9-11 and DNR in bit 15', () => {
  const rsp = Buffer.alloc(CQE_SIZE);
  setStatus(rsp, StatusCodeType.MEDIA_ERROR, MediaErrorStatus.COMPARE_FAILURE, true);
  assert.equal(rsp.readUInt16LE(14), (0x85 << 1) | (2 << 9) | 0x8000);
  assert.equal(getStatusCode(rsp), 0x85);
  assert.equal(getStatusCodeType(rsp), 2);
  assert.equal(getDnr(rsp), true);
  assert.equal(isSuccess(rsp), false);
  assert.equal(statusOf(rsp), 0x285);
  setStatus(rsp, StatusCodeType.GENERIC, GenericStatus.SUCCESS);
  assert.equal(isSuccess(rsp), true);
  assert.equal(getDnr(rsp), false);
});

test('status codes match SPDK nvme_spec.h values', () => {
  assert.equal(GenericStatus.INVALID_FIELD, 0x02);
  assert.equal(GenericStatus.COMMAND_SEQUENCE_ERROR, 0x0c);
  assert.equal(GenericStatus.LBA_OUT_OF_RANGE, 0x80);
  assert.equal(CommandSpecificStatus.INVALID_LOG_PAGE, 0x09);
  assert.equal(CommandSpecificStatus.INVALID_QUEUE_SIZE, 0x02);
  assert.equal(statusToString(0, 2), 'INVALID_FIELD (sct 0x0, sc 0x02)');
  assert.equal(statusToString(1, 0x82), 'INVALID_PARAM (sct 0x1, sc 0x82)');
});

test('64-bit SLBA as two 32-bit halves', () => {
  const cmd = Buffer.alloc(SQE_SIZE);
  const lba = 0x12_3456_789a;
  setSlba(cmd, lba);
  assert.equal(cmd.readUInt32LE(40), 0x3456789a);
  assert.equal(cmd.readUInt32LE(44), 0x12);
  assert.equal(getSlba(cmd), lba);
  cmd.writeUInt16LE(7, 48);
  assert.equal(getNumBlocks(cmd), 8);
  cmd.writeUInt16LE(0xffff, 48);
  assert.equal(getNumBlocks(cmd), 0x1_0000, 'NLB is 0-based: 0xffff is 65536 blocks');
  setSlba(cmd, 0x1f_ffff_ffff_ffff);
  assert.equal(getSlba(cmd), 0x1f_ffff_ffff_ffff, 'the largest SLBA a number holds');
});

test('the byte-load field readers agree with Buffer readUInt16LE/readUInt32LE, high bits included', () => {
  const b = Buffer.from([0xff, 0xfe, 0xfd, 0xfc, 0x01, 0x80, 0x00, 0x00, 0x34, 0x12]);
  for (let at = 0; at + 4 <= b.length; at++) assert.equal(u32le(b, at), b.readUInt32LE(at), `u32 at ${at}`);
  for (let at = 0; at + 2 <= b.length; at++) assert.equal(u16le(b, at), b.readUInt16LE(at), `u16 at ${at}`);
  assert.equal(u32le(b, 0), 0xfcfdfeff, 'unsigned, never negative');
  const cqe = Buffer.alloc(CQE_SIZE, 0xaa);
  setCqeIds(cqe, 0xfffe, 0x1234, 0x8001);
  assert.equal(cqe.readUInt16LE(Cqe.SQHD), 0xfffe);
  assert.equal(cqe.readUInt16LE(Cqe.SQID), 0x1234);
  assert.equal(cqe.readUInt16LE(Cqe.CID), 0x8001);
  assert.equal(cqe.readUInt32LE(Cqe.DW0), 0xaaaaaaaa, 'the dwords before are left alone');
});
