// PDU-level bad input against a real nvmf_tgt process (two poll groups):
// every case gets the protocol's answer (C2HTermReq with the FES SPDK's
// lib/nvmf/tcp.c gives, then close; or an NVMe status where the queue stays
// usable), only the offender's connection ends, and a well-behaved host keeps
// completing verified I/O on the same target across it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController } from '../../../src/nvme/index.ts';
import {
  Cqe,
  CqeStatus,
  GenericStatus,
  getStatusCode,
  getStatusCodeType,
  NvmOpcode,
  Sqe,
  StatusCodeType,
} from '../../../src/wire/nvme.ts';
import {
  CapsuleCmd,
  CapsuleResp,
  Ch,
  DataPdu,
  DIGEST_SIZE,
  dataDigest,
  IcReq,
  IcResp,
  newR2tFields,
  PduType,
  R2t,
  readIcResp,
  readR2t,
  TermReq,
  TermReqFes,
  writeCommonHeader,
  writeTermReq,
} from '../../../src/wire/tcp.ts';
import {
  type ChildTarget,
  capsuleCmd,
  cqeAt,
  exchange,
  finalTermReq,
  GoodHost,
  h2cData,
  icReq,
  ioSqe,
  pduOffsets,
  RawConnection,
  rawQueue,
  startByteSplitProxy,
  startChildTarget,
  TEST_NQN,
  termReqAt,
  waitFor,
} from '../../lib/index.ts';

/** What a raw queue received before the TermReq: ICResp and the Connect's CapsuleResp (then an R2T). */
const AFTER_CONNECT = [PduType.IC_RESP, PduType.CAPSULE_RESP];
const AFTER_R2T = [...AFTER_CONNECT, PduType.R2T];

let target: ChildTarget;
let good: GoodHost;
/** a host-library controller whose I/O queues the raw tests open by hand */
let owner: NvmeController;
let nextQid = 1;

before(async () => {
  target = await startChildTarget();
  good = await GoodHost.connect({ port: target.port, lbaBase: 0 });
  owner = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: target.port, subnqn: TEST_NQN });
  await owner.setNumQueues(64);
});

after(async () => {
  await good?.close();
  await owner?.disconnect().catch(() => {});
  const code = await target?.stop();
  assert.equal(code, 0, 'the target exits cleanly after all the bad input');
});

/** Run `bad` while the good host does verified I/O; the good host must be unharmed. */
async function withGoodHost(bad: () => Promise<void>): Promise<void> {
  const since = good.rounds;
  good.start();
  assert.ok(await good.waitRounds(since + 1), 'the good host completes I/O before the bad input');
  await bad();
  const after = good.rounds;
  good.start();
  assert.ok(await good.waitRounds(after + 1), 'the good host completes I/O after the bad input');
  await good.assertHealthy(since, 1);
  assert.ok(target.alive(), 'the target process lives');
  assert.deepEqual(target.uncaughtErrors(), [], 'no exception escaped in the target');
}

interface Expect {
  fes: number;
  fei?: number;
  /** PDUs expected before the TermReq (e.g. the ICResp) */
  before?: number[];
}

function assertTerm(res: { reply: Buffer; closed: boolean }, e: Expect, what: string): void {
  assert.ok(res.closed, `${what}: the target closes the connection`);
  const pdus = pduOffsets(res.reply);
  assert.deepEqual(
    pdus.map((p) => p.type),
    [...(e.before ?? []), PduType.C2H_TERM_REQ],
    `${what}: PDUs sent by the target (${res.reply.subarray(0, 64).toString('hex')})`,
  );
  const t = finalTermReq(res.reply);
  assert.ok(t, `${what}: ends with a C2HTermReq`);
  assert.equal(t.fes, e.fes, `${what}: FES`);
  if (e.fei !== undefined) assert.equal(t.fei, e.fei, `${what}: FEI`);
  assert.ok(
    t.plen >= TermReq.MIN_PLEN && t.plen <= TermReq.MAX_PLEN,
    `${what}: TermReq plen ${t.plen} within 24..152`,
  );
  assert.equal(pdus[pdus.length - 1].plen, t.plen);
}

