// Waiting in tests, always bounded: on a condition (polled), on a value, or on
// a promise. A test never sleeps and then checks that nothing happened; it
// waits here for the state that proves its claim, and a timeout names what
// it waited for.

import assert from 'node:assert/strict';

export interface WaitOptions {
  /** give up after this long (default 10 s) */
  timeoutMs?: number;
  /** pause between checks (default 20 ms; 0: the next turn of the event loop) */
  intervalMs?: number;
  /** more context for a timeout's message, e.g. the target's log tail */
  detail?: () => string;
}

function pause(ms: number): Promise<void> {
  return new Promise((r) => (ms > 0 ? setTimeout(r, ms) : setImmediate(r)));
}

/** Check `cond` until it holds (true) or the time is up (false). */
export async function pollUntil(
  cond: () => boolean | Promise<boolean>,
  o: Omit<WaitOptions, 'detail'> = {},
): Promise<boolean> {
  const deadline = performance.now() + (o.timeoutMs ?? 10_000);
  for (;;) {
    if (await cond()) return true;
    if (performance.now() > deadline) return false;
    await pause(o.intervalMs ?? 20);
  }
}

/** Wait until `cond` holds; fail the test naming `what` if it does not in time. */
export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  o: WaitOptions = {},
): Promise<void> {
  if (await pollUntil(cond, o)) return;
  const detail = o.detail?.();
  assert.fail(`timed out (${o.timeoutMs ?? 10_000} ms) waiting for ${what}${detail ? `\n${detail}` : ''}`);
}

/** Wait until `get` returns something other than undefined, and return it. */
export async function waitForValue<T>(
  what: string,
  get: () => T | undefined | Promise<T | undefined>,
  o: WaitOptions = {},
): Promise<T> {
  let value: T | undefined;
  await waitFor(
    what,
    async () => {
      value = await get();
      return value !== undefined;
    },
    o,
  );
  return value as T;
}

/** `p`, or a rejection naming `what` if it does not settle within `ms`. */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
