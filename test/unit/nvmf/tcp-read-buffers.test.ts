// NVMe/TCP reads and the lifetime of what they are sent from (docs/ARCHITECTURE.md, one 4 KiB
// read): a read that fits the slot's in-capsule buffer is read into it, a larger one into a
// pool buffer, and the C2HData header sits in the slot too; none of them may be reused before
// the socket's write callback says the burst is written, and a burst's slots must be freed by
// its own callback, not another's. The real target, its TCP poll group and a malloc bdev on
// the thread harness, over a socket that holds the buffers it is given and reads them only
// when the test lets a burst go (as the kernel may copy them as late as the callback), so a
// buffer reused too early shows as another read's data, a wrong CID or a bad data digest.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, test } from 'node:test';
import { bdevGetReplica } from '../../../src/bdev/index.ts';
import { createMallocBdev, type MallocBackend } from '../../../src/modules/bdev/malloc/malloc.ts';
import { type NvmfTarget, setTarget } from '../../../src/nvmf/target.ts';
import { TCP_DEFAULT_OPTIONS, type TcpPollGroup } from '../../../src/nvmf/tcp/index.ts';
import { CONNECT_CATTR_DISABLE_SQFLOW, FabricsSqe, writePropertySet } from '../../../src/wire/fabrics.ts';
import { ControllerRegister, NvmOpcode, SQE_SIZE, Sqe } from '../../../src/wire/nvme.ts';
import {
  SocketWithoutKernel,
  startInProcessTarget,
  TCP_LISTEN,
  tcpWithoutListener,
} from '../../lib/in-process-target.ts';
import { pattern } from '../../lib/pattern.ts';
import {
  capsuleCmd,
  connectCmd,
  type DigestOptions,
  h2cData,
  icDigests,
  icReq,
  ioSqe,
  readTargetStream,
  type TargetReplies,
} from '../../lib/raw-pdu.ts';
import { pollIdle, settle } from '../bdev/harness.ts';
import { CC_ENABLE } from './fake-ctrlr.ts';

const NQN = 'nqn.2016-06.io.spdk:reads';
const BS = 4096;
const BLOCKS = 512;

interface Burst {
  bufs: Buffer[];
  callbacks: (() => void)[];
}

/**
 * A socket with no kernel that keeps the buffers it is given (no copy) and their callbacks,
 * one burst per cork; `transmit` reads a burst's buffers only then, and runs its callbacks.
 */
class HeldSocket extends SocketWithoutKernel {
  private readonly bursts: Burst[] = [];
  private corked: Burst | null = null;
  /** the bytes transmitted so far, not yet parsed */
  private stream: Buffer[] = [];
  override cork(): void {
    this.corked = { bufs: [], callbacks: [] };
    this.bursts.push(this.corked);
  }
  override uncork(): void {
    this.corked = null;
  }
  write(buf: Buffer, cb?: () => void): boolean {
    let b = this.corked;
    if (b === null) {
      b = { bufs: [], callbacks: [] };
      this.bursts.push(b);
    }
    b.bufs.push(buf);
    if (cb !== undefined) b.callbacks.push(cb);
    return true;
  }
  get held(): number {
    return this.bursts.length;
  }
  /** The first `n` bursts held (all by default) leave now: read, then their callbacks run. */
  transmit(n = Number.POSITIVE_INFINITY): void {
    for (let k = 0; k < n && this.bursts.length > 0; k++) {
      const b = this.bursts.shift() as Burst;
      this.stream.push(Buffer.concat(b.bufs));
      for (const cb of b.callbacks) cb();
    }
  }
  /** The PDUs transmitted so far: per CID the CQE status (a C2HData with SUCCESS counts as 0)
   * and the data of its C2HData, its data digest checked when there is one. */
  take(): TargetReplies {
    return readTargetStream(Buffer.concat(this.stream.splice(0)));
  }
}

interface Queue {
  sock: HeldSocket;
  digests: DigestOptions;
  /** the CNTLID the Connect answer gave */
  cntlid: number;
}

