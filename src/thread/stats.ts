// What the thread_get_* RPCs report: busy/idle time, pollers and channels of
// this realm's threads, as cloneable objects.

import { ioDeviceName } from './io-device.ts';
import { localThreads, type PollerImpl, PollerState, type SpdkThread } from './thread.ts';

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
      name: ioDeviceName(c.deviceId),
      ref: c.refs,
    })),
  };
}

/** Stats of every thread of this realm. */
export function threadStats(): ThreadInfo[] {
  return [...localThreads()].map(threadInfo);
}
