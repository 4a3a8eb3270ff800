// NVMe/RDMA target transport, the poll group: one per poll-group thread, it
// owns that thread's queue pairs and, per RDMA device, a poller: completion
// queue(s) on one completion channel, the shared receive queue (unless
// no_srq) and its receive buffers. The completion channel's fd is watched by
// libuv: an idle poll group arms its CQs and the reactor sleeps until a
// completion wakes it; a busy one drains completions in batches each poll and
// posts the work requests of the poll in one call per queue pair.

import type { Socket } from 'node:net';
import {
  Access,
  type CmEvent,
  type CmEventSink,
  type CmId,
  type CompletionChannel,
  type CompletionQueue,
  completionField,
  completionId,
  type Device,
  type DeviceAttributes,
  type RealmCmChannel,
  realmCmChannel,
  realmPd,
  type SharedReceiveQueue,
  setSge,
  setWorkRequest,
  WcStatus,
  WorkCompletion,
  WorkRequest,
} from '../../rdma/index.ts';
import { currentThread, sendMsg, type ThreadRef, wakeReactor } from '../../thread/index.ts';
import { logger } from '../../util/log.ts';
import { RdmaRejectStatus, writeRdmaAccept, writeRdmaReject } from '../../wire/rdma.ts';
import type { QpairEvents, TransportAddress, TransportOptions, TransportPollGroup } from '../transport.ts';
import { DataPool, RegisteredMemory } from './buffers.ts';
import { type RdmaAdopt, type RdmaOffer, rdmaHandoff, setRdmaPollGroupInbox } from './handoff.ts';
import { RdmaQpair, type RdmaQpairGroup, type RdmaQpairPoller, RdmaQpairState } from './qpair.ts';
import {
  MAX_CHUNKS,
  RdmaReqState,
  type RdmaRequest,
  RecvBuffer,
  RecvState,
  recvIndex,
  recvWrId,
  WrKind,
  wrKind,
  wrSerial,
  wrSlot,
} from './request.ts';

const log = logger('nvmf_rdma');

/** Completions fetched by one CQ poll; a busy CQ gets a few of these per poll. */
const POLL_BATCH = 32;
const POLL_ROUNDS = 4;
/** Receives added to a poller's pool at a time when a queue pair without SRQ needs some. */
const RECV_SLAB = 64;

/**
 * A queue pair that has not completed a Fabrics Connect this long after it was
 * established is closed, as on TCP (no keep-alive covers it yet).
 * `NVMF_TS_CONNECT_TIMEOUT_MS` overrides (tests).
 */
const CONNECT_TIMEOUT_MS = (() => {
  const v = Number(process.env.NVMF_TS_CONNECT_TIMEOUT_MS);
  return Number.isInteger(v) && v > 0 ? v : 30_000;
})();

/** SPDK's RDMA transport defaults (nvmf_create_transport -t RDMA). */
export const RDMA_DEFAULT_OPTIONS: TransportOptions = {
  trtype: 'RDMA',
  max_queue_depth: 128,
  max_io_qpairs_per_ctrlr: 127,
  in_capsule_data_size: 4096,
  max_io_size: 131072,
  io_unit_size: 131072,
  max_aq_depth: 128,
  num_shared_buffers: 4095,
  buf_cache_size: 32,
  dif_insert_or_strip: false,
  abort_timeout_sec: 1,
  c2h_success: true,
  sock_priority: 0,
  zcopy: false,
  ack_timeout: 0,
  data_wr_pool_size: 4095,
  num_cqe: 4096,
  max_srq_depth: 4096,
  no_srq: false,
  acceptor_backlog: 100,
  no_wr_batching: false,
};

/** Why these options cannot make an RDMA transport (SPDK's checks), or null. */
export function rdmaOptionsError(o: TransportOptions): string | null {
  if (o.io_unit_size < 512) return `io_unit_size ${o.io_unit_size} is below 512`;
  if (Math.ceil(o.max_io_size / o.io_unit_size) > MAX_CHUNKS) {
    return `Unsupported max_io_size ${o.max_io_size}: more than ${MAX_CHUNKS} buffers of io_unit_size ${o.io_unit_size}`;
  }
  if ((o.max_srq_depth ?? 4096) < 1) return 'max_srq_depth must be at least 1';
  return null;
}