/** A PDU of `size` bytes whose common header says what the test wants, consistent or not. */
function header(
  type: number,
  hlen: number,
  pdo: number,
  plen: number,
  size = Math.max(hlen, Ch.SIZE),
): Buffer {
  const b = Buffer.alloc(size);
  writeCommonHeader(b, type, 0, hlen, pdo, plen);
  return b;
}

/** Open a raw I/O queue of `owner` and return it with the offset of the next PDU. */
async function rawIo(d: { hdgst?: boolean; ddgst?: boolean } = {}) {
  return rawQueue(target.port, TEST_NQN, d, { ctrlr: owner, qid: nextQid++ });
}

test('random bytes before ICReq: PDU sequence error (anything but an ICReq comes too early), closed', async () => {
  await withGoodHost(async () => {
    const junk = Buffer.from('deadbeef0123456789abcdef00112233445566778899', 'hex');
    assertTerm(await exchange(target.port, [junk]), { fes: TermReqFes.PDU_SEQUENCE_ERROR, fei: 0 }, 'junk');
    // an HTTP request is junk too
    const http = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assertTerm(await exchange(target.port, [http]), { fes: TermReqFes.PDU_SEQUENCE_ERROR, fei: 0 }, 'http');
  });
});

test('random bytes after ICReq: ICResp, then invalid header field', async () => {
  await withGoodHost(async () => {
    const junk = Buffer.from('ee00000000000000ffffffff', 'hex');
    assertTerm(
      await exchange(target.port, [icReq(), junk]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: 0, before: [PduType.IC_RESP] },
      'junk after ICReq',
    );
  });
});

test('a truncated PDU then close: the target closes too and releases the queue', async () => {
  await withGoodHost(async () => {
    const baseline = await target.total('current_qpairs');
    const { conn } = await rawIo();
    const cap = capsuleCmd(ioSqe(NvmOpcode.READ, 9, 1, 0, 1, 512));
    await conn.write(cap.subarray(0, 40));
    conn.socket.end();
    assert.ok(await conn.waitClosed(5000), 'closed');
    await waitFor(
      'no connection left behind',
      async () => (await target.total('current_qpairs')) === baseline,
      {
        timeoutMs: 5000,
        intervalMs: 50,
      },
    );
  });
});

test('a host whose PDUs arrive one byte at a time works (digests on): not an error', async () => {
  await withGoodHost(async () => {
    const proxy = await startByteSplitProxy(target.port);
    try {
      const c = await NvmeController.connect(
        { traddr: '127.0.0.1', trsvcid: proxy.port, subnqn: TEST_NQN, hdgst: true, ddgst: true },
        { kato: 0 },
      );
      try {
        await c.setNumQueues(1);
        const q = await c.createIoQpair(8);
        const data = Buffer.alloc(8192);
        for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 5) & 0xff;
        // 4 KiB in-capsule and 8 KiB through R2T + H2CData, then read back
        await q.writeAsync(1, 20000, 8, data.subarray(0, 4096));
        await q.writeAsync(1, 20008, 16, data);
        const back = Buffer.alloc(8192);
        await q.readAsync(1, 20008, 16, back);
        assert.ok(back.equals(data));
        await q.readAsync(1, 20000, 8, back.subarray(0, 4096));
        assert.ok(back.subarray(0, 4096).equals(data.subarray(0, 4096)));
        await c.disconnect();
      } catch (e) {
        await c.disconnect().catch(() => {});
        throw e;
      }
      assert.ok(proxy.forwarded() > 8192, 'the bytes really went one at a time');
    } finally {
      await proxy.close();
    }
  });
});

