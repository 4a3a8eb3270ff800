// One nvmf-perf worker: its I/O queues (one TCP connection each) on the
// namespaces it was given, DEPTH pooled tasks per queue, each with its own
// data buffer and a callback bound once, so the I/O loop allocates nothing;
// one clock read per completion serves both its latency and the resubmission's start.
// Runs the same in the main thread and in a worker thread (worker-entry.ts).

import { performance } from 'node:perf_hooks';
import { connectIoQpair, type NvmeIoQpair, type TransportId } from '../../nvme/index.ts';
import { type HistogramData, LatencyHistogram } from './histogram.ts';

/** A namespace to drive, with what a queue needs to join its controller. */
export interface NsTarget {
  /** "TCP (addr:127.0.0.1 subnqn:…) NSID 1", spdk_nvme_perf's device name */
  label: string;
  trid: TransportId;
  cntlid: number;
  hostidHex: string;
  inCapsuleDataSize: number;
  queueSize: number;
  nsid: number;
  blockSize: number;
  numBlocks: number;
}

export interface JobSettings {
  queueDepth: number;
  ioSize: number;
  random: boolean;
  readPercent: number;
  warmupSec: number;
  timeSec: number;
}

/** Structured-cloneable: what one worker runs. */
export interface WorkerPlan {
  index: number;
  core: number;
  settings: JobSettings;
  namespaces: Array<{ target: NsTarget; qids: number[] }>;
}

export interface NsResult {
  label: string;
  worker: number;
  core: number;
  nsid: number;
  queues: number;
  ios: number;
  readIos: number;
  writeIos: number;
  errors: number;
  elapsedSec: number;
  histogram: HistogramData;
}

export interface WorkerResult {
  index: number;
  core: number;
  namespaces: NsResult[];
  /** I/O still outstanding when the drain gave up (counted in errors) */
  stuck: number;
  /** queues whose connection ended during the run: "qid N: reason" */
  lostQueues: string[];
  /** successful completions in every phase (warm-up and drain included) */
  completedTotal: number;
}

const Phase = {
  IDLE: 0,
  WARMUP: 1,
  MEASURE: 2,
  DRAIN: 3,
  DONE: 4,
} as const;

/** How long to wait for outstanding I/O after the run before calling it lost. */
const DRAIN_TIMEOUT_MS = 10_000;

class NsContext {
  readonly target: NsTarget;
  readonly blocksPerIo: number;
  /** I/O-size units in the namespace: offsets are unit × blocksPerIo */
  readonly units: number;
  nextUnit = 0;
  readonly histogram = new LatencyHistogram();
  ios = 0;
  readIos = 0;
  writeIos = 0;
  errors = 0;
  queues = 0;

  constructor(target: NsTarget, ioSize: number) {
    this.target = target;
    this.blocksPerIo = ioSize / target.blockSize;
    this.units = Math.floor(target.numBlocks / this.blocksPerIo);
  }

  resetCounters(): void {
    this.histogram.reset();
    this.ios = 0;
    this.readIos = 0;
    this.writeIos = 0;
  }
}

class QueueJob {
  readonly io: NvmeIoQpair;
  readonly ns: NsContext;
  readonly waiting: PerfTask[] = [];
  outstanding = 0;

  constructor(io: NvmeIoQpair, ns: NsContext) {
    this.io = io;
    this.ns = ns;
  }
}

class PerfTask {
  readonly worker: PerfWorker;
  readonly job: QueueJob;
  readonly buf: Buffer;
  startMs = 0;
  isRead = true;
  /** bound once: no closure per I/O */
  readonly onComplete: (status: number) => void;

  constructor(worker: PerfWorker, job: QueueJob, ioSize: number, pattern: number) {
    this.worker = worker;
    this.job = job;
    this.buf = Buffer.alloc(ioSize, pattern);
    this.onComplete = (status) => worker.complete(this, status);
  }
}

export class PerfWorker {
  readonly plan: WorkerPlan;
  private readonly settings: JobSettings;
  private readonly contexts: NsContext[] = [];
  private readonly jobs: QueueJob[] = [];
  private phase: number = Phase.IDLE;
  private outstanding = 0;
  private measureStartMs = 0;
  private measureEndMs = 0;
  private finished: (() => void) | null = null;
  private phaseTimer: NodeJS.Timeout | null = null;
  /** successful completions in any phase, for the progress line */
  private completedTotal = 0;

  constructor(plan: WorkerPlan) {
    this.plan = plan;
    this.settings = plan.settings;
  }

