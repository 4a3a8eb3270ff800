// Lightweight threads, message handlers, pollers, io_devices and channels,
// and the per-realm bookkeeping they share. A realm is one reactor's JS heap
// (the main thread or one worker); realms exchange messages over ports set
// up by the reactor runtime (realm.ts). Nothing here uses timers: the loop
// that drives pollThreads() lives in realm.ts (or testing.ts for unit tests).

import type { Transferable as NodeTransferable } from 'node:worker_threads';

/** Objects moved (not copied) with a cross-realm message. */
export type Transferable = NodeTransferable;

export type ThreadRef = { readonly id: number; readonly name: string; readonly reactor: number };

export interface MsgHandler<A> {
  readonly name: string;
  readonly fn: (arg: A) => void;
}

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

export interface ChannelIter<A> {
  readonly name: string;
  readonly fn: (ch: IoChannel<unknown>, ctx: A, next: (status: number) => void) => void;
}

export interface ThreadIter<A> {
  readonly name: string;
  readonly fn: (ctx: A, next: (status: number) => void) => void;
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

type Walk = {
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

// ---------------------------------------------------------------- handlers

const handlers = new Map<string, (arg: never) => void>();
const iters = new Map<string, (...args: never[]) => void>();

/** Register name -> fn in this realm's table. Every realm evaluates the same modules, so names resolve everywhere. */
export function defineHandler<A>(name: string, fn: (arg: A) => void): MsgHandler<A> {
  if (handlers.has(name)) throw new Error(`message handler '${name}' is already defined`);
  handlers.set(name, fn as (arg: never) => void);
  return { name, fn };
}

export function defineChannelIter<A>(name: string, fn: ChannelIter<A>['fn']): ChannelIter<A> {
  if (iters.has(name)) throw new Error(`iterator '${name}' is already defined`);
  iters.set(name, fn as (...args: never[]) => void);
  return { name, fn };
}

export function defineThreadIter<A>(name: string, fn: ThreadIter<A>['fn']): ThreadIter<A> {
  if (iters.has(name)) throw new Error(`iterator '${name}' is already defined`);
  iters.set(name, fn as (...args: never[]) => void);
  return { name, fn };
}

// ---------------------------------------------------------------- realm state

const singleRealmLink: RealmLink = {
  reactor: 0,
  reactorCount: 1,
  post() {
    throw new Error('no other reactors in this realm');
  },
  wake() {},
};

let link: RealmLink = singleRealmLink;

// Thread ids are unique across realms: a shared counter when the runtime provides one.
let idCounter: Int32Array = new Int32Array(new SharedArrayBuffer(4));

const threads = new Map<number, SpdkThread>();
let current: SpdkThread | null = null;
let defaultThread: SpdkThread | null = null;
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
  if (t === null) throw new Error('no current thread (not inside a message or poller)');
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

// ---------------------------------------------------------------- pollers

const PollerState = { WAITING: 0, RUNNING: 1, PAUSED: 2, UNREGISTERED: 3 } as const;

class PollerImpl implements Poller {
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
  return t;
}

/**
 * Poll every thread of this realm once. Returns whether any did work.
 * Exited threads with empty queues are removed.
 */
export function pollThreads(): boolean {
  let busy = false;
  const now = clock();
  for (const t of threads.values()) {
    const start = clock();
    const b = t.poll(now);
    const spent = clock() - start;
    if (b) {
      busy = true;
      t.busyUs += spent;
    } else t.idleUs += spent;
    if (t.exited && t.pendingMessages === 0) threads.delete(t.id);
  }
  return busy;
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

// ---------------------------------------------------------------- messages

export function sendMsg<A>(
  to: ThreadRef | SpdkThread,
  h: MsgHandler<A> | ((a: A) => void),
  arg: A,
  transfer?: Transferable[],
): void {
  const ref = to instanceof SpdkThread ? to.ref : to;
  if (ref.reactor === link.reactor) {
    const t = threads.get(ref.id);
    if (t === undefined) return; // thread gone: drop, as SPDK does for exited threads
    t.enqueue((typeof h === 'function' ? h : h.fn) as (a: unknown) => void, arg);
    link.wake();
    return;
  }
  if (typeof h === 'function') {
    throw new Error(
      `sendMsg to thread '${ref.name}' on reactor ${ref.reactor} needs a named handler (defineHandler)`,
    );
  }
  link.post(ref.reactor, { k: 'msg', t: ref.id, h: h.name, a: arg }, transfer);
}

// replies to the calling thread: plain callbacks stay in their realm, keyed by token
type Reply = ((v: unknown) => void) | MsgHandler<unknown>;
const replies = new Map<number, { thread: SpdkThread; cb: Reply }>();
let replyToken = 0;

function holdReply(cb: Reply): number {
  const token = ++replyToken;
  replies.set(token, { thread: currentThread(), cb });
  return token;
}

const replyHandler = defineHandler<{ token: number; value: unknown }>('thread.reply', (m) => {
  const r = replies.get(m.token);
  if (r === undefined) return;
  replies.delete(m.token);
  if (typeof r.cb === 'function') r.cb(m.value);
  else r.cb.fn(m.value);
});

function reply(to: ThreadRef, token: number, value: unknown): void {
  sendMsg(to, replyHandler, { token, value });
}

/** Create a thread on reactor `reactor` (any realm); `done` runs on the calling thread with its ref. */
export function spawnThread(
  name: string,
  reactor: number,
  done: MsgHandler<ThreadRef> | ((r: ThreadRef) => void),
): void {
  if (!Number.isInteger(reactor) || reactor < 0 || reactor >= link.reactorCount) {
    throw new Error(`spawnThread '${name}': no reactor ${reactor} (have ${link.reactorCount})`);
  }
  const caller = currentThread();
  const token = holdReply(done as Reply);
  if (reactor === link.reactor) {
    const t = createThread(name);
    reply(caller.ref, token, t.ref);
  } else link.post(reactor, { k: 'spawn', name, replyTo: caller.ref, token });
}

/** Deliver a message that arrived from another realm. */
export function deliverRealmMessage(m: RealmMessage): void {
  switch (m.k) {
    case 'msg': {
      const t = threads.get(m.t);
      const fn = handlers.get(m.h);
      if (t === undefined) return;
      if (fn === undefined) throw new Error(`message for unknown handler '${m.h}'`);
      t.enqueue(fn as (a: unknown) => void, m.a);
      link.wake();
      return;
    }
    case 'spawn': {
      const t = createThread(m.name);
      reply(m.replyTo, m.token, t.ref);
      return;
    }
    case 'walk':
      walkRealm(m.w);
      return;
  }
}

// ---------------------------------------------------------------- io devices

interface IoDevice {
  id: string;
  name: string;
  create: (id: string) => unknown;
  destroy: (ctx: unknown) => void;
  channels: number;
  unregistered: boolean;
  onGone: Array<() => void>;
}

const devices = new Map<string, IoDevice>();

export function registerIoDevice<C>(
  id: string,
  create: (id: string) => C,
  destroy: (ctx: C) => void,
  name?: string,
): void {
  const d = devices.get(id);
  if (d !== undefined && !d.unregistered) throw new Error(`io_device '${id}' is already registered`);
  devices.set(id, {
    id,
    name: name ?? id,
    create,
    destroy: destroy as (ctx: unknown) => void,
    channels: 0,
    unregistered: false,
    onGone: [],
  });
}

export function unregisterIoDevice(id: string, done?: () => void): void {
  const d = devices.get(id);
  if (d === undefined || d.unregistered) throw new Error(`io_device '${id}' is not registered`);
  d.unregistered = true;
  const caller = current ?? defaultThread;
  const notify = (): void => {
    if (done === undefined) return;
    if (caller !== null) sendMsg(caller, done, undefined);
    else done();
  };
  if (d.channels === 0) {
    devices.delete(id);
    notify();
  } else d.onGone.push(notify);
}

export function ioDeviceRegistered(id: string): boolean {
  const d = devices.get(id);
  return d !== undefined && !d.unregistered;
}

export function getIoChannel<C>(id: string): IoChannel<C> {
  const t = currentThread();
  const existing = t.channels.get(id);
  if (existing !== undefined) {
    existing.refs++;
    return existing as IoChannel<C>;
  }
  const d = devices.get(id);
  if (d === undefined || d.unregistered) throw new Error(`io_device '${id}' is not registered in this realm`);
  const ch: IoChannel<unknown> = { deviceId: id, thread: t, ctx: undefined, refs: 1 };
  t.channels.set(id, ch);
  d.channels++;
  try {
    (ch as { ctx: unknown }).ctx = d.create(id);
  } catch (e) {
    t.channels.delete(id);
    d.channels--;
    throw e;
  }
  return ch as IoChannel<C>;
}

function destroyChannelIfUnused(ch: IoChannel<unknown>): void {
  if (ch.refs > 0 || ch.thread.channels.get(ch.deviceId) !== ch) return;
  ch.thread.channels.delete(ch.deviceId);
  const d = devices.get(ch.deviceId);
  if (d === undefined) return;
  d.destroy(ch.ctx);
  d.channels--;
  if (d.unregistered && d.channels === 0) {
    devices.delete(d.id);
    for (const f of d.onGone) f();
  }
}

/** Release a reference; the channel is destroyed by a message once no references remain. */
export function putIoChannel(ch: IoChannel<unknown>): void {
  if (ch.refs <= 0) throw new Error(`putIoChannel: channel for '${ch.deviceId}' has no references`);
  ch.refs--;
  if (ch.refs === 0) {
    ch.thread.enqueue(destroyChannelIfUnused as (a: unknown) => void, ch);
    link.wake();
  }
}

// ---------------------------------------------------------------- walks

function finishWalk(w: Walk): void {
  reply(w.origin, w.token, { ctx: w.ctx, status: w.status });
}

function nextRealm(w: Walk): void {
  const next = (w.reactor + 1) % link.reactorCount;
  if (next === w.start) {
    finishWalk(w);
    return;
  }
  w.reactor = next;
  link.post(next, { k: 'walk', w });
}

function walkRealm(w: Walk): void {
  const targets: SpdkThread[] = [];
  for (const t of threads.values()) {
    if (t.exited) continue;
    if (w.kind === 'th' || t.channels.has(w.id)) targets.push(t);
  }
  const iter = iters.get(w.iter);
  if (iter === undefined) throw new Error(`unknown iterator '${w.iter}'`);
  const step = (i: number): void => {
    if (i >= targets.length) {
      nextRealm(w);
      return;
    }
    const t = targets[i];
    t.enqueue(() => {
      const next = (status: number): void => {
        if (status !== 0) {
          w.status = status;
          finishWalk(w);
        } else step(i + 1);
      };
      if (w.kind === 'th') {
        (iter as ThreadIter<unknown>['fn'])(w.ctx, next);
        return;
      }
      const ch = t.channels.get(w.id);
      if (ch === undefined) next(0);
      else (iter as ChannelIter<unknown>['fn'])(ch, w.ctx, next);
    }, undefined);
    link.wake();
  };
  step(0);
}

type Done<A> = MsgHandler<{ ctx: A; status: number }> | ((r: { ctx: A; status: number }) => void);

/**
 * Visit every thread (all realms) holding a channel for `id`, one after
 * another; `iter.fn` calls next(status) (non-zero stops the walk); then
 * `done` runs on the calling thread. ctx is structured-cloned between realms.
 */
export function forEachChannel<A>(id: string, iter: ChannelIter<A>, ctx: A, done: Done<A>): void {
  const caller = currentThread();
  const token = holdReply(done as Reply);
  walkRealm({
    kind: 'ch',
    id,
    iter: iter.name,
    ctx,
    origin: caller.ref,
    token,
    start: link.reactor,
    reactor: link.reactor,
    status: 0,
  });
}

/** Visit every thread of every realm, one after another, then `done` on the calling thread. */
export function forEachThread<A>(iter: ThreadIter<A>, ctx: A, done: Done<A>): void {
  const caller = currentThread();
  const token = holdReply(done as Reply);
  walkRealm({
    kind: 'th',
    id: '',
    iter: iter.name,
    ctx,
    origin: caller.ref,
    token,
    start: link.reactor,
    reactor: link.reactor,
    status: 0,
  });
}

// ---------------------------------------------------------------- stats

export interface PollerInfo {
  name: string;
  id: number;
  state: 'waiting' | 'running' | 'paused';
  run_count: number;
  busy_count: number;
  period_ticks?: number;
}

export interface ThreadInfo {
  name: string;
  id: number;
  reactor: number;
  busy: number;
  idle: number;
  active_pollers: PollerInfo[];
  timed_pollers: PollerInfo[];
  paused_pollers: PollerInfo[];
  io_channels: Array<{ name: string; ref: number }>;
}

/** Ticks are microseconds. */
export const TICK_RATE = 1_000_000;

function pollerInfo(p: PollerImpl): PollerInfo {
  const info: PollerInfo = {
    name: p.name,
    id: p.id,
    state:
      p.state === PollerState.PAUSED ? 'paused' : p.state === PollerState.RUNNING ? 'running' : 'waiting',
    run_count: p.runCount,
    busy_count: p.busyCount,
  };
  if (p.periodUs > 0) info.period_ticks = p.periodUs;
  return info;
}

/** Stats of one thread (cloneable), for thread_get_stats / thread_get_pollers / thread_get_io_channels. */
export function threadInfo(t: SpdkThread): ThreadInfo {
  const live = (p: PollerImpl): boolean => p.state !== PollerState.UNREGISTERED;
  const running = (p: PollerImpl): boolean => live(p) && p.state !== PollerState.PAUSED;
  return {
    name: t.name,
    id: t.id,
    reactor: t.ref.reactor,
    busy: Math.round(t.busyUs),
    idle: Math.round(t.idleUs),
    active_pollers: t.active.filter(running).map(pollerInfo),
    timed_pollers: t.timed.filter(running).map(pollerInfo),
    paused_pollers: [...t.active, ...t.timed].filter((p) => p.state === PollerState.PAUSED).map(pollerInfo),
    io_channels: [...t.channels.values()].map((c) => ({
      name: devices.get(c.deviceId)?.name ?? c.deviceId,
      ref: c.refs,
    })),
  };
}

/** Stats of every thread of this realm. */
export function threadStats(): ThreadInfo[] {
  return [...threads.values()].map(threadInfo);
}

/** Forget every thread, device and pending reply of this realm (stopped realms, test harnesses). */
export function resetRealm(): void {
  threads.clear();
  devices.clear();
  replies.clear();
  current = null;
  defaultThread = null;
  link = singleRealmLink;
}
