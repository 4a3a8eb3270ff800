// NVMe/TCP in-capsule writes whose data is lent from the receive buffer (no staging copy
// when the bdev consumes it in submit; docs/ARCHITECTURE.md, one 4 KiB write). The real
// target, its TCP poll group and malloc bdevs on the thread harness; the host writes its PDUs
// into one buffer and reuses it as a connection's receive buffer is reused: once the poll
// that parsed it is over, the buffer is overwritten before anything else runs. Whatever was
// written must read back intact, the module must have seen the data in the receive buffer
// where that is safe, and its own copy where the command outlived the poll (a paused
// subsystem) or the module keeps its I/O (passthru).
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, test } from 'node:test';
import { type BdevIo, BdevIoType, bdevGetReplica } from '../../../src/bdev/index.ts';
import { createMallocBdev } from '../../../src/modules/bdev/malloc/malloc.ts';
import { createPassthruBdev } from '../../../src/modules/bdev/passthru/passthru.ts';
import { type NvmfTarget, setTarget } from '../../../src/nvmf/target.ts';
import { TCP_DEFAULT_OPTIONS, type TcpPollGroup } from '../../../src/nvmf/tcp/index.ts';
import { writePropertySet } from '../../../src/wire/fabrics.ts';
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
  icReq,
  ioSqe,
  readTargetStream,
  type TargetReplies,
} from '../../lib/raw-pdu.ts';
import { pollIdle, pollOnce, settle } from '../bdev/harness.ts';
import { CC_ENABLE } from './fake-ctrlr.ts';

const NQN = 'nqn.2016-06.io.spdk:lent';
const BS = 4096;
const BLOCKS = 256;

/** A socket with no kernel: what the target writes is kept as one stream, parsed by `take`. */
class FakeSocket extends SocketWithoutKernel {
  private out: Buffer[] = [];
  private callbacks: (() => void)[] = [];
  write(buf: Buffer, cb?: () => void): boolean {
    this.out.push(Buffer.from(buf));
    if (cb !== undefined) this.callbacks.push(cb);
    return true;
  }
  /** write callbacks, after the poll as libuv would run them */
  runCallbacks(): void {
    for (const cb of this.callbacks.splice(0)) cb();
  }
  /** The PDUs written so far: the CQE (status, DW0) of each CapsuleResp and the data of each
   * C2HData, by CID. */
  take(): TargetReplies {
    return readTargetStream(Buffer.concat(this.out.splice(0)));
  }
}

const groups: TcpPollGroup[] = [];
const sockets: FakeSocket[] = [];
let tgt: NvmfTarget;
let io: FakeSocket;
/** the host's receive-buffer stand-in: every PDU batch goes through it */
const rx = Buffer.alloc(65536);
/** per bdev: for each WRITE its module saw, whether its data was still in `rx` */
const sawRx = new Map<string, boolean[]>();

/** Run the threads and the write callbacks until nothing is left to do. */
function settleAll(): void {
  for (let i = 0; i < 100; i++) {
    pollIdle();
    for (const g of sockets) g.runCallbacks();
    if (!pollOnce()) return;
  }
  throw new Error('never idle');
}

/** Watch the WRITEs bdev `name`'s module gets (this realm's replica). */
function watchWrites(name: string): void {
  const bdev = bdevGetReplica(name);
  assert.ok(bdev !== undefined);
  const backend = bdev.backend;
  const submit = backend.submit.bind(backend);
  const seen: boolean[] = [];
  sawRx.set(name, seen);
  backend.submit = (bio: BdevIo, ctx: unknown) => {
    if (bio.type === BdevIoType.WRITE) seen.push(bio.iov.some((b) => b.buffer === rx.buffer));
    submit(bio, ctx);
  };
}

/** A connection: ICReq, then Connect of `qid` (`cntlid` 0xffff for an admin queue); returns
 * the socket and the CNTLID the target answered. */