/** Per realm and device: registered memory and data chunks, shared by the realm's poll groups. */
interface RealmDevice {
  memory: RegisteredMemory;
  pool: DataPool;
}
const realmDevices = new Map<string, RealmDevice>();

function realmDevice(device: Device, o: TransportOptions): RealmDevice {
  let d = realmDevices.get(device.name);
  if (d === undefined) {
    const memory = new RegisteredMemory(realmPd(device));
    d = { memory, pool: new DataPool(memory, o.io_unit_size, o.num_shared_buffers) };
    realmDevices.set(device.name, d);
  }
  return d;
}

/** One CQ of a poller and what is left of its budget of send queue entries. */
interface CqSlot {
  cq: CompletionQueue;
  budget: number;
  armed: boolean;
}

/** A poll group's resources on one device. */
class DevicePoller implements RdmaQpairPoller {
  readonly device: Device;
  readonly attrs: DeviceAttributes;
  readonly memory: RegisteredMemory;
  readonly pool: DataPool;
  readonly shared: boolean;
  readonly maxSendSge: number;
  readonly maxReadSge: number;
  readonly channel: CompletionChannel;
  readonly cqs: CqSlot[] = [];
  readonly srq: SharedReceiveQueue | null;
  /** every receive buffer, by index (the index is in its work request id) */
  readonly recvs: RecvBuffer[] = [];
  private readonly freeRecvs: RecvBuffer[] = [];
  private readonly recvBytes: number;
  private readonly srqDepth: number;
  private readonly sendBudget: number;
  private readonly repost: Uint32Array;
  private repostCount = 0;
  private readonly slabs: SharedArrayBuffer[] = [];
  qpairs = 0;

  constructor(device: Device, o: TransportOptions, wake: () => void) {
    this.device = device;
    this.attrs = device.query();
    const rd = realmDevice(device, o);
    this.memory = rd.memory;
    this.pool = rd.pool;
    this.maxSendSge = Math.max(1, Math.min(MAX_CHUNKS, this.attrs.maxSge));
    this.maxReadSge = Math.max(1, Math.min(this.maxSendSge, this.attrs.maxSgeRd || this.maxSendSge));
    this.recvBytes = 64 + o.in_capsule_data_size;
    this.shared = o.no_srq !== true && this.attrs.maxSrq > 0;
    this.srqDepth = this.shared ? Math.min(o.max_srq_depth ?? 4096, this.attrs.maxSrqWr) : 0;
    this.sendBudget = o.num_cqe ?? 4096;
    this.repost = new Uint32Array(WorkRequest.WORDS * 64);
    this.channel = device.createCompChannel();
    this.channel.start(() => {
      for (const c of this.cqs) c.armed = false;
      wake();
    });
    this.srq = this.shared ? realmPd(device).createSrq({ maxWr: this.srqDepth, maxSge: 1 }) : null;
    if (this.srq !== null) {
      this.addRecvs(this.srqDepth);
      while (this.freeRecvs.length > 0) this.releaseRecv(this.freeRecvs.pop() as RecvBuffer);
      this.flushRecvs();
    }
  }

  /** A CQ with room for a queue pair needing `entries` (send queue, plus its receives without SRQ). */
  cqFor(entries: number): CqSlot {
    for (const c of this.cqs) {
      if (c.budget >= entries) {
        c.budget -= entries;
        return c;
      }
    }
    // an SRQ's receives may all complete on any of its CQs
    const budget = Math.max(this.sendBudget, entries);
    const size = Math.min(this.attrs.maxCqe, budget + this.srqDepth);
    const slot: CqSlot = {
      cq: this.device.createCq(size, this.channel),
      budget: budget - entries,
      armed: false,
    };
    this.cqs.push(slot);
    return slot;
  }

  returnBudget(slot: CqSlot, entries: number): void {
    slot.budget += entries;
  }

