// What a realm (the main thread, a worker) shares among its RDMA users: one rdma_cm
// event channel whose events are handed to the owner of the id they name (the target's
// listeners and queue pairs, the host library's queue pairs), and one protection domain
// per device. The channel's fd is watched by libuv on the realm's loop; it keeps the
// loop alive only while a user holds it (a host waiting for its connection), so an idle
// realm can exit or sleep.

import type { CmEvent, CmEventChannel, CmId, Device, ProtectionDomain, RdmaAddon } from './native.ts';
import { loadRdmaAddon } from './native.ts';
import { CmEventType } from './work-request.ts';

/** Who receives the CM events of an id. */
export interface CmEventSink {
  onCmEvent(event: CmEvent): void;
}

/** Events of an id nobody claimed yet are kept (an id handed over before its adopter registers). */
const MAX_ORPHAN_EVENTS = 8;

export class RealmCmChannel {
  readonly addon: RdmaAddon;
  readonly channel: CmEventChannel;
  private readonly sinks = new Map<CmId, CmEventSink>();
  private readonly listeners = new Map<CmId, CmEventSink>();
  private readonly orphans = new Map<CmId, CmEvent[]>();
  private holds = 0;

  constructor(addon: RdmaAddon) {
    this.addon = addon;
    this.channel = addon.createEventChannel();
    this.channel.start((event) => this.dispatch(event));
    this.channel.unref();
  }

  /** The token another realm's CmId.transfer needs to hand an id to this channel. */
  get token(): number {
    return this.channel.token;
  }

  /** A new id whose events come here (to `sink`). */
  createId(sink: CmEventSink): CmId {
    const id = this.channel.createId();
    this.sinks.set(id, sink);
    return id;
  }

  /** `sink` receives the events of `id` from now on (events that came before are delivered now). */
  register(id: CmId, sink: CmEventSink): void {
    this.sinks.set(id, sink);
    const early = this.orphans.get(id);
    if (early === undefined) return;
    this.orphans.delete(id);
    for (const e of early) sink.onCmEvent(e);
  }

  /** Connect requests arriving on listening id `id` go to `sink`. */
  registerListener(id: CmId, sink: CmEventSink): void {
    this.listeners.set(id, sink);
    this.sinks.set(id, sink);
  }

  unregister(id: CmId): void {
    this.sinks.delete(id);
    this.listeners.delete(id);
    this.orphans.delete(id);
  }

  /** Keep the realm's loop alive while something waits for a CM event (counted). */
  hold(): void {
    if (this.holds++ === 0) this.channel.ref();
  }

  release(): void {
    if (this.holds > 0 && --this.holds === 0) this.channel.unref();
  }

  private dispatch(event: CmEvent): void {
    if (event.type === CmEventType.CONNECT_REQUEST) {
      const listener = event.listenId === null ? undefined : this.listeners.get(event.listenId);
      if (listener !== undefined) {
        listener.onCmEvent(event);
        return;
      }
      // nobody listens there any more: refuse, and free the new id
      try {
        event.id?.reject();
        event.id?.destroy();
      } catch {
        // already gone
      }
      return;
    }
    const id = event.id;
    if (id === null) return;
    const sink = this.sinks.get(id);
    if (sink !== undefined) {
      sink.onCmEvent(event);
      return;
    }
    let early = this.orphans.get(id);
    if (early === undefined) {
      early = [];
      this.orphans.set(id, early);
    }
    if (early.length < MAX_ORPHAN_EVENTS) early.push(event);
  }
}

let realmChannel: RealmCmChannel | null = null;
const pds = new Map<string, ProtectionDomain>();

/** This realm's CM event channel (made on first use; throws RdmaUnavailableError or the CM's error). */
export function realmCmChannel(): RealmCmChannel {
  realmChannel ??= new RealmCmChannel(loadRdmaAddon());
  return realmChannel;
}

/** This realm's protection domain on `device` (one per device, kept for the realm's life). */
export function realmPd(device: Device): ProtectionDomain {
  let pd = pds.get(device.name);
  if (pd === undefined) {
    pd = device.allocPd();
    pds.set(device.name, pd);
  }
  return pd;
}

/** Forget this realm's channel and protection domains (tests that swap the addon). */
export function resetRdmaRealm(): void {
  realmChannel = null;
  pds.clear();
}
