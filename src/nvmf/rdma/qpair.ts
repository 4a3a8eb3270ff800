// NVMe/RDMA target transport, the queue pair: one RC queue pair's request
// state machine. A command arrives by SEND into a posted receive; its SGL says
// where the data is (in the capsule after the SQE, or in host memory under a
// keyed SGL); write data is fetched with RDMA READ into registered chunks
// before the core sees the command; when the core completes it, read data goes
// to the host by RDMA WRITE and the 16-byte response is SENT behind it (as a
// SEND_WITH_INV when the host asked for its key's invalidation). Work requests
// are batched per poll and posted in one call. A fatal transport error (a
// capsule shorter than an SQE, a failed RDMA operation, the peer gone) ends the
// queue: the binding has no error PDU, the connection is the unit of failure.

import {
  type CmEvent,
  CmEventType,
  type CmId,
  type QueuePair,
  SendFlags,
  setImmediateOrInvalidate,
  setRemote,
  setSge,
  setWorkRequest,
  WcStatus,
  WorkRequest,
  WrOpcode,
} from '../../rdma/index.ts';
import { logger } from '../../util/log.ts';
import {
  Cqe,
  FABRICS_OPCODE,
  GenericStatus,
  getStatusCode,
  getStatusCodeType,
  SglDescriptor,
  SglType,
  Sqe,
  StatusCodeType,
  setStatus,
} from '../../wire/nvme.ts';
import { KeyedSglSubtype, keyedSglKey, keyedSglLength } from '../../wire/rdma.ts';
import { traceCommandComplete } from '../trace.ts';
import {
  type QpairEvents,
  type QueueContext,
  type TransportAddress,
  type TransportOptions,
  XferDir,
} from '../transport.ts';
import type { DataPool, RegisteredMemory, RegisteredSpan } from './buffers.ts';
import {
  EMPTY_IOV,
  MAX_CHUNKS,
  RdmaReqState,
  RdmaRequest,
  type RdmaRequestQueue,
  type RecvBuffer,
  RecvState,
  recvWrId,
  requestWrId,
  WrKind,
  wrKind,
  wrSlot,
} from './request.ts';

const log = logger('nvmf_rdma');

/**
 * Queue pair states: CONNECTING (accepted, until ESTABLISHED or the first command,
 * whichever comes first) → LIVE → CLOSING (disconnect asked or seen, the QP in the error
 * state: waiting for the core to hand back its requests and for the flushed work
 * requests) → CLOSED (the id and its QP destroyed, the core told).
 */
export const RdmaQpairState = {
  CONNECTING: 0,
  LIVE: 1,
  CLOSING: 2,
  CLOSED: 3,
} as const;
export type RdmaQpairState = (typeof RdmaQpairState)[keyof typeof RdmaQpairState];

/** Bytes of the CQE an NVMe/RDMA response SEND carries. */
const RSP_SIZE = 16;
/** A queue that never finishes closing (work requests that never flush) is destroyed anyway. */
const CLOSE_TIMEOUT_MS = 5000;

/** What a queue pair needs of its poll group's per-device part (DevicePoller in poll-group.ts). */
export interface RdmaQpairPoller {
  /** data chunks for keyed SGL transfers */
  readonly pool: DataPool;
  /** the protection domain's registered memory, to place iov entries in SGEs */
  readonly memory: RegisteredMemory;
  /** true when receives are shared (SRQ); false: each queue pair posts its own */
  readonly shared: boolean;
  /** most SGEs one work request of this device's queue pairs carries (send, RDMA READ) */
  readonly maxSendSge: number;
  readonly maxReadSge: number;
  /** a receive the queue pair is done with: reposted to the SRQ (batched), or freed */
  releaseRecv(recv: RecvBuffer): void;
}

/** What a queue pair needs of its poll group (RdmaPollGroup in poll-group.ts). */
export interface RdmaQpairGroup {
  readonly opts: TransportOptions;
  /** the core: told of connected and closed queues and of each received command */
  readonly events: QpairEvents;
  /** the queue pair queued work requests: post them at the next poll */
  markTx(qpair: RdmaQpair): void;
  /** `req` waits for data chunks (its queue pair retries when the poll group frees some) */
  waitForBuffers(req: RdmaRequest): void;
  /** the queue pair is gone (reported disconnected) */
  removeQpair(qpair: RdmaQpair): void;
}

