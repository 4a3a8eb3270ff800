// A fake RDMA addon: the API of native/rdma (src/rdma/native.ts) over an in-process
// "fabric", for unit tests on machines without an RDMA device. CM ids connect through
// listeners by address; queue pairs move bytes between registered SharedArrayBuffers as
// a NIC would: SEND into the peer's posted receive (its SRQ or receive queue; a SEND
// that finds none waits, as RNR retries would), RDMA READ / WRITE against the peer's
// memory regions by rkey with the access rights checked, completions into CQs whose
// completion channel fires (on a later tick) when armed. Errors as verbs gives them: a
// bad SGE refused at post (EINVAL), a bad rkey completing with REM_ACCESS_ERR and the
// queue pair in error, everything outstanding flushed (WR_FLUSH_ERR) when a queue pair
// goes to the error state. Data moves synchronously inside postSend, except RDMA READs
// while `holdReads` is set (a test releases or strands them). One realm only: transfer
// and adoptCmId move an id between channels of this process.
import type {
  AsyncEvent,
  CmEvent,
  CmEventChannel,
  CmId,
  CompletionChannel,
  CompletionQueue,
  ConnectionParams,
  Device,
  DeviceAttributes,
  MemoryRegion,
  PortAttributes,
  ProtectionDomain,
  QueuePair,
  QueuePairCaps,
  QueuePairOptions,
  RdmaAddon,
  SharedReceiveQueue,
  SocketAddress,
} from '../../src/rdma/index.ts';
import {
  Access,
  CmEventType,
  QpState,
  WcFlags,
  WcOpcode,
  WcStatus,
  WorkCompletion,
  WorkRequest,
  WrOpcode,
} from '../../src/rdma/index.ts';

const CONSUMER_REJECT = 28;
const EINVAL = 22;

type Completion = {
  id: number;
  status: number;
  opcode: number;
  byteLen: number;
  qpNum: number;
  flags: number;
  imm: number;
};

type Sge = { mr: FakeMr; offset: number; length: number };
type RecvWr = { id: number; sges: Sge[]; qp: FakeQp | null };

function cmEvent(type: number, id: FakeCmId | null, extra: Partial<CmEvent> = {}): CmEvent {
  return {
    type,
    name: EVENT_NAMES[type] ?? `EVENT_${type}`,
    status: 0,
    id: id as unknown as CmId,
    listenId: null,
    privateData: null,
    responderResources: 0,
    initiatorDepth: 0,
    flowControl: 0,
    retryCount: 0,
    rnrRetryCount: 0,
    srq: 0,
    qpNum: 0,
    ...extra,
  };
}

const EVENT_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(CmEventType).map(([k, v]) => [v, `RDMA_CM_EVENT_${k}`]),
);

/** The fabric and the addon's entry points. */
export class FakeRdma implements RdmaAddon {
  readonly device: FakeDevice;
  readonly constants = {};
  readonly listeners = new Map<string, FakeCmId>();
  readonly channels = new Map<number, FakeChannel>();
  readonly mrs = new Map<number, FakeMr>();
  readonly mrsByRkey = new Map<number, FakeMr>();
  readonly qps = new Map<number, FakeQp>();
  readonly inTransit = new Map<number, FakeCmId>();
  /** the passive side gets no ESTABLISHED (an RTU lost on the wire) */
  dropEstablished = false;
  /** RDMA READs wait in `heldReads` until released (a transfer in flight) */
  holdReads = false;
  readonly heldReads: Array<() => void> = [];
  nextToken = 1;
  nextMr = 1;
  nextQp = 100;
  nextPort = 50000;

  constructor(attrs: Partial<DeviceAttributes> = {}) {
    this.device = new FakeDevice(this, attrs);
  }

  devices(): Device[] {
    return [this.device];
  }

  createEventChannel(): CmEventChannel {
    const ch = new FakeChannel(this);
    this.channels.set(ch.token, ch);
    return ch;
  }

  adoptCmId(token: number): CmId {
    const id = this.inTransit.get(token);
    if (id === undefined) throw new Error('adoptCmId: no CM id is in transit with that token');
    this.inTransit.delete(token);
    return id;
  }