const groups: TcpPollGroup[] = [];
let tgt: NvmfTarget;
let cntlid = 0xffff;
let nextCid = 100;

/** Block `lba`'s content: a pattern of its own. */
function blockData(lba: number): Buffer {
  return pattern(BS, 7000 + lba);
}

/** A connection of queue `qid` (0: the admin queue, a new controller): ICReq (digests, hpda),
 * Connect (SQ flow control on or off). */
function connectQueue(qid: number, digests: DigestOptions, hpda: number, sqFlowOff: boolean): Queue {
  const sock = new HeldSocket();
  groups[0].addSocket(sock as unknown as net.Socket, TCP_LISTEN);
  sock.emit('data', icReq({ dgst: icDigests(digests), hpda }));
  pollIdle();
  sock.transmit();
  sock.take();
  const c = connectCmd(1, qid, 64, cntlid, NQN);
  if (sqFlowOff) c.sqe[FabricsSqe.CONNECT_CATTR] = CONNECT_CATTR_DISABLE_SQFLOW;
  sock.emit('data', capsuleCmd(c.sqe, c.data, digests));
  pollIdle();
  sock.transmit();
  const got = sock.take();
  assert.equal(got.status.get(1), 0, `Connect of qid ${qid}`);
  return { sock, digests, cntlid: (got.dw0.get(1) ?? 0) & 0xffff };
}

before(async () => {
  // zcopy: larger writes land in the malloc bdev's memory (reads lend it whatever the option)
  tgt = await startInProcessTarget(settle, tcpWithoutListener(groups), {
    ...TCP_DEFAULT_OPTIONS,
    zcopy: true,
  });
  await settle(createMallocBdev({ name: 'Reads0', numBlocks: BLOCKS, blockSize: BS }));
  await settle(
    tgt.createSubsystem({
      nqn: NQN,
      serial: 'SN-READS',
      model: 'reads',
      allowAnyHost: true,
      maxNamespaces: 8,
      minCntlid: 1,
      maxCntlid: 0xffef,
      anaReporting: false,
    }),
  );
  await settle(tgt.addNamespace(NQN, { bdevName: 'Reads0', nsid: 1 }));
  await settle(tgt.addListener(NQN, TCP_LISTEN));
  const bdev = bdevGetReplica('Reads0');
  assert.ok(bdev !== undefined);
  const mem = (bdev.backend as MallocBackend).mem;
  for (let lba = 0; lba < BLOCKS; lba++) blockData(lba).copy(mem, lba * BS);
  // the admin queue (cntlid still 0xffff: a new controller), then CC.EN
  const admin = connectQueue(0, {}, 0, false);
  cntlid = admin.cntlid;
  const adminSock = admin.sock;
  const enable = Buffer.alloc(SQE_SIZE);
  writePropertySet(enable, ControllerRegister.CC, CC_ENABLE, 4);
  enable.writeUInt16LE(2, Sqe.CID);
  adminSock.emit('data', capsuleCmd(enable));
  pollIdle();
  adminSock.transmit();
  assert.equal(adminSock.take().status.get(2), 0, 'CC.EN set');
});

after(async () => {
  await settle(tgt.stop());
  setTarget(null);
});

/** A batch of reads, each [lba, blocks], sent in one socket read; their CIDs. */
function sendReads(
  q: Queue,
  reads: Array<[number, number]>,
): Array<{ cid: number; lba: number; blocks: number }> {
  const sent = reads.map(([lba, blocks]) => ({ cid: nextCid++, lba, blocks }));
  q.sock.emit(
    'data',
    Buffer.concat(
      sent.map((r) =>
        capsuleCmd(ioSqe(NvmOpcode.READ, r.cid, 1, r.lba, r.blocks, r.blocks * BS), null, q.digests),
      ),
    ),
  );
  pollIdle();
  return sent;
}

