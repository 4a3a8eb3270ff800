// The host library's NVMe/RDMA queue pair (src/nvme/rdma-qpair.ts) against a bare
// responder made of fake verbs (test/lib/fake-rdma.ts): what the queue does when a
// completion-channel wake-up finds more completions than it should handle at once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeRdmaQpair } from '../../../src/nvme/rdma-qpair.ts';
import {
  Access,
  type CmEvent,
  CmEventType,
  type CompletionQueue,
  completionField,
  completionId,
  type MemoryRegion,
  type QueuePair,
  resetRdmaRealm,
  SendFlags,
  setSge,
  setWorkRequest,
  substituteRdmaAddon,
  WcOpcode,
  WorkCompletion,
  WorkRequest,
  WrOpcode,
} from '../../../src/rdma/index.ts';
import { AdminOpcode, CQE_SIZE, Cqe, SQE_SIZE, Sqe } from '../../../src/wire/nvme.ts';
import { writeRdmaAccept } from '../../../src/wire/rdma.ts';
import { FakeRdma } from '../../lib/fake-rdma.ts';
import { waitFor } from '../../lib/wait.ts';

const ADDRESS = '10.0.0.1';
const PORT = 4420;
const DEPTH = 128;

/**
 * A controller side that keeps every capsule it receives and answers them all in one
 * go when told to: DEPTH receives, DEPTH response buffers, one CQ it polls itself.
 */
class Responder {
  readonly fabric: FakeRdma;
  readonly memory = Buffer.from(new SharedArrayBuffer(DEPTH * (SQE_SIZE + CQE_SIZE)));
  readonly wrs = new Uint32Array(WorkRequest.WORDS);
  readonly wcs = new Uint32Array(WorkCompletion.WORDS * DEPTH);
  /** CIDs of the capsules received and not answered yet */
  readonly received: number[] = [];
  private readonly mr: MemoryRegion;
  private readonly cq: CompletionQueue;
  private qp: QueuePair | null = null;

  constructor(fabric: FakeRdma) {
    this.fabric = fabric;
    const pd = fabric.device.allocPd();
    this.mr = pd.registerMemory(new Uint8Array(this.memory.buffer), Access.LOCAL_WRITE);
    this.cq = fabric.device.createCq(4 * DEPTH);
    const channel = fabric.createEventChannel();
    const listening = channel.createId();
    listening.bind(ADDRESS, PORT);
    listening.listen();
    channel.start((e: CmEvent) => {
      if (e.type !== CmEventType.CONNECT_REQUEST || e.id === null) return;
      this.qp = e.id.createQp({ pd, sendCq: this.cq, recvCq: this.cq, maxSendWr: DEPTH, maxRecvWr: DEPTH });
      for (let i = 0; i < DEPTH; i++) this.postRecv(i);
      const accept = Buffer.alloc(32);
      writeRdmaAccept(accept, DEPTH);
      e.id.accept({ privateData: accept });
    });
  }

  private postRecv(slot: number): void {
    setWorkRequest(this.wrs, 0, 0, 0, slot, 1);
    setSge(this.wrs, 0, 0, this.mr.index, slot * SQE_SIZE, SQE_SIZE);
    assert.equal(this.qp?.postRecv(this.wrs, 1), 1);
  }

  /** Collect the capsules that arrived (receive completions) and re-post their receives. */
  collect(): void {
    const n = this.cq.poll(this.wcs, DEPTH);
    for (let i = 0; i < n; i++) {
      if (completionField(this.wcs, i, WorkCompletion.OPCODE) !== WcOpcode.RECV) continue;
      const slot = completionId(this.wcs, i);
      this.received.push(this.memory.readUInt16LE(slot * SQE_SIZE + Sqe.CID));
      this.postRecv(slot);
    }
  }

  /** SEND a successful response for every capsule collected, back to back. */
  answerAll(): void {
    const base = DEPTH * SQE_SIZE;
    for (const [i, cid] of this.received.entries()) {
      const at = base + i * CQE_SIZE;
      this.memory.fill(0, at, at + CQE_SIZE);
      this.memory.writeUInt16LE(cid, at + Cqe.CID);
      setWorkRequest(this.wrs, 0, WrOpcode.SEND, SendFlags.SIGNALED, 0x10000 + i, 1);
      setSge(this.wrs, 0, 0, this.mr.index, at, CQE_SIZE);
      assert.equal(this.qp?.postSend(this.wrs, 1), 1);
    }
    this.received.length = 0;
  }
}

const fabric = new FakeRdma();
let responder: Responder;

before(() => {
  resetRdmaRealm();
  substituteRdmaAddon(fabric);
  responder = new Responder(fabric);
});

after(() => {
  substituteRdmaAddon(null);
  resetRdmaRealm();
});

test('a wake-up with more completions than its budget lets the event loop run before it handles the rest', async () => {
  const q = await NvmeRdmaQpair.connect({
    traddr: ADDRESS,
    trsvcid: String(PORT),
    qid: 1,
    queueSize: DEPTH,
    inCapsuleDataSize: 0,
    slotDataSize: 4096,
  });
  try {
    const flush = Buffer.alloc(SQE_SIZE);
    flush[Sqe.OPCODE] = AdminOpcode.KEEP_ALIVE;
    let completed = 0;
    let failed = 0;
    /** completions the queue had handed back when a callback queued after the first one ran */
    let seenByOthers = -1;
    for (let i = 0; i < DEPTH; i++) {
      const sent = q.submit(flush, null, false, (cpl) => {
        if (cpl.readUInt16LE(Cqe.STATUS) >> 1 !== 0) failed++;
        if (completed++ === 0) setImmediate(() => (seenByOthers = completed));
      });
      assert.ok(sent, `command ${i} submitted`);
    }
    await waitFor(`the responder to receive ${DEPTH} capsules`, () => {
      responder.collect();
      return responder.received.length === DEPTH;
    });
    // every response lands in the host's CQ at once; on a slow machine with a resubmitting
    // host this is what a wake-up finds again and again
    responder.answerAll();
    await waitFor(`all ${DEPTH} commands to complete`, () => completed === DEPTH);
    assert.equal(failed, 0, 'every response is a success');
    assert.ok(
      seenByOthers > 0 && seenByOthers < DEPTH,
      `a callback queued at the first completion ran after ${seenByOthers} of ${DEPTH}: the queue handled every completion in one wake-up`,
    );
  } finally {
    q.close();
  }
});