  wcStatusString(status: number): string {
    return Object.entries(WcStatus).find(([, v]) => v === status)?.[0] ?? `status ${status}`;
  }

  cmEventString(type: number): string {
    return EVENT_NAMES[type] ?? `EVENT_${type}`;
  }

  /** Run the RDMA READs held so far. */
  releaseReads(): void {
    const held = this.heldReads.splice(0);
    for (const run of held) run();
  }

  /** Every queue pair that is not in the error state or destroyed. */
  liveQps(): FakeQp[] {
    return [...this.qps.values()].filter((q) => q.qpState !== QpState.ERR);
  }
}

export class FakeChannel implements CmEventChannel {
  readonly fd = -1;
  readonly token: number;
  private readonly fabric: FakeRdma;
  private callback: ((e: CmEvent) => void) | null = null;
  private readonly queue: CmEvent[] = [];
  private scheduled = false;
  destroyed = false;

  constructor(fabric: FakeRdma) {
    this.fabric = fabric;
    this.token = fabric.nextToken++;
  }

  start(callback: (event: CmEvent) => void): void {
    this.callback = callback;
    this.schedule();
  }

  stop(): void {
    this.callback = null;
  }

  ref(): void {}
  unref(): void {}

  createId(): CmId {
    return new FakeCmId(this.fabric, this);
  }

  destroy(): void {
    this.destroyed = true;
    this.callback = null;
    this.fabric.channels.delete(this.token);
  }

  emit(event: CmEvent): void {
    this.queue.push(event);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.callback === null || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const events = this.queue.splice(0);
      for (const e of events) this.callback?.(e);
    });
  }
}

export class FakeCmId {
  readonly fabric: FakeRdma;
  channel: FakeChannel;
  bound: { address: string; port: number } | null = null;
  remote: { address: string; port: number } | null = null;
  dst: { address: string; port: number } | null = null;
  listening = false;
  qp: FakeQp | null = null;
  peer: FakeCmId | null = null;
  connected = false;
  destroyed = false;
  transferred = false;
  readonly portNum = 1;

  constructor(fabric: FakeRdma, channel: FakeChannel) {
    this.fabric = fabric;
    this.channel = channel;
  }

  private live(): void {
    if (this.destroyed) throw new Error('CmId: destroyed');
    if (this.transferred) throw new Error('CmId: handed to another thread');
  }

  bind(address: string, port: number): void {
    this.live();
    const p = port === 0 ? this.fabric.nextPort++ : port;
    if (this.fabric.listeners.has(`${address}:${p}`))
      throw Object.assign(new Error('rdma_bind_addr: EADDRINUSE'), { code: 'EADDRINUSE' });
    this.bound = { address, port: p };
  }

  listen(): void {
    this.live();
    if (this.bound === null) throw new Error('listen before bind');
    this.listening = true;
    this.fabric.listeners.set(`${this.bound.address}:${this.bound.port}`, this);
  }

  resolveAddr(address: string, port: number): void {
    this.live();
    this.dst = { address, port };
    this.bound ??= { address: '10.0.0.2', port: this.fabric.nextPort++ };
    this.channel.emit(cmEvent(CmEventType.ADDR_RESOLVED, this));
  }

  resolveRoute(): void {
    this.live();
    this.channel.emit(cmEvent(CmEventType.ROUTE_RESOLVED, this));
  }

  connect(params: ConnectionParams = {}): void {
    this.live();
    if (this.qp === null) throw new Error('rdma_connect: no QP');
    const dst = this.dst;
    const listener = dst === null ? undefined : this.fabric.listeners.get(`${dst.address}:${dst.port}`);
    if (listener === undefined || dst === null) {
      this.channel.emit(cmEvent(CmEventType.REJECTED, this, { status: 8 }));
      return;
    }
    const server = new FakeCmId(this.fabric, listener.channel);
    server.bound = { address: dst.address, port: dst.port };
    server.remote = this.bound;
    server.peer = this;
    this.peer = server;
    this.remote = { ...dst };
    const data = Buffer.alloc(56);
    if (params.privateData) Buffer.from(params.privateData).copy(data);
    listener.channel.emit(
      cmEvent(CmEventType.CONNECT_REQUEST, server, {
        listenId: listener as unknown as CmId,
        privateData: data,
        // the CM swaps them: our initiator depth is the peer's responder resources
        responderResources: params.initiatorDepth ?? 0,
        initiatorDepth: params.responderResources ?? 0,
      }),
    );
  }

