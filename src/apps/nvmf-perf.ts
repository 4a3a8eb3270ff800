// `nvmf-perf`: the measuring tool, modelled on SPDK's spdk_nvme_perf.
//
//   nvmf-perf -r 'trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1' \
//     -q 32 -o 4096 -w randread -t 10 [-P 2] [-c 0x3] [-a 2] [--json]
//
// The main thread connects each controller (admin queue, Identify, Set
// Features Number of Queues), assigns namespaces to workers round robin and
// gives every worker its queue IDs; each worker (the main thread for the
// first core, a worker thread for every other) connects its own I/O queues
// to that controller and runs. Results are merged histograms.

import { basename } from 'node:path';
import { Worker } from 'node:worker_threads';
import { NvmeController, NvmeControllerError } from '../nvme/index.ts';
import { InvalidArgumentError, NvmfTsError, UsageError } from '../util/errors.ts';
import { exitWhenFlushed } from './cli/args.ts';
import { toJson } from './cli/format.ts';
import { type NsTarget, PerfWorker, type WorkerPlan, type WorkerResult } from './perf/job.ts';
import { PERF_USAGE, type PerfConfig, parsePerfArgs } from './perf/options.ts';
import { buildReport, formatReport } from './perf/report.ts';

/** A perf worker thread reported an error, crashed or exited before its result. */
export class PerfWorkerError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_PERF_WORKER';
  constructor(message: string) {
    super('NVMF_ERR_PERF_WORKER', message);
  }
}

/** One runnable worker, local or in a thread: connect → ready, then go → result. */
interface RunningWorker {
  ready: Promise<void>;
  go(onProgress: (ios: number) => void): Promise<WorkerResult>;
  stop(): void;
}

function localWorker(plan: WorkerPlan): RunningWorker {
  const w = new PerfWorker(plan);
  return {
    ready: w.connect(),
    go: async (onProgress) => {
      const result = await w.run(onProgress);
      w.close();
      return result;
    },
    stop: () => w.close(),
  };
}

function threadWorker(plan: WorkerPlan): RunningWorker {
  const w = new Worker(new URL('./perf/worker-entry.ts', import.meta.url), {
    workerData: plan,
    name: `nvmf_perf_core_${plan.core}`,
  });
  let onProgress: (ios: number) => void = () => {};
  let settleReady: { resolve: () => void; reject: (e: Error) => void } | null = null;
  let settleResult: { resolve: (r: WorkerResult) => void; reject: (e: Error) => void } | null = null;
  const fail = (e: Error) => {
    settleReady?.reject(e);
    settleResult?.reject(e);
    settleReady = null;
    settleResult = null;
  };
  const ready = new Promise<void>((resolve, reject) => {
    settleReady = { resolve, reject };
  });
  w.on('message', (msg: { type: string; ios?: number; result?: WorkerResult; message?: string }) => {
    if (msg.type === 'ready') {
      settleReady?.resolve();
      settleReady = null;
    } else if (msg.type === 'progress') onProgress(msg.ios ?? 0);
    else if (msg.type === 'result') {
      settleResult?.resolve(msg.result!);
      settleResult = null;
    } else if (msg.type === 'error') fail(new PerfWorkerError(`worker on core ${plan.core}: ${msg.message}`));
  });
  w.on('error', (e) => fail(e instanceof Error ? e : new PerfWorkerError(String(e))));
  w.on('exit', (code) =>
    fail(new PerfWorkerError(`worker on core ${plan.core} exited (code ${code}) before its result`)),
  );
  return {
    ready,
    go: (progress) => {
      onProgress = progress;
      const result = new Promise<WorkerResult>((resolve, reject) => {
        settleResult = { resolve, reject };
      });
      w.postMessage({ type: 'go' });
      return result;
    },
    stop: () => {
      w.postMessage({ type: 'stop' });
      setTimeout(() => w.terminate(), 2000).unref();
    },
  };
}

/** Connect each controller and list the namespaces this run can drive. */
async function discoverTargets(
  config: PerfConfig,
  controllers: NvmeController[],
): Promise<Array<{ ctrlr: number; target: NsTarget }>> {
  const found: Array<{ ctrlr: number; target: NsTarget }> = [];
  for (let i = 0; i < config.trids.length; i++) {
    const trid = config.trids[i];
    // Number of Queues is asked later, once the plan knows how many queues this controller needs
    const ctrlr = await NvmeController.connect(trid, {
      connectTimeoutMs: 10000,
      numIoQueues: 0,
      asyncEvents: false,
    });
    controllers.push(ctrlr);
    const maxIo = ctrlr.maxTransferSize;
    for (const ns of ctrlr.namespaces.values()) {
      const { nsid, blockSize, numBlocks } = ns;
      const label = `${(trid.trtype ?? 'tcp').toUpperCase()} (addr:${trid.traddr} subnqn:${trid.subnqn}) NSID ${nsid}`;
      if (config.ioSize % blockSize !== 0) {
        process.stderr.write(
          `${label}: I/O size ${config.ioSize} is not a multiple of ${blockSize}; skipped\n`,
        );
        continue;
      }
      if (config.ioSize > maxIo) {
        process.stderr.write(`${label}: I/O size ${config.ioSize} exceeds MDTS (${maxIo} bytes); skipped\n`);
        continue;
      }
      if (numBlocks < config.ioSize / blockSize) {
        process.stderr.write(`${label}: smaller than one I/O; skipped\n`);
        continue;
      }
      found.push({
        ctrlr: i,
        target: {
          label,
          trid,
          cntlid: ctrlr.cntlid,
          hostidHex: ctrlr.hostid.toString('hex'),
          inCapsuleDataSize: ctrlr.ioInCapsuleDataSize,
          // one queue entry stays free (a full SQ holds size - 1 commands)
          queueSize: Math.min(config.queueDepth + 1, ctrlr.maxQueueSize),
          nsid,
          blockSize,
          numBlocks,
        },
      });
    }
  }
  return found;
}

