// QoS rate limits enforced per bdev across every thread of every realm: the
// budget of the current time window lives in a SharedArrayBuffer all realms'
// replicas update with Atomics; an I/O over budget waits in its channel's
// queue and is retried by a timed poller on that channel's thread.

import { type Poller, registerPoller } from '../thread/index.ts';
import { type BdevChannel, submitAdmitted } from './bdev.ts';
import type { BdevIo } from './bdev-io.ts';
import { BdevIoType } from './types.ts';

/** bdev_set_qos_limit parameters (0 = unlimited). */
export interface QosLimits {
  rw_ios_per_sec: number;
  rw_mbytes_per_sec: number;
  r_mbytes_per_sec: number;
  w_mbytes_per_sec: number;
}

// Int32 slots in the shared state
const WINDOW = 0;
const IOS = 1;
const RW_KB = 2;
const R_KB = 3;
const W_KB = 4;
const SLOTS = 5;

export function createQosState(): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOTS * 4);
}

export function qosEnabled(l: QosLimits): boolean {
  return l.rw_ios_per_sec > 0 || l.rw_mbytes_per_sec > 0 || l.r_mbytes_per_sec > 0 || l.w_mbytes_per_sec > 0;
}

interface QueuedChannel {
  queue: BdevIo[];
  poller: Poller | null;
}

export class BdevQos {
  readonly limits: QosLimits;
  private readonly s: Int32Array;
  private readonly windowMs: number;
  // quotas per window; Infinity = unlimited (byte quotas in KiB)
  private readonly iosQuota: number;
  private readonly rwKbQuota: number;
  private readonly rKbQuota: number;
  private readonly wKbQuota: number;
  private readonly waiting = new Map<BdevChannel, QueuedChannel>();

  constructor(state: SharedArrayBuffer, limits: QosLimits) {
    this.s = new Int32Array(state);
    this.limits = limits;
    let windowMs = 10;
    if (limits.rw_ios_per_sec > 0) windowMs = Math.max(windowMs, Math.ceil(1000 / limits.rw_ios_per_sec));
    this.windowMs = windowMs;
    const per = (perSec: number) => (perSec > 0 ? (perSec * windowMs) / 1000 : Number.POSITIVE_INFINITY);
    this.iosQuota = per(limits.rw_ios_per_sec);
    this.rwKbQuota = per(limits.rw_mbytes_per_sec * 1024);
    this.rKbQuota = per(limits.r_mbytes_per_sec * 1024);
    this.wKbQuota = per(limits.w_mbytes_per_sec * 1024);
  }

  private roll(): void {
    const w = Math.floor((performance.timeOrigin + performance.now()) / this.windowMs) | 0;
    const cur = Atomics.load(this.s, WINDOW);
    if (w !== cur && Atomics.compareExchange(this.s, WINDOW, cur, w) === cur) {
      // carry overdraft (one big I/O may exceed a window's budget) into the new window
      const carry = (slot: number, quota: number) => {
        const used = Atomics.load(this.s, slot);
        Atomics.store(this.s, slot, Number.isFinite(quota) ? Math.max(0, Math.floor(used - quota)) : 0);
      };
      carry(IOS, this.iosQuota);
      carry(RW_KB, this.rwKbQuota);
      carry(R_KB, this.rKbQuota);
      carry(W_KB, this.wKbQuota);
    }
  }

  private tryConsume(io: BdevIo): boolean {
    this.roll();
    const s = this.s;
    const kb = Math.ceil((io.numBlocks * io.bdev!.blockSize) / 1024);
    const isRead = io.type === BdevIoType.READ;
    const isWrite = io.type === BdevIoType.WRITE;
    if (Atomics.load(s, IOS) >= this.iosQuota) return false;
    if ((isRead || isWrite) && Atomics.load(s, RW_KB) >= this.rwKbQuota) return false;
    if (isRead && Atomics.load(s, R_KB) >= this.rKbQuota) return false;
    if (isWrite && Atomics.load(s, W_KB) >= this.wKbQuota) return false;
    Atomics.add(s, IOS, 1);
    if (isRead || isWrite) Atomics.add(s, RW_KB, kb);
    if (isRead) Atomics.add(s, R_KB, kb);
    if (isWrite) Atomics.add(s, W_KB, kb);
    return true;
  }

  /** true: go on now; false: queued, resubmitted later by the channel's poller. */
  admit(io: BdevIo): boolean {
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
      qc.poller = registerPoller(() => this.drain(ch, qc), 1000, `bdev_qos_${ch.bdev.name}`);
    }
    return false;
  }

  private drain(ch: BdevChannel, q: QueuedChannel): number {
    let n = 0;
    while (q.queue.length > 0 && this.tryConsume(q.queue[0])) {
      submitAdmitted(q.queue.shift()!);
      n++;
    }
    if (q.queue.length === 0 && q.poller !== null) {
      q.poller.unregister();
      q.poller = null;
      this.waiting.delete(ch);
    }
    return n > 0 ? 1 : 0;
  }

  completed(_io: BdevIo): void {}

  /** QoS turned off or changed: everything queued goes on now (from each channel's thread poller). */
  release(): void {
    for (const [, q] of this.waiting) {
      for (const io of q.queue.splice(0)) submitAdmitted(io);
      q.poller?.unregister();
      q.poller = null;
    }
    this.waiting.clear();
  }
}
