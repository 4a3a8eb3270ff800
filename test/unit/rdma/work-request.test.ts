import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Access,
  completionField,
  completionId,
  SendFlags,
  setImmediateOrInvalidate,
  setRemote,
  setSge,
  setWorkRequest,
  splitAddress,
  WcOpcode,
  WorkCompletion,
  WorkRequest,
  WrOpcode,
} from '../../../src/rdma/index.ts';

test('a work request record: header words, SGEs after the 16-word header, 64 words per record', () => {
  assert.equal(WorkRequest.HEADER_WORDS + WorkRequest.MAX_SGE * WorkRequest.SGE_WORDS, WorkRequest.WORDS);
  const wrs = new Uint32Array(WorkRequest.WORDS * 2).fill(0xffffffff);
  setWorkRequest(wrs, 1, WrOpcode.RDMA_READ, SendFlags.SIGNALED | SendFlags.FENCE, 2 ** 40 + 7, 2);
  setSge(wrs, 1, 0, 3, 4096, 512);
  setSge(wrs, 1, 1, 4, 0, 1024);
  setRemote(wrs, 1, 0x89abcdef, 0x01234567, 0xcafe);
  const base = WorkRequest.WORDS;
  assert.deepEqual(
    [...wrs.subarray(base, base + 9)],
    [WrOpcode.RDMA_READ, 3, 7, 256, 2, 0, 0x89abcdef, 0x01234567, 0xcafe],
  );
  assert.deepEqual([...wrs.subarray(base + 16, base + 22)], [3, 4096, 512, 4, 0, 1024]);
  assert.equal(wrs[0], 0xffffffff, 'record 0 untouched');
  // reused for a SEND: the remote fields are cleared, the invalidated key set
  setWorkRequest(wrs, 1, WrOpcode.SEND_WITH_INV, SendFlags.SIGNALED, 9, 1);
  setImmediateOrInvalidate(wrs, 1, 0xabcd);
  assert.deepEqual([...wrs.subarray(base, base + 9)], [WrOpcode.SEND_WITH_INV, 2, 9, 0, 1, 0xabcd, 0, 0, 0]);
});

test('completion records: 64-bit ids from two words, fields by offset', () => {
  const wcs = new Uint32Array(WorkCompletion.WORDS * 2);
  wcs.set([5, 1, 0, WcOpcode.RECV, 64, 17, 0, 0], WorkCompletion.WORDS);
  assert.equal(completionId(wcs, 1), 2 ** 32 + 5);
  assert.equal(completionField(wcs, 1, WorkCompletion.OPCODE), WcOpcode.RECV);
  assert.equal(completionField(wcs, 1, WorkCompletion.BYTE_LEN), 64);
  assert.equal(completionField(wcs, 1, WorkCompletion.QP_NUM), 17);
});

test('splitAddress: the halves setRemote takes', () => {
  assert.deepEqual(splitAddress(0x0123456789abcdefn), { lo: 0x89abcdef, hi: 0x01234567 });
  assert.deepEqual(splitAddress(0xffffffffn + 1n), { lo: 0, hi: 1 });
  assert.equal(Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE, 7);
});