/** `count` reads of 4, 8 and 16 KiB (in-capsule buffer, its whole size, a pool buffer) from `base` on. */
function batch(base: number, count: number): Array<[number, number]> {
  const sizes = [1, 2, 4];
  const out: Array<[number, number]> = [];
  let lba = base;
  for (let i = 0; i < count; i++) {
    const blocks = sizes[i % sizes.length];
    out.push([lba, blocks]);
    lba += blocks;
  }
  return out;
}

for (const [name, digests, hpda, sqFlowOff] of [
  ['no digests', {}, 0, false],
  ['header and data digests, a 16-byte data alignment', { hdgst: true, ddgst: true }, 3, false],
  ['SQ flow control off (C2HData with SUCCESS, no response)', {}, 0, true],
] as Array<[string, DigestOptions, number, boolean]>) {
  test(`reads back to back while the socket holds earlier bursts get their own data, ${name}`, () => {
    const qid = name.startsWith('no') ? 1 : name.startsWith('header') ? 2 : 3;
    const q = connectQueue(qid, digests, hpda, sqFlowOff);
    // A and B written, neither transmitted: B takes other slots than A's
    const a = sendReads(q, batch(0, 12));
    const b = sendReads(q, batch(100, 12));
    assert.equal(q.sock.held, 2, 'one burst per batch, both held');
    // A's burst leaves: its slots are free again while B's data is still held
    q.sock.transmit(1);
    // C reuses A's slots (and A's burst); then D on top while C and B are held
    const c = sendReads(q, batch(200, 12));
    const d = sendReads(q, batch(300, 12));
    q.sock.transmit(1); // B
    const e = sendReads(q, batch(400, 12)); // B's slots again, C and D held
    q.sock.transmit();
    const got = q.sock.take();
    for (const r of [...a, ...b, ...c, ...d, ...e]) {
      assert.equal(got.status.get(r.cid), 0, `CID ${r.cid} status`);
      assert.equal(got.success.has(r.cid), sqFlowOff, `CID ${r.cid}: C2HData with SUCCESS`);
      const want = Buffer.concat(Array.from({ length: r.blocks }, (_v, i) => blockData(r.lba + i)));
      const have = got.data.get(r.cid);
      assert.ok(have !== undefined, `CID ${r.cid}: data`);
      assert.ok(have.equals(want), `CID ${r.cid}: LBA ${r.lba}, ${r.blocks} blocks read back intact`);
    }
  });
}

/** A one-block write with its data in the capsule, on queue `q`; its CID. */
function sendWrite(q: Queue, lba: number, data: Buffer): number {
  const cid = nextCid++;
  q.sock.emit('data', capsuleCmd(ioSqe(NvmOpcode.WRITE, cid, 1, lba, 1, BS, true), data, q.digests));
  pollIdle();
  return cid;
}

test('a read sends the malloc bdev’s own memory, and a write to those blocks waits until that burst has left', () => {
  const reader = connectQueue(4, {}, 0, false);
  const writer = connectQueue(5, {}, 0, false);
  // 16 KiB: larger than the in-capsule buffer, so the data is lent, not copied
  const [read] = sendReads(reader, [[60, 4]]);
  assert.equal(reader.sock.held, 1, 'the read is held by the socket');
  const newData = pattern(BS, 99);
  const wcid = sendWrite(writer, 61, newData);
  writer.sock.transmit();
  assert.equal(writer.sock.take().status.has(wcid), false, 'the write waits for the lent read');

  reader.sock.transmit(); // the kernel takes the read's data; its callback ends the lend
  const got = reader.sock.take();
  const want = Buffer.concat([60, 61, 62, 63].map(blockData));
  assert.ok(
    got.data.get(read.cid)?.equals(want),
    'the read carries the blocks as they were when it was issued',
  );
  pollIdle();
  writer.sock.transmit();
  assert.equal(writer.sock.take().status.get(wcid), 0, 'the write completes once the read left');
  const [again] = sendReads(reader, [[61, 1]]);
  reader.sock.transmit();
  assert.ok(reader.sock.take().data.get(again.cid)?.equals(newData));
});