test('hlen, plen and pdo that disagree or exceed limits: invalid header field at the offset', async () => {
  await withGoodHost(async () => {
    const ic = [PduType.IC_RESP];
    // ICReq with a wrong hlen / plen
    assertTerm(
      await exchange(target.port, [header(PduType.IC_REQ, 64, 0, 128, 128)]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: Ch.HLEN },
      'ICReq hlen 64',
    );
    assertTerm(
      await exchange(target.port, [header(PduType.IC_REQ, 128, 0, 200, 200)]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: Ch.PLEN },
      'ICReq plen 200',
    );
    // CapsuleCmd hlen 70, plen below hlen, pdo inside the header, pdo past plen
    assertTerm(
      await exchange(target.port, [icReq(), header(PduType.CAPSULE_CMD, 70, 0, 72, 72)]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: Ch.HLEN, before: ic },
      'capsule hlen 70',
    );
    assertTerm(
      await exchange(target.port, [icReq(), header(PduType.CAPSULE_CMD, 72, 0, 40, 72)]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: Ch.PLEN, before: ic },
      'capsule plen 40 < hlen',
    );
    assertTerm(
      await exchange(target.port, [icReq(), header(PduType.CAPSULE_CMD, 72, 8, 72 + 512, 72 + 512)]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: Ch.PDO, before: ic },
      'capsule pdo inside the header',
    );
    assertTerm(
      await exchange(target.port, [icReq(), header(PduType.CAPSULE_CMD, 72, 200, 100, 100)]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: Ch.PDO, before: ic },
      'capsule pdo past plen',
    );
    // a PDU far larger than anything the queue accepts
    assertTerm(
      await exchange(target.port, [icReq(), header(PduType.CAPSULE_CMD, 72, 72, 16 << 20, 72)]),
      { fes: TermReqFes.DATA_TRANSFER_LIMIT_EXCEEDED, fei: 0, before: ic },
      'capsule plen 16 MiB',
    );
    // H2CTermReq longer than a TermReq may be
    assertTerm(
      await exchange(target.port, [icReq(), header(PduType.H2C_TERM_REQ, 24, 0, 4000, 24)]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: Ch.PLEN, before: ic },
      'H2CTermReq plen 4000',
    );
  });
});

test('unknown PDU types and controller-to-host types sent by a host: invalid header field (type)', async () => {
  await withGoodHost(async () => {
    for (const type of [
      0x08,
      0x0a,
      0x7f,
      0xff,
      PduType.IC_RESP,
      PduType.C2H_TERM_REQ,
      PduType.CAPSULE_RESP,
      PduType.C2H_DATA,
      PduType.R2T,
    ]) {
      assertTerm(
        await exchange(target.port, [icReq(), header(type, 24, 0, 24, 24)]),
        { fes: TermReqFes.INVALID_HEADER_FIELD, fei: 0, before: [PduType.IC_RESP] },
        `type 0x${type.toString(16)}`,
      );
    }
  });
});

test('ICReq: a second one is a sequence error; bad PFV/HPDA are invalid fields; any MAXR2T is accepted', async () => {
  await withGoodHost(async () => {
    assertTerm(
      await exchange(target.port, [icReq(), icReq()]),
      { fes: TermReqFes.PDU_SEQUENCE_ERROR, fei: 0, before: [PduType.IC_RESP] },
      'second ICReq',
    );
    assertTerm(
      await exchange(target.port, [icReq({ pfv: 1 })]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: IcReq.PFV },
      'pfv 1',
    );
    assertTerm(
      await exchange(target.port, [icReq({ hpda: 32 })]),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: IcReq.HPDA },
      'hpda 32',
    );
    // we send one R2T per command, which any MAXR2T (0's based) allows: SPDK accepts it too
    const c = await RawConnection.connect(target.port);
    await c.write(icReq({ maxr2t: 0xffffffff, dgst: 0xfc }));
    const reply = await c.waitBytes(IcResp.SIZE);
    assert.equal(reply[Ch.TYPE], PduType.IC_RESP);
    assert.equal(readIcResp(reply).dgst, 0, 'reserved digest bits are not echoed');
    assert.equal(await c.waitClosed(300), false, 'the connection stays open');
    c.destroy();
    // a capsule before any ICReq
    assertTerm(
      await exchange(target.port, [capsuleCmd(ioSqe(NvmOpcode.READ, 1, 1, 0, 1, 512))]),
      { fes: TermReqFes.PDU_SEQUENCE_ERROR, fei: 0 },
      'capsule before ICReq',
    );
  });
});