  /** `n` more receive buffers, in one registered slab. */
  private addRecvs(n: number): void {
    const slab = new SharedArrayBuffer(n * this.recvBytes);
    const mr = this.memory.register(slab, Access.LOCAL_WRITE);
    this.slabs.push(slab);
    for (let i = 0; i < n; i++) {
      const offset = i * this.recvBytes;
      const r = new RecvBuffer(
        this.recvs.length,
        Buffer.from(slab, offset, this.recvBytes),
        mr.index,
        offset,
      );
      this.recvs.push(r);
      this.freeRecvs.push(r);
    }
  }

  /** Receives for a queue pair's own receive queue (no SRQ). */
  takeRecv(): RecvBuffer {
    if (this.freeRecvs.length === 0) this.addRecvs(RECV_SLAB);
    return this.freeRecvs.pop() as RecvBuffer;
  }

  releaseRecv(recv: RecvBuffer): void {
    if (this.srq === null) {
      recv.state = RecvState.FREE;
      recv.owner = 0;
      this.freeRecvs.push(recv);
      return;
    }
    recv.state = RecvState.POSTED;
    recv.owner = 0;
    const slot = this.repostCount++;
    setWorkRequest(this.repost, slot, 0, 0, recvWrId(recv.index), 1);
    setSge(this.repost, slot, 0, recv.mrIndex, recv.offset, this.recvBytes);
    if (this.repostCount === 64) this.flushRecvs();
  }

  /** Post the SRQ receives given back since the last poll. */
  flushRecvs(): void {
    if (this.repostCount === 0 || this.srq === null) return;
    const n = this.repostCount;
    this.repostCount = 0;
    const posted = this.srq.postRecv(this.repost, n);
    if (posted < n)
      log.error(
        `SRQ of ${this.device.name}: ${n - posted} receives not posted (errno ${this.srq.lastError})`,
      );
  }

  destroy(): void {
    for (const step of [
      () => this.srq?.destroy(),
      () => {
        for (const c of this.cqs) c.cq.destroy();
      },
      () => this.channel.stop(),
      () => this.channel.destroy(),
      () => {
        for (const slab of this.slabs) this.memory.unregister(slab);
      },
    ]) {
      try {
        step();
      } catch (e) {
        log.warn(`releasing ${this.device.name}'s poller: ${(e as Error).message}`);
      }
    }
  }
}

/** A CM event of a queue pair, processed at the next poll on the poll group's thread. */
interface QueuedCmEvent {
  qpair: RdmaQpair;
  event: CmEvent;
}

/** One poll-group thread's NVMe/RDMA queue pairs. */
export class RdmaPollGroup implements TransportPollGroup, RdmaQpairGroup {
  readonly opts: TransportOptions;
  readonly events: QpairEvents;
  private readonly wake: () => void;
  private readonly thread: ThreadRef;
  private readonly cm: RealmCmChannel;
  private readonly pollers = new Map<string, DevicePoller>();
  private readonly qpairs = new Set<RdmaQpair>();
  private readonly bySerial = new Map<number, RdmaQpair>();
  private readonly byQpNum = new Map<number, RdmaQpair>();
  private readonly pollerOf = new Map<
    RdmaQpair,
    { poller: DevicePoller; cq: CqSlot; entries: number; responses: SharedArrayBuffer }
  >();
  private cmEvents: QueuedCmEvent[] = [];
  private txReady: RdmaQpair[] = [];
  private needBuffer: RdmaRequest[] = [];
  private readonly wcs = new Uint32Array(WorkCompletion.WORDS * POLL_BATCH);
  private nextSerial = 1;
  private destroyed = false;

  constructor(opts: TransportOptions, events: QpairEvents, wake: () => void) {
    const problem = rdmaOptionsError(opts);
    if (problem !== null) throw new Error(problem);
    this.opts = opts;
    this.events = events;
    this.wake = wake;
    this.thread = currentThread().ref;
    // throws when RDMA cannot be used in this realm (no addon, no /dev/infiniband/rdma_cm)
    this.cm = realmCmChannel();
    setRdmaPollGroupInbox(this.thread.id, this);
  }

