// NVMe/RDMA target transport, the acceptor (app thread): one listening CM id
// per listen address on the realm's CM event channel. Each connect request's
// private data is checked (connect-request.ts); a refused one gets the
// binding's reject status, an accepted one is offered to the core, which picks
// the poll group, and handed to that group's realm when it claims it
// (handoff.ts). A request nobody claims in time is rejected (no resources).

import {
  type CmEvent,
  type CmEventSink,
  CmEventType,
  type CmId,
  type RealmCmChannel,
  realmCmChannel,
} from '../../rdma/index.ts';
import { currentThread, sendMsg } from '../../thread/index.ts';
import { logger } from '../../util/log.ts';
import { RdmaRejectStatus, writeRdmaReject } from '../../wire/rdma.ts';
import type { TransportAddress, TransportListener, TransportOptions } from '../transport.ts';
import { type ConnectDecision, type DeviceLimits, decideConnectRequest } from './connect-request.ts';
import { type RdmaClaim, type RdmaOffer, rdmaHandoff, setRdmaAcceptorInbox } from './handoff.ts';

const log = logger('nvmf_rdma');

/** An offer no poll group claimed within this long is rejected. */
const OFFER_TIMEOUT_MS = 10_000;

interface Pending {
  id: CmId;
  decision: Extract<ConnectDecision, { accept: true }>;
  listenAddr: TransportAddress;
  timer: NodeJS.Timeout;
}

function reject(id: CmId, status: number): void {
  const data = Buffer.alloc(4);
  writeRdmaReject(data, status);
  try {
    id.reject(data);
  } catch {
    // the host gave up already
  }
  try {
    id.destroy();
  } catch {
    // gone
  }
}

/** The realm's acceptor: the pending offers of every RDMA listener. */
export class RdmaAcceptor {
  private readonly pending = new Map<number, Pending>();
  private nextOffer = 1;
  private readonly deviceLimits = new Map<string, DeviceLimits>();
  /** connect requests refused so far, by reject status (tests and stats) */
  readonly rejects = new Map<number, number>();

  constructor() {
    setRdmaAcceptorInbox(this);
  }

  /** A connect request on `listener`'s id. */
  connectRequest(listener: RdmaListener, event: CmEvent): void {
    const id = event.id;
    if (id === null) return;
    const device = id.device();
    let limits: DeviceLimits | undefined;
    if (device !== null) {
      limits = this.deviceLimits.get(device.name);
      if (limits === undefined) {
        const a = device.query();
        limits = { maxQpWr: a.maxQpWr, maxQpInitRdAtom: a.maxQpInitRdAtom };
        this.deviceLimits.set(device.name, limits);
      }
    }
    const peer = id.remoteAddress();
    const from = peer ? `${peer.address}:${peer.port}` : 'an unknown peer';
    if (limits === undefined) {
      log.error(`connect request from ${from}: the CM id has no device`);
      this.refuse(id, RdmaRejectStatus.NO_RESOURCES);
      return;
    }
    const decision = decideConnectRequest(event.privateData, event.initiatorDepth, listener.opts, limits);
    if (!decision.accept) {
      log.error(
        `connect request from ${from} to ${listener.address.traddr}:${listener.address.trsvcid} refused: ${decision.reason}`,
      );
      this.refuse(id, decision.status);
      return;
    }
    const offer = this.nextOffer++;
    const timer = setTimeout(() => {
      const p = this.pending.get(offer);
      if (p === undefined) return;
      this.pending.delete(offer);
      log.error(`connect request from ${from}: no poll group took it, refused`);
      this.refuse(p.id, RdmaRejectStatus.NO_RESOURCES);
    }, OFFER_TIMEOUT_MS);
    timer.unref();
    this.pending.set(offer, { id, decision, listenAddr: listener.address, timer });
    log.info(
      `connect request from ${from}: qid ${decision.qid}, depth ${decision.depth}, RDMA READ depth ${decision.readDepth}`,
    );
    listener.offer({ offer, acceptor: currentThread().ref } satisfies RdmaOffer);
  }

  private refuse(id: CmId, status: number): void {
    this.rejects.set(status, (this.rejects.get(status) ?? 0) + 1);
    reject(id, status);
  }

  /** A poll group takes an offer: the id moves to its realm's channel. */
  claim(m: RdmaClaim): void {
    const p = this.pending.get(m.offer);
    if (p === undefined) return;
    this.pending.delete(m.offer);
    clearTimeout(p.timer);
    let token: number;
    try {
      token = p.id.transfer(m.channelToken);
    } catch (e) {
      log.error(`handing a connection to poll group ${m.pg.name} failed: ${(e as Error).message}`);
      this.refuse(p.id, RdmaRejectStatus.NO_RESOURCES);
      return;
    }
    // the id is no longer this realm's
    realmCmChannel().unregister(p.id);
    const d = p.decision;
    sendMsg(m.pg, rdmaHandoff.adopt, {
      token,
      qid: d.qid,
      depth: d.depth,
      readDepth: d.readDepth,
      listenAddr: p.listenAddr,
    });
  }

  /** The listener is closing: requests still waiting are refused. */
  dropListener(listener: RdmaListener): void {
    for (const [offer, p] of this.pending) {
      if (p.listenAddr !== listener.address) continue;
      this.pending.delete(offer);
      clearTimeout(p.timer);
      this.refuse(p.id, RdmaRejectStatus.NO_RESOURCES);
    }
  }
}

let acceptor: RdmaAcceptor | null = null;

/** The realm's acceptor (made with the first listener). */
export function rdmaAcceptor(): RdmaAcceptor {
  acceptor ??= new RdmaAcceptor();
  return acceptor;
}

/** One listen address: a CM id bound there and listening. */
export class RdmaListener implements TransportListener, CmEventSink {
  readonly address: TransportAddress;
  readonly opts: TransportOptions;
  private readonly onConnection: (conn: unknown) => void;
  private readonly channel: RealmCmChannel;
  private id: CmId | null = null;

  constructor(address: TransportAddress, opts: TransportOptions, onConnection: (conn: unknown) => void) {
    this.address = address;
    this.opts = opts;
    this.onConnection = onConnection;
    this.channel = realmCmChannel();
  }

  /** Bind and listen; throws the CM's error (EADDRINUSE, EADDRNOTAVAIL: no RDMA device there…). */
  listen(): void {
    rdmaAcceptor();
    const id = this.channel.createId(this);
    try {
      id.bind(this.address.traddr, Number.parseInt(this.address.trsvcid, 10));
      id.listen(this.opts.acceptor_backlog ?? 100);
    } catch (e) {
      this.channel.unregister(id);
      id.destroy();
      throw e;
    }
    this.channel.registerListener(id, this);
    this.id = id;
  }

  onCmEvent(event: CmEvent): void {
    if (event.type === CmEventType.CONNECT_REQUEST) {
      rdmaAcceptor().connectRequest(this, event);
      return;
    }
    if (event.type === CmEventType.DEVICE_REMOVAL && event.id === this.id) {
      // the device under the listener goes: so does the listener (queues end on their own events)
      log.error(
        `RDMA listener ${this.address.traddr}:${this.address.trsvcid}: the device is being removed, it stops listening`,
      );
      void this.close();
    }
  }

  offer(o: RdmaOffer): void {
    this.onConnection(o);
  }

  async close(): Promise<void> {
    const id = this.id;
    if (id === null) return;
    this.id = null;
    acceptor?.dropListener(this);
    this.channel.unregister(id);
    try {
      id.destroy();
    } catch {
      // gone with its device
    }
  }
}
