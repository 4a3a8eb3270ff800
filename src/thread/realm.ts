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
  accountRealmGap,
  configureRealm,
  createThread,
  findLocalThread,
  hasPendingMessages,
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
}

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
  let scheduled = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let iterations = 0;
  // end of the last iteration, and whether the realm went to sleep after it
  let lastEndUs = nowUs();
  let slept = true;

  const schedule = (): void => {
    if (scheduled || stopped) return;
    scheduled = true;
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    setImmediate(iterate);
  };

  const iterate = (): void => {
    scheduled = false;
    if (stopped) return;
    iterations++;
    accountRealmGap(nowUs() - lastEndUs, slept);
    let busy: boolean;
    try {
      busy = pollThreads();
    } catch (e) {
      // a throwing handler is a bug in that handler; the reactor keeps serving the others
      log.error(
        `uncaught error in a message or poller: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
      );
      busy = true;
    }
    lastEndUs = nowUs();
    slept = !(busy || hasPendingMessages());
    if (!slept) {
      schedule();
      return;
    }
    const next = nextTimerUs();
    if (next !== Number.POSITIVE_INFINITY) {
      const ms = Math.max(0, (next - nowUs()) / 1000);
      timer = setTimeout(() => {
        timer = null;
        schedule();
      }, ms);
    }
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
