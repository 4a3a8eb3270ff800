// A transport with no socket, for in-process tests of the target core
// (NvmfPollGroup, NvmfTarget, the controllers, executeIo). The test plays the
// host: it opens queues and submits commands; the poll group's poller hands
// them to the core at its next poll, as the TCP transport does with received
// PDUs, and completions land in the queue's `completed` list. Closing follows
// the TCP transport's order: onQpairClosing while the core holds requests,
// onQpairDisconnected once it has handed them all back.
import type { Socket } from 'node:net';
import { traceCommandComplete } from '../../src/nvmf/trace.ts';
import {
  type NvmfQpair,
  type NvmfRequest,
  type QpairEvents,
  type QueueContext,
  type TransportAddress,
  type TransportOptions,
  type TransportPlugin,
  type TransportPollGroup,
  XferDir,
} from '../../src/nvmf/transport.ts';
import { CQE_SIZE, FABRICS_OPCODE, SQE_SIZE, Sqe } from '../../src/wire/nvme.ts';

export const FAKE_TRTYPE = 'FAKE';

const PEER: TransportAddress = { trtype: FAKE_TRTYPE, adrfam: 'IPv4', traddr: '10.0.0.2', trsvcid: '50000' };

/** One command as the host submitted it; `rsp` is the CQE the core wrote. */
export class FakeRequest implements NvmfRequest {
  readonly qpair: FakeQpair;
  readonly cmd = Buffer.alloc(SQE_SIZE);
  readonly rsp = Buffer.alloc(CQE_SIZE);
  xferDir: XferDir = XferDir.NONE;
  length = 0;
  iov: Buffer[] = [];
  traceStart = 0;
  /** times the core completed it (more than 1 is a core bug the transport would ignore) */
  completions = 0;

  constructor(qpair: FakeQpair) {
    this.qpair = qpair;
  }

  complete(): void {
    this.qpair.completeRequest(this);
  }

  /** The data the core left for a read-like command, as one buffer. */
  data(): Buffer {
    return Buffer.concat(this.iov).subarray(0, this.length);
  }
}

export class FakeQpair implements NvmfQpair {
  qid = 0;
  sqSize = 0;
  context: QueueContext | null = null;
  sqFlowControlDisabled = false;
  readonly trtype = FAKE_TRTYPE;
  readonly listenAddr: TransportAddress;
  readonly peerAddr: TransportAddress;
  /** requests handed to the core, not completed yet */
  outstanding = 0;
  /** completed requests, in completion order */
  readonly completed: FakeRequest[] = [];
  /** why the core closed the queue (disconnect), null if it did not */
  disconnectReason: string | null = null;
  closed = false;
  disconnectReported = false;
  private readonly group: FakePollGroup;

  constructor(group: FakePollGroup, listenAddr: TransportAddress, peerAddr: TransportAddress) {
    this.group = group;
    this.listenAddr = listenAddr;
    this.peerAddr = peerAddr;
  }

  /**
   * The host sends `sqe`: data-out commands carry `data` (its length must be the SGL length);
   * data-in commands get a buffer of the SGL length. The core sees it at the next poll.
   */
  submit(sqe: Buffer, data?: Buffer): FakeRequest {
    const req = new FakeRequest(this);
    sqe.copy(req.cmd);
    const opcode = sqe[Sqe.OPCODE];
    const dir = (opcode === FABRICS_OPCODE ? sqe[Sqe.FCTYPE] : opcode) & 0x3;
    req.length = sqe.readUInt32LE(Sqe.SGL_LENGTH);
    if (dir === 1 && req.length > 0) {
      if (data === undefined || data.length !== req.length) throw new Error('data-out needs its data');
      req.xferDir = XferDir.HOST_TO_CONTROLLER;
      req.iov = [Buffer.from(data)];
    } else if (dir === 2 && req.length > 0) {
      req.xferDir = XferDir.CONTROLLER_TO_HOST;
      req.iov = [Buffer.alloc(req.length)];
    }
    this.group.arrive(req);
    return req;
  }