  accept(params: ConnectionParams = {}): void {
    this.live();
    const peer = this.peer;
    if (this.qp === null || peer === null || peer.qp === null)
      throw new Error('rdma_accept: not connectable');
    this.qp.peer = peer.qp;
    peer.qp.peer = this.qp;
    this.qp.qpState = QpState.RTS;
    peer.qp.qpState = QpState.RTS;
    this.connected = true;
    peer.connected = true;
    const data = Buffer.alloc(196);
    if (params.privateData) Buffer.from(params.privateData).copy(data);
    peer.channel.emit(cmEvent(CmEventType.ESTABLISHED, peer, { privateData: data }));
    if (!this.fabric.dropEstablished) this.channel.emit(cmEvent(CmEventType.ESTABLISHED, this));
  }

  reject(privateData?: Uint8Array): void {
    this.live();
    const peer = this.peer;
    this.peer = null;
    if (peer === null) return;
    peer.peer = null;
    peer.channel.emit(
      cmEvent(CmEventType.REJECTED, peer, {
        status: CONSUMER_REJECT,
        privateData: privateData ? Buffer.from(privateData) : null,
      }),
    );
  }

  disconnect(): void {
    this.live();
    if (!this.connected) throw Object.assign(new Error('rdma_disconnect: EINVAL'), { code: 'EINVAL' });
    this.breakConnection();
  }

  private breakConnection(): void {
    const peer = this.peer;
    this.connected = false;
    this.qp?.toError();
    this.channel.emit(cmEvent(CmEventType.DISCONNECTED, this));
    if (peer?.connected) {
      peer.connected = false;
      peer.qp?.toError();
      if (!peer.destroyed) peer.channel.emit(cmEvent(CmEventType.DISCONNECTED, peer));
    }
  }

  createQp(options: QueuePairOptions): QueuePair {
    this.live();
    if (this.qp !== null) throw new Error('rdma_create_qp: the id has a QP');
    this.qp = new FakeQp(this.fabric, this, options);
    return this.qp;
  }

  destroyQp(): void {
    this.qp?.destroy();
    this.qp = null;
  }

  destroy(): void {
    if (this.destroyed) return;
    if (this.connected) this.breakConnection();
    this.destroyQp();
    if (this.listening && this.bound)
      this.fabric.listeners.delete(`${this.bound.address}:${this.bound.port}`);
    this.destroyed = true;
  }

  localAddress(): SocketAddress | null {
    return this.bound ? { ...this.bound, family: 'IPv4' } : null;
  }

  remoteAddress(): SocketAddress | null {
    return this.remote ? { ...this.remote, family: 'IPv4' } : null;
  }

  device(): Device | null {
    return this.fabric.device;
  }

  migrate(channel: CmEventChannel): void {
    this.channel = channel as FakeChannel;
  }

  transfer(channelToken: number): number {
    this.live();
    if (this.qp !== null) throw new Error('CmId.transfer: destroy the queue pair first');
    const to = this.fabric.channels.get(channelToken);
    if (to === undefined) throw new Error('CmId.transfer: no live channel has that token');
    this.channel = to;
    const token = this.fabric.nextToken++;
    this.fabric.inTransit.set(token, this);
    return token;
  }
}

const DEFAULT_ATTRS: DeviceAttributes = {
  fwVer: 'fake',
  maxMrSize: 2 ** 40,
  pageSizeCap: 4096,
  vendorId: 0,
  vendorPartId: 0,
  maxQp: 4096,
  maxQpWr: 16384,
  deviceCapFlags: 0,
  maxSge: 32,
  maxSgeRd: 32,
  maxCq: 4096,
  maxCqe: 32767,
  maxMr: 65536,
  maxPd: 64,
  maxQpRdAtom: 128,
  maxQpInitRdAtom: 128,
  maxSrq: 1024,
  maxSrqWr: 16384,
  maxSrqSge: 27,
  physPortCnt: 1,
};

