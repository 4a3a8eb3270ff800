// Command-level bad input on I/O queues, against a real nvmf_tgt over TCP. Each case:
// the NVMe status SPDK's target (lib/nvmf/ctrlr.c, ctrlr_bdev.c, tcp.c) or Linux's
// (drivers/nvme/target/core.c, io-cmd-bdev.c) gives, the Error Information log entry
// (SQID, CID, status) where the core answers, and the same queue doing verified I/O
// right after.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController, type NvmeIoQpair } from '../../../src/nvme/index.ts';
import {
  type ChildTarget,
  ioSqe,
  pattern,
  rawQueue,
  startChildTarget,
  TEST_NQN,
  TEST_NUM_BLOCKS,
} from '../../lib/index.ts';
import { expectErrorLogged, RawQueue, rwSqe, sqe, submitRaw, verifiedIo } from './cmd-lib.ts';

const S = {
  INVALID_OPCODE: 0x01,
  INVALID_FIELD: 0x02,
  ABORTED_MISSING_FUSED: 0x0a,
  INVALID_NAMESPACE: 0x0b,
  DATA_SGL_LENGTH_INVALID: 0x0f,
  SGL_DESCRIPTOR_TYPE_INVALID: 0x11,
  LBA_OUT_OF_RANGE: 0x80,
} as const;

let tgt: ChildTarget;
let c: NvmeController;
let q: NvmeIoQpair;
let nn = 0;

before(async () => {
  tgt = await startChildTarget();
  c = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: tgt.port, subnqn: TEST_NQN },
    { asyncEvents: false, numIoQueues: 4 },
  );
  q = await c.createIoQpair(32);
  const id = await c.identify(1, 0);
  nn = id.readUInt32LE(516);
});

after(async () => {
  await c?.disconnect().catch(() => {});
  await tgt?.stop();
});

/** Run `cmd` on the I/O queue, expect `status`, its error log entry, and working I/O after. */
async function expectIo(
  what: string,
  cmd: Buffer,
  status: number,
  data: Buffer | null = null,
  isRead = false,
  logged = true,
): Promise<void> {
  const r = await submitRaw(q, cmd, data, isRead);
  assert.equal(r.status, status, `${what}: status 0x${r.status.toString(16)}`);
  if (logged) await expectErrorLogged(c, { sqid: q.qid, cid: r.cid, status }, what);
  await verifiedIo(q, 100, status ^ r.cid);
}

test('unknown I/O opcodes and admin opcodes on an I/O queue → INVALID_OPCODE', async () => {
  // SPDK nvmf_bdev_ctrlr: unsupported opcode → Invalid Opcode (after the namespace check)
  await expectIo('vendor opcode 0x80', sqe(0x80, 1), S.INVALID_OPCODE);
  await expectIo('Verify 0x0c (not supported)', sqe(0x0c, 1), S.INVALID_OPCODE);
  await expectIo(
    'Identify (admin) on an I/O queue',
    sqe(0x06, 1),
    S.INVALID_OPCODE,
    Buffer.alloc(4096),
    true,
  );
  await expectIo('Keep Alive (admin) on an I/O queue', sqe(0x18, 1), S.INVALID_OPCODE);
});

test('bad NSIDs on I/O commands → INVALID_NAMESPACE_OR_FORMAT', async () => {
  // SPDK nvmf_ctrlr_process_io_cmd: no active namespace → Invalid Namespace or Format, DNR
  const buf = Buffer.alloc(512);
  assert.ok(nn >= 2, 'the subsystem allows more than one namespace');
  await expectIo('read NSID 0', rwSqe(0x02, 0, 0, 0, 0), S.INVALID_NAMESPACE, buf, true);
  await expectIo('read inactive NSID 2', rwSqe(0x02, 2, 0, 0, 0), S.INVALID_NAMESPACE, buf, true);
  await expectIo('read NSID NN + 1', rwSqe(0x02, nn + 1, 0, 0, 0), S.INVALID_NAMESPACE, buf, true);
  await expectIo('read NSID 0xffffffff', rwSqe(0x02, 0xffffffff, 0, 0, 0), S.INVALID_NAMESPACE, buf, true);
  // Identify VWC bits 2:1 = 10b: no broadcast flush
  await expectIo('flush NSID 0xffffffff', sqe(0x00, 0xffffffff), S.INVALID_NAMESPACE);
  const r = await submitRaw(q, rwSqe(0x02, 0, 0, 0, 0), buf, true);
  assert.ok(r.dnr, 'DNR set: retrying cannot help');
});