function connectQueue(qid: number, cntlid: number): { sock: FakeSocket; cntlid: number } {
  const sock = new FakeSocket();
  sockets.push(sock);
  groups[0].addSocket(sock as unknown as net.Socket, TCP_LISTEN);
  sock.emit('data', icReq());
  settleAll();
  sock.take();
  const c = connectCmd(1, qid, 64, cntlid, NQN);
  sock.emit('data', capsuleCmd(c.sqe, c.data));
  settleAll();
  const got = sock.take();
  assert.equal(got.status.get(1), 0, `Connect of qid ${qid}`);
  return { sock, cntlid: (got.dw0.get(1) ?? 0) & 0xffff };
}

before(async () => {
  tgt = await startInProcessTarget(settle, tcpWithoutListener(groups), { ...TCP_DEFAULT_OPTIONS });
  await settle(createMallocBdev({ name: 'Lent0', numBlocks: BLOCKS, blockSize: BS }));
  await settle(createMallocBdev({ name: 'Lent1', numBlocks: BLOCKS, blockSize: BS }));
  await settle(createPassthruBdev({ baseBdevName: 'Lent1', name: 'LentPT' }));
  await settle(
    tgt.createSubsystem({
      nqn: NQN,
      serial: 'SN-LENT',
      model: 'lent',
      allowAnyHost: true,
      maxNamespaces: 8,
      minCntlid: 1,
      maxCntlid: 0xffef,
      anaReporting: false,
    }),
  );
  await settle(tgt.addNamespace(NQN, { bdevName: 'Lent0', nsid: 1 }));
  await settle(tgt.addNamespace(NQN, { bdevName: 'LentPT', nsid: 2 }));
  await settle(tgt.addListener(NQN, TCP_LISTEN));
  watchWrites('Lent0');
  watchWrites('Lent1');
  const admin = connectQueue(0, 0xffff);
  const enable = Buffer.alloc(SQE_SIZE);
  writePropertySet(enable, ControllerRegister.CC, CC_ENABLE, 4);
  enable.writeUInt16LE(2, Sqe.CID);
  admin.sock.emit('data', capsuleCmd(enable));
  settleAll();
  assert.equal(admin.sock.take().status.get(2), 0, 'CC.EN set');
  io = connectQueue(1, admin.cntlid).sock;
});

after(async () => {
  await settle(tgt.stop());
  setTarget(null);
});

let nextCid = 100;

/** In-capsule writes of one block each: [nsid, lba, data]. Returns the PDUs and their CIDs. */
function writes(list: Array<[number, number, Buffer]>): { pdus: Buffer[]; cids: number[] } {
  const pdus: Buffer[] = [];
  const cids: number[] = [];
  for (const [nsid, lba, data] of list) {
    const cid = nextCid++;
    cids.push(cid);
    pdus.push(capsuleCmd(ioSqe(NvmOpcode.WRITE, cid, nsid, lba, 1, BS, true), data));
  }
  return { pdus, cids };
}

/**
 * The host's bytes arrive as the socket would deliver them: `cuts` split the stream into
 * chunks, each read into `rx` and parsed by one poll, after which `rx` is overwritten (the
 * next read into a reused buffer) before the threads run on.
 */
function deliverThroughRx(pdus: Buffer[], cuts: number[] = []): void {
  const stream = Buffer.concat(pdus);
  const bounds = [0, ...cuts, stream.length];
  for (let k = 0; k + 1 < bounds.length; k++) {
    assert.ok(bounds[k + 1] - bounds[k] <= rx.length, 'a read fills at most the buffer');
    const n = stream.copy(rx, 0, bounds[k], bounds[k + 1]);
    io.emit('data', rx.subarray(0, n));
    pollOnce();
    rx.fill(0xee);
  }
}

