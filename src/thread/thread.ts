// Lightweight threads and pollers, and the per-realm bookkeeping every part of
// the thread library shares: this realm's threads, the current one, the clock
// and the link to the other reactors. A realm is one reactor's JS heap (the
// main thread or one worker); realms exchange messages over ports set up by
// the reactor runtime (realm.ts). Nothing here uses timers: the loop that
// drives pollThreads() lives in realm.ts (or testing.ts for unit tests).
// Messages and replies are in messages.ts, handler names in handlers.ts,
// io_devices in io-device.ts, walks in walk.ts, stats in stats.ts.

import { performance } from 'node:perf_hooks';
import type { Transferable as NodeTransferable } from 'node:worker_threads';
import { InvalidStateError } from '../util/errors.ts';
import { logger } from '../util/log.ts';

const log = logger('thread');

/** Objects moved (not copied) with a cross-realm message. */
export type Transferable = NodeTransferable;

export type ThreadRef = { readonly id: number; readonly name: string; readonly reactor: number };

export const PollerStatus = { IDLE: 0, BUSY: 1 } as const;

export interface Poller {
  readonly name: string;
  pause(): void;
  resume(): void;
  unregister(): void;
}

export interface IoChannel<C> {
  readonly deviceId: string;
  readonly thread: SpdkThread;
  readonly ctx: C;
  refs: number;
}

/** What the realm runtime plugs in: how to reach other reactors and how to wake this one. */
export interface RealmLink {
  readonly reactor: number;
  readonly reactorCount: number;
  post(reactor: number, msg: RealmMessage, transfer?: Transferable[]): void;
  wake(): void;
}

export type RealmMessage =
  | { k: 'msg'; t: number; h: string; a: unknown }
  | { k: 'spawn'; name: string; replyTo: ThreadRef; token: number }
  | { k: 'walk'; w: Walk };

/** A forEachChannel / forEachThread walk as it travels from realm to realm (walk.ts). */
export type Walk = {
  kind: 'ch' | 'th';
  id: string;
  iter: string;
  ctx: unknown;
  origin: ThreadRef;
  token: number;
  start: number;
  reactor: number;
  status: number;
};

// ---------------------------------------------------------------- realm state

const singleRealmLink: RealmLink = {
  reactor: 0,
  reactorCount: 1,
  post() {
    throw new InvalidStateError('no other reactors in this realm');
  },
  wake() {},
};

let link: RealmLink = singleRealmLink;

// Thread ids are unique across realms: a shared counter when the runtime provides one.
let idCounter: Int32Array = new Int32Array(new SharedArrayBuffer(4));

const threads = new Map<number, SpdkThread>();
let current: SpdkThread | null = null;
let defaultThread: SpdkThread | null = null;
// `performance` imported, not the global: the global is an accessor, run on every read (a
// measurable share of a clock read, which the loop pays several times per iteration)
let clock: () => number = () => performance.now() * 1000;

/** Called by the realm runtime (or a test harness) before threads are created. */
export function configureRealm(l: RealmLink, sharedIds?: Int32Array): void {
  link = l;
  if (sharedIds) idCounter = sharedIds;
}

export function realmReactor(): number {
  return link.reactor;
}

export function realmReactorCount(): number {
  return link.reactorCount;
}

/** Microsecond clock used for timed pollers and busy/idle accounting (tests may replace it). */
export function setClock(fn: () => number): void {
  clock = fn;
}

export function nowUs(): number {
  return clock();
}

/** when the thread being polled started its turn of this iteration (µs, the clock of nowUs) */
let turnStartUs = 0;

/**
 * The start of the current thread's turn in this reactor iteration: a clock read already paid
 * for, precise to one iteration, for per-I/O stamps (latency histograms, busy time) that must
 * not cost a clock read each.
 */
export function turnUs(): number {
  return turnStartUs;
}

/** Wake this realm's reactor loop (socket data handlers call it after queueing work for a poller). */
export function wakeReactor(): void {
  link.wake();
}

/**
 * The thread used when code runs outside any message or poller (async
 * control-path continuations, RPC handlers): the app thread on reactor 0,
 * the reactor's own thread on workers.
 */
export function setDefaultThread(t: SpdkThread | null): void {
  defaultThread = t;
}

export function currentThread(): SpdkThread {
  const t = current ?? defaultThread;
  if (t === null) throw new InvalidStateError('no current thread (not inside a message or poller)');
  return t;
}

/** Run fn as if on thread t (used by the runtime and test harnesses). */
export function setCurrentThread(t: SpdkThread | null): void {
  current = t;
}

export function getCurrentThreadOrNull(): SpdkThread | null {
  return current;
}

export function localThreads(): Iterable<SpdkThread> {
  return threads.values();
}

export function findLocalThread(id: number): SpdkThread | undefined {
  return threads.get(id);
}

/** The thread a reply should go back to: the current one, else the default one (null in neither). */
export function callerThreadOrNull(): SpdkThread | null {
  return current ?? defaultThread;
}

