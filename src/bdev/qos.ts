// QoS rate limits enforced per bdev across every thread of every realm: the
// budget of the current time window lives in a SharedArrayBuffer all realms'
// replicas update with Atomics; an I/O over budget waits in its channel's
// queue and is retried by a timed poller on that channel's thread, which
// hands it back to the bdev layer through the callback the layer gave.

import { type Poller, registerPoller } from '../thread/index.ts';
import { BdevIoType } from './types.ts';

/** bdev_set_qos_limit parameters (0 = unlimited). */
export interface QosLimits {
  rw_ios_per_sec: number;
  rw_mbytes_per_sec: number;
  r_mbytes_per_sec: number;
  w_mbytes_per_sec: number;
}

// Int32 slots in the shared state: a token bucket per limit, in thousandths
// of the unit (I/Os, KiB), refilled from the elapsed milliseconds by
// whichever realm gets there first. Unused credit carries over up to
// BURST_MS, so a thread that was late to run catches up; a big I/O may take
// the bucket below zero (debt) and later ones wait until it is paid.
const LAST_MS = 0;
const IOS = 1;
const RW_KB = 2;
const R_KB = 3;
const W_KB = 4;
const SLOTS = 5;
const BURST_MS = 200;
/** credit a new bucket starts with */
const START_MS = 5;
const MAX_TOKENS = 2_000_000_000;

/** Shared state: a Float64 epoch (ms, set once) then the Int32 slots. */
export function createQosState(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(8 + SLOTS * 4);
  new Float64Array(sab, 0, 1)[0] = performance.timeOrigin + performance.now();
  return sab;
}

export function qosEnabled(l: QosLimits): boolean {
  return l.rw_ios_per_sec > 0 || l.rw_mbytes_per_sec > 0 || l.r_mbytes_per_sec > 0 || l.w_mbytes_per_sec > 0;
}

/** What QoS reads of an I/O (a BdevIo): its type and size, and the channel it waits on. */
export interface QosIo {
  readonly type: BdevIoType;
  readonly byteLength: number;
  readonly ch: object | null;
}

interface QueuedChannel<Io> {
  queue: Io[];
  poller: Poller | null;
}

export class BdevQos<Io extends QosIo> {
  readonly limits: QosLimits;
  private readonly bdevName: string;
  /** the owner's way back in for an I/O that waited: called on the I/O's channel thread */
  private readonly resubmit: (io: Io) => void;
  private readonly s: Int32Array;
  /** wall-clock ms at which the state was created: every realm counts from it (timeOrigin differs per worker) */
  private readonly epoch: number;
  // refill per millisecond, in thousandths of the unit; 0 = unlimited
  private readonly perMs: number[];
  /** queued I/Os by channel */
  private readonly waiting = new Map<object, QueuedChannel<Io>>();

  constructor(state: SharedArrayBuffer, limits: QosLimits, bdevName: string, resubmit: (io: Io) => void) {
    this.s = new Int32Array(state, 8, SLOTS);
    this.epoch = new Float64Array(state, 0, 1)[0];
    this.limits = limits;
    this.bdevName = bdevName;
    this.resubmit = resubmit;
    this.perMs = [
      0,
      limits.rw_ios_per_sec, // IOs/s → milli-IOs/ms
      limits.rw_mbytes_per_sec * 1024, // KiB/s → milli-KiB/ms
      limits.r_mbytes_per_sec * 1024,
      limits.w_mbytes_per_sec * 1024,
    ];
    if (Atomics.load(this.s, LAST_MS) === 0) {
      Atomics.compareExchange(this.s, LAST_MS, 0, this.nowMs());
      for (let k = IOS; k < SLOTS; k++)
        Atomics.store(this.s, k, Math.min(MAX_TOKENS, this.perMs[k] * START_MS));
    }
  }

  /** ms since the state was created (fits an Int32 for 24 days; +1 so 0 means unset) */
  private nowMs(): number {
    return (Math.floor(performance.timeOrigin + performance.now() - this.epoch) + 1) | 0;
  }

  private refill(): void {
    const now = this.nowMs();
    const last = Atomics.load(this.s, LAST_MS);
    const dt = now - last;
    if (dt <= 0 || Atomics.compareExchange(this.s, LAST_MS, last, now) !== last) return;
    for (let k = IOS; k < SLOTS; k++) {
      const rate = this.perMs[k];
      if (rate === 0) continue;
      const cap = Math.min(MAX_TOKENS, rate * BURST_MS);
      const add = Math.min(cap, rate * dt);
      // add, then clip to the burst cap (another realm may add at the same time; clipping keeps it bounded)
      const v = Atomics.add(this.s, k, add) + add;
      if (v > cap) Atomics.sub(this.s, k, v - cap);
    }
  }

  private released = false;

  private tryConsume(io: Io): boolean {
    if (this.released) return true;
    this.refill();
    const s = this.s;
    const milliKb = Math.ceil(io.byteLength / 1024) * 1000;
    const isRead = io.type === BdevIoType.READ;
    const isWrite = io.type === BdevIoType.WRITE;
    const p = this.perMs;
    if (p[IOS] > 0 && Atomics.load(s, IOS) <= 0) return false;
    if (p[RW_KB] > 0 && (isRead || isWrite) && Atomics.load(s, RW_KB) <= 0) return false;
    if (p[R_KB] > 0 && isRead && Atomics.load(s, R_KB) <= 0) return false;
    if (p[W_KB] > 0 && isWrite && Atomics.load(s, W_KB) <= 0) return false;
    if (p[IOS] > 0) Atomics.sub(s, IOS, 1000);
    if (p[RW_KB] > 0 && (isRead || isWrite)) Atomics.sub(s, RW_KB, milliKb);
    if (p[R_KB] > 0 && isRead) Atomics.sub(s, R_KB, milliKb);
    if (p[W_KB] > 0 && isWrite) Atomics.sub(s, W_KB, milliKb);
    return true;
  }

  /** true: go on now; false: queued, handed to `resubmit` later by the channel's poller. */
  admit(io: Io): boolean {
    const ch = io.ch!;
    let q = this.waiting.get(ch);
    if ((q === undefined || q.queue.length === 0) && this.tryConsume(io)) return true;
    if (q === undefined) {
      q = { queue: [], poller: null };
      this.waiting.set(ch, q);
    }
    q.queue.push(io);
    if (q.poller === null) {
      const qc = q;
      qc.poller = registerPoller(() => this.drain(ch, qc), 1000, `bdev_qos_${this.bdevName}`);
    }
    return false;
  }

  private drain(ch: object, q: QueuedChannel<Io>): number {
    let n = 0;
    while (q.queue.length > 0 && this.tryConsume(q.queue[0])) {
      this.resubmit(q.queue.shift()!);
      n++;
    }
    if (q.queue.length === 0 && q.poller !== null) {
      q.poller.unregister();
      q.poller = null;
      this.waiting.delete(ch);
    }
    return n > 0 ? 1 : 0;
  }

  completed(_io: Io): void {}

  /**
   * QoS turned off or changed (runs on the realm's control thread): queued
   * I/Os are let through by each channel's own poller, on the thread that
   * owns the channel, at its next run.
   */
  release(): void {
    this.released = true;
  }
}
