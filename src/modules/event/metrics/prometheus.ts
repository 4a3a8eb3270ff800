// The Prometheus text exposition of a TargetView, with prom-client: counters and
// gauges are set from the gathered totals at each scrape (the reactors keep the
// counts; nothing is observed here per I/O), the latency histograms are handed to
// the registry as ready bucket counts. Labels are bounded: subsystem, namespace,
// host NQN, poll group, reactor, bdev, RPC method, NVMe status name; never a command.

import { Counter, Gauge, type MetricObjectWithValues, type MetricValue, Registry } from 'prom-client';
import { IO_KIND_NAMES, LATENCY_BOUNDS_US, LATENCY_BUCKETS } from '../../../nvmf/io-stats.ts';
import { statusName } from '../../../wire/nvme.ts';
import type { TargetView } from './gather.ts';

type Labels = Record<string, string | number>;

/** A histogram whose buckets were counted elsewhere: the registry asks it for its values. */
class GatheredHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private series: Array<{ labels: Labels; counts: number[]; sumSeconds: number }> = [];

  constructor(registry: Registry, name: string, help: string) {
    this.name = name;
    this.help = help;
    registry.registerMetric(this as never);
  }

  set(series: Array<{ labels: Labels; counts: number[]; sumSeconds: number }>): void {
    this.series = series;
  }

  get(): Omit<MetricObjectWithValues<MetricValue<string>>, 'collect'> {
    const values: MetricValue<string>[] = [];
    for (const s of this.series) {
      let acc = 0;
      for (let i = 0; i < LATENCY_BUCKETS; i++) {
        acc += s.counts[i] ?? 0;
        const le = i < LATENCY_BOUNDS_US.length ? String(LATENCY_BOUNDS_US[i] / 1e6) : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le }, value: acc } as never);
      }
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sumSeconds } as never);
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: acc } as never);
    }
    return { name: this.name, help: this.help, type: 'histogram' as never, aggregator: 'sum', values };
  }

  reset(): void {
    this.series = [];
  }
}

export class TargetMetrics {
  readonly registry = new Registry();
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, Gauge>();
  private readonly nsLatency: GatheredHistogram;

  constructor() {
    const r = this.registry;
    const counter = (name: string, help: string, labelNames: string[]) =>
      this.counters.set(name, new Counter({ name, help, labelNames, registers: [r] }));
    const gauge = (name: string, help: string, labelNames: string[]) =>
      this.gauges.set(name, new Gauge({ name, help, labelNames, registers: [r] }));
    // per subsystem and namespace
    counter('nvmf_namespace_operations_total', 'Completed I/O commands', ['subsystem', 'nsid', 'op']);
    counter('nvmf_namespace_bytes_total', 'Bytes moved by completed I/O commands', [
      'subsystem',
      'nsid',
      'op',
    ]);
    counter('nvmf_namespace_errors_total', 'I/O commands completed with an error', ['subsystem', 'nsid']);
    this.nsLatency = new GatheredHistogram(
      r,
      'nvmf_namespace_latency_seconds',
      'I/O command latency in the target, from execution to completion',
    );
    // per controller host
    counter('nvmf_host_connects_total', 'Controllers created (admin queue connects)', ['subsystem', 'host']);
    counter('nvmf_host_disconnects_total', 'Controllers destroyed (admin queue gone)', ['subsystem', 'host']);
    counter('nvmf_host_keep_alive_expirations_total', 'Controllers ended by keep-alive timeout', [
      'subsystem',
      'host',
    ]);
    counter('nvmf_host_errors_total', 'Failed I/O commands by NVMe status', ['subsystem', 'host', 'status']);
    gauge('nvmf_host_queues', 'Connected queues (admin and I/O)', ['subsystem', 'host']);
    // per poll group / reactor
    gauge('nvmf_poll_group_qpairs', 'Connected queues', ['poll_group', 'type']);
    gauge('nvmf_poll_group_controllers', 'Controllers whose admin queue is here', ['poll_group']);
    counter('nvmf_poll_group_completed_io_total', 'Completed NVMe I/O commands (nvmf_get_stats)', [
      'poll_group',
    ]);
    gauge('nvmf_poll_group_pending_bdev_io', 'bdev I/O in flight', ['poll_group']);
    counter('nvmf_reactor_busy_seconds_total', 'Time the reactor spent working', ['reactor']);
    counter('nvmf_reactor_idle_seconds_total', 'Time the reactor was idle or asleep', ['reactor']);
    gauge('nvmf_reactor_threads', 'Lightweight threads on the reactor', ['reactor']);
    // bdev iostat
    counter('nvmf_bdev_operations_total', 'Completed bdev I/O (bdev_get_iostat)', ['bdev', 'op']);
    counter('nvmf_bdev_bytes_total', 'Bytes of completed bdev I/O (bdev_get_iostat)', ['bdev', 'op']);
    counter('nvmf_bdev_latency_seconds_total', 'Summed latency of completed bdev I/O', ['bdev', 'op']);
    counter('nvmf_bdev_errors_total', 'Failed bdev I/O', ['bdev']);
    // RPC
    counter('nvmf_rpc_calls_total', 'JSON-RPC calls by method and result', ['method', 'result']);
  }

  private c(name: string): Counter {
    const m = this.counters.get(name);
    if (m === undefined) throw new Error(`no counter ${name}`);
    return m;
  }

  private g(name: string): Gauge {
    const m = this.gauges.get(name);
    if (m === undefined) throw new Error(`no gauge ${name}`);
    return m;
  }