/** Post a message to another reactor of this process. */
export function postToReactor(reactor: number, msg: RealmMessage, transfer?: Transferable[]): void {
  link.post(reactor, msg, transfer);
}

// ---------------------------------------------------------------- pollers

export const PollerState = { WAITING: 0, RUNNING: 1, PAUSED: 2, UNREGISTERED: 3 } as const;

export class PollerImpl implements Poller {
  readonly name: string;
  readonly id: number;
  readonly fn: () => number;
  readonly periodUs: number;
  readonly thread: SpdkThread;
  state: number = PollerState.WAITING;
  nextRunUs = 0;
  runCount = 0;
  busyCount = 0;

  constructor(thread: SpdkThread, id: number, fn: () => number, periodUs: number, name: string) {
    this.thread = thread;
    this.id = id;
    this.fn = fn;
    this.periodUs = periodUs;
    this.name = name;
    this.nextRunUs = clock() + periodUs;
  }

  pause(): void {
    if (this.state !== PollerState.UNREGISTERED) this.state = PollerState.PAUSED;
  }

  resume(): void {
    if (this.state === PollerState.PAUSED) {
      this.state = PollerState.WAITING;
      this.nextRunUs = clock() + this.periodUs;
      link.wake();
    }
  }

  unregister(): void {
    if (this.state === PollerState.UNREGISTERED) return;
    this.state = PollerState.UNREGISTERED;
    this.thread.removePoller(this);
  }
}

export function registerPoller(fn: () => number, periodUs: number, name: string): Poller {
  const t = currentThread();
  const p = new PollerImpl(t, ++t.pollerIds, fn, periodUs, name);
  if (periodUs > 0) t.timed.push(p);
  else t.active.push(p);
  if (log.debugEnabled()) {
    log.debug(`poller ${name} on thread ${t.name}: ${periodUs > 0 ? `every ${periodUs} us` : 'active'}`);
  }
  link.wake();
  return p;
}

// ---------------------------------------------------------------- threads

const BATCH = 8;

export class SpdkThread {
  readonly ref: ThreadRef;
  readonly name: string;
  readonly id: number;
  // message ring: parallel arrays, no allocation per message once grown
  private qFn: Array<((a: unknown) => void) | undefined> = new Array(64);
  private qArg: unknown[] = new Array(64);
  private qHead = 0;
  private qLen = 0;
  active: PollerImpl[] = [];
  timed: PollerImpl[] = [];
  pollerIds = 0;
  private pollersRemoved = false;
  readonly channels = new Map<string, IoChannel<unknown>>();
  busyUs = 0;
  idleUs = 0;
  exited = false;

  constructor(name: string) {
    this.id = Atomics.add(idCounter, 0, 1) + 1;
    this.name = name;
    this.ref = Object.freeze({ id: this.id, name, reactor: link.reactor });
  }

  enqueue(fn: (a: unknown) => void, arg: unknown): void {
    if (this.qLen === this.qFn.length) this.grow();
    const i = (this.qHead + this.qLen) & (this.qFn.length - 1);
    this.qFn[i] = fn;
    this.qArg[i] = arg;
    this.qLen++;
  }

  private grow(): void {
    const n = this.qFn.length;
    const fns = new Array(n * 2);
    const args = new Array(n * 2);
    for (let i = 0; i < this.qLen; i++) {
      fns[i] = this.qFn[(this.qHead + i) & (n - 1)];
      args[i] = this.qArg[(this.qHead + i) & (n - 1)];
    }
    this.qFn = fns;
    this.qArg = args;
    this.qHead = 0;
  }

  get pendingMessages(): number {
    return this.qLen;
  }

  /** The poller is already marked unregistered; it leaves the lists after the current iteration. */
  removePoller(_p: PollerImpl): void {
    this.pollersRemoved = true;
  }

  private sweepPollers(): void {
    this.pollersRemoved = false;
    this.active = this.active.filter((p) => p.state !== PollerState.UNREGISTERED);
    this.timed = this.timed.filter((p) => p.state !== PollerState.UNREGISTERED);
  }

