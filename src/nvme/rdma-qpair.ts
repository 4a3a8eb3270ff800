// Host side of one NVMe/RDMA queue pair: rdma_cm connect with the binding's private
// data (QID, HRQSIZE, HSQSIZE; the accept's CRQSIZE, a reject's status), command
// capsules SENT from registered memory with in-capsule data or a keyed SGL over a
// per-slot registered data buffer (the target RDMA READs write data from it and RDMA
// WRITEs read data into it), responses in pre-posted receives. A slot is free again when
// both its response and its SEND's completion came. Commands complete through callbacks,
// as on NvmeTcpQpair; the completion channel's fd is watched by libuv, so an idle host
// sleeps.

import {
  Access,
  type CmEvent,
  CmEventType,
  type CmId,
  type CompletionChannel,
  type CompletionQueue,
  completionField,
  completionId,
  type MemoryRegion,
  type ProtectionDomain,
  type QueuePair,
  type RealmCmChannel,
  realmCmChannel,
  realmPd,
  SendFlags,
  setSge,
  setWorkRequest,
  WcOpcode,
  WcStatus,
  WorkCompletion,
  WorkRequest,
  WrOpcode,
} from '../rdma/index.ts';
import { CQE_SIZE, Cqe, SQE_SIZE, Sqe, setSqeSgl, statusOf } from '../wire/nvme.ts';
import {
  readRdmaAccept,
  readRdmaReject,
  setSqeKeyedSgl,
  setSqeNoData,
  writeRdmaConnectRequest,
} from '../wire/rdma.ts';
import { TcpTransportError } from './errors.ts';
import { QpairCore, QpairSlot } from './qpair.ts';

export interface RdmaQpairConnectOptions {
  traddr: string;
  trsvcid: string;
  /** the queue's ID, sent in the connect request's private data */
  qid: number;
  /** entries in the submission queue (commands in flight at most) */
  queueSize: number;
  /** in-capsule data limit in bytes for host-to-controller data (0: always a keyed SGL) */
  inCapsuleDataSize: number;
  /** ms to wait for address and route resolution and the connection */
  connectTimeoutMs?: number;
  /** bytes of registered data buffer per slot (larger transfers register memory for the command) */
  slotDataSize?: number;
}

const DEFAULT_SLOT_DATA = 128 * 1024;
/** Work request ids: receives above this, SENDs below (their slot index). */
const RECV_ID_BASE = 0x1_0000;
const POLL_BATCH = 16;
/**
 * Batches handled per wake-up before the event loop gets a turn. Without a bound, a host
 * whose completions resubmit (nvmf-perf) can find a new batch after every batch on a slow
 * machine (soft-RoCE under QEMU TCG did) and never return: its timers, and so the end of
 * the run, starve.
 */
const POLL_ROUNDS = 4;

class RdmaHostRequest extends QpairSlot {
  /** where read data lands (the slot's buffer or a region registered for this command) */
  bounce: Buffer | null = null;
  ownRegion: MemoryRegion | null = null;
  sendDone = false;
  rspArrived = false;
  readonly cpl = Buffer.alloc(CQE_SIZE);
}

export class NvmeRdmaQpair extends QpairCore<RdmaHostRequest> {
  /** CRQSIZE of the target's accept */
  crqsize = 0;
  private readonly opts: RdmaQpairConnectOptions;
  private readonly cm: RealmCmChannel;
  private readonly id: CmId;
  private readonly capsuleBytes: number;
  private readonly slotData: number;
  private pd: ProtectionDomain | null = null;
  private channel: CompletionChannel | null = null;
  private cq: CompletionQueue | null = null;
  private qp: QueuePair | null = null;
  private memory: Buffer | null = null;
  private mr: MemoryRegion | null = null;
  private readonly wrs = new Uint32Array(WorkRequest.WORDS);
  private readonly wcs = new Uint32Array(WorkCompletion.WORDS * POLL_BATCH);
  /** a poll is queued with setImmediate (the last wake-up used its whole budget) */
  private pollQueued = false;
  private readonly queuedPoll = (): void => {
    this.pollQueued = false;
    this.pollCq();
  };
  private connectResolve: ((q: NvmeRdmaQpair) => void) | null = null;
  private connectReject: ((e: Error) => void) | null = null;

