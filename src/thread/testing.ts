// Deterministic harness for unit tests: one realm (reactor 0 of 1), no
// reactor loop and no timers. Tests create threads, pick the current one,
// and poll until idle. Timed pollers follow the real clock unless
// useFakeClock() is called, then advance(us) moves time.

import { InvalidStateError } from '../util/errors.ts';
import { resetRealm } from './realm.ts';
import {
  createThread as coreCreateThread,
  getCurrentThreadOrNull,
  pollThreads,
  type SpdkThread,
  setClock,
  setCurrentThread,
} from './thread.ts';

export function createThread(name: string): SpdkThread {
  return coreCreateThread(name);
}

/** Make t the current thread (what currentThread() returns outside messages). */
export function setCurrent(t: SpdkThread | null): void {
  setCurrentThread(t);
}

export function current(): SpdkThread | null {
  return getCurrentThreadOrNull();
}

/** Poll every thread once; true if any did work. */
export function pollOnce(): boolean {
  return pollThreads();
}

/** Poll until no thread has work; throws if that never happens within maxIterations. */
export function pollUntilIdle(maxIterations = 100_000): number {
  for (let i = 0; i < maxIterations; i++) if (!pollThreads()) return i;
  throw new InvalidStateError(`threads still busy after ${maxIterations} iterations`);
}

let fakeNow = 0;

export function useFakeClock(startUs = 0): void {
  fakeNow = startUs;
  setClock(() => fakeNow);
}

export function useRealClock(): void {
  setClock(() => performance.now() * 1000);
}

export function advance(us: number): void {
  fakeNow += us;
}

/** Drop every thread and io_device (between independent tests). */
export function reset(): void {
  resetRealm();
}