/** Raw I/O queue with a write of `len` bytes (transport SGL) waiting for data; returns its R2T. */
async function pendingWrite(len: number, d: { hdgst?: boolean; ddgst?: boolean } = {}) {
  const q = await rawIo(d);
  await q.conn.write(capsuleCmd(ioSqe(NvmOpcode.WRITE, 0x77, 1, 30000, len / 512, len), null, d));
  const end = q.offset + R2t.HDR_SIZE + (d.hdgst ? DIGEST_SIZE : 0);
  const got = await q.conn.waitBytes(end);
  assert.equal(
    got[q.offset + Ch.TYPE],
    PduType.R2T,
    `R2T expected: ${got.subarray(q.offset).toString('hex')}`,
  );
  return { ...q, next: end, ...readR2t(got.subarray(q.offset), newR2tFields()) };
}

async function finish(conn: RawConnection): Promise<{ reply: Buffer; closed: boolean }> {
  const closed = await conn.waitClosed(5000);
  conn.destroy();
  return { reply: conn.data, closed };
}

test('H2CData for an unknown TTAG or CID, out-of-range DATAO, DATAL beyond R2TL or MAXH2CDATA', async () => {
  await withGoodHost(async () => {
    const data = Buffer.alloc(4096, 0xab);
    // a TTAG with no R2T outstanding
    let q = await rawIo();
    await q.conn.write(h2cData({ cccid: 5, ttag: 3, datao: 0 }, data));
    assertTerm(
      await finish(q.conn),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: DataPdu.TTAG, before: AFTER_CONNECT },
      'ttag 3',
    );
    // a TTAG no slot can have
    q = await rawIo();
    await q.conn.write(h2cData({ cccid: 5, ttag: 0xffff, datao: 0 }, data));
    assertTerm(
      await finish(q.conn),
      { fes: TermReqFes.PDU_SEQUENCE_ERROR, fei: 0, before: AFTER_CONNECT },
      'ttag 0xffff',
    );
    // right TTAG, wrong command ID
    let w = await pendingWrite(4096);
    assert.equal(w.cccid, 0x77);
    assert.equal(w.r2tl, 4096);
    await w.conn.write(h2cData({ cccid: 0x78, ttag: w.ttag, datao: 0 }, data));
    assertTerm(
      await finish(w.conn),
      { fes: TermReqFes.PDU_SEQUENCE_ERROR, fei: 0, before: AFTER_R2T },
      'wrong cccid',
    );
    // data offset not where the transfer stands
    w = await pendingWrite(8192);
    await w.conn.write(h2cData({ cccid: w.cccid, ttag: w.ttag, datao: 4096 }, data));
    assertTerm(
      await finish(w.conn),
      { fes: TermReqFes.DATA_TRANSFER_OUT_OF_RANGE, fei: 0, before: AFTER_R2T },
      'datao 4096 first',
    );
    // more data than the R2T asked for
    w = await pendingWrite(4096);
    await w.conn.write(h2cData({ cccid: w.cccid, ttag: w.ttag, datao: 0 }, Buffer.alloc(8192)));
    assertTerm(
      await finish(w.conn),
      { fes: TermReqFes.DATA_TRANSFER_OUT_OF_RANGE, fei: 0, before: AFTER_R2T },
      'datal beyond r2tl',
    );
    // a data PDU larger than MAXH2CDATA (131072)
    w = await pendingWrite(131072);
    await w.conn.write(h2cData({ cccid: w.cccid, ttag: w.ttag, datao: 0 }, Buffer.alloc(131072 + 4096)));
    assertTerm(
      await finish(w.conn),
      { fes: TermReqFes.DATA_TRANSFER_LIMIT_EXCEEDED, fei: 0, before: AFTER_R2T },
      'datal beyond maxh2cdata',
    );
    // DATAL disagreeing with the PDU's length
    w = await pendingWrite(4096);
    await w.conn.write(h2cData({ cccid: w.cccid, ttag: w.ttag, datao: 0, datal: 2048 }, data));
    assertTerm(
      await finish(w.conn),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: DataPdu.DATAL, before: AFTER_R2T },
      'datal != plen - pdo',
    );
  });
});