  private constructor(opts: RdmaQpairConnectOptions) {
    super(opts.queueSize, opts.inCapsuleDataSize, opts.qid, (cid) => new RdmaHostRequest(cid));
    this.opts = opts;
    this.slotData = opts.slotDataSize ?? DEFAULT_SLOT_DATA;
    this.capsuleBytes = SQE_SIZE + Math.max(0, opts.inCapsuleDataSize);
    // throws RdmaUnavailableError (the sentence naming what is missing) without the addon
    this.cm = realmCmChannel();
    this.id = this.cm.createId({ onCmEvent: (e) => this.onCmEvent(e) });
  }

  /** rdma_cm: resolve, connect with the binding's private data, wait for ESTABLISHED. */
  static connect(opts: RdmaQpairConnectOptions): Promise<NvmeRdmaQpair> {
    return new Promise((resolve, reject) => {
      const q = new NvmeRdmaQpair(opts);
      q.cm.hold();
      const timeoutMs = opts.connectTimeoutMs ?? 10000;
      const timer = setTimeout(() => q.fatal('connect timeout'), timeoutMs);
      q.connectResolve = (v) => {
        clearTimeout(timer);
        q.cm.release();
        resolve(v);
      };
      q.connectReject = (e) => {
        clearTimeout(timer);
        q.cm.release();
        reject(e);
      };
      try {
        q.id.resolveAddr(opts.traddr, Number.parseInt(opts.trsvcid, 10), Math.min(timeoutMs, 2000));
      } catch (e) {
        q.fatal(`rdma_resolve_addr: ${(e as Error).message}`);
      }
    });
  }

  private onCmEvent(e: CmEvent): void {
    try {
      switch (e.type) {
        case CmEventType.ADDR_RESOLVED:
          this.id.resolveRoute(2000);
          return;
        case CmEventType.ROUTE_RESOLVED:
          this.setUp();
          return;
        case CmEventType.ESTABLISHED: {
          const accept = e.privateData === null ? null : readRdmaAccept(e.privateData);
          this.crqsize = accept?.crqsize ?? 0;
          const done = this.connectResolve;
          this.connectResolve = null;
          this.connectReject = null;
          done?.(this);
          return;
        }
        case CmEventType.REJECTED: {
          const r = e.privateData === null ? null : readRdmaReject(e.privateData);
          this.fatal(
            r ? `connect rejected: NVMe/RDMA status ${r.status}` : `connect rejected (CM status ${e.status})`,
          );
          return;
        }
        case CmEventType.ADDR_ERROR:
        case CmEventType.ROUTE_ERROR:
        case CmEventType.UNREACHABLE:
        case CmEventType.CONNECT_ERROR:
          this.fatal(`${e.name} (status ${e.status})`);
          return;
        case CmEventType.DISCONNECTED:
        case CmEventType.DEVICE_REMOVAL:
        case CmEventType.TIMEWAIT_EXIT:
          this.fatal(e.type === CmEventType.DEVICE_REMOVAL ? 'RDMA device removed' : 'connection closed');
          return;
        default:
      }
    } catch (err) {
      this.fatal((err as Error).message);
    }
  }

