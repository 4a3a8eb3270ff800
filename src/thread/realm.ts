// The reactor loop of one realm: poll every thread while there is work,
// driven by setImmediate; when an iteration is idle, sleep until the next
// timed poller is due or something wakes the realm (a local message, a port
// message, wakeReactor() from a socket handler). An idle realm spins nothing.

import type { MessagePort } from 'node:worker_threads';
import { InvalidStateError, NotRegisteredError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { handlerNamed } from './handlers.ts';
import { resetIoDevices } from './io-device.ts';
import { reply, resetReplies } from './messages.ts';
import {
  configureRealm,
  createThread,
  findLocalThread,
  hasPendingMessages,
  lastPollEnd,
  nextTimerUs,
  nowUs,
  pollThreads,
  type RealmMessage,
  resetThreads,
  type SpdkThread,
  setDefaultThread,
  type Transferable,
  wakeReactor,
} from './thread.ts';
import { walkRealm } from './walk.ts';

export interface RealmOptions {
  reactor: number;
  reactorCount: number;
  /** port to each other reactor, indexed by reactor number (own slot unused) */
  ports: Array<MessagePort | undefined>;
  /** shared thread-id counter (one Int32 over a SharedArrayBuffer) */
  sharedIds: Int32Array;
  /** name of the realm's default thread ('app_thread' on reactor 0) */
  defaultThreadName: string;
  /** how long the loop keeps polling after its last busy iteration before it sleeps (µs) */
  pollWindowUs?: number;
}

/**
 * The default poll window: a host at queue depth 1 sends its next command a few tens of µs
 * after our response; polling that long saves the sleep and wake-up per I/O (docs/performance.md
 * has the measurement), and an idle realm still sleeps once the window has passed.
 */
export const DEFAULT_POLL_WINDOW_US = 100;

/** Iterations run back to back in one event-loop turn while they leave local messages behind. */
const SAME_TURN_ITERATIONS = 4;

export interface Realm {
  readonly reactor: number;
  readonly reactorCount: number;
  readonly thread: SpdkThread;
  /** iterations run so far (busy + idle), for tests and stats */
  iterations(): number;
  stop(): void;
}

let running: Realm | null = null;
const log = logger('thread');

export function startRealm(opts: RealmOptions): Realm {
  if (running !== null) throw new InvalidStateError('a realm is already running here');
  const pollWindowUs = opts.pollWindowUs ?? DEFAULT_POLL_WINDOW_US;
  let scheduled = false;
  let stopped = false;
  // One timer for the timed pollers, created once and refreshed: waking up leaves it armed (if
  // it fires while the loop is busy it only schedules an iteration), so a busy/idle change
  // costs no clear and re-arm.
  let timer: ReturnType<typeof setTimeout> | null = null;
  let timerMs = -1;
  let timerDueUs = Number.POSITIVE_INFINITY;
  let lastBusyUs = Number.NEGATIVE_INFINITY;
  let iterations = 0;
  // end of the last iteration, and whether the realm went to sleep after it
  let lastEndUs = nowUs();
  let slept = true;

  const schedule = (): void => {
    if (scheduled || stopped) return;
    scheduled = true;
    setImmediate(iterate);
  };

  const onTimer = (): void => {
    timerDueUs = Number.POSITIVE_INFINITY;
    schedule();
  };

  const armTimer = (next: number, now: number): void => {
    // an armed timer due no later than the next timed poller serves (early at worst: one idle
    // iteration that arms it again)
    if (next >= timerDueUs) return;
    const ms = Math.max(1, Math.ceil((next - now) / 1000));
    if (timer !== null && ms === timerMs) timer.refresh();
    else {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(onTimer, ms);
      timerMs = ms;
    }
    timerDueUs = now + ms * 1000;
  };

  const iterate = (): void => {
    scheduled = false;
    if (stopped) return;
    iterations++;
    let busy: boolean;
    try {
      // the time since the last iteration (busy or idle, see accountRealmGap) is accounted with
      // the clock read this poll starts with: one read per iteration
      busy = pollThreads(lastEndUs, slept);
      // what the iteration left for this realm's threads (a bdev completion, a reply) runs in
      // this turn: the response it makes leaves now, not after another trip round the event loop
      for (let k = 0; busy && !stopped && k < SAME_TURN_ITERATIONS && hasPendingMessages(); k++) {
        iterations++;
        pollThreads();
      }
    } catch (e) {
      // a throwing handler is a bug in that handler; the reactor keeps serving the others
      log.error(
        `uncaught error in a message or poller: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
      );
      busy = true;
    }
    const now = lastPollEnd();
    lastEndUs = now;
    if (busy || hasPendingMessages()) {
      lastBusyUs = now;
      slept = false;
      schedule();
      return;
    }
    // from here the realm is idle: the time to its next iteration counts as idle whether it
    // polls on or sleeps
    slept = true;
    // poll on for a while after activity: the next command of a low-depth host is near
    if (now - lastBusyUs < pollWindowUs) {
      schedule();
      return;
    }
    const next = nextTimerUs();
    if (next !== Number.POSITIVE_INFINITY) armTimer(next, now);
  };

  configureRealm(
    {
      reactor: opts.reactor,
      reactorCount: opts.reactorCount,
      post(reactor: number, msg: RealmMessage, transfer?: Transferable[]) {
        const port = opts.ports[reactor];
        if (port === undefined) throw new NotRegisteredError(`no port to reactor ${reactor}`);
        port.postMessage(msg, transfer as never);
      },
      wake: schedule,
    },
    opts.sharedIds,
  );

  for (const port of opts.ports) {
    if (port === undefined) continue;
    port.on('message', (m: RealmMessage) => {
      try {
        deliverRealmMessage(m);
      } catch (e) {
        log.error(`bad message from another reactor: ${e instanceof Error ? e.message : String(e)}`);
      }
      schedule();
    });
  }

  const thread = createThread(opts.defaultThreadName);
  setDefaultThread(thread);

  const realm: Realm = {
    reactor: opts.reactor,
    reactorCount: opts.reactorCount,
    thread,
    iterations: () => iterations,
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      for (const port of opts.ports) port?.close();
      running = null;
      // a stopped realm keeps no threads or devices: a later startRealm begins clean
      resetRealm();
    },
  };
  running = realm;
  schedule();
  return realm;
}

export function currentRealm(): Realm | null {
  return running;
}

/** Deliver a message that arrived from another realm. */
function deliverRealmMessage(m: RealmMessage): void {
  switch (m.k) {
    case 'msg': {
      const t = findLocalThread(m.t);
      const fn = handlerNamed(m.h);
      if (t === undefined) return;
      if (fn === undefined) throw new NotRegisteredError(`message for unknown handler '${m.h}'`);
      t.enqueue(fn as (a: unknown) => void, m.a);
      wakeReactor();
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

/** Forget every thread, device and pending reply of this realm (stopped realms, test harnesses). */
export function resetRealm(): void {
  resetThreads();
  resetIoDevices();
  resetReplies();
}