/** What the acceptor negotiated for this queue (connect-request.ts). */
export interface RdmaQueueShape {
  qid: number;
  depth: number;
  readDepth: number;
  /** send queue entries the QP was created with */
  maxSendWr: number;
}

const scratchSpan: RegisteredSpan = { mrIndex: 0, offset: 0 };

/** One NVMe/RDMA queue: its request slots and their state machine. */
export class RdmaQpair implements RdmaRequestQueue {
  qid = 0;
  sqSize = 0;
  context: QueueContext | null = null;
  sqFlowControlDisabled = false;
  readonly trtype = 'RDMA';
  readonly listenAddr: TransportAddress;
  readonly peerAddr: TransportAddress;
  readonly serial: number;
  readonly id: CmId;
  readonly qp: QueuePair;
  /** the QP's number, kept: the QP object refuses use once its id is destroyed */
  readonly qpNum: number;
  readonly shape: RdmaQueueShape;
  state: RdmaQpairState = RdmaQpairState.CONNECTING;
  /** commands received so far; SQHD is this modulo the SQ size */
  commandsReceived = 0;
  /** requests the core holds (onRequest called, complete() not yet) */
  outstanding = 0;
  /** send queue entries held by posted work requests */
  sendWrsInUse = 0;
  /** RDMA READ work requests in flight */
  readWrsInUse = 0;
  /** why the queue is closing (for the log) */
  closeReason = '';
  /** closes the queue when no Fabrics Connect completes in time (cleared on close) */
  connectTimer: NodeJS.Timeout | null = null;
  private readonly group: RdmaQpairGroup;
  private readonly poller: RdmaQpairPoller;
  private readonly slots: RdmaRequest[] = [];
  private readonly freeSlots: RdmaRequest[] = [];
  /** requests waiting for send queue room, in arrival order */
  private readPending: RdmaRequest[] = [];
  private writePending: RdmaRequest[] = [];
  /** work requests built since the last flush */
  private readonly sendWrs: Uint32Array;
  private sendCount = 0;
  private readonly recvWrs: Uint32Array;
  private recvCount = 0;
  /** receives posted to this queue pair's own receive queue (no SRQ) */
  readonly postedRecvs = new Set<RecvBuffer>();
  txQueued = false;
  private connectedReported = false;
  private disconnectReported = false;
  /** set while disconnect() runs: the close completes after it, not inside it */
  private holdFinish = false;
  private closeTimer: NodeJS.Timeout | null = null;

  constructor(
    group: RdmaQpairGroup,
    poller: RdmaQpairPoller,
    id: CmId,
    qp: QueuePair,
    serial: number,
    shape: RdmaQueueShape,
    responses: { buf: Buffer; mrIndex: number; offset: number },
    listenAddr: TransportAddress,
    peerAddr: TransportAddress,
  ) {
    this.group = group;
    this.poller = poller;
    this.id = id;
    this.qp = qp;
    this.qpNum = qp.qpNum;
    this.serial = serial;
    this.shape = shape;
    this.listenAddr = listenAddr;
    this.peerAddr = peerAddr;
    this.qid = shape.qid;
    // A slot stays COMPLETING until its SEND completion is polled, which can come after the
    // host read the response and sent its next command: a margin of a full queue for that.
    const slots = 2 * shape.depth;
    for (let i = 0; i < slots; i++) {
      const at = i * RSP_SIZE;
      const req = new RdmaRequest(
        this,
        i,
        responses.buf.subarray(at, at + RSP_SIZE),
        responses.mrIndex,
        responses.offset + at,
      );
      this.slots.push(req);
    }
    for (let i = slots - 1; i >= 0; i--) this.freeSlots.push(this.slots[i]);
    this.sendWrs = new Uint32Array(WorkRequest.WORDS * shape.maxSendWr);
    this.recvWrs = new Uint32Array(WorkRequest.WORDS * (poller.shared ? 1 : shape.depth));
  }

  /** Bytes of response memory a queue of `depth` needs (its caller registers it). */
  static responseBytes(depth: number): number {
    return 2 * depth * RSP_SIZE;
  }

  get slotCount(): number {
    return this.slots.length;
  }