  /** Set every metric from `v` (totals since start; counters are replaced, not added to). */
  update(v: TargetView): void {
    for (const m of this.counters.values()) m.reset();
    for (const m of this.gauges.values()) m.reset();
    const add = (name: string, labels: Labels, value: number) => this.c(name).inc(labels, value);

    // namespaces: summed over poll groups
    type NsSum = {
      nqn: string;
      nsid: number;
      ops: number[];
      bytes: number[];
      lat: number[];
      sum: number[];
      err: number;
    };
    const ns = new Map<string, NsSum>();
    for (const g of v.io) {
      for (const n of g.namespaces) {
        const key = `${n.nqn} ${n.nsid}`;
        let s = ns.get(key);
        if (s === undefined) {
          s = {
            nqn: n.nqn,
            nsid: n.nsid,
            ops: [0, 0, 0],
            bytes: [0, 0, 0],
            lat: new Array(n.latency.length).fill(0),
            sum: [0, 0, 0],
            err: 0,
          };
          ns.set(key, s);
        }
        for (let k = 0; k < 3; k++) {
          s.ops[k] += n.ops[k];
          s.bytes[k] += n.bytes[k];
          s.sum[k] += n.latencySumUs[k];
        }
        for (let i = 0; i < n.latency.length; i++) s.lat[i] += n.latency[i];
        s.err += n.errors;
      }
    }
    const series: Array<{ labels: Labels; counts: number[]; sumSeconds: number }> = [];
    for (const s of ns.values()) {
      for (let k = 0; k < 3; k++) {
        const labels = { subsystem: s.nqn, nsid: s.nsid, op: IO_KIND_NAMES[k] };
        add('nvmf_namespace_operations_total', labels, s.ops[k]);
        add('nvmf_namespace_bytes_total', labels, s.bytes[k]);
        series.push({
          labels,
          counts: s.lat.slice(k * LATENCY_BUCKETS, (k + 1) * LATENCY_BUCKETS),
          sumSeconds: s.sum[k] / 1e6,
        });
      }
      add('nvmf_namespace_errors_total', { subsystem: s.nqn, nsid: s.nsid }, s.err);
    }
    this.nsLatency.set(series);

    // hosts
    for (const g of v.io) {
      for (const h of g.hosts) {
        const labels = { subsystem: h.nqn, host: h.hostnqn };
        add('nvmf_host_connects_total', labels, h.connects);
        add('nvmf_host_disconnects_total', labels, h.disconnects);
        add('nvmf_host_keep_alive_expirations_total', labels, h.keepAliveExpirations);
        for (const e of h.errors) {
          add(
            'nvmf_host_errors_total',
            { ...labels, status: statusName((e.status >> 8) & 0x7, e.status & 0xff) },
            e.count,
          );
        }
      }
      for (const q of g.queues) this.g('nvmf_host_queues').inc({ subsystem: q.nqn, host: q.hostnqn }, 1);
    }

    // poll groups
    for (const p of v.pollGroups) {
      this.g('nvmf_poll_group_qpairs').set({ poll_group: p.name, type: 'admin' }, p.current_admin_qpairs);
      this.g('nvmf_poll_group_qpairs').set({ poll_group: p.name, type: 'io' }, p.current_io_qpairs);
      this.g('nvmf_poll_group_controllers').set({ poll_group: p.name }, p.controllers);
      this.g('nvmf_poll_group_pending_bdev_io').set({ poll_group: p.name }, p.pending_bdev_io);
      add('nvmf_poll_group_completed_io_total', { poll_group: p.name }, p.completed_nvme_io);
    }
    const tick = v.reactors.tick_rate;
    for (const r of v.reactors.reactors) {
      add('nvmf_reactor_busy_seconds_total', { reactor: r.lcore }, r.busy / tick);
      add('nvmf_reactor_idle_seconds_total', { reactor: r.lcore }, r.idle / tick);
      this.g('nvmf_reactor_threads').set({ reactor: r.lcore }, r.lw_threads.length);
    }

    // bdevs (bdev_get_iostat's fields; latency ticks are ns)
    for (const b of v.bdevs) {
      const bdev = String(b.name);
      const num = (k: string) => Number(b[k] ?? 0);
      add('nvmf_bdev_operations_total', { bdev, op: 'read' }, num('num_read_ops'));
      add('nvmf_bdev_operations_total', { bdev, op: 'write' }, num('num_write_ops'));
      add('nvmf_bdev_operations_total', { bdev, op: 'unmap' }, num('num_unmap_ops'));
      add('nvmf_bdev_bytes_total', { bdev, op: 'read' }, num('bytes_read'));
      add('nvmf_bdev_bytes_total', { bdev, op: 'write' }, num('bytes_written'));
      add('nvmf_bdev_bytes_total', { bdev, op: 'unmap' }, num('bytes_unmapped'));
      add('nvmf_bdev_latency_seconds_total', { bdev, op: 'read' }, num('read_latency_ticks') / 1e9);
      add('nvmf_bdev_latency_seconds_total', { bdev, op: 'write' }, num('write_latency_ticks') / 1e9);
      add('nvmf_bdev_latency_seconds_total', { bdev, op: 'unmap' }, num('unmap_latency_ticks') / 1e9);
      add('nvmf_bdev_errors_total', { bdev }, num('io_error'));
    }

    for (const r of v.rpc) {
      add('nvmf_rpc_calls_total', { method: r.method, result: 'ok' }, r.ok);
      add('nvmf_rpc_calls_total', { method: r.method, result: 'error' }, r.error);
    }
  }

  /** The text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