export class FakeDevice implements Device {
  readonly name = 'fake0';
  readonly guid = '0000000000000001';
  private readonly fabric: FakeRdma;
  readonly attrs: DeviceAttributes;
  readonly cqs: FakeCq[] = [];
  readonly pds: FakePd[] = [];

  constructor(fabric: FakeRdma, attrs: Partial<DeviceAttributes>) {
    this.fabric = fabric;
    this.attrs = { ...DEFAULT_ATTRS, ...attrs };
  }

  query(): DeviceAttributes {
    return { ...this.attrs };
  }

  queryPort(): PortAttributes {
    return {
      state: 4,
      stateName: 'PORT_ACTIVE',
      maxMtu: 4096,
      activeMtu: 1024,
      gidTblLen: 16,
      linkLayer: 2,
      linkLayerName: 'Ethernet',
      maxMsgSz: 2 ** 31,
    };
  }

  allocPd(): ProtectionDomain {
    const pd = new FakePd(this.fabric);
    this.pds.push(pd);
    return pd;
  }

  createCompChannel(): CompletionChannel {
    return new FakeCompChannel();
  }

  createCq(entries: number, channel?: CompletionChannel | null): CompletionQueue {
    const cq = new FakeCq(entries, (channel as FakeCompChannel | null | undefined) ?? null);
    this.cqs.push(cq);
    return cq;
  }

  watchAsyncEvents(_cb: (event: AsyncEvent) => void): void {}
  stopAsyncEvents(): void {}
}

export class FakePd implements ProtectionDomain {
  readonly fabric: FakeRdma;
  dealloced = false;
  constructor(fabric: FakeRdma) {
    this.fabric = fabric;
  }

  registerMemory(view: Uint8Array, access: number): MemoryRegion {
    if (!(view.buffer instanceof SharedArrayBuffer))
      throw new TypeError('registerMemory: the view must lie in a SharedArrayBuffer');
    return new FakeMr(this.fabric, this, view, access);
  }

  createSrq(options: { maxWr?: number } = {}): SharedReceiveQueue {
    return new FakeSrq(this, options.maxWr ?? 256);
  }

  dealloc(): void {
    this.dealloced = true;
  }
}

export class FakeMr implements MemoryRegion {
  readonly index: number;
  readonly lkey: number;
  readonly rkey: number;
  readonly length: number;
  readonly address: bigint;
  readonly pd: FakePd;
  readonly bytes: Buffer;
  readonly access: number;
  private readonly fabric: FakeRdma;

  constructor(fabric: FakeRdma, pd: FakePd, view: Uint8Array, access: number) {
    this.fabric = fabric;
    this.pd = pd;
    this.index = fabric.nextMr++;
    this.lkey = 0x1000 + this.index;
    this.rkey = 0x2000_0000 + this.index * 0x101;
    this.length = view.byteLength;
    this.address = BigInt(this.index) * 0x1_0000_0000n + 0x1000n;
    this.bytes = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
    this.access = access;
    fabric.mrs.set(this.index, this);
    fabric.mrsByRkey.set(this.rkey, this);
  }

  deregister(): void {
    this.fabric.mrs.delete(this.index);
    this.fabric.mrsByRkey.delete(this.rkey);
  }

  /** The bytes at a peer's (address, length) under this region's rkey, or null when outside it. */
  remote(address: bigint, length: number): Buffer | null {
    const off = address - this.address;
    if (off < 0n || off + BigInt(length) > BigInt(this.length)) return null;
    return this.bytes.subarray(Number(off), Number(off) + length);
  }
}

export class FakeCompChannel implements CompletionChannel {
  readonly fd = -1;
  private callback: (() => void) | null = null;
  private scheduled = false;
  fired = 0;

  start(callback: () => void): void {
    this.callback = callback;
  }

  stop(): void {
    this.callback = null;
  }

  ref(): void {}
  unref(): void {}
  destroy(): void {
    this.callback = null;
  }

  fire(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.fired++;
      this.callback?.();
    });
  }
}

export class FakeCq implements CompletionQueue {
  readonly entries: number;
  private readonly channel: FakeCompChannel | null;
  private readonly list: Completion[] = [];
  armed = false;
  overflowed = false;
  destroyed = false;