  /** Give a receive to this queue pair's own receive queue (no SRQ); posted at the next flush. */
  postRecv(recv: RecvBuffer): void {
    recv.state = RecvState.POSTED;
    recv.owner = this.serial;
    this.postedRecvs.add(recv);
    setWorkRequest(this.recvWrs, this.recvCount, 0, 0, recvWrId(recv.index), 1);
    setSge(this.recvWrs, this.recvCount, 0, recv.mrIndex, recv.offset, recv.buf.length);
    this.recvCount++;
    this.queueTx();
  }

  // ---- NvmfQpair

  disconnect(reason = 'disconnect'): void {
    if (this.state === RdmaQpairState.CLOSING || this.state === RdmaQpairState.CLOSED) return;
    this.state = RdmaQpairState.CLOSING;
    this.holdFinish = true;
    this.closeReason = reason;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    log.info(`qpair ${this.serial} (qid ${this.qid}, ${this.peerAddr.traddr}): closing: ${reason}`);
    try {
      // also when still CONNECTING: the host may consider the connection up already
      this.id.disconnect();
    } catch {
      // never connected, or the peer is gone already
    }
    try {
      // everything posted completes, flushed
      this.qp.toError();
    } catch {
      // destroyed with its id
    }
    // nothing still built goes out; requests that never reached the core are freed
    this.unpost();
    for (const req of this.readPending) this.freeSlot(req);
    this.readPending = [];
    for (const req of this.writePending) this.freeSlot(req);
    this.writePending = [];
    for (const req of this.slots) if (req.state === RdmaReqState.NEED_BUFFER) this.freeSlot(req);
    // let the core complete what it parks (AERs, paused I/O): the report waits for them
    if (this.connectedReported && this.outstanding > 0) this.group.events.onQpairClosing?.(this);
    this.closeTimer = setTimeout(() => this.forceClose(), CLOSE_TIMEOUT_MS);
    this.closeTimer.unref();
    this.holdFinish = false;
    this.maybeFinish();
  }

  // ---- CM events (processed in poll, on the poll group's thread)

  onCmEvent(event: CmEvent): void {
    switch (event.type) {
      case CmEventType.ESTABLISHED:
        if (this.state === RdmaQpairState.CONNECTING) this.established();
        return;
      case CmEventType.DISCONNECTED:
      case CmEventType.TIMEWAIT_EXIT:
        this.disconnect('the host disconnected');
        return;
      case CmEventType.DEVICE_REMOVAL:
        this.disconnect('the RDMA device is being removed');
        return;
      case CmEventType.ADDR_CHANGE:
        this.disconnect('the address changed');
        return;
      case CmEventType.REJECTED:
      case CmEventType.UNREACHABLE:
      case CmEventType.CONNECT_ERROR:
        this.disconnect(`connection not established: ${event.name}`);
        return;
      default:
    }
  }

  /** The accepted queue is live: the core hears of it, commands are served. */
  private established(): void {
    this.state = RdmaQpairState.LIVE;
    this.connectedReported = true;
    this.group.events.onQpairConnected(this);
  }

  // ---- receive side (completions, in poll)

  /** A capsule arrived in `recv` (RECV completion). */
  onRecv(recv: RecvBuffer, byteLen: number): void {
    this.postedRecvs.delete(recv);
    recv.state = RecvState.HELD;
    // A SEND from the host proves the connection is up even when the CM's ESTABLISHED
    // has not come (its RTU lost: seen over soft-RoCE under load; SPDK does not wait either)
    if (this.state === RdmaQpairState.CONNECTING) this.established();
    if (this.state !== RdmaQpairState.LIVE) {
      this.poller.releaseRecv(recv);
      return;
    }
    if (byteLen < 64) {
      this.poller.releaseRecv(recv);
      this.fatal(`a capsule of ${byteLen} bytes, shorter than an SQE`);
      return;
    }
    const req = this.freeSlots.pop();
    if (req === undefined) {
      // more commands than the queue holds: the host broke SQ flow control
      this.poller.releaseRecv(recv);
      this.fatal(`more than ${this.slots.length} commands outstanding`);
      return;
    }
    this.commandsReceived++;
    this.parseCapsule(req, recv, byteLen - 64);
  }