/** Read blocks back through the target: the data of each, by LBA. */
function readBack(nsid: number, lbas: number[]): Buffer[] {
  const cids = lbas.map(() => nextCid++);
  io.emit(
    'data',
    Buffer.concat(lbas.map((lba, i) => capsuleCmd(ioSqe(NvmOpcode.READ, cids[i], nsid, lba, 1, BS)))),
  );
  settleAll();
  const got = io.take();
  return cids.map((cid) => {
    assert.equal(got.status.get(cid), 0, `read of CID ${cid}`);
    const d = got.data.get(cid);
    assert.ok(d !== undefined, `data of CID ${cid}`);
    return d;
  });
}

function seenSince(name: string, from: number): boolean[] {
  return (sawRx.get(name) ?? []).slice(from);
}

test('in-capsule writes to malloc are taken from the receive buffer and read back intact after it is reused', () => {
  const from = sawRx.get('Lent0')?.length ?? 0;
  const lbas = Array.from({ length: 40 }, (_, i) => (i * 37) % BLOCKS);
  const datas = lbas.map((lba) => pattern(BS, 1000 + lba));
  const { pdus, cids } = writes(lbas.map((lba, i) => [1, lba, datas[i]]));
  // 40 capsules in four reads, cut inside a PDU's header, its data, and after its common header
  const one = pdus[0].length;
  deliverThroughRx(pdus, [5 * one + 30, 14 * one + 1000, 27 * one + 8]);
  settleAll();
  const got = io.take();
  for (const cid of cids) assert.equal(got.status.get(cid), 0, `write CID ${cid}`);
  const seen = seenSince('Lent0', from);
  assert.equal(seen.length, 40);
  // the three PDUs cut across reads were reassembled (their own buffer); the rest left in place
  assert.equal(
    seen.filter((s) => s).length,
    37,
    `module saw ${seen.map((s) => (s ? 'rx' : 'own')).join(' ')}`,
  );
  const back = readBack(1, lbas);
  for (let i = 0; i < lbas.length; i++) assert.ok(back[i].equals(datas[i]), `LBA ${lbas[i]}`);
});

test('writes parked by a paused subsystem get their own copy and land intact after the resume', async () => {
  const from = sawRx.get('Lent0')?.length ?? 0;
  await settle(tgt.pauseSubsystem(NQN));
  const lbas = [200, 201, 202, 203, 250];
  const datas = lbas.map((lba) => pattern(BS, 5000 + lba));
  const { pdus, cids } = writes(lbas.map((lba, i) => [1, lba, datas[i]]));
  deliverThroughRx(pdus);
  settleAll();
  assert.equal(io.take().status.size, 0, 'parked: no answer while paused');
  await settle(tgt.resumeSubsystem(NQN));
  settleAll();
  const got = io.take();
  for (const cid of cids) assert.equal(got.status.get(cid), 0, `write CID ${cid}`);
  assert.deepEqual(seenSince('Lent0', from), [false, false, false, false, false]);
  const back = readBack(1, lbas);
  for (let i = 0; i < lbas.length; i++) assert.ok(back[i].equals(datas[i]), `LBA ${lbas[i]}`);
});

test('writes to a module that keeps its I/O (passthru) go down as their own copy', () => {
  const from = sawRx.get('Lent1')?.length ?? 0;
  const lbas = [3, 4, 90, 91];
  const datas = lbas.map((lba) => pattern(BS, 9000 + lba));
  const { pdus, cids } = writes(lbas.map((lba, i) => [2, lba, datas[i]]));
  deliverThroughRx(pdus);
  settleAll();
  const got = io.take();
  for (const cid of cids) assert.equal(got.status.get(cid), 0, `write CID ${cid}`);
  assert.deepEqual(seenSince('Lent1', from), [false, false, false, false]);
  const back = readBack(2, lbas);
  for (let i = 0; i < lbas.length; i++) assert.ok(back[i].equals(datas[i]), `LBA ${lbas[i]}`);
});