  constructor(entries: number, channel: FakeCompChannel | null) {
    this.entries = entries;
    this.channel = channel;
  }

  push(c: Completion): void {
    if (this.destroyed) return;
    this.list.push(c);
    if (this.list.length > this.entries) this.overflowed = true;
    if (this.armed) {
      this.armed = false;
      this.channel?.fire();
    }
  }

  get pending(): number {
    return this.list.length;
  }

  poll(out: Uint32Array, max: number): number {
    const n = Math.min(max, this.list.length, Math.floor(out.length / WorkCompletion.WORDS));
    for (let i = 0; i < n; i++) {
      const c = this.list.shift() as Completion;
      const b = i * WorkCompletion.WORDS;
      out[b + WorkCompletion.ID_LO] = c.id >>> 0;
      out[b + WorkCompletion.ID_HI] = Math.floor(c.id / 0x1_0000_0000);
      out[b + WorkCompletion.STATUS] = c.status;
      out[b + WorkCompletion.OPCODE] = c.opcode;
      out[b + WorkCompletion.BYTE_LEN] = c.byteLen;
      out[b + WorkCompletion.QP_NUM] = c.qpNum;
      out[b + WorkCompletion.FLAGS] = c.flags;
      out[b + WorkCompletion.IMM_OR_INV] = c.imm;
    }
    return n;
  }

  requestNotify(): void {
    this.armed = true;
  }

  destroy(): void {
    this.destroyed = true;
  }
}

export class FakeSrq implements SharedReceiveQueue {
  readonly pd: FakePd;
  readonly maxWr: number;
  readonly maxSge = 1;
  readonly recvs: RecvWr[] = [];
  lastError = 0;
  /** queue pairs on this SRQ, to deliver their waiting SENDs when receives come */
  readonly qps = new Set<FakeQp>();
  destroyed = false;

  constructor(pd: FakePd, maxWr: number) {
    this.pd = pd;
    this.maxWr = maxWr;
  }

  postRecv(wrs: Uint32Array, count: number): number {
    for (let i = 0; i < count; i++) {
      const r = readRecv(wrs, i, this.pd);
      if (r === null) {
        this.lastError = EINVAL;
        return i;
      }
      this.recvs.push(r);
    }
    for (const q of this.qps) q.deliverWaiting();
    return count;
  }

  destroy(): void {
    this.destroyed = true;
  }
}

function readSges(wrs: Uint32Array, slot: number, pd: FakePd): Sge[] | null {
  const base = slot * WorkRequest.WORDS;
  const n = wrs[base + WorkRequest.NUM_SGE];
  if (n > WorkRequest.MAX_SGE) return null;
  const sges: Sge[] = [];
  for (let i = 0; i < n; i++) {
    const at = base + WorkRequest.HEADER_WORDS + i * WorkRequest.SGE_WORDS;
    const mr = pd.fabric.mrs.get(wrs[at + WorkRequest.SGE_MR]);
    const offset = wrs[at + WorkRequest.SGE_OFFSET];
    const length = wrs[at + WorkRequest.SGE_LENGTH];
    if (mr === undefined || mr.pd !== pd || offset + length > mr.length) return null;
    sges.push({ mr, offset, length });
  }
  return sges;
}

function readRecv(wrs: Uint32Array, slot: number, pd: FakePd): RecvWr | null {
  const sges = readSges(wrs, slot, pd);
  if (sges === null) return null;
  const base = slot * WorkRequest.WORDS;
  return {
    id: wrs[base + WorkRequest.ID_HI] * 0x1_0000_0000 + wrs[base + WorkRequest.ID_LO],
    sges,
    qp: null,
  };
}

function gather(sges: Sge[]): Buffer {
  return Buffer.concat(sges.map((s) => s.mr.bytes.subarray(s.offset, s.offset + s.length)));
}

function scatter(sges: Sge[], data: Buffer): boolean {
  let at = 0;
  for (const s of sges) {
    if (at >= data.length) break;
    const n = Math.min(s.length, data.length - at);
    data.copy(s.mr.bytes, s.offset, at, at + n);
    at += n;
  }
  return at >= data.length;
}