  /** A receive of this queue pair's own receive queue completed in error (flushed at close). */
  onRecvError(recv: RecvBuffer, status: number): void {
    this.postedRecvs.delete(recv);
    this.poller.releaseRecv(recv);
    if (status !== WcStatus.WR_FLUSH_ERR) this.fatal(`receive failed: status ${status}`);
  }

  /** The SGL of a new command: no data, in-capsule data, or a keyed SGL to transfer. */
  private parseCapsule(req: RdmaRequest, recv: RecvBuffer, capsuleData: number): void {
    const cmd = recv.cmd;
    req.recv = recv;
    req.cmd = cmd;
    req.rsp.fill(0);
    req.cid = cmd.readUInt16LE(Sqe.CID);
    req.iov = EMPTY_IOV;
    req.length = 0;
    req.xferDir = XferDir.NONE;
    req.invalidate = false;
    req.failed = false;
    req.chunkCount = 0;
    const opcode = cmd[Sqe.OPCODE];
    const dir = (opcode === FABRICS_OPCODE ? cmd[Sqe.FCTYPE] : opcode) & 0x3;
    if (dir === 0) {
      // as SPDK: a command that moves no data is not asked about its SGL
      this.dispatch(req);
      return;
    }
    const sglType = cmd[Sqe.SGL_TYPE];
    if (sglType >> 4 === SglType.KEYED_DATA_BLOCK) {
      const subtype = sglType & 0xf;
      if (subtype !== KeyedSglSubtype.ADDRESS && subtype !== KeyedSglSubtype.INVALIDATE_KEY) {
        this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD);
        return;
      }
      const length = keyedSglLength(cmd);
      req.rkey = keyedSglKey(cmd);
      req.invalidate = subtype === KeyedSglSubtype.INVALIDATE_KEY;
      if (length === 0) {
        this.dispatch(req);
        return;
      }
      if (dir === 3) {
        this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD);
        return;
      }
      if (length > this.group.opts.max_io_size) {
        this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.DATA_SGL_LENGTH_INVALID);
        return;
      }
      req.length = length;
      req.xferDir = dir === 1 ? XferDir.HOST_TO_CONTROLLER : XferDir.CONTROLLER_TO_HOST;
      req.remoteLo = cmd.readUInt32LE(Sqe.SGL_ADDRESS);
      req.remoteHi = cmd.readUInt32LE(Sqe.SGL_ADDRESS + 4);
      if (!this.takeChunks(req)) {
        req.state = RdmaReqState.NEED_BUFFER;
        this.group.waitForBuffers(req);
        return;
      }
      this.afterBuffers(req);
      return;
    }
    if (sglType === SglDescriptor.IN_CAPSULE) {
      const length = cmd.readUInt32LE(Sqe.SGL_LENGTH);
      if (length === 0) {
        this.dispatch(req);
        return;
      }
      // in-capsule data is host-to-controller data (Linux nvmet: Invalid Field otherwise)
      if (dir !== 1) {
        this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD);
        return;
      }
      const limit = recv.inCapsule.length;
      const offset = cmd.readUInt32LE(Sqe.SGL_ADDRESS);
      const offsetHi = cmd.readUInt32LE(Sqe.SGL_ADDRESS + 4);
      if (length > limit) {
        this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.DATA_SGL_LENGTH_INVALID);
        return;
      }
      if (offsetHi !== 0 || offset + length > limit) {
        this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.INVALID_SGL_OFFSET);
        return;
      }
      if (offset + length > capsuleData) {
        // the capsule carries less than its SGL describes
        this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.DATA_SGL_LENGTH_INVALID);
        return;
      }
      req.length = length;
      req.xferDir = XferDir.HOST_TO_CONTROLLER;
      req.iov = [recv.inCapsule.subarray(offset, offset + length)];
      this.dispatch(req);
      return;
    }
    this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.SGL_DESCRIPTOR_TYPE_INVALID);
  }

  /** Lend `req` the chunks its length needs; false (nothing taken) when the pool is short. */
  takeChunks(req: RdmaRequest): boolean {
    const pool = this.poller.pool;
    const n = Math.ceil(req.length / pool.chunkSize);
    if (n > MAX_CHUNKS || n > pool.available) return false;
    for (let i = 0; i < n; i++) {
      const c = pool.get();
      if (c === null) {
        for (let k = 0; k < i; k++) pool.put(req.chunks[k]);
        return false;
      }
      req.chunks[i] = c;
    }
    req.chunkCount = n;
    const iov = req.chunkIov;
    iov.length = n;
    let left = req.length;
    for (let i = 0; i < n; i++) {
      const b = req.chunks[i].buf;
      iov[i] = left >= b.length ? b : b.subarray(0, left);
      left -= iov[i].length;
    }
    req.iov = iov;
    return true;
  }

  /** The poll group found chunks for a request that waited (NEED_BUFFER). */
  resumeWithBuffers(req: RdmaRequest): boolean {
    if (req.state !== RdmaReqState.NEED_BUFFER) return true; // freed meanwhile
    if (!this.takeChunks(req)) return false;
    this.afterBuffers(req);
    return true;
  }

  private afterBuffers(req: RdmaRequest): void {
    if (req.xferDir === XferDir.CONTROLLER_TO_HOST) {
      this.dispatch(req);
      return;
    }
    req.state = RdmaReqState.READ_PENDING;
    if (this.readPending.length > 0 || !this.postRead(req)) this.readPending.push(req);
  }

  /** RDMA READ of the host's data into the chunks; false when the queue has no room now. */
  private postRead(req: RdmaRequest): boolean {
    const perWr = this.poller.maxReadSge;
    const wrs = Math.ceil(req.chunkCount / perWr);
    if (
      this.readWrsInUse + wrs > this.shape.readDepth ||
      this.sendWrsInUse + wrs > this.shape.maxSendWr ||
      this.sendCount + wrs > this.shape.maxSendWr
    ) {
      return false;
    }
    let remoteLo = req.remoteLo;
    let remoteHi = req.remoteHi;
    let chunk = 0;
    for (let w = 0; w < wrs; w++) {
      const last = w === wrs - 1;
      const n = Math.min(perWr, req.chunkCount - chunk);
      const slot = this.sendCount++;
      setWorkRequest(
        this.sendWrs,
        slot,
        WrOpcode.RDMA_READ,
        last ? SendFlags.SIGNALED : 0,
        requestWrId(this.serial, req.index, last ? WrKind.READ_LAST : WrKind.READ),
        n,
      );
      setRemote(this.sendWrs, slot, remoteLo, remoteHi, req.rkey);
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        const c = req.chunks[chunk + i];
        const len = req.iov[chunk + i].length;
        setSge(this.sendWrs, slot, i, c.mrIndex, c.offset, len);
        bytes += len;
      }
      chunk += n;
      // the next work request reads on from where this one stopped (64-bit address)
      const lo = remoteLo + bytes;
      remoteHi = (remoteHi + Math.floor(lo / 0x1_0000_0000)) >>> 0;
      remoteLo = lo >>> 0;
    }
    req.sendWrs = wrs;
    req.readWrs = wrs;
    this.sendWrsInUse += wrs;
    this.readWrsInUse += wrs;
    req.state = RdmaReqState.READING;
    this.queueTx();
    return true;
  }

  /** An RDMA READ work request of `req` completed (`last`: the signaled one). */
  onReadDone(req: RdmaRequest, last: boolean, status: number): void {
    if (req.state !== RdmaReqState.READING) return;
    if (status !== WcStatus.SUCCESS) {
      req.failed = true;
      if (status !== WcStatus.WR_FLUSH_ERR)
        this.fatal(`RDMA READ of command ${req.cid}'s data failed: status ${status}`);
    }
    if (!last) return;
    this.sendWrsInUse -= req.sendWrs;
    this.readWrsInUse -= req.readWrs;
    req.sendWrs = 0;
    req.readWrs = 0;
    if (req.failed || this.state !== RdmaQpairState.LIVE) {
      this.freeSlot(req);
      this.maybeFinish();
      return;
    }
    this.dispatch(req);
    this.drainPending();
  }

  /**
   * The one place a received command goes to the core (with its data, for a write): a
   * hook that must see commands in their order of arrival belongs here.
   */
  private dispatch(req: RdmaRequest): void {
    req.state = RdmaReqState.EXECUTING;
    this.outstanding++;
    this.group.events.onRequest(req);
  }

  /** Answer a command the core never sees (transport-level error). */
  private failEarly(req: RdmaRequest, sct: number, sc: number): void {
    setStatus(req.rsp, sct, sc, true);
    req.xferDir = XferDir.NONE;
    req.state = RdmaReqState.EXECUTING;
    this.outstanding++;
    this.completeRequest(req);
  }

  // ---- completion side

  completeRequest(req: RdmaRequest): void {
    if (req.state !== RdmaReqState.EXECUTING) return; // double completion: ignore
    if (req.traceStart !== 0) traceCommandComplete(req);
    this.outstanding--;
    if (this.state !== RdmaQpairState.LIVE) {
      this.freeSlot(req);
      this.maybeFinish();
      return;
    }
    const rsp = req.rsp;
    rsp.writeUInt16LE(
      this.sqFlowControlDisabled
        ? 0xffff
        : this.sqSize > 0
          ? this.commandsReceived % this.sqSize
          : this.commandsReceived & 0xffff,
      Cqe.SQHD,
    );
    rsp.writeUInt16LE(this.qid, Cqe.SQID);
    rsp.writeUInt16LE(req.cid, Cqe.CID);
    // the receive goes back before the response leaves, so the host's next command finds it
    if (req.recv !== null) {
      this.releaseRecv(req.recv);
      req.recv = null;
    }
    req.state = RdmaReqState.WRITE_PENDING;
    if (this.writePending.length > 0 || !this.postResponse(req)) this.writePending.push(req);
  }

  private releaseRecv(recv: RecvBuffer): void {
    if (this.poller.shared) this.poller.releaseRecv(recv);
    else this.postRecv(recv);
  }

  /** Read data by RDMA WRITE (when the command succeeded), then the response SEND. */
  private postResponse(req: RdmaRequest): boolean {
    const rsp = req.rsp;
    const withData =
      req.xferDir === XferDir.CONTROLLER_TO_HOST &&
      req.length > 0 &&
      getStatusCode(rsp) === 0 &&
      getStatusCodeType(rsp) === 0;
    let writeWrs = 0;
    if (withData) {
      writeWrs = this.placeReadData(req);
      if (writeWrs < 0) {
        // the data could not be placed in registered memory: fail the command instead
        setStatus(rsp, StatusCodeType.GENERIC, GenericStatus.DATA_TRANSFER_ERROR, false);
        writeWrs = 0;
      }
    }
    const need = writeWrs + 1;
    if (this.sendWrsInUse + need > this.shape.maxSendWr || this.sendCount + need > this.shape.maxSendWr)
      return false;
    if (writeWrs > 0) this.buildWrites(req, writeWrs);
    const slot = this.sendCount++;
    const opcode = req.invalidate ? WrOpcode.SEND_WITH_INV : WrOpcode.SEND;
    setWorkRequest(
      this.sendWrs,
      slot,
      opcode,
      SendFlags.SIGNALED,
      requestWrId(this.serial, req.index, WrKind.SEND),
      1,
    );
    if (req.invalidate) setImmediateOrInvalidate(this.sendWrs, slot, req.rkey);
    setSge(this.sendWrs, slot, 0, req.rspMrIndex, req.rspOffset, RSP_SIZE);
    req.sendWrs = need;
    this.sendWrsInUse += need;
    req.state = RdmaReqState.COMPLETING;
    this.queueTx();
    return true;
  }

  /**
   * Make sure every byte of read data sits in registered memory: the core's iov as it is
   * when each entry is registered (the chunks, a malloc bdev's memory), else copied into
   * the request's chunks (zero-filled past a short iov: NVMe has no short read). Returns
   * the RDMA WRITE work requests needed, or -1.
   */
  private placeReadData(req: RdmaRequest): number {
    const perWr = this.poller.maxSendSge;
    let total = 0;
    let direct = req.iov.length <= MAX_CHUNKS;
    for (const b of req.iov) {
      total += b.length;
      if (direct && b.length > 0 && !this.poller.memory.locate(b, scratchSpan)) direct = false;
    }
    if (direct && total >= req.length) {
      // count the entries up to length
      let n = 0;
      let left = req.length;
      for (const b of req.iov) {
        if (left === 0) break;
        if (b.length === 0) continue;
        n++;
        left -= Math.min(left, b.length);
      }
      return Math.ceil(n / perWr);
    }
    // copy into the request's chunks (it has them: the command was given chunks at arrival)
    if (req.chunkCount === 0 && !this.takeChunks(req)) return -1;
    const chunks = req.chunkIov;
    let ci = 0;
    let co = 0;
    let left = req.length;
    for (const b of req.iov) {
      let bo = 0;
      while (left > 0 && bo < b.length) {
        const dst = chunks[ci];
        const n = Math.min(b.length - bo, dst.length - co, left);
        b.copy(dst, co, bo, bo + n);
        bo += n;
        co += n;
        left -= n;
        if (co === dst.length) {
          ci++;
          co = 0;
        }
      }
      if (left === 0) break;
    }
    while (left > 0) {
      const dst = chunks[ci];
      const n = Math.min(dst.length - co, left);
      dst.fill(0, co, co + n);
      left -= n;
      ci++;
      co = 0;
    }
    req.iov = chunks;
    return Math.ceil(req.chunkCount / perWr);
  }

  private buildWrites(req: RdmaRequest, wrs: number): void {
    const perWr = this.poller.maxSendSge;
    const iov = req.iov;
    let remoteLo = req.remoteLo;
    let remoteHi = req.remoteHi;
    let left = req.length;
    let entry = 0;
    for (let w = 0; w < wrs; w++) {
      const slot = this.sendCount++;
      let sges = 0;
      let bytes = 0;
      while (sges < perWr && left > 0 && entry < iov.length) {
        const b = iov[entry++];
        if (b.length === 0) continue;
        const len = Math.min(left, b.length);
        this.poller.memory.locate(b, scratchSpan);
        setSge(this.sendWrs, slot, sges, scratchSpan.mrIndex, scratchSpan.offset, len);
        sges++;
        bytes += len;
        left -= len;
      }
      setWorkRequest(
        this.sendWrs,
        slot,
        WrOpcode.RDMA_WRITE,
        0,
        requestWrId(this.serial, req.index, WrKind.WRITE),
        sges,
      );
      setRemote(this.sendWrs, slot, remoteLo, remoteHi, req.rkey);
      const lo = remoteLo + bytes;
      remoteHi = (remoteHi + Math.floor(lo / 0x1_0000_0000)) >>> 0;
      remoteLo = lo >>> 0;
    }
  }

  /** An RDMA WRITE work request completed: only errors are reported (it is unsignaled). */
  onWriteDone(status: number): void {
    if (status !== WcStatus.SUCCESS && status !== WcStatus.WR_FLUSH_ERR)
      this.fatal(`RDMA WRITE of read data failed: status ${status}`);
  }

  /** The response SEND of `req` completed: the slot is free again. */
  onSendDone(req: RdmaRequest, status: number): void {
    if (req.state !== RdmaReqState.COMPLETING) return;
    this.sendWrsInUse -= req.sendWrs;
    req.sendWrs = 0;
    this.freeSlot(req);
    if (status !== WcStatus.SUCCESS && status !== WcStatus.WR_FLUSH_ERR)
      this.fatal(`response SEND failed: status ${status}`);
    if (this.state === RdmaQpairState.LIVE) this.drainPending();
    else this.maybeFinish();
  }

  /** Requests that waited for send queue room, oldest first: responses before new reads. */
  private drainPending(): void {
    while (this.writePending.length > 0) {
      if (!this.postResponse(this.writePending[0])) return;
      this.writePending.shift();
    }
    while (this.readPending.length > 0) {
      if (!this.postRead(this.readPending[0])) return;
      this.readPending.shift();
    }
  }

  private freeSlot(req: RdmaRequest): void {
    const pool = this.poller.pool;
    for (let i = 0; i < req.chunkCount; i++) pool.put(req.chunks[i]);
    req.chunkCount = 0;
    if (req.recv !== null) {
      this.poller.releaseRecv(req.recv);
      req.recv = null;
    }
    req.iov = EMPTY_IOV;
    req.state = RdmaReqState.FREE;
    this.freeSlots.push(req);
  }

  // ---- posting

  private queueTx(): void {
    if (this.group.opts.no_wr_batching === true) {
      this.flush();
      return;
    }
    if (!this.txQueued) {
      this.txQueued = true;
      this.group.markTx(this);
    }
  }

  /** Post what was built since the last flush: receives first, then the send queue's batch. */
  flush(): void {
    this.txQueued = false;
    if (this.recvCount > 0) {
      const n = this.recvCount;
      this.recvCount = 0;
      // a receive not posted stays in postedRecvs: it goes back to the pool at close
      const open = this.state === RdmaQpairState.LIVE || this.state === RdmaQpairState.CONNECTING;
      if (open && this.qp.postRecv(this.recvWrs, n) < n)
        this.fatal(`posting receives failed: errno ${this.qp.lastError}`);
    }
    if (this.sendCount === 0) return;
    const count = this.sendCount;
    const posted = this.state === RdmaQpairState.LIVE ? this.qp.postSend(this.sendWrs, count) : 0;
    this.sendCount = 0;
    if (posted < count) {
      // error path: the ids are read out before closing, which may build no more
      const errno = this.qp.lastError;
      const ids: number[] = [];
      for (let slot = posted; slot < count; slot++) ids.push(this.builtWrId(slot));
      this.fatal(`posting work requests failed: errno ${errno}`);
      this.holdFinish = true;
      for (const wrId of ids) this.retireUnposted(wrId);
      this.holdFinish = false;
      this.maybeFinish();
    }
  }

  private builtWrId(slot: number): number {
    const base = slot * WorkRequest.WORDS;
    return this.sendWrs[base + WorkRequest.ID_HI] * 0x1_0000_0000 + this.sendWrs[base + WorkRequest.ID_LO];
  }

  /** A work request that was built but never posted will never complete: retire it as flushed. */
  private retireUnposted(wrId: number): void {
    const kind = wrKind(wrId);
    const req = this.slots[wrSlot(wrId)];
    if (kind === WrKind.READ_LAST) this.onReadDone(req, true, WcStatus.WR_FLUSH_ERR);
    else if (kind === WrKind.SEND) this.onSendDone(req, WcStatus.WR_FLUSH_ERR);
  }

  /** Everything built since the last flush is dropped (the queue is closing). */
  private unpost(): void {
    const count = this.sendCount;
    this.sendCount = 0;
    this.recvCount = 0;
    for (let slot = 0; slot < count; slot++) this.retireUnposted(this.builtWrId(slot));
  }

  // ---- errors and close

  /** A fatal transport error: the queue ends (the binding has no error PDU to send). */
  fatal(reason: string): void {
    if (this.state === RdmaQpairState.CLOSING || this.state === RdmaQpairState.CLOSED) return;
    log.error(`qpair ${this.serial} (qid ${this.qid}, ${this.peerAddr.traddr}): ${reason}`);
    this.disconnect(reason);
  }

  /** The slot a completion's work request id names (undefined: not one of ours). */
  slot(index: number): RdmaRequest | undefined {
    return this.slots[index];
  }

  private maybeFinish(): void {
    if (this.holdFinish) return;
    if (this.state !== RdmaQpairState.CLOSING || this.outstanding > 0 || this.sendWrsInUse > 0) return;
    this.finish();
  }

  private forceClose(): void {
    this.closeTimer = null;
    if (this.state !== RdmaQpairState.CLOSING) return;
    if (this.outstanding > 0) {
      // the core still holds requests: it reports them; try again later
      this.closeTimer = setTimeout(() => this.forceClose(), CLOSE_TIMEOUT_MS);
      this.closeTimer.unref();
      return;
    }
    log.warn(`qpair ${this.serial}: ${this.sendWrsInUse} work requests never flushed, destroying it anyway`);
    for (const req of this.slots) {
      if (req.state === RdmaReqState.READING || req.state === RdmaReqState.COMPLETING) this.freeSlot(req);
    }
    this.sendWrsInUse = 0;
    this.readWrsInUse = 0;
    this.finish();
  }

  private finish(): void {
    if (this.disconnectReported) return;
    this.disconnectReported = true;
    this.state = RdmaQpairState.CLOSED;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    try {
      this.id.destroy();
    } catch {
      // destroyed already (device removal)
    }
    // receives still posted to our receive queue died with it
    for (const recv of this.postedRecvs) this.poller.releaseRecv(recv);
    this.postedRecvs.clear();
    this.group.removeQpair(this);
    if (this.connectedReported) this.group.events.onQpairDisconnected(this);
  }
}
