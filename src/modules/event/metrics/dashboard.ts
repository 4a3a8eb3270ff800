// What the dashboard shows each second: rates between two gathered views (IOPS,
// bandwidth, latency percentiles of the interval per subsystem and namespace),
// the connected hosts with their queues and reactors, reactor load, recent errors.

import { IoKind, LATENCY_BUCKETS, latencyPercentileUs } from '../../../nvmf/io-stats.ts';
import { statusName } from '../../../wire/nvme.ts';
import type { TargetView } from './gather.ts';

export interface NamespaceFrame {
  nsid: number;
  bdev: string;
  readIops: number;
  writeIops: number;
  iops: number;
  readBps: number;
  writeBps: number;
  p50Us: number;
  p99Us: number;
  errors: number;
}

export interface DashboardFrame {
  timeMs: number;
  intervalMs: number;
  subsystems: Array<{
    nqn: string;
    subtype: string;
    state: string;
    iops: number;
    bps: number;
    namespaces: NamespaceFrame[];
  }>;
  hosts: Array<{
    nqn: string;
    hostnqn: string;
    cntlid: number;
    peer: string;
    queues: number;
    reactors: number[];
    outstanding: number;
  }>;
  reactors: Array<{ lcore: number; load: number; threads: number }>;
  errors: Array<{
    timeMs: number;
    nqn: string;
    hostnqn: string;
    cntlid: number;
    qid: number;
    status: string;
  }>;
}

type NsTotals = { ops: number[]; bytes: number[]; latency: number[]; errors: number };

function nsTotals(v: TargetView): Map<string, NsTotals> {
  const m = new Map<string, NsTotals>();
  for (const g of v.io) {
    for (const n of g.namespaces) {
      const key = `${n.nqn} ${n.nsid}`;
      let t = m.get(key);
      if (t === undefined) {
        t = { ops: [0, 0, 0], bytes: [0, 0, 0], latency: new Array(n.latency.length).fill(0), errors: 0 };
        m.set(key, t);
      }
      for (let k = 0; k < 3; k++) {
        t.ops[k] += n.ops[k];
        t.bytes[k] += n.bytes[k];
      }
      for (let i = 0; i < n.latency.length; i++) t.latency[i] += n.latency[i];
      t.errors += n.errors;
    }
  }
  return m;
}

/** A frame from the view now and the one before (null: the first, rates are 0). */
export function dashboardFrame(now: TargetView, prev: TargetView | null): DashboardFrame {
  const dtMs = prev === null ? 0 : Math.max(1, now.timeMs - prev.timeMs);
  const cur = nsTotals(now);
  const old = prev === null ? new Map<string, NsTotals>() : nsTotals(prev);

  const subsystems = now.subsystems.map((s) => {
    const namespaces = s.namespaces.map((n): NamespaceFrame => {
      const key = `${s.nqn} ${n.nsid}`;
      const c = cur.get(key);
      const o = old.get(key);
      const d = (f: (t: NsTotals) => number) => (c === undefined ? 0 : f(c) - (o === undefined ? 0 : f(o)));
      // latency of this interval: read and write buckets, minus what the last view had
      const lat = new Array(LATENCY_BUCKETS).fill(0);
      if (c !== undefined) {
        for (const k of [IoKind.READ, IoKind.WRITE]) {
          for (let i = 0; i < LATENCY_BUCKETS; i++) {
            lat[i] += c.latency[k * LATENCY_BUCKETS + i] - (o?.latency[k * LATENCY_BUCKETS + i] ?? 0);
          }
        }
      }
      const readIops = dtMs === 0 ? 0 : (d((t) => t.ops[IoKind.READ]) * 1000) / dtMs;
      const writeIops = dtMs === 0 ? 0 : (d((t) => t.ops[IoKind.WRITE]) * 1000) / dtMs;
      const otherIops = dtMs === 0 ? 0 : (d((t) => t.ops[IoKind.OTHER]) * 1000) / dtMs;
      return {
        nsid: n.nsid,
        bdev: n.bdev,
        readIops,
        writeIops,
        iops: readIops + writeIops + otherIops,
        readBps: dtMs === 0 ? 0 : (d((t) => t.bytes[IoKind.READ]) * 1000) / dtMs,
        writeBps: dtMs === 0 ? 0 : (d((t) => t.bytes[IoKind.WRITE]) * 1000) / dtMs,
        p50Us: latencyPercentileUs(lat, 0.5),
        p99Us: latencyPercentileUs(lat, 0.99),
        errors: c?.errors ?? 0,
      };
    });
    return {
      nqn: s.nqn,
      subtype: s.subtype,
      state: s.state,
      iops: namespaces.reduce((a, n) => a + n.iops, 0),
      bps: namespaces.reduce((a, n) => a + n.readBps + n.writeBps, 0),
      namespaces,
    };
  });

  // hosts: one line per controller, its queues and the reactors they sit on
  const hosts = new Map<string, DashboardFrame['hosts'][number]>();
  for (const g of now.io) {
    for (const q of g.queues) {
      const key = `${q.nqn} ${q.cntlid}`;
      let h = hosts.get(key);
      if (h === undefined) {
        h = {
          nqn: q.nqn,
          hostnqn: q.hostnqn,
          cntlid: q.cntlid,
          peer: q.peer,
          queues: 0,
          reactors: [],
          outstanding: 0,
        };
        hosts.set(key, h);
      }
      h.queues++;
      h.outstanding += q.outstanding;
      if (!h.reactors.includes(g.reactor)) h.reactors.push(g.reactor);
    }
  }

  const reactors = now.reactors.reactors.map((r) => {
    const p = prev?.reactors.reactors.find((x) => x.lcore === r.lcore);
    const busy = r.busy - (p?.busy ?? 0);
    const total = busy + r.idle - (p?.idle ?? 0);
    return { lcore: r.lcore, load: total > 0 ? busy / total : 0, threads: r.lw_threads.length };
  });

  const errors = now.io
    .flatMap((g) => g.recentErrors)
    .sort((a, b) => a.timeMs - b.timeMs)
    .slice(-20)
    .map((e) => ({ ...e, status: statusName((e.status >> 8) & 0x7, e.status & 0xff) }));

  return { timeMs: now.timeMs, intervalMs: dtMs, subsystems, hosts: [...hosts.values()], reactors, errors };
}
