import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SQE_SIZE, Sqe, SqeFlags } from '../../../src/wire/nvme.ts';
import {
  KEYED_SGL_MAX_LENGTH,
  KeyedSgl,
  keyedSglKey,
  keyedSglLength,
  RDMA_CM_RECFMT,
  RdmaAccept,
  RdmaConnectRequest,
  RdmaReject,
  RdmaRejectStatus,
  readRdmaAccept,
  readRdmaConnectRequest,
  readRdmaReject,
  setSqeKeyedSgl,
  setSqeNoData,
  writeRdmaAccept,
  writeRdmaConnectRequest,
  writeRdmaReject,
} from '../../../src/wire/rdma.ts';

test('NVMe/RDMA CM private data: sizes, offsets and reject statuses of the binding', () => {
  assert.equal(RDMA_CM_RECFMT, 0);
  assert.deepEqual(
    [RdmaConnectRequest.SIZE, RdmaConnectRequest.QID, RdmaConnectRequest.HRQSIZE, RdmaConnectRequest.HSQSIZE],
    [32, 2, 4, 6],
  );
  assert.deepEqual([RdmaAccept.SIZE, RdmaAccept.CRQSIZE, RdmaReject.SIZE, RdmaReject.STATUS], [32, 2, 4, 2]);
  assert.deepEqual(Object.values(RdmaRejectStatus), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('connect request private data round-trips, little-endian at its offsets', () => {
  const data = Buffer.alloc(56, 0xee); // the CM delivers it zero-padded to 56 bytes over RoCE
  assert.equal(
    writeRdmaConnectRequest(data, { recfmt: 0, qid: 3, hrqsize: 128, hsqsize: 127, cntlid: 0x1234 }),
    32,
  );
  assert.deepEqual([...data.subarray(0, 10)], [0, 0, 3, 0, 128, 0, 127, 0, 0x34, 0x12]);
  assert.ok(
    data.subarray(10, 32).every((b) => b === 0),
    'the reserved bytes are zero',
  );
  assert.equal(data[32], 0xee, 'nothing past the 32 bytes is written');
  assert.deepEqual(readRdmaConnectRequest(data), {
    recfmt: 0,
    qid: 3,
    hrqsize: 128,
    hsqsize: 127,
    cntlid: 0x1234,
  });
  assert.equal(
    readRdmaConnectRequest(data.subarray(0, 31)),
    null,
    'shorter than the binding says: no fields',
  );
});

test('accept and reject private data round-trip', () => {
  const accept = Buffer.alloc(32, 0xff);
  assert.equal(writeRdmaAccept(accept, 64), 32);
  assert.deepEqual([...accept.subarray(0, 4)], [0, 0, 64, 0]);
  assert.ok(accept.subarray(4).every((b) => b === 0));
  assert.deepEqual(readRdmaAccept(accept), { recfmt: 0, crqsize: 64 });
  const reject = Buffer.alloc(4);
  assert.equal(writeRdmaReject(reject, RdmaRejectStatus.INVALID_HSQSIZE), 4);
  assert.deepEqual([...reject], [0, 0, 4, 0]);
  assert.deepEqual(readRdmaReject(reject), { recfmt: 0, status: 4 });
  assert.equal(readRdmaReject(Buffer.alloc(3)), null);
});

test('keyed SGL data block: address, 24-bit length, key at SQE byte 35, type 0x40 / 0x4f, PSDT = SGL', () => {
  const sqe = Buffer.alloc(SQE_SIZE);
  sqe[Sqe.FLAGS] = 0x01; // a FUSE bit stays
  setSqeKeyedSgl(sqe, 0x89abcdef, 0x01234567, 0x123456, 0xdeadbeef, false);
  assert.equal(KeyedSgl.KEY, 35);
  assert.equal(sqe[Sqe.FLAGS], 0x01 | SqeFlags.PSDT_SGL_MPTR_CONTIG);
  assert.equal(sqe.readBigUInt64LE(KeyedSgl.ADDRESS), 0x0123456789abcdefn);
  assert.deepEqual([...sqe.subarray(32, 40)], [0x56, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde, 0x40]);
  assert.equal(keyedSglLength(sqe), 0x123456);
  assert.equal(keyedSglKey(sqe), 0xdeadbeef);
  setSqeKeyedSgl(sqe, 0, 0, KEYED_SGL_MAX_LENGTH, 1, true);
  assert.equal(sqe[Sqe.SGL_TYPE], 0x4f, 'invalidate-key subtype');
  assert.equal(keyedSglLength(sqe), 0xffffff);
});

test('a command without data carries a zero-length keyed SGL (not a zeroed descriptor)', () => {
  const sqe = Buffer.alloc(SQE_SIZE, 0xaa);
  setSqeNoData(sqe);
  assert.ok(sqe.subarray(Sqe.SGL_ADDRESS, Sqe.SGL_TYPE).every((b) => b === 0));
  assert.equal(sqe[Sqe.SGL_TYPE], 0x40);
  assert.equal(sqe[Sqe.FLAGS] & SqeFlags.PSDT_MASK, SqeFlags.PSDT_SGL_MPTR_CONTIG);
});