  get qpairCount(): number {
    return this.qpairs.size;
  }

  get outstandingRequests(): number {
    let n = 0;
    for (const q of this.qpairs) n += q.outstanding;
    return n;
  }

  addSocket(socket: Socket): void {
    socket.destroy();
  }

  /** The core handed us a connect request the acceptor checked: claim it. */
  addConnection(conn: unknown, _listenAddr: TransportAddress): void {
    const o = conn as RdmaOffer;
    if (this.destroyed || typeof o?.offer !== 'number') return;
    sendMsg(o.acceptor, rdmaHandoff.claim, { offer: o.offer, channelToken: this.cm.token, pg: this.thread });
  }

  /** The acceptor handed the id to this realm: adopt it, make the queue pair, accept. */
  adopt(m: RdmaAdopt): void {
    let id: CmId;
    try {
      id = this.cm.addon.adoptCmId(m.token);
    } catch (e) {
      log.error(`adopting a connection failed: ${(e as Error).message}`);
      return;
    }
    if (this.destroyed) {
      this.refuse(id, 'the poll group is going away');
      return;
    }
    const device = id.device();
    if (device === null) {
      this.refuse(id, 'the CM id has no device');
      return;
    }
    let qpair: RdmaQpair;
    try {
      qpair = this.createQpair(id, device, m);
    } catch (e) {
      this.refuse(id, (e as Error).message);
      return;
    }
    const accept = Buffer.alloc(32);
    writeRdmaAccept(accept, m.depth);
    try {
      id.accept({
        privateData: accept,
        responderResources: 0,
        initiatorDepth: m.readDepth,
        rnrRetryCount: 7,
      });
    } catch (e) {
      log.error(`accepting qpair ${qpair.serial} failed: ${(e as Error).message}`);
      qpair.disconnect('accept failed');
      return;
    }
    qpair.connectTimer = setTimeout(() => {
      qpair.connectTimer = null;
      if (qpair.context === null && qpair.outstanding === 0 && qpair.state !== RdmaQpairState.CLOSED) {
        log.warn(`${qpair.peerAddr.traddr}: no Fabrics Connect within ${CONNECT_TIMEOUT_MS} ms, closing`);
        this.cmEvents.push({ qpair, event: TIMEOUT_EVENT });
        this.wake();
      }
    }, CONNECT_TIMEOUT_MS);
    qpair.connectTimer.unref();
  }

  private refuse(id: CmId, why: string): void {
    log.error(`refusing a connection: ${why}`);
    const data = Buffer.alloc(4);
    writeRdmaReject(data, RdmaRejectStatus.NO_RESOURCES);
    try {
      this.cm.unregister(id);
      id.reject(data);
      id.destroy();
    } catch {
      // gone
    }
  }

  private pollerFor(device: Device): DevicePoller {
    let p = this.pollers.get(device.name);
    if (p === undefined) {
      p = new DevicePoller(device, this.opts, this.wake);
      this.pollers.set(device.name, p);
    }
    return p;
  }