test('a lent read ends with its connection: a write waiting for it goes on', () => {
  const reader = connectQueue(6, {}, 0, false);
  const writer = connectQueue(7, {}, 0, false);
  sendReads(reader, [[80, 4]]);
  const wcid = sendWrite(writer, 82, pattern(BS, 98));
  writer.sock.transmit();
  assert.equal(writer.sock.take().status.has(wcid), false, 'the write waits for the lent read');
  reader.sock.destroy();
  reader.sock.emit('close', false);
  pollIdle();
  writer.sock.transmit();
  assert.equal(writer.sock.take().status.get(wcid), 0, 'the write completes once the reader is gone');
});

// ---- writes larger than the in-capsule buffer, with the zcopy transport option: their data
// lands in the malloc bdev's memory

/** The malloc bdev's counts of writes that landed in its memory and reads that waited for one. */
function landingCounts(): { writes_landed: number; reads_waited: number } {
  const bdev = bdevGetReplica('Reads0');
  assert.ok(bdev !== undefined);
  const info = (bdev.backend as MallocBackend).dumpInfo() as {
    malloc: { zcopy_writes: { writes_landed: number; reads_waited: number } };
  };
  return info.malloc.zcopy_writes;
}

function mallocMemory(): Buffer {
  const bdev = bdevGetReplica('Reads0');
  assert.ok(bdev !== undefined);
  return (bdev.backend as MallocBackend).mem;
}

/** Whether the malloc bdev's memory from block `lba` on holds `data`. */
function blocksHold(lba: number, data: Buffer): boolean {
  return mallocMemory()
    .subarray(lba * BS, lba * BS + data.length)
    .equals(data);
}

/** A write of `blocks` blocks with a transport SGL (its data after an R2T); its CID and R2T tag. */
function startLargeWrite(q: Queue, lba: number, blocks: number): { cid: number; ttag: number } {
  const cid = nextCid++;
  q.sock.emit('data', capsuleCmd(ioSqe(NvmOpcode.WRITE, cid, 1, lba, blocks, blocks * BS), null, q.digests));
  pollIdle();
  q.sock.transmit();
  const ttag = q.sock.take().r2t.get(cid);
  assert.ok(ttag !== undefined, `CID ${cid}: an R2T`);
  return { cid, ttag };
}

function sendH2C(
  q: Queue,
  w: { cid: number; ttag: number },
  datao: number,
  data: Buffer,
  last: boolean,
): void {
  q.sock.emit('data', h2cData({ cccid: w.cid, ttag: w.ttag, datao, last }, data, q.digests));
  pollIdle();
}

test('a larger write’s data lands in the malloc bdev’s memory; reads and writes of its blocks wait for all of it', () => {
  const writer = connectQueue(8, {}, 0, false);
  const reader = connectQueue(9, {}, 0, false);
  const other = connectQueue(10, {}, 0, false);
  const before = landingCounts();
  const w = startLargeWrite(writer, 140, 4);
  assert.equal(landingCounts().writes_landed, before.writes_landed + 1, 'the write lands in the bdev');
  const data = pattern(4 * BS, 555);
  sendH2C(writer, w, 0, data.subarray(0, 2 * BS), false);
  assert.ok(
    blocksHold(140, data.subarray(0, 2 * BS)),
    'the first half is in the bdev’s memory already (no copy after)',
  );
  // a read and a one-block write of those blocks meanwhile, from other queues: both wait
  const [read] = sendReads(reader, [[140, 4]]);
  reader.sock.transmit();
  assert.equal(reader.sock.take().status.has(read.cid), false, 'the read waits for the landing write');
  assert.equal(landingCounts().reads_waited, before.reads_waited + 1);
  const later = pattern(BS, 556);
  const wcid = sendWrite(other, 141, later);
  other.sock.transmit();
  assert.equal(other.sock.take().status.has(wcid), false, 'the other write waits for the landing write');
  writer.sock.transmit();
  assert.equal(writer.sock.take().status.has(w.cid), false, 'no completion before the data is in');

  sendH2C(writer, w, 2 * BS, data.subarray(2 * BS), true);
  writer.sock.transmit();
  assert.equal(writer.sock.take().status.get(w.cid), 0, 'the write completes once its data is in');
  pollIdle();
  reader.sock.transmit();
  assert.ok(
    reader.sock.take().data.get(read.cid)?.equals(data),
    'the read saw the whole write, no half of it',
  );
  other.sock.transmit();
  assert.equal(other.sock.take().status.get(wcid), 0, 'the other write went on after the read');
  const [again] = sendReads(reader, [[140, 4]]);
  reader.sock.transmit();
  const want = Buffer.concat([data.subarray(0, BS), later, data.subarray(2 * BS)]);
  assert.ok(reader.sock.take().data.get(again.cid)?.equals(want), 'both writes in their order');
});