  /** Earliest due time of a waiting timed poller, or Infinity. */
  nextTimedUs(): number {
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.timed) if (p.state === PollerState.WAITING && p.nextRunUs < next) next = p.nextRunUs;
    return next;
  }

  /** One iteration: a batch of messages, the active pollers, the due timed pollers. Returns busy. */
  poll(now: number): boolean {
    const prev = current;
    current = this;
    let busy = false;
    try {
      const n = Math.min(this.qLen, BATCH);
      for (let k = 0; k < n; k++) {
        const i = this.qHead;
        const fn = this.qFn[i] as (a: unknown) => void;
        const arg = this.qArg[i];
        this.qFn[i] = undefined;
        this.qArg[i] = undefined;
        this.qHead = (i + 1) & (this.qFn.length - 1);
        this.qLen--;
        busy = true;
        fn(arg);
      }
      // index loops over the length at entry: pollers added meanwhile wait for the next
      // iteration; unregistered ones are marked and swept after (no copy per iteration)
      const active = this.active;
      for (let k = 0, n = active.length; k < n; k++) {
        const p = active[k];
        if (p.state !== PollerState.WAITING) continue;
        p.state = PollerState.RUNNING;
        const r = p.fn();
        p.runCount++;
        if (r > 0) {
          p.busyCount++;
          busy = true;
        }
        if (p.state === PollerState.RUNNING) p.state = PollerState.WAITING;
      }
      const timed = this.timed;
      for (let k = 0, n = timed.length; k < n; k++) {
        const p = timed[k];
        if (p.state !== PollerState.WAITING || p.nextRunUs > now) continue;
        p.state = PollerState.RUNNING;
        p.nextRunUs = now + p.periodUs;
        const r = p.fn();
        p.runCount++;
        if (r > 0) {
          p.busyCount++;
          busy = true;
        }
        if (p.state === PollerState.RUNNING) p.state = PollerState.WAITING;
      }
    } finally {
      current = prev;
      if (this.pollersRemoved) this.sweepPollers();
    }
    return busy;
  }

  /** Stop the thread: its pollers go now, it leaves the realm once its queue is empty. */
  exit(): void {
    this.exited = true;
    for (const p of [...this.active, ...this.timed]) p.unregister();
  }
}

export function createThread(name: string): SpdkThread {
  const t = new SpdkThread(name);
  threads.set(t.id, t);
  if (log.debugEnabled()) log.debug(`thread ${name} (id ${t.id}) created on reactor ${link.reactor}`);
  return t;
}

let lastPollEndUs = 0;

// The realm's own time split (framework_get_reactors): busy is the time of iterations that did
// work plus the event-loop turns between two such iterations (socket reads and writes done for
// the pollers); idle is the time of idle iterations plus the time the realm slept.
let realmBusyUs = 0;
let realmIdleUs = 0;

/** Busy and idle microseconds of this realm since it started (see accountRealmTime). */
export function realmLoad(): { busyUs: number; idleUs: number } {
  return { busyUs: realmBusyUs, idleUs: realmIdleUs };
}

/**
 * Called by the reactor loop for time spent outside pollThreads: `slept` is true when the realm
 * was asleep (after an idle iteration), false for the event-loop turn between busy iterations.
 * Sleep is idle time for every thread too, so a thread that does nothing reports ~0 % busy.
 */
export function accountRealmGap(us: number, slept: boolean): void {
  if (us <= 0) return;
  if (!slept) {
    realmBusyUs += us;
    return;
  }
  realmIdleUs += us;
  for (const t of threads.values()) t.idleUs += us;
}

/** `pollThreads` with no gap to account (the test harness, iterations run in the same turn). */
const NO_GAP = Number.NEGATIVE_INFINITY;

/**
 * Poll every thread of this realm once. Returns whether any did work.
 * Exited threads with empty queues are removed. One clock read per thread
 * plus one: each thread's end is the next one's start. The reactor loop passes the end of its
 * previous iteration (`gapStartUs`) and whether it slept since: that gap is accounted
 * (accountRealmGap) from the clock read this call starts with, not from a read of its own.
 */
export function pollThreads(gapStartUs = NO_GAP, slept = false): boolean {
  let busy = false;
  const now = clock();
  if (gapStartUs !== NO_GAP) accountRealmGap(now - gapStartUs, slept);
  let start = now;
  for (const t of threads.values()) {
    turnStartUs = start;
    const b = t.poll(now);
    const end = clock();
    const spent = end - start;
    start = end;
    if (b) {
      busy = true;
      t.busyUs += spent;
      realmBusyUs += spent;
    } else {
      t.idleUs += spent;
      realmIdleUs += spent;
    }
    if (t.exited && t.pendingMessages === 0) threads.delete(t.id);
  }
  lastPollEndUs = start;
  return busy;
}

/** The clock when the last pollThreads() ended (the reactor loop reuses it instead of reading again). */
export function lastPollEnd(): number {
  return lastPollEndUs;
}

/** Whether any local thread has queued messages. */
export function hasPendingMessages(): boolean {
  for (const t of threads.values()) if (t.pendingMessages > 0) return true;
  return false;
}

/** Earliest due time of any local timed poller (Infinity if none). */
export function nextTimerUs(): number {
  let next = Number.POSITIVE_INFINITY;
  for (const t of threads.values()) {
    const n = t.nextTimedUs();
    if (n < next) next = n;
  }
  return next;
}

/** Forget every thread of this realm and the link to the others (resetRealm in realm.ts does the rest). */
export function resetThreads(): void {
  threads.clear();
  realmBusyUs = 0;
  realmIdleUs = 0;
  current = null;
  defaultThread = null;
  link = singleRealmLink;
}