test('LBA ranges past the end and SLBA + NLB beyond 64 bits → LBA_OUT_OF_RANGE', async () => {
  // SPDK nvmf_bdev_ctrlr_lba_in_range (overflow-safe), Linux nvmet_bdev: LBA Out of Range
  const last = TEST_NUM_BLOCKS - 1;
  await expectIo(
    'read 2 blocks at the last LBA',
    rwSqe(0x02, 1, last, 0, 1),
    S.LBA_OUT_OF_RANGE,
    Buffer.alloc(1024),
    true,
  );
  await expectIo(
    'write 1 block at NUM_BLOCKS',
    rwSqe(0x01, 1, TEST_NUM_BLOCKS, 0, 0),
    S.LBA_OUT_OF_RANGE,
    Buffer.alloc(512),
  );
  await expectIo(
    'read at SLBA 2^64 - 1 (wraps in 64-bit arithmetic)',
    rwSqe(0x02, 1, 0xffffffff, 0xffffffff, 1),
    S.LBA_OUT_OF_RANGE,
    Buffer.alloc(1024),
    true,
  );
  await expectIo('write zeroes past the end', rwSqe(0x08, 1, last, 0, 7), S.LBA_OUT_OF_RANGE);
  await expectIo(
    'compare past the end',
    rwSqe(0x05, 1, TEST_NUM_BLOCKS + 10, 0, 0),
    S.LBA_OUT_OF_RANGE,
    Buffer.alloc(512),
  );
  const e = await expectErrorLogged(
    c,
    {
      sqid: q.qid,
      cid: (await submitRaw(q, rwSqe(0x02, 1, last, 0, 3), Buffer.alloc(2048), true)).cid,
      status: 0x80,
    },
    'error log LBA',
  );
  assert.equal(e.lba, last, 'the entry names the starting LBA');
  assert.equal(e.nsid, 1, 'and the namespace');
});

test('transfer over MDTS and SGL lengths not matching NLB × block size', async () => {
  // NLB over MDTS (128 KiB) with a small SGL: Invalid Field in Command (NVMe base spec, MDTS)
  await expectIo(
    'read 512 blocks (256 KiB) with a 4 KiB SGL',
    rwSqe(0x02, 1, 0, 0, 511),
    S.INVALID_FIELD,
    Buffer.alloc(4096),
    true,
  );
  // an SGL longer than max_io_size is refused by the transport before the core sees it
  // (SPDK tcp.c answers that with a TermReq; ours with a status, the queue lives on)
  const big = await submitRaw(q, rwSqe(0x02, 1, 0, 0, 511), Buffer.alloc(262144), true);
  assert.equal(big.status, S.DATA_SGL_LENGTH_INVALID, 'SGL over max_io_size');
  await verifiedIo(q, 300, 1);
  // SGL shorter or longer than NLB × 512 (Identify SGLS bit 18 clear; Linux nvmet_check_transfer_len)
  await expectIo(
    'read 8 blocks into a 2 KiB SGL',
    rwSqe(0x02, 1, 0, 0, 7),
    S.DATA_SGL_LENGTH_INVALID,
    Buffer.alloc(2048),
    true,
  );
  await expectIo(
    'read 1 block into an 8 KiB SGL',
    rwSqe(0x02, 1, 0, 0, 0),
    S.DATA_SGL_LENGTH_INVALID,
    Buffer.alloc(8192),
    true,
  );
  await expectIo(
    'write 8 blocks with 1 KiB of data',
    rwSqe(0x01, 1, 0, 0, 7),
    S.DATA_SGL_LENGTH_INVALID,
    Buffer.alloc(1024),
  );
  await expectIo(
    'compare 2 blocks with 4 KiB',
    rwSqe(0x05, 1, 0, 0, 1),
    S.DATA_SGL_LENGTH_INVALID,
    Buffer.alloc(4096),
  );
});

test('Dataset Management: fewer range bytes than NR + 1 ranges, a range past the end', async () => {
  const dsm = (nr0: number) => {
    const cmd = sqe(0x09, 1);
    cmd.writeUInt32LE(nr0, 40);
    cmd.writeUInt32LE(0x4, 44); // deallocate
    return cmd;
  };
  // SPDK nvmf_bdev_ctrlr_unmap: NR ranges > SGL length → Data SGL Length Invalid
  await expectIo(
    'NR = 256 ranges with one range of data',
    dsm(255),
    S.DATA_SGL_LENGTH_INVALID,
    Buffer.alloc(16),
  );
  const range = Buffer.alloc(16);
  range.writeUInt32LE(16, 4);
  range.writeUInt32LE(TEST_NUM_BLOCKS - 8, 8);
  await expectIo('a range running past the end', dsm(0), S.LBA_OUT_OF_RANGE, range);
});