test('a larger write whose connection ends before its data frees its blocks and leaves nothing in flight', async () => {
  const writer = connectQueue(11, {}, 0, false);
  const reader = connectQueue(12, {}, 0, false);
  const before = landingCounts().writes_landed;
  const w = startLargeWrite(writer, 160, 4);
  sendH2C(writer, w, 0, pattern(BS, 557), false);
  const [read] = sendReads(reader, [[160, 4]]);
  reader.sock.transmit();
  assert.equal(reader.sock.take().status.has(read.cid), false, 'the read waits for the landing write');
  writer.sock.destroy();
  writer.sock.emit('close', false);
  pollIdle();
  reader.sock.transmit();
  assert.equal(reader.sock.take().status.get(read.cid), 0, 'the read goes on once the write is gone');
  // a pause waits for every write at the bdevs: nothing is left there to keep it waiting
  await settle(tgt.pauseSubsystem(NQN, 2000));
  await settle(tgt.resumeSubsystem(NQN));
  // the blocks' marks are gone: the next write lands there again, and reads back whole
  const writer2 = connectQueue(13, {}, 0, false);
  const w2 = startLargeWrite(writer2, 160, 4);
  assert.equal(landingCounts().writes_landed, before + 2);
  const data = pattern(4 * BS, 558);
  sendH2C(writer2, w2, 0, data, true);
  writer2.sock.transmit();
  assert.equal(writer2.sock.take().status.get(w2.cid), 0);
  const [back] = sendReads(reader, [[160, 4]]);
  reader.sock.transmit();
  assert.ok(reader.sock.take().data.get(back.cid)?.equals(data));
});

test('a pause waits for a write whose data is landing, which completes while the subsystem is paused', async () => {
  const writer = connectQueue(14, {}, 0, false);
  const w = startLargeWrite(writer, 180, 4);
  let paused = false;
  const pausing = tgt.pauseSubsystem(NQN, 5000).then(() => {
    paused = true;
  });
  for (let i = 0; i < 20; i++) {
    pollIdle();
    await new Promise(setImmediate);
  }
  assert.equal(paused, false, 'the pause waits for the write at the bdev');
  const data = pattern(4 * BS, 559);
  sendH2C(writer, w, 0, data, true);
  writer.sock.transmit();
  assert.equal(writer.sock.take().status.get(w.cid), 0, 'the write completes though the pause began');
  await settle(pausing);
  await settle(tgt.resumeSubsystem(NQN));
  assert.ok(blocksHold(180, data));
});