  private createQpair(id: CmId, device: Device, m: RdmaAdopt): RdmaQpair {
    const poller = this.pollerFor(device);
    const depth = m.depth;
    const maxSendWr = Math.min(poller.attrs.maxQpWr, 3 * depth);
    const entries = maxSendWr + (poller.shared ? 0 : depth);
    const cq = poller.cqFor(entries);
    const pd = realmPd(device);
    let responses: SharedArrayBuffer | null = null;
    try {
      const qp = id.createQp({
        pd,
        sendCq: cq.cq,
        recvCq: cq.cq,
        srq: poller.srq,
        maxSendWr,
        maxRecvWr: poller.shared ? 0 : depth,
        maxSendSge: poller.maxSendSge,
        maxRecvSge: poller.shared ? 0 : 1,
      });
      responses = new SharedArrayBuffer(RdmaQpair.responseBytes(depth));
      const mr = poller.memory.register(responses, Access.LOCAL_WRITE);
      const local = id.localAddress();
      const remote = id.remoteAddress();
      const serial = this.nextSerial++;
      const qpair = new RdmaQpair(
        this,
        poller,
        id,
        qp,
        serial,
        { qid: m.qid, depth, readDepth: m.readDepth, maxSendWr },
        { buf: Buffer.from(responses), mrIndex: mr.index, offset: 0 },
        m.listenAddr,
        {
          trtype: 'RDMA',
          adrfam: remote?.family ?? local?.family ?? 'IPv4',
          traddr: remote?.address ?? '',
          trsvcid: String(remote?.port ?? ''),
        },
      );
      this.qpairs.add(qpair);
      this.bySerial.set(serial, qpair);
      this.byQpNum.set(qp.qpNum, qpair);
      this.pollerOf.set(qpair, { poller, cq, entries, responses });
      poller.qpairs++;
      this.cm.register(id, new QpairCmSink(this, qpair));
      if (!poller.shared) {
        for (let i = 0; i < depth; i++) qpair.postRecv(poller.takeRecv());
        qpair.flush();
      }
      return qpair;
    } catch (e) {
      poller.returnBudget(cq, entries);
      if (responses !== null) poller.memory.unregister(responses);
      try {
        id.destroyQp();
      } catch {
        // no QP yet
      }
      throw e;
    }
  }

  /** A CM event for a queue pair (in the channel's callback): handled at the next poll. */
  queueCmEvent(qpair: RdmaQpair, event: CmEvent): void {
    this.cmEvents.push({ qpair, event });
    this.wake();
  }

  markTx(qpair: RdmaQpair): void {
    this.txReady.push(qpair);
    this.wake();
  }

  waitForBuffers(req: RdmaRequest): void {
    this.needBuffer.push(req);
  }

  removeQpair(qpair: RdmaQpair): void {
    this.qpairs.delete(qpair);
    this.bySerial.delete(qpair.serial);
    if (this.byQpNum.get(qpair.qpNum) === qpair) this.byQpNum.delete(qpair.qpNum);
    this.cm.unregister(qpair.id);
    const owned = this.pollerOf.get(qpair);
    if (owned !== undefined) {
      this.pollerOf.delete(qpair);
      owned.poller.returnBudget(owned.cq, owned.entries);
      owned.poller.memory.unregister(owned.responses);
      owned.poller.qpairs--;
    }
  }

  poll(): boolean {
    let busy = false;
    if (this.cmEvents.length > 0) {
      const events = this.cmEvents;
      this.cmEvents = [];
      for (const { qpair, event } of events) {
        if (event === TIMEOUT_EVENT) qpair.disconnect('connect timeout');
        else qpair.onCmEvent(event);
      }
      busy = true;
    }
    for (const p of this.pollers.values()) {
      p.flushRecvs();
      for (const c of p.cqs) if (this.drain(p, c)) busy = true;
    }
    if (this.needBuffer.length > 0) this.retryBuffers();
    if (this.txReady.length > 0) {
      const ready = this.txReady;
      this.txReady = [];
      for (const q of ready) q.flush();
      busy = true;
    }
    if (!busy) busy = this.arm();
    return busy;
  }

  /** Up to a few batches of one CQ's completions; true when there were any. */
  private drain(p: DevicePoller, c: CqSlot): boolean {
    let any = false;
    for (let round = 0; round < POLL_ROUNDS; round++) {
      const n = c.cq.poll(this.wcs, POLL_BATCH);
      if (n <= 0) {
        if (n < 0) log.error(`polling a CQ of ${p.device.name} failed: ${n}`);
        break;
      }
      any = true;
      for (let i = 0; i < n; i++) this.completion(p, i);
      if (n < POLL_BATCH) break;
    }
    return any;
  }

