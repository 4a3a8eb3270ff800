import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';

// What a realm holds in memory: its heap (each reactor is its own V8 isolate),
// the process's RSS, and its libuv handles. The leak checks of thread_get_stats
// and nvmf_get_stats read it on every reactor.

/** The realm's heap and the process's RSS, in bytes. */
export interface RealmMemory {
  heap_used: number;
  heap_total: number;
  external: number;
  array_buffers: number;
  rss: number;
}

/** Memory and libuv handles of the calling realm. With `--expose-gc` (tests) a full GC runs
 * first, so repeated samples compare live data, not garbage not yet collected. */
export function realmMemory(): { memory: RealmMemory; handles: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc === 'function') gc();
  const m = process.memoryUsage();
  return {
    memory: {
      heap_used: m.heapUsed,
      heap_total: m.heapTotal,
      external: m.external,
      array_buffers: m.arrayBuffers,
      rss: m.rss,
    },
    handles: process.getActiveResourcesInfo().length,
  };
}

/**
 * Bytes the machine can still give a process without swapping: Linux's
 * MemAvailable (free memory plus what the kernel can reclaim), os.freemem()
 * where /proc/meminfo has no such line.
 */
export function availableMemoryBytes(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'latin1'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return freemem();
}