  /** Route known: the device's PD, a CQ on a completion channel, the QP, registered memory, receives. */
  private setUp(): void {
    const device = this.id.device();
    if (device === null) throw new Error('the CM id has no RDMA device');
    const attrs = device.query();
    const qs = this.queueSize;
    this.pd = realmPd(device);
    this.channel = device.createCompChannel();
    // watched with a reference, as a TCP queue's socket: an open queue keeps the process
    // alive (a command waiting for its response must not let the event loop end)
    this.channel.start(() => this.pollCq());
    this.cq = device.createCq(2 * qs + 8, this.channel);
    this.qp = this.id.createQp({
      pd: this.pd,
      sendCq: this.cq,
      recvCq: this.cq,
      maxSendWr: qs + 1,
      maxRecvWr: qs,
      maxSendSge: 1,
      maxRecvSge: 1,
    });
    // per slot: capsule (SQE + in-capsule data), then the response receives, then data buffers
    const bytes = qs * (this.capsuleBytes + CQE_SIZE + this.slotData);
    this.memory = Buffer.from(new SharedArrayBuffer(bytes));
    this.mr = this.pd.registerMemory(
      new Uint8Array(this.memory.buffer),
      Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE,
    );
    for (let i = 0; i < qs; i++) this.postRecv(i);
    const priv = Buffer.alloc(32);
    writeRdmaConnectRequest(priv, { recfmt: 0, qid: this.qid, hrqsize: qs, hsqsize: qs - 1, cntlid: 0 });
    this.id.connect({
      privateData: priv,
      // RDMA READs the target may have outstanding against our memory
      responderResources: Math.max(1, Math.min(16, attrs.maxQpRdAtom)),
      initiatorDepth: 0,
      retryCount: 7,
      rnrRetryCount: 7,
    });
    this.cq.requestNotify();
  }

  private recvOffset(i: number): number {
    return this.queueSize * this.capsuleBytes + i * CQE_SIZE;
  }

  private dataOffset(cid: number): number {
    return this.queueSize * (this.capsuleBytes + CQE_SIZE) + cid * this.slotData;
  }

  private postRecv(i: number): void {
    const mr = this.mr as MemoryRegion;
    setWorkRequest(this.wrs, 0, 0, 0, RECV_ID_BASE + i, 1);
    setSge(this.wrs, 0, 0, mr.index, this.recvOffset(i), CQE_SIZE);
    if ((this.qp as QueuePair).postRecv(this.wrs, 1) !== 1)
      this.fatal(`posting a receive failed: errno ${(this.qp as QueuePair).lastError}`);
  }

  /** A command whose response came (its SEND's completion still due) waits for nothing from the target. */
  protected override awaitsResponse(req: RdmaHostRequest): boolean {
    return req.busy && !req.rspArrived;
  }

  /** The capsule SENT from registered memory: in-capsule data, or a keyed SGL over registered memory. */
  protected override send(req: RdmaHostRequest, cmd: Buffer): boolean {
    const qp = this.qp;
    if (qp === null) {
      this.release(req);
      return false;
    }
    const data = req.data;
    const isRead = req.isRead;
    const memory = this.memory as Buffer;
    const mr = this.mr as MemoryRegion;
    req.sendDone = false;
    req.rspArrived = false;
    req.bounce = null;
    const at = req.cid * this.capsuleBytes;
    const sqe = memory.subarray(at, at + SQE_SIZE);
    cmd.copy(sqe, 0, 0, SQE_SIZE);
    sqe.writeUInt16LE(req.cid, Sqe.CID);
    const len = data ? data.length : 0;
    let sendBytes = SQE_SIZE;
    if (len === 0) setSqeNoData(sqe);
    // (a caller may raise inCapsuleDataSize, as the Connect does; the capsule area stays as made)
    else if (!isRead && len <= this.inCapsuleDataSize && len <= this.capsuleBytes - SQE_SIZE) {
      setSqeSgl(sqe, len, true);
      (data as Buffer).copy(memory, at + SQE_SIZE);
      sendBytes += len;
    } else {
      let address: bigint;
      let rkey: number;
      if (len <= this.slotData) {
        const off = this.dataOffset(req.cid);
        req.bounce = memory.subarray(off, off + len);
        address = mr.address + BigInt(off);
        rkey = mr.rkey;
      } else {
        // larger than the slot's buffer: memory registered for this command alone
        const view = Buffer.from(new SharedArrayBuffer(len));
        const own = (this.pd as ProtectionDomain).registerMemory(
          new Uint8Array(view.buffer),
          Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE,
        );
        req.ownRegion = own;
        req.bounce = view;
        address = own.address;
        rkey = own.rkey;
      }
      if (!isRead) (data as Buffer).copy(req.bounce);
      setSqeKeyedSgl(sqe, Number(address & 0xffff_ffffn), Number(address >> 32n), len, rkey, false);
    }
    setWorkRequest(this.wrs, 0, WrOpcode.SEND, SendFlags.SIGNALED, req.cid, 1);
    setSge(this.wrs, 0, 0, mr.index, at, sendBytes);
    if (qp.postSend(this.wrs, 1) !== 1) {
      this.release(req);
      this.fatal(`posting a command failed: errno ${qp.lastError}`);
      return false;
    }
    return true;
  }

