// Test adapter over the deterministic thread harness: one realm, an app
// thread, worker threads, poll-until-idle, and helpers to await control-path
// promises while the threads run.

import * as B from '../../../src/bdev/module.ts';
import { aioModule } from '../../../src/modules/bdev/aio/aio.ts';
import { delayModule } from '../../../src/modules/bdev/delay/delay.ts';
import { errorModule } from '../../../src/modules/bdev/error/error.ts';
import { mallocModule } from '../../../src/modules/bdev/malloc/malloc.ts';
import { nullModule } from '../../../src/modules/bdev/null/null.ts';
import { passthruModule } from '../../../src/modules/bdev/passthru/passthru.ts';
import type { SpdkThread } from '../../../src/thread/index.ts';
import * as T from '../../../src/thread/testing.ts';
import { pollUntil } from '../../lib/wait.ts';

for (const m of [mallocModule, nullModule, aioModule, passthruModule, delayModule, errorModule]) {
  B.registerBdevModule(m);
}

export const app: SpdkThread = T.createThread('app');
T.setCurrent(app);

/** Run fn on a thread (as if from one of its messages). */
export function on<R>(t: SpdkThread, fn: () => R): R {
  const prev = T.current();
  T.setCurrent(t);
  try {
    return fn();
  } finally {
    T.setCurrent(prev);
  }
}

export function pollOnce(): boolean {
  const busy = T.pollOnce();
  T.setCurrent(app);
  return busy;
}

/** Poll every thread until nothing is left to do (timed pollers included when due). */
export function pollIdle(): void {
  for (let i = 0; i < 100000; i++) if (!pollOnce()) return;
  throw new Error('threads never went idle');
}

/** Poll (letting libuv run too) until `cond` holds or `ms` pass. */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const held = await pollUntil(
    () => {
      if (cond()) return true;
      pollOnce();
      return false;
    },
    { timeoutMs: ms, intervalMs: 0 },
  );
  if (!held) throw new Error('timed out waiting');
}

/**
 * Run the threads, and the promises and libuv callbacks they cause, until a
 * poll finds nothing to do: what is left waits for something (a timed poller
 * not yet due, a descriptor to close), not for its turn.
 */
export async function quiesce(ms = 5000): Promise<void> {
  await until(() => !pollOnce(), ms);
}

/** Await a control-path promise that needs the threads to run. */
export async function settle<X>(p: Promise<X>, ms = 5000): Promise<X> {
  let done = false;
  let value: X | undefined;
  let error: unknown;
  let failed = false;
  p.then(
    (v) => {
      done = true;
      value = v;
    },
    (e) => {
      done = true;
      failed = true;
      error = e;
    },
  );
  await until(() => done, ms);
  if (failed) throw error;
  return value as X;
}

export function createThread(name: string): SpdkThread {
  return T.createThread(name);
}

export interface Done {
  tag: unknown;
  ok: boolean;
  sct: number;
  sc: number;
  iov: Buffer[];
}

/** A completion recorder: `cb` frees the io and records the outcome. */
export function recorder(): { cb: B.BdevIoCb; done: Done[] } {
  const done: Done[] = [];
  const cb: B.BdevIoCb = (io, ok, tag) => {
    const st = B.bdevIoGetNvmeStatus(io);
    done.push({ tag, ok, sct: st.sct, sc: st.sc, iov: io.iov });
    B.bdevFreeIo(io);
  };
  return { cb, done };
}

let n = 0;
export function uniq(prefix: string): string {
  return `${prefix}${n++}`;
}