  /** Connect every queue of the plan (in parallel). */
  async connect(): Promise<void> {
    const pending: Array<Promise<void>> = [];
    for (const { target, qids } of this.plan.namespaces) {
      const ns = new NsContext(target, this.settings.ioSize);
      ns.queues = qids.length;
      this.contexts.push(ns);
      for (const qid of qids) {
        pending.push(
          connectIoQpair({
            trid: target.trid,
            cntlid: target.cntlid,
            hostid: Buffer.from(target.hostidHex, 'hex'),
            qid,
            queueSize: target.queueSize,
            inCapsuleDataSize: target.inCapsuleDataSize,
          }).then((io) => {
            this.jobs.push(new QueueJob(io, ns));
          }),
        );
      }
    }
    const results = await Promise.allSettled(pending);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      this.close();
      throw (failed as PromiseRejectedResult).reason;
    }
  }

  /** Run warm-up then the measured time; `onProgress` gets the count of completed I/O (warm-up included) 4 times a second. */
  run(onProgress?: (ios: number) => void): Promise<WorkerResult> {
    const { queueDepth, ioSize, warmupSec, timeSec } = this.settings;
    let pattern = 0x5a + this.plan.index;
    for (const job of this.jobs) {
      for (let i = 0; i < queueDepth; i++)
        job.waiting.push(new PerfTask(this, job, ioSize, pattern++ & 0xff));
    }
    return new Promise((resolve) => {
      // reported more often than the main thread prints, so its per-second figure is fresh
      const progress = onProgress ? setInterval(() => onProgress(this.completedTotal), 250) : null;
      this.finished = () => {
        if (progress) clearInterval(progress);
        resolve(this.result());
      };
      const startMeasure = () => {
        for (const ns of this.contexts) ns.resetCounters();
        this.phase = Phase.MEASURE;
        this.measureStartMs = performance.now();
        this.phaseTimer = setTimeout(() => this.startDrain(), timeSec * 1000);
      };
      this.phase = warmupSec > 0 ? Phase.WARMUP : Phase.IDLE;
      if (warmupSec > 0) this.phaseTimer = setTimeout(startMeasure, warmupSec * 1000);
      else startMeasure();
      for (const job of this.jobs) this.submitWaiting(job, performance.now());
    });
  }

  /** `nowMs`: the clock read by the caller, the tasks' start time */
  private submitWaiting(job: QueueJob, nowMs: number): void {
    while (job.waiting.length > 0) {
      const task = job.waiting.pop()!;
      if (!this.submit(task, nowMs)) break;
    }
  }

  /** false when the queue is full (the task waits) or gone (the task is dropped, counted). */
  private submit(task: PerfTask, nowMs: number): boolean {
    const job = task.job;
    const ns = job.ns;
    const unit = this.settings.random ? Math.floor(Math.random() * ns.units) : ns.nextUnit;
    if (!this.settings.random) ns.nextUnit = unit + 1 === ns.units ? 0 : unit + 1;
    const lba = unit * ns.blocksPerIo;
    const pct = this.settings.readPercent;
    task.isRead = pct === 100 || (pct !== 0 && Math.random() * 100 < pct);
    task.startMs = nowMs;
    const nsid = ns.target.nsid;
    const ok = task.isRead
      ? job.io.read(nsid, lba, ns.blocksPerIo, task.buf, task.onComplete)
      : job.io.write(nsid, lba, ns.blocksPerIo, task.buf, task.onComplete);
    if (ok) {
      job.outstanding++;
      this.outstanding++;
      return true;
    }
    if (job.io.closed) ns.errors++;
    else job.waiting.push(task);
    return false;
  }

  complete(task: PerfTask, status: number): void {
    const job = task.job;
    const ns = job.ns;
    const nowMs = performance.now();
    job.outstanding--;
    this.outstanding--;
    if (status !== 0) ns.errors++;
    else this.completedTotal++;
    if (status === 0 && this.phase === Phase.MEASURE) {
      ns.histogram.record((nowMs - task.startMs) * 1e6);
      ns.ios++;
      if (task.isRead) ns.readIos++;
      else ns.writeIos++;
    }
    if (this.phase === Phase.DRAIN || this.phase === Phase.DONE) {
      if (this.outstanding === 0) this.finish();
      return;
    }
    if (job.io.closed) {
      // nothing left to drive: end the run now rather than wait out the clock
      if (this.jobs.every((j) => j.io.closed)) this.startDrain();
      return;
    }
    job.waiting.push(task);
    this.submitWaiting(job, nowMs);
  }

  private startDrain(): void {
    if (this.phase === Phase.DRAIN || this.phase === Phase.DONE) return;
    if (this.phaseTimer) clearTimeout(this.phaseTimer);
    if (this.phase !== Phase.MEASURE) this.measureStartMs = performance.now(); // ended before measuring
    this.measureEndMs = performance.now();
    this.phase = Phase.DRAIN;
    if (this.outstanding === 0) {
      this.finish();
      return;
    }
    setTimeout(() => this.finish(), DRAIN_TIMEOUT_MS).unref();
  }

  private finish(): void {
    if (this.phase === Phase.DONE) return;
    this.phase = Phase.DONE;
    this.finished?.();
  }

  private result(): WorkerResult {
    const elapsedSec = (this.measureEndMs - this.measureStartMs) / 1000;
    return {
      index: this.plan.index,
      core: this.plan.core,
      stuck: this.outstanding,
      completedTotal: this.completedTotal,
      lostQueues: this.jobs
        .filter((j) => j.io.closed)
        .map((j) => `${j.ns.target.label} qid ${j.io.qid}: ${j.io.qpair.closeReason ?? 'closed'}`),
      namespaces: this.contexts.map((ns) => ({
        label: ns.target.label,
        worker: this.plan.index,
        core: this.plan.core,
        nsid: ns.target.nsid,
        queues: ns.queues,
        ios: ns.ios,
        readIos: ns.readIos,
        writeIos: ns.writeIos,
        errors: ns.errors + this.stuckOn(ns),
        elapsedSec,
        histogram: ns.histogram.toData(),
      })),
    };
  }

  private stuckOn(ns: NsContext): number {
    let n = 0;
    for (const job of this.jobs) if (job.ns === ns) n += job.outstanding;
    return n;
  }

  close(): void {
    for (const job of this.jobs) job.io.close();
  }
}