/** spdk_nvme_perf's assignment: max(namespaces, workers) slots dealt round robin. */
function planWorkers(config: PerfConfig, found: Array<{ ctrlr: number; target: NsTarget }>): WorkerPlan[] {
  const plans: WorkerPlan[] = config.cores.map((core, index) => ({
    index,
    core,
    settings: {
      queueDepth: config.queueDepth,
      ioSize: config.ioSize,
      random: config.random,
      readPercent: config.readPercent,
      warmupSec: config.warmupSec,
      timeSec: config.timeSec,
    },
    namespaces: [],
  }));
  const nextQid = new Map<number, number>();
  const slots = Math.max(found.length, plans.length);
  for (let i = 0; i < slots; i++) {
    const { ctrlr, target } = found[i % found.length];
    const first = nextQid.get(ctrlr) ?? 1;
    const qids = Array.from({ length: config.queuesPerNs }, (_, k) => first + k);
    nextQid.set(ctrlr, first + config.queuesPerNs);
    plans[i % plans.length].namespaces.push({ target, qids });
  }
  return plans;
}

function progressPrinter(
  config: PerfConfig,
  workers: number,
): { update: (w: number, ios: number) => void; stop: () => void } {
  const latest = new Array<number>(workers).fill(0);
  if (!process.stdout.isTTY || config.json) return { update: () => {}, stop: () => {} };
  let previous = 0;
  let seconds = 0;
  const timer = setInterval(() => {
    const sum = latest.reduce((a, b) => a + b, 0);
    const iops = Math.max(0, sum - previous);
    previous = sum;
    seconds++;
    const mibs = (iops * config.ioSize) / 1048576;
    process.stdout.write(
      `\r[${String(seconds).padStart(4)} s] IOPS: ${iops.toFixed(0).padStart(10)}  MiB/s: ${mibs.toFixed(2).padStart(10)}`,
    );
  }, 1000);
  return {
    update: (w, ios) => {
      latest[w] = ios;
    },
    stop: () => {
      clearInterval(timer);
      process.stdout.write('\r\x1b[K');
    },
  };
}

export async function main(argv: string[]): Promise<number> {
  let config: PerfConfig;
  try {
    const parsed = parsePerfArgs(argv);
    if (parsed === 'help') {
      process.stdout.write(PERF_USAGE);
      return 0;
    }
    config = parsed;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`nvmf-perf: ${err.message}\n\n${PERF_USAGE}`);
    return 2;
  }
  const controllers: NvmeController[] = [];
  const workers: RunningWorker[] = [];
  try {
    const found = await discoverTargets(config, controllers);
    if (found.length === 0) throw new InvalidArgumentError('no namespace to drive');
    const plans = planWorkers(config, found);
    // ask each controller for the I/O queues its workers will open
    for (let i = 0; i < controllers.length; i++) {
      const wanted = plans.reduce(
        (n, p) =>
          n + p.namespaces.filter((x) => x.target.trid === config.trids[i]).length * config.queuesPerNs,
        0,
      );
      if (wanted === 0) continue;
      const granted = await controllers[i].setNumQueues(wanted);
      if (Math.min(granted.sq, granted.cq) < wanted)
        throw new NvmeControllerError(
          'NVMF_ERR_NO_IO_QUEUE',
          `${config.tridTexts[i]}: the controller grants ${granted.sq} I/O queues, the run needs ${wanted}`,
        );
    }
    plans.forEach((plan, i) => {
      workers.push(i === 0 ? localWorker(plan) : threadWorker(plan));
    });
    await Promise.all(workers.map((w) => w.ready));
    const progress = progressPrinter(config, workers.length);
    let results: WorkerResult[];
    // process-wide CPU time covers every worker thread: the tool's own cost
    const cpuBefore = process.cpuUsage();
    const wallBefore = performance.now();
    try {
      results = await Promise.all(workers.map((w, i) => w.go((ios) => progress.update(i, ios))));
    } finally {
      progress.stop();
    }
    const cpu = process.cpuUsage(cpuBefore);
    const report = buildReport(config, results, {
      wallSec: (performance.now() - wallBefore) / 1000,
      userSec: cpu.user / 1e6,
      systemSec: cpu.system / 1e6,
    });
    process.stdout.write(config.json ? toJson(report) : formatReport(report));
    for (const lost of results.flatMap((r) => r.lostQueues))
      process.stderr.write(`nvmf-perf: connection lost: ${lost}\n`);
    if (report.errors > 0) {
      process.stderr.write(`nvmf-perf: ${report.errors} I/O failed\n`);
      return 1;
    }
    return 0;
  } catch (err) {
    for (const w of workers) w.stop();
    process.stderr.write(`nvmf-perf: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await Promise.all(controllers.map((c) => c.disconnect().catch(() => {})));
  }
}

function isEntryPoint(): boolean {
  if (import.meta.main) return true;
  // imported by the bin/nvmf-perf.mjs shim (or a symlink named nvmf-perf)
  const script = process.argv[1] ? basename(process.argv[1]) : '';
  return script === 'nvmf-perf' || script === 'nvmf-perf.mjs';
}

if (isEntryPoint()) exitWhenFlushed(await main(process.argv.slice(2)));