test('with a data digest a larger write is received into a buffer of its own and copied once checked', () => {
  const writer = connectQueue(15, { hdgst: true, ddgst: true }, 0, false);
  const before = landingCounts().writes_landed;
  const w = startLargeWrite(writer, 200, 4);
  const data = pattern(4 * BS, 560);
  const bad = Buffer.from(data);
  // a wrong digest: the command fails and the blocks keep what they had
  const old = Buffer.from(mallocMemory().subarray(200 * BS, 204 * BS));
  const pdu = h2cData({ cccid: w.cid, ttag: w.ttag, datao: 0 }, bad, writer.digests);
  pdu[pdu.length - 1] ^= 0xff;
  writer.sock.emit('data', pdu);
  pollIdle();
  writer.sock.transmit();
  assert.notEqual(writer.sock.take().status.get(w.cid), 0, 'a data digest error fails the write');
  assert.ok(blocksHold(200, old), 'the blocks are untouched');
  const w2 = startLargeWrite(writer, 200, 4);
  sendH2C(writer, w2, 0, data, true);
  writer.sock.transmit();
  assert.equal(writer.sock.take().status.get(w2.cid), 0);
  assert.equal(landingCounts().writes_landed, before, 'nothing landed');
  assert.ok(blocksHold(200, data));
});

test('without the zcopy option (the default) a larger write is received into a pool buffer', () => {
  const opts = groups[0].opts;
  assert.equal(TCP_DEFAULT_OPTIONS.zcopy, false, 'off by default, as SPDK');
  opts.zcopy = false;
  try {
    const writer = connectQueue(16, {}, 0, false);
    const before = landingCounts().writes_landed;
    const w = startLargeWrite(writer, 220, 4);
    const data = pattern(4 * BS, 561);
    sendH2C(writer, w, 0, data.subarray(0, BS), false);
    assert.ok(!blocksHold(220, data.subarray(0, BS)), 'nothing in place yet');
    sendH2C(writer, w, BS, data.subarray(BS), true);
    writer.sock.transmit();
    assert.equal(writer.sock.take().status.get(w.cid), 0);
    assert.equal(landingCounts().writes_landed, before, 'nothing landed');
    assert.ok(blocksHold(220, data));
  } finally {
    opts.zcopy = true;
  }
});

/** Two writes of `blocks` blocks at `lba` and after it, their R2Ts answered, then all of their
 * data in one read (patterns from `seed` on): the writes and their data. */
function twoWritesInOneRead(q: Queue, lba: number, blocks: number, seed: number) {
  const writes = [startLargeWrite(q, lba, blocks), startLargeWrite(q, lba + blocks, blocks)];
  const data = [pattern(blocks * BS, seed), pattern(blocks * BS, seed + 1)];
  const pdus = writes.map((w, i) =>
    h2cData({ cccid: w.cid, ttag: w.ttag, datao: 0, last: true }, data[i], q.digests),
  );
  q.sock.emit('data', Buffer.concat(pdus));
  pollIdle();
  return { writes, data };
}

test('a write of 64 KiB or more is answered in a burst of its own; smaller ones share the poll’s burst', () => {
  const opts = groups[0].opts;
  opts.zcopy = false; // the default path: data into pool buffers, copied into the bdev
  try {
    const q = connectQueue(17, {}, 0, false);
    // two 64 KiB writes whose data comes in one read: each answer is written as soon as its
    // completion is handled, not gathered with the other into the poll's burst
    const big = twoWritesInOneRead(q, 440, 16, 562);
    assert.equal(q.sock.held, 2, 'one burst per 64 KiB write');
    q.sock.transmit(1);
    const first = q.sock.take();
    assert.equal(first.status.get(big.writes[0].cid), 0, 'the first burst answers the first write');
    assert.equal(first.status.has(big.writes[1].cid), false, 'and only it');
    q.sock.transmit();
    assert.equal(q.sock.take().status.get(big.writes[1].cid), 0);
    assert.ok(blocksHold(440, big.data[0]) && blocksHold(456, big.data[1]));
    // two 16 KiB writes the same way: both answers in the poll's one burst
    const small = twoWritesInOneRead(q, 480, 4, 564);
    assert.equal(q.sock.held, 1, 'one burst for both 16 KiB writes');
    q.sock.transmit();
    const both = q.sock.take();
    assert.equal(both.status.get(small.writes[0].cid), 0);
    assert.equal(both.status.get(small.writes[1].cid), 0);
    assert.ok(blocksHold(480, small.data[0]) && blocksHold(484, small.data[1]));
  } finally {
    opts.zcopy = true;
  }
});