test('a wrong header digest: FES 3', async () => {
  await withGoodHost(async () => {
    const q = await rawIo({ hdgst: true });
    const cap = capsuleCmd(ioSqe(NvmOpcode.READ, 3, 1, 0, 1, 512), null, { hdgst: true });
    cap[CapsuleCmd.HDR_SIZE] ^= 0x40; // the header digest
    await q.conn.write(cap);
    assertTerm(await finish(q.conn), { fes: TermReqFes.HDGST_ERROR, fei: 0, before: AFTER_CONNECT }, 'hdgst');
  });
});

test('a wrong data digest fails that command with Transient Transport Error; the queue stays usable', async () => {
  await withGoodHost(async () => {
    const d = { ddgst: true };
    // in-capsule write with a broken data digest
    const q = await rawIo(d);
    const data = Buffer.alloc(4096, 0x3c);
    const cap = capsuleCmd(ioSqe(NvmOpcode.WRITE, 11, 1, 30100, 8, 4096, true), data, d);
    cap[cap.length - 1] ^= 0xff;
    await q.conn.write(cap);
    // no header digest: CapsuleResp and R2T are 24 bytes each
    const resp1 = q.offset;
    let got = await q.conn.waitBytes(resp1 + CapsuleResp.HDR_SIZE);
    assert.equal(got[resp1 + Ch.TYPE], PduType.CAPSULE_RESP);
    const cqe = cqeAt(got, resp1);
    assert.equal(cqe.readUInt16LE(Cqe.CID), 11, 'CID');
    assert.equal(getStatusCode(cqe), GenericStatus.COMMAND_TRANSIENT_TRANSPORT_ERROR);
    assert.equal(getStatusCodeType(cqe), StatusCodeType.GENERIC, 'generic status');
    // H2CData with a broken data digest: same answer for that command
    await q.conn.write(capsuleCmd(ioSqe(NvmOpcode.WRITE, 12, 1, 30100, 16, 8192), null, d));
    const r2tAt = resp1 + CapsuleResp.HDR_SIZE;
    got = await q.conn.waitBytes(r2tAt + R2t.HDR_SIZE);
    assert.equal(got[r2tAt + Ch.TYPE], PduType.R2T);
    const { ttag } = readR2t(got.subarray(r2tAt), newR2tFields());
    const h2c = h2cData({ cccid: 12, ttag, datao: 0 }, Buffer.alloc(8192, 7), d);
    h2c[h2c.length - 2] ^= 0x01;
    await q.conn.write(h2c);
    const resp2 = r2tAt + R2t.HDR_SIZE;
    got = await q.conn.waitBytes(resp2 + CapsuleResp.HDR_SIZE);
    assert.equal(got[resp2 + Ch.TYPE], PduType.CAPSULE_RESP);
    assert.equal(cqeAt(got, resp2).readUInt16LE(Cqe.CID), 12);
    assert.equal(getStatusCode(cqeAt(got, resp2)), GenericStatus.COMMAND_TRANSIENT_TRANSPORT_ERROR);
    // a correct write on the same connection still succeeds
    const good4k = Buffer.alloc(4096, 0x5e);
    const ok = capsuleCmd(ioSqe(NvmOpcode.WRITE, 13, 1, 30100, 8, 4096, true), good4k, d);
    assert.equal(ok.readUInt32LE(ok.length - DIGEST_SIZE), dataDigest(good4k));
    await q.conn.write(ok);
    const resp3 = resp2 + CapsuleResp.HDR_SIZE;
    got = await q.conn.waitBytes(resp3 + CapsuleResp.HDR_SIZE);
    assert.equal(got[resp3 + Ch.TYPE], PduType.CAPSULE_RESP);
    assert.equal(cqeAt(got, resp3).readUInt16LE(Cqe.CID), 13);
    assert.equal(cqeAt(got, resp3).readUInt16LE(Cqe.STATUS) & ~CqeStatus.PHASE, 0, 'success');
    assert.equal(q.conn.closed, false);
    q.conn.destroy();
  });
});

