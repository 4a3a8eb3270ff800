// One bench job, run on a thread of any realm: keep `qd` I/Os of `ioSize`
// bytes in flight against a bdev for `durationMs`, then report counts and a
// latency histogram (log2 ranges of ns split in 16 linear sub-buckets).

import * as B from '../../src/bdev/index.ts';
import { defineHandler, sendMsg, type ThreadRef } from '../../src/thread/index.ts';

export interface JobSpec {
  bdev: string;
  ioSize: number;
  qd: number;
  durationMs: number;
  rw: 'read' | 'write';
  /** random offsets (default: sequential) */
  random?: boolean;
  replyTo: ThreadRef;
  token: number;
}

export interface JobResult {
  token: number;
  ios: number;
  errors: number;
  elapsedMs: number;
  hist: number[];
}

const SUB = 16;
const BUCKETS = 48 * SUB;

function bucketOf(ns: number): number {
  if (ns < 1) return 0;
  const e = Math.floor(Math.log2(ns));
  const base = 2 ** e;
  const sub = Math.min(SUB - 1, Math.floor(((ns - base) / base) * SUB));
  return Math.min(BUCKETS - 1, e * SUB + sub);
}

/** Upper edge (ns) of a bucket. */
export function bucketUpperNs(b: number): number {
  const e = Math.floor(b / SUB);
  const sub = b % SUB;
  return 2 ** e * (1 + (sub + 1) / SUB);
}

export function percentileNs(hist: number[], p: number): number {
  const total = hist.reduce((a, b) => a + b, 0);
  let need = Math.ceil(total * p);
  for (let i = 0; i < hist.length; i++) {
    need -= hist[i];
    if (need <= 0) return bucketUpperNs(i);
  }
  return 0;
}

interface Slot {
  buf: Buffer;
  iov: Buffer[];
  offset: number;
  start: number;
}

export const runJob = defineHandler<JobSpec>('bench.bdev.job', (spec) => {
  const desc = B.bdevOpen(spec.bdev, spec.rw === 'write', () => {});
  const ch = B.bdevGetIoChannel(desc);
  const bs = desc.bdev.blockSize;
  const blocks = spec.ioSize / bs;
  const span = Math.max(1, Math.floor(desc.bdev.numBlocks / blocks));
  const hist = new Array<number>(BUCKETS).fill(0);
  let ios = 0;
  let errors = 0;
  let inflight = 0;
  let seq = 0;
  const t0 = performance.now();
  const end = t0 + spec.durationMs;
  let stopping = false;
  const submit = (s: Slot) => {
    s.offset = (spec.random ? Math.floor(Math.random() * span) : seq++ % span) * blocks;
    s.start = performance.now();
    inflight++;
    if (spec.rw === 'read') B.bdevRead(desc, ch, s.iov, s.offset, blocks, done, s);
    else B.bdevWrite(desc, ch, s.iov, s.offset, blocks, false, done, s);
  };
  const done: B.BdevIoCb = (io, ok, arg) => {
    B.bdevFreeIo(io);
    inflight--;
    const s = arg as Slot;
    const now = performance.now();
    hist[bucketOf((now - s.start) * 1e6)]++;
    ios++;
    if (!ok) errors++;
    if (now < end && !stopping) submit(s);
    else stopping = true;
    if (inflight === 0) {
      const elapsedMs = performance.now() - t0;
      B.bdevPutIoChannel(ch);
      B.bdevClose(desc);
      sendMsg(spec.replyTo, jobDone, { token: spec.token, ios, errors, elapsedMs, hist });
    }
  };
  for (let i = 0; i < spec.qd; i++) {
    const buf = Buffer.alloc(spec.ioSize, i);
    submit({ buf, iov: [buf], offset: 0, start: 0 });
  }
});

const waiting = new Map<number, (r: JobResult) => void>();
let nextToken = 1;

const jobDone = defineHandler<JobResult>('bench.bdev.jobDone', (r) => {
  waiting.get(r.token)?.(r);
  waiting.delete(r.token);
});

/** Start a job on `thread` (any realm); resolves with its result on the calling thread. */
export function startJob(
  thread: ThreadRef,
  spec: Omit<JobSpec, 'replyTo' | 'token'>,
  replyTo: ThreadRef,
): Promise<JobResult> {
  const token = nextToken++;
  return new Promise((resolve) => {
    waiting.set(token, resolve);
    sendMsg(thread, runJob, { ...spec, replyTo, token });
  });
}
