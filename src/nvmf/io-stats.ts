// I/O counters kept by each poll group on its own thread, with no message per I/O:
// per namespace (operations, bytes, errors, a fixed-bucket latency histogram), per
// I/O queue (what the SMART / Health log of its controller adds up) and per host
// of a subsystem (connects, disconnects, keep-alive expirations, errors by status).
// Readers (the SMART log, the metrics endpoint, the dashboard) gather plain
// snapshots by walking the poll groups (messages.ts overPollGroups.io).

/** Upper bounds of the latency buckets in microseconds; one more bucket holds the rest (+Inf). */
export const LATENCY_BOUNDS_US = [
  10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
] as const;
const BUCKETS = LATENCY_BOUNDS_US.length + 1;

/** Kinds of I/O counted apart. */
export const IoKind = { READ: 0, WRITE: 1, OTHER: 2 } as const;
export const IO_KIND_NAMES = ['read', 'write', 'other'] as const;
const KINDS = 3;

/** The bucket of a latency (µs): the first bound it does not exceed. */
function bucketOf(us: number): number {
  let i = 0;
  while (i < LATENCY_BOUNDS_US.length && us > LATENCY_BOUNDS_US[i]) i++;
  return i;
}

/** One namespace of one subsystem as one poll group saw it. */
export class NsIoCounters {
  readonly ops = new Float64Array(KINDS);
  readonly bytes = new Float64Array(KINDS);
  readonly latencySumUs = new Float64Array(KINDS);
  /** KINDS rows of BUCKETS counts (not cumulative) */
  readonly latency = new Float64Array(KINDS * BUCKETS);
  errors = 0;

  record(kind: number, bytes: number, latencyUs: number, ok: boolean): void {
    if (!ok) {
      this.errors++;
      return;
    }
    this.ops[kind]++;
    this.bytes[kind] += bytes;
    this.latencySumUs[kind] += latencyUs;
    this.latency[kind * BUCKETS + bucketOf(latencyUs)]++;
  }

  snapshot(nqn: string, nsid: number): NsIoSnapshot {
    return {
      nqn,
      nsid,
      ops: Array.from(this.ops),
      bytes: Array.from(this.bytes),
      latencySumUs: Array.from(this.latencySumUs),
      latency: Array.from(this.latency),
      errors: this.errors,
    };
  }
}

export interface NsIoSnapshot {
  nqn: string;
  nsid: number;
  /** indexed by IoKind */
  ops: number[];
  bytes: number[];
  latencySumUs: number[];
  /** KINDS rows of LATENCY_BOUNDS_US.length + 1 counts, not cumulative */
  latency: number[];
  errors: number;
}

/** What one I/O queue did, for its controller's SMART / Health log. */
export interface QueueIoTotals {
  hostReads: number;
  hostWrites: number;
  bytesRead: number;
  bytesWritten: number;
  /** µs during which the queue had a command outstanding */
  busyUs: number;
}

export function newQueueIoTotals(): QueueIoTotals {
  return { hostReads: 0, hostWrites: 0, bytesRead: 0, bytesWritten: 0, busyUs: 0 };
}

export function addQueueIoTotals(into: QueueIoTotals, o: QueueIoTotals): void {
  into.hostReads += o.hostReads;
  into.hostWrites += o.hostWrites;
  into.bytesRead += o.bytesRead;
  into.bytesWritten += o.bytesWritten;
  into.busyUs += o.busyUs;
}

/** Events of one host on one subsystem, counted by the poll group where they happen. */
export class HostCounters {
  connects = 0;
  disconnects = 0;
  keepAliveExpirations = 0;
  /** failed commands by NVMe status, packed (sct << 8 | sc) */
  readonly errors = new Map<number, number>();

  countError(status: number): void {
    this.errors.set(status, (this.errors.get(status) ?? 0) + 1);
  }
}

export interface HostSnapshot {
  nqn: string;
  hostnqn: string;
  connects: number;
  disconnects: number;
  keepAliveExpirations: number;
  errors: Array<{ status: number; count: number }>;
}

/** One connected queue, for the dashboard and `nvmf top`. */
export interface QueueSnapshot {
  nqn: string;
  hostnqn: string;
  cntlid: number;
  qid: number;
  peer: string;
  outstanding: number;
}

/** What one poll group answers to the io walk. */
export interface PgIoSnapshot {
  name: string;
  reactor: number;
  namespaces: NsIoSnapshot[];
  hosts: HostSnapshot[];
  queues: QueueSnapshot[];
  /** the last failed I/O commands here, oldest first */
  recentErrors: RecentError[];
}

/** The gathered walk: every poll group's snapshot. */
export interface IoWalk {
  groups: PgIoSnapshot[];
}

/** Recent failures a poll group kept (bounded), newest last, for the dashboard. */
export interface RecentError {
  timeMs: number;
  nqn: string;
  hostnqn: string;
  cntlid: number;
  qid: number;
  status: number;
}

/**
 * A percentile (0..1) from non-cumulative bucket counts, in µs: the upper bound of the
 * bucket where it falls (the last bucket reports the largest bound); 0 when empty.
 */
export function latencyPercentileUs(counts: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total === 0) return 0;
  const want = total * q;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i];
    if (seen >= want) return LATENCY_BOUNDS_US[Math.min(i, LATENCY_BOUNDS_US.length - 1)];
  }
  return LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.length - 1];
}

export const LATENCY_BUCKETS = BUCKETS;