test('in-capsule data: over the queue limit FES 5, at an offset FES 6, not what the SGL says FES 1', async () => {
  await withGoodHost(async () => {
    // I/O queue: in_capsule_data_size 4096
    let q = await rawIo();
    const big = Buffer.alloc(8192, 1);
    await q.conn.write(capsuleCmd(ioSqe(NvmOpcode.WRITE, 21, 1, 30200, 16, 8192, true), big));
    assertTerm(
      await finish(q.conn),
      { fes: TermReqFes.DATA_TRANSFER_LIMIT_EXCEEDED, fei: 0, before: AFTER_CONNECT },
      'I/O capsule 8 KiB',
    );
    // in-capsule data at a non-zero offset: unsupported parameter at the SGL address
    q = await rawIo();
    const at16 = ioSqe(NvmOpcode.WRITE, 23, 1, 30200, 1, 512, true);
    at16.writeUInt32LE(16, Sqe.SGL_ADDRESS);
    await q.conn.write(capsuleCmd(at16, Buffer.alloc(512)));
    assertTerm(
      await finish(q.conn),
      { fes: TermReqFes.UNSUPPORTED_PARAMETER, fei: CapsuleCmd.SQE + Sqe.SGL_ADDRESS, before: AFTER_CONNECT },
      'in-capsule offset 16',
    );
    // an SGL describing less data than the capsule carries: the PDU length is wrong
    q = await rawIo();
    await q.conn.write(capsuleCmd(ioSqe(NvmOpcode.WRITE, 24, 1, 30200, 1, 512, true), Buffer.alloc(1024)));
    assertTerm(
      await finish(q.conn),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: Ch.PLEN, before: AFTER_CONNECT },
      'SGL 512, data 1024',
    );
    // admin queue: 8 KiB allowed (Fabrics commands), more is not
    q = await rawQueue(target.port, TEST_NQN);
    await q.conn.write(capsuleCmd(ioSqe(0x7f, 22, 0, 0, 1, 12288, true), Buffer.alloc(12288)));
    assertTerm(
      await finish(q.conn),
      { fes: TermReqFes.DATA_TRANSFER_LIMIT_EXCEEDED, fei: 0, before: AFTER_CONNECT },
      'admin capsule 12 KiB',
    );
  });
});

test('an H2CTermReq from the host: the target closes without answering (unless its FES is undefined)', async () => {
  await withGoodHost(async () => {
    const q = await rawIo();
    // with 8 bytes of error data (a zeroed common header)
    const t = Buffer.alloc(TermReq.HDR_SIZE + Ch.SIZE);
    writeTermReq(t, PduType.H2C_TERM_REQ, TermReqFes.PDU_SEQUENCE_ERROR, 0, Buffer.alloc(Ch.SIZE));
    await q.conn.write(t);
    const res = await finish(q.conn);
    assert.ok(res.closed);
    assert.equal(res.reply.length, q.offset, 'nothing after the Connect response');
    assert.equal(termReqAt(res.reply, q.offset), null);
    // one with a FES no TermReq defines is itself answered as an invalid field (SPDK)
    const q2 = await rawIo();
    writeTermReq(t, PduType.H2C_TERM_REQ, 0x77, 0, Buffer.alloc(Ch.SIZE));
    await q2.conn.write(t);
    assertTerm(
      await finish(q2.conn),
      { fes: TermReqFes.INVALID_HEADER_FIELD, fei: TermReq.FES, before: AFTER_CONNECT },
      'FES 0x77',
    );
  });
});

test('only the offending connections ended: the controller that owned them still serves admin and new I/O queues', async () => {
  await withGoodHost(async () => {
    await owner.keepAlive();
    const q = await owner.createIoQpair(8);
    const data = Buffer.alloc(4096, 0x42);
    await q.writeAsync(1, 31000, 8, data);
    const back = Buffer.alloc(4096);
    await q.readAsync(1, 31000, 8, back);
    assert.ok(back.equals(data));
    q.close();
  });
});