  /**
   * Nothing to do: arm every CQ for its next completion (the reactor may sleep) and look
   * once more, since a completion that came between the last poll and the arming raises
   * no event.
   */
  private arm(): boolean {
    let busy = false;
    for (const p of this.pollers.values()) {
      for (const c of p.cqs) {
        if (c.armed) continue;
        c.cq.requestNotify();
        c.armed = true;
        if (this.drain(p, c)) busy = true;
      }
    }
    if (busy && this.txReady.length > 0) {
      const ready = this.txReady;
      this.txReady = [];
      for (const q of ready) q.flush();
    }
    return busy;
  }

  private completion(p: DevicePoller, i: number): void {
    const wcs = this.wcs;
    const wrId = completionId(wcs, i);
    const status = completionField(wcs, i, WorkCompletion.STATUS);
    const kind = wrKind(wrId);
    if (kind === WrKind.RECV) {
      const recv = p.recvs[recvIndex(wrId)];
      if (recv === undefined || recv.state !== RecvState.POSTED) return;
      const q = this.byQpNum.get(completionField(wcs, i, WorkCompletion.QP_NUM));
      const ours = q !== undefined && (p.shared || recv.owner === q.serial) ? q : undefined;
      if (status === WcStatus.SUCCESS) {
        if (ours !== undefined) ours.onRecv(recv, completionField(wcs, i, WorkCompletion.BYTE_LEN));
        else p.releaseRecv(recv);
        return;
      }
      if (ours !== undefined && !p.shared) {
        ours.onRecvError(recv, status);
        return;
      }
      if (q !== undefined && status !== WcStatus.WR_FLUSH_ERR) q.fatal(`receive failed: status ${status}`);
      if (status !== WcStatus.WR_FLUSH_ERR || !p.shared) p.releaseRecv(recv);
      else recv.state = RecvState.FREE; // the SRQ is being destroyed
      return;
    }
    const q = this.bySerial.get(wrSerial(wrId));
    if (q === undefined) return;
    const req = q.slot(wrSlot(wrId));
    if (req === undefined) return;
    switch (kind) {
      case WrKind.READ:
        q.onReadDone(req, false, status);
        return;
      case WrKind.READ_LAST:
        q.onReadDone(req, true, status);
        return;
      case WrKind.WRITE:
        q.onWriteDone(status);
        return;
      case WrKind.SEND:
        q.onSendDone(req, status);
        return;
      default:
    }
  }

  /** Requests that waited for data chunks, oldest first, while the pool has some. */
  private retryBuffers(): void {
    let i = 0;
    for (; i < this.needBuffer.length; i++) {
      const req = this.needBuffer[i];
      const q = req.qpair as RdmaQpair;
      if (req.state !== RdmaReqState.NEED_BUFFER) continue;
      if (!q.resumeWithBuffers(req)) break;
    }
    if (i > 0) this.needBuffer = this.needBuffer.slice(i);
  }

  destroy(): void {
    this.destroyed = true;
    setRdmaPollGroupInbox(this.thread.id, null);
    for (const q of [...this.qpairs]) {
      if (q.connectTimer) clearTimeout(q.connectTimer);
      this.cm.unregister(q.id);
      try {
        q.id.destroy();
      } catch {
        // gone
      }
      this.removeQpair(q);
    }
    for (const p of this.pollers.values()) p.destroy();
    this.pollers.clear();
  }
}

/** Marks a connect timeout in the poll group's CM event queue. */
const TIMEOUT_EVENT = { type: -1 } as CmEvent;

/** Routes a queue pair's CM events to its poll group's queue. */
class QpairCmSink implements CmEventSink {
  private readonly group: RdmaPollGroup;
  private readonly qpair: RdmaQpair;
  constructor(group: RdmaPollGroup, qpair: RdmaQpair) {
    this.group = group;
    this.qpair = qpair;
  }
  onCmEvent(event: CmEvent): void {
    this.group.queueCmEvent(this.qpair, event);
  }
}

/**
 * Create a poll group for one poll-group thread. `wake` defaults to the realm
 * reactor's wake-up; tests without a reactor pass their own.
 */
export function createRdmaPollGroup(
  opts: TransportOptions,
  events: QpairEvents,
  wake: () => void = wakeReactor,
): RdmaPollGroup {
  return new RdmaPollGroup(opts, events, wake);
}