test('fused commands without their pair (as SPDK answers them)', async () => {
  const cmp = rwSqe(0x05, 1, 40, 0, 0);
  cmp[1] = 0x01; // FUSE_FIRST
  const data = pattern(512, 3);
  // a first (compare) followed by a plain read: the first is aborted, the read runs
  const first = submitRaw(q, cmp, data);
  const read = submitRaw(q, rwSqe(0x02, 1, 40, 0, 0), Buffer.alloc(512), true);
  const [f, r] = await Promise.all([first, read]);
  assert.equal(f.status, S.ABORTED_MISSING_FUSED, 'FUSE_FIRST without a second');
  assert.equal(r.status, 0, 'the next command still runs');
  await expectErrorLogged(c, { sqid: q.qid, cid: f.cid, status: S.ABORTED_MISSING_FUSED }, 'first alone');
  // a second with no first
  const wr = rwSqe(0x01, 1, 40, 0, 0);
  wr[1] = 0x02;
  await expectIo('FUSE_SECOND alone', wr, S.ABORTED_MISSING_FUSED, pattern(512, 4));
  // a first that is not a compare
  const badFirst = rwSqe(0x01, 1, 40, 0, 0);
  badFirst[1] = 0x01;
  await expectIo('FUSE_FIRST on a write', badFirst, S.INVALID_OPCODE, pattern(512, 5));
  // FUSE = 11b is reserved
  const reserved = rwSqe(0x02, 1, 40, 0, 0);
  reserved[1] = 0x03;
  await expectIo('FUSE 11b', reserved, S.INVALID_FIELD, Buffer.alloc(512), true);
  // a first then a second that is not a write: first aborted, second Invalid Opcode
  const cmp2 = rwSqe(0x05, 1, 40, 0, 0);
  cmp2[1] = 0x01;
  const rd2 = rwSqe(0x02, 1, 40, 0, 0);
  rd2[1] = 0x02;
  const [f2, s2] = await Promise.all([submitRaw(q, cmp2, data), submitRaw(q, rd2, Buffer.alloc(512), true)]);
  assert.equal(f2.status, S.ABORTED_MISSING_FUSED);
  assert.equal(s2.status, S.INVALID_OPCODE);
  await verifiedIo(q, 48, 6);
});

test('raw capsules: PRP data pointer, unsupported SGL descriptors (same raw queue keeps working)', async () => {
  const { conn, offset } = await rawQueue(tgt.port, TEST_NQN, {}, { ctrlr: c, qid: 3, sqsize: 16 });
  try {
    const raw = new RawQueue(conn, offset);
    let cid = 10;
    const good = async (lba: number) => {
      const data = pattern(4096, lba);
      const w = await raw.command(ioSqe(0x01, cid++, 1, lba, 8, 4096, true), data);
      assert.equal(w.status, 0, 'in-capsule write');
      const r = await raw.command(ioSqe(0x02, cid++, 1, lba, 8, 4096));
      assert.equal(r.status, 0, 'read');
      assert.ok(r.c2h.equals(data), 'read back what was written on the raw queue');
    };
    await good(500);
    // PSDT 00b (PRP) on fabrics: Invalid Field (Linux nvmet_req_init); logged by the core
    const prp = ioSqe(0x02, cid++, 1, 0, 1, 512);
    prp[1] = 0x00;
    const p = await raw.command(prp);
    assert.equal(p.status, S.INVALID_FIELD, 'PSDT = PRP');
    await expectErrorLogged(c, { sqid: 3, cid: p.cid, status: S.INVALID_FIELD }, 'PRP');
    const rsvd = ioSqe(0x02, cid++, 1, 0, 1, 512);
    rsvd[1] = 0xc0;
    assert.equal((await raw.command(rsvd)).status, S.INVALID_FIELD, 'PSDT 11b (reserved)');
    await good(508);
    // SGL descriptors NVMe/TCP does not use: the transport answers SGL Descriptor Type Invalid
    for (const [type, name] of [
      [0x00, 'data block / address'],
      [0x40, 'keyed data block'],
      [0x20, 'segment'],
      [0x5b, 'transport data block, wrong subtype'],
    ] as const) {
      const cmd = ioSqe(0x02, cid++, 1, 0, 1, 512);
      cmd[39] = type;
      const r = await raw.command(cmd);
      assert.equal(r.status, S.SGL_DESCRIPTOR_TYPE_INVALID, `SGL ${name}`);
    }
    await good(516);
    // Fabrics commands an I/O queue does not take (SPDK nvmf_ctrlr_process_fabrics_cmd)
    for (const [fctype, name] of [
      [0x04, 'Property Get'],
      [0x00, 'Property Set'],
      [0x20, 'unknown FCTYPE 0x20'],
    ] as const) {
      const cmd = Buffer.alloc(64);
      cmd[0] = 0x7f;
      cmd[1] = 0x40;
      cmd.writeUInt16LE(cid++, 2);
      cmd[4] = fctype;
      cmd.writeUInt32LE(0x14, 44);
      assert.equal((await raw.command(cmd)).status, S.INVALID_OPCODE, `${name} on an I/O queue`);
    }
    await good(524);
    assert.equal(conn.closed, false, 'the raw queue stayed connected');
  } finally {
    conn.destroy();
  }
  await verifiedIo(q, 600, 7);
});