  /** The host closes the connection (as a socket 'close'): handled at the next poll. */
  hostClose(): void {
    this.group.close(this);
  }

  // ---- NvmfQpair

  disconnect(reason?: string): void {
    if (this.disconnectReason === null) this.disconnectReason = reason ?? '';
    this.group.close(this);
  }

  /** The core handed a request back (FakeRequest.complete). */
  completeRequest(req: FakeRequest): void {
    req.completions++;
    if (req.completions > 1) return;
    if (req.traceStart !== 0) traceCommandComplete(req);
    this.outstanding--;
    this.completed.push(req);
    this.group.maybeReportDisconnect(this);
  }
}

export class FakePollGroup implements TransportPollGroup {
  readonly opts: TransportOptions;
  readonly events: QpairEvents;
  readonly qpairs = new Set<FakeQpair>();
  private connecting: FakeQpair[] = [];
  private arrived: FakeRequest[] = [];
  private closing: FakeQpair[] = [];

  constructor(opts: TransportOptions, events: QpairEvents) {
    this.opts = opts;
    this.events = events;
  }

  /** A host connects through `listenAddr`; the core hears of the queue at the next poll. */
  connect(listenAddr: TransportAddress, peerAddr: TransportAddress = PEER): FakeQpair {
    const q = new FakeQpair(this, listenAddr, peerAddr);
    this.qpairs.add(q);
    this.connecting.push(q);
    return q;
  }

  arrive(req: FakeRequest): void {
    this.arrived.push(req);
  }

  close(q: FakeQpair): void {
    if (q.closed) return;
    q.closed = true;
    this.closing.push(q);
  }

  maybeReportDisconnect(q: FakeQpair): void {
    if (!q.closed || q.outstanding > 0 || q.disconnectReported || this.closing.includes(q)) return;
    q.disconnectReported = true;
    this.qpairs.delete(q);
    this.events.onQpairDisconnected(q);
  }

  // ---- TransportPollGroup

  addSocket(socket: Socket, _listenAddr: TransportAddress): void {
    socket.destroy(); // no sockets here: tests call connect()
  }

  poll(): boolean {
    let busy = false;
    if (this.connecting.length > 0) {
      const c = this.connecting;
      this.connecting = [];
      for (const q of c) this.events.onQpairConnected(q);
      busy = true;
    }
    if (this.arrived.length > 0) {
      const a = this.arrived;
      this.arrived = [];
      for (const req of a) {
        if (req.qpair.closed) continue; // lost with its connection
        req.qpair.outstanding++;
        this.events.onRequest(req);
      }
      busy = true;
    }
    if (this.closing.length > 0) {
      const c = this.closing;
      this.closing = [];
      for (const q of c) {
        if (q.outstanding > 0) this.events.onQpairClosing?.(q);
        this.maybeReportDisconnect(q);
      }
      busy = true;
    }
    return busy;
  }

  get qpairCount(): number {
    return this.qpairs.size;
  }

  get outstandingRequests(): number {
    let n = 0;
    for (const q of this.qpairs) n += q.outstanding;
    return n;
  }

  destroy(): void {
    this.qpairs.clear();
  }
}

/** The plug-in to registerTransport; `groups` are the poll groups it created, in order. */
export function fakeTransport(): { plugin: TransportPlugin; groups: FakePollGroup[] } {
  const groups: FakePollGroup[] = [];
  const plugin: TransportPlugin = {
    name: FAKE_TRTYPE,
    defaults: () => {
      throw new Error('the fake transport takes its options from the test');
    },
    createPollGroup(opts, events) {
      const g = new FakePollGroup(opts, events);
      groups.push(g);
      return g;
    },
    listen: async () => ({ close: async () => {} }),
  };
  return { plugin, groups };
}
