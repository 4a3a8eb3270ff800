// One look at the running target, gathered on demand (a scrape, a dashboard tick):
// the counters stay on the reactors that own them and are collected by the same
// walks the RPCs use (framework_get_reactors, nvmf_get_stats, bdev_get_iostat, the
// poll groups' I/O counters), so the endpoint shows exactly what the RPCs show.

import { getReactors, type ReactorsResult } from '../../../event/rpc-methods.ts';
import type { PgIoSnapshot } from '../../../nvmf/io-stats.ts';
import type { PgStats } from '../../../nvmf/stats.ts';
import { getTarget } from '../../../nvmf/target.ts';
import { type RpcCallCompleteEvent, traceChannels } from '../../../util/trace.ts';
import { iostatOf } from '../bdev.ts';

export interface SubsystemInfo {
  nqn: string;
  subtype: string;
  state: string;
  namespaces: Array<{ nsid: number; bdev: string }>;
}

export interface TargetView {
  /** Date.now() when gathered */
  timeMs: number;
  reactors: ReactorsResult;
  subsystems: SubsystemInfo[];
  pollGroups: PgStats[];
  io: PgIoSnapshot[];
  bdevs: Array<Record<string, unknown>>;
  rpc: Array<{ method: string; ok: number; error: number }>;
}

/** RPC calls by method, counted on reactor 0 (where RPCs run) from the rpc tracepoint. */
const rpcCalls = new Map<string, { ok: number; error: number }>();
let rpcCounting = false;

function countRpc(m: unknown): void {
  const e = m as RpcCallCompleteEvent;
  let c = rpcCalls.get(e.method);
  if (c === undefined) {
    c = { ok: 0, error: 0 };
    rpcCalls.set(e.method, c);
  }
  if (e.errorCode === 0) c.ok++;
  else c.error++;
}

/** Start counting RPC calls (the metrics subsystem's init; counts from then on). */
export function startRpcCounting(): void {
  if (rpcCounting) return;
  rpcCounting = true;
  traceChannels.rpcCallComplete.subscribe(countRpc);
}

export function stopRpcCounting(): void {
  if (!rpcCounting) return;
  rpcCounting = false;
  traceChannels.rpcCallComplete.unsubscribe(countRpc);
  rpcCalls.clear();
}

function targetOrNull(): ReturnType<typeof getTarget> | null {
  try {
    return getTarget();
  } catch {
    return null;
  }
}

/** Gather every source once (walks over the reactors; runs on the app thread). */
export async function gatherView(): Promise<TargetView> {
  const tgt = targetOrNull();
  const [reactors, pollGroups, io, bdevs] = await Promise.all([
    getReactors(),
    tgt === null ? Promise.resolve([]) : tgt.stats(),
    tgt === null ? Promise.resolve([]) : tgt.ioStats(),
    iostatOf(),
  ]);
  const subsystems: SubsystemInfo[] = [];
  if (tgt !== null) {
    for (const s of tgt.subsystems.values()) {
      subsystems.push({
        nqn: s.nqn,
        subtype: s.subtype,
        state: s.state,
        namespaces: [...s.namespaces.values()].map((n) => ({ nsid: n.nsid, bdev: n.bdevName })),
      });
    }
  }
  return {
    timeMs: Date.now(),
    reactors,
    subsystems,
    pollGroups,
    io,
    bdevs,
    rpc: [...rpcCalls].map(([method, c]) => ({ method, ...c })),
  };
}