  /**
   * The completion channel fired (or a queued poll is due): drain within the budget, then
   * re-arm and drain once more (a completion between the last poll and the arming raises
   * no event). A spent budget queues the next poll behind the loop's other work instead.
   */
  private pollCq(): void {
    const cq = this.cq;
    if (cq === null || this.closed) return;
    if (!this.drain(cq)) {
      if (this.closed) return;
      cq.requestNotify();
      if (!this.drain(cq)) return;
    }
    if (this.closed || this.pollQueued) return;
    this.pollQueued = true;
    setImmediate(this.queuedPoll);
  }

  /** Up to POLL_ROUNDS batches; true when the budget ran out with completions perhaps still waiting. */
  private drain(cq: CompletionQueue): boolean {
    for (let round = 0; round < POLL_ROUNDS; round++) {
      const n = cq.poll(this.wcs, POLL_BATCH);
      if (n <= 0) return false;
      for (let i = 0; i < n && !this.closed; i++) this.completion(i);
      if (this.closed || n < POLL_BATCH) return false;
    }
    return true;
  }

  private completion(i: number): void {
    const wcs = this.wcs;
    const wrId = completionId(wcs, i);
    const status = completionField(wcs, i, WorkCompletion.STATUS);
    if (status !== WcStatus.SUCCESS) {
      this.fatal(
        status === WcStatus.WR_FLUSH_ERR
          ? 'connection closed'
          : `work request ${wrId} failed: status ${status}`,
      );
      return;
    }
    if (completionField(wcs, i, WorkCompletion.OPCODE) === WcOpcode.RECV) {
      const index = wrId - RECV_ID_BASE;
      const at = this.recvOffset(index);
      const memory = this.memory as Buffer;
      const cid = memory.readUInt16LE(at + Cqe.CID);
      const req = this.slots[cid];
      if (req === undefined || !req.busy || req.rspArrived) {
        this.fatal(`a response for command ${cid}, which is not outstanding`);
        return;
      }
      memory.copy(req.cpl, 0, at, at + CQE_SIZE);
      this.postRecv(index);
      req.rspArrived = true;
      if (req.sendDone) this.finish(req);
      return;
    }
    const req = this.slots[wrId];
    if (req === undefined || !req.busy) return;
    req.sendDone = true;
    if (req.rspArrived) this.finish(req);
  }

  private finish(req: RdmaHostRequest): void {
    if (req.isRead && req.data !== null && req.bounce !== null && statusOf(req.cpl) === 0)
      req.bounce.copy(req.data);
    this.complete(req, req.cpl);
  }

  protected override release(req: RdmaHostRequest): void {
    if (req.ownRegion !== null) {
      try {
        req.ownRegion.deregister();
      } catch {
        // released with the realm
      }
      req.ownRegion = null;
    }
    req.bounce = null;
    super.release(req);
  }

  protected override shutDown(reason: string): void {
    try {
      this.id.disconnect();
    } catch {
      // not connected
    }
    this.cm.unregister(this.id);
    for (const step of [
      () => this.id.destroy(),
      () => this.channel?.stop(),
      () => this.cq?.destroy(),
      () => this.channel?.destroy(),
      () => this.mr?.deregister(),
    ]) {
      try {
        step();
      } catch {
        // already released
      }
    }
    this.qp = null;
    if (this.connectReject) {
      const reject = this.connectReject;
      this.connectReject = null;
      this.connectResolve = null;
      reject(
        new TcpTransportError('ECONNECT', `NVMe/RDMA ${this.opts.traddr}:${this.opts.trsvcid}: ${reason}`),
      );
    }
  }
}