export class FakeQp implements QueuePair {
  private readonly num: number;
  destroyed = false;
  readonly caps: QueuePairCaps;
  readonly id: FakeCmId;
  readonly pd: FakePd;
  readonly sendCq: FakeCq;
  readonly recvCq: FakeCq;
  readonly srq: FakeSrq | null;
  private readonly fabric: FakeRdma;
  private readonly rq: RecvWr[] = [];
  /** SENDs that found no receive yet */
  private readonly waiting: Array<{ data: Buffer; inv: number | null }> = [];
  peer: FakeQp | null = null;
  qpState: number = QpState.INIT;
  lastError = 0;
  /** work requests posted (all kinds) */
  sent = 0;
  /** SEND_WITH_INV seen (the rkeys) */
  readonly invalidated: number[] = [];

  constructor(fabric: FakeRdma, id: FakeCmId, o: QueuePairOptions) {
    this.fabric = fabric;
    this.id = id;
    this.num = fabric.nextQp++;
    this.pd = o.pd as FakePd;
    this.sendCq = o.sendCq as FakeCq;
    this.recvCq = o.recvCq as FakeCq;
    this.srq = (o.srq as FakeSrq | null | undefined) ?? null;
    this.srq?.qps.add(this);
    this.caps = {
      maxSendWr: o.maxSendWr ?? 128,
      maxRecvWr: o.maxRecvWr ?? (this.srq ? 0 : 128),
      maxSendSge: o.maxSendSge ?? 1,
      maxRecvSge: o.maxRecvSge ?? 1,
      maxInlineData: o.maxInlineData ?? 0,
    };
    fabric.qps.set(this.num, this);
  }

  /** as the addon: a destroyed QP (its id destroyed) throws on every use */
  get qpNum(): number {
    if (this.destroyed) throw new Error('this: this QueuePair was destroyed');
    return this.num;
  }

  state(): number {
    return this.qpState;
  }

  toError(): void {
    if (this.qpState === QpState.ERR) return;
    this.qpState = QpState.ERR;
    for (const r of this.rq.splice(0)) {
      this.recvCq.push({
        id: r.id,
        status: WcStatus.WR_FLUSH_ERR,
        opcode: WcOpcode.RECV,
        byteLen: 0,
        qpNum: this.num,
        flags: 0,
        imm: 0,
      });
    }
    this.waiting.length = 0;
  }

  destroy(): void {
    this.toError();
    this.srq?.qps.delete(this);
    this.fabric.qps.delete(this.num);
    this.destroyed = true;
    if (this.peer?.peer === this) this.peer.peer = null;
    this.peer = null;
  }

  postRecv(wrs: Uint32Array, count: number): number {
    if (this.srq) throw new Error('QueuePair.postRecv: this queue pair receives through its SRQ');
    for (let i = 0; i < count; i++) {
      const r = readRecv(wrs, i, this.pd);
      if (r === null) {
        this.lastError = EINVAL;
        return i;
      }
      if (this.qpState === QpState.ERR) {
        this.recvCq.push({
          id: r.id,
          status: WcStatus.WR_FLUSH_ERR,
          opcode: WcOpcode.RECV,
          byteLen: 0,
          qpNum: this.num,
          flags: 0,
          imm: 0,
        });
        continue;
      }
      this.rq.push(r);
    }
    this.deliverWaiting();
    return count;
  }

  postSend(wrs: Uint32Array, count: number): number {
    for (let i = 0; i < count; i++) {
      const base = i * WorkRequest.WORDS;
      const sges = readSges(wrs, i, this.pd);
      const opcode = wrs[base + WorkRequest.OPCODE];
      if (sges === null || !Object.values(WrOpcode).includes(opcode as never)) {
        this.lastError = EINVAL;
        return i;
      }
      this.sent++;
      const wr = {
        id: wrs[base + WorkRequest.ID_HI] * 0x1_0000_0000 + wrs[base + WorkRequest.ID_LO],
        opcode,
        signaled: (wrs[base + WorkRequest.FLAGS] & 2) !== 0,
        sges,
        imm: wrs[base + WorkRequest.IMM_OR_INV],
        remote:
          BigInt(wrs[base + WorkRequest.REMOTE_ADDR_HI]) * 0x1_0000_0000n +
          BigInt(wrs[base + WorkRequest.REMOTE_ADDR_LO]),
        rkey: wrs[base + WorkRequest.RKEY],
      };
      if (this.qpState === QpState.ERR || this.peer === null) {
        this.complete(wr.id, WcStatus.WR_FLUSH_ERR, this.wcOpcode(opcode), 0);
        continue;
      }
      if (opcode === WrOpcode.RDMA_READ && this.fabric.holdReads) {
        this.fabric.heldReads.push(() => this.execute(wr));
        continue;
      }
      this.execute(wr);
    }
    return count;
  }

  private wcOpcode(op: number): number {
    return op === WrOpcode.RDMA_READ
      ? WcOpcode.RDMA_READ
      : op === WrOpcode.RDMA_WRITE
        ? WcOpcode.RDMA_WRITE
        : WcOpcode.SEND;
  }

  private complete(id: number, status: number, opcode: number, byteLen: number): void {
    this.sendCq.push({ id, status, opcode, byteLen, qpNum: this.num, flags: 0, imm: 0 });
  }

  private execute(wr: {
    id: number;
    opcode: number;
    signaled: boolean;
    sges: Sge[];
    imm: number;
    remote: bigint;
    rkey: number;
  }): void {
    const peer = this.peer;
    if (this.qpState === QpState.ERR || peer === null) {
      this.complete(wr.id, WcStatus.WR_FLUSH_ERR, this.wcOpcode(wr.opcode), 0);
      return;
    }
    const length = wr.sges.reduce((n, s) => n + s.length, 0);
    if (wr.opcode === WrOpcode.SEND || wr.opcode === WrOpcode.SEND_WITH_INV) {
      const inv = wr.opcode === WrOpcode.SEND_WITH_INV ? wr.imm : null;
      if (inv !== null) this.invalidated.push(inv);
      peer.receive(gather(wr.sges), inv);
      if (wr.signaled) this.complete(wr.id, WcStatus.SUCCESS, WcOpcode.SEND, length);
      return;
    }
    const mr = this.fabric.mrsByRkey.get(wr.rkey);
    const need = wr.opcode === WrOpcode.RDMA_READ ? Access.REMOTE_READ : Access.REMOTE_WRITE;
    const remote =
      mr !== undefined && mr.pd === peer.pd && (mr.access & need) !== 0 ? mr.remote(wr.remote, length) : null;
    if (remote === null) {
      // remote access error: reported whether signaled or not, and the QP goes to error
      this.complete(wr.id, WcStatus.REM_ACCESS_ERR, this.wcOpcode(wr.opcode), 0);
      this.toError();
      return;
    }
    if (wr.opcode === WrOpcode.RDMA_READ) scatter(wr.sges, Buffer.from(remote));
    else gather(wr.sges).copy(remote);
    if (wr.signaled) this.complete(wr.id, WcStatus.SUCCESS, this.wcOpcode(wr.opcode), length);
  }

  private receive(data: Buffer, inv: number | null): void {
    this.waiting.push({ data, inv });
    this.deliverWaiting();
  }

  /** SENDs that waited for a receive get one now, if there is one. */
  deliverWaiting(): void {
    while (this.waiting.length > 0 && this.qpState !== QpState.ERR) {
      const source = this.srq ? this.srq.recvs : this.rq;
      const r = source.shift();
      if (r === undefined) return;
      const { data, inv } = this.waiting.shift() as { data: Buffer; inv: number | null };
      const capacity = r.sges.reduce((n, s) => n + s.length, 0);
      if (data.length > capacity) {
        this.recvCq.push({
          id: r.id,
          status: WcStatus.LOC_LEN_ERR,
          opcode: WcOpcode.RECV,
          byteLen: 0,
          qpNum: this.num,
          flags: 0,
          imm: 0,
        });
        this.toError();
        return;
      }
      scatter(r.sges, data);
      this.recvCq.push({
        id: r.id,
        status: WcStatus.SUCCESS,
        opcode: WcOpcode.RECV,
        byteLen: data.length,
        qpNum: this.num,
        flags: inv !== null ? WcFlags.WITH_INV : 0,
        imm: inv ?? 0,
      });
    }
  }
}
