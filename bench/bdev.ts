// I/O through the bdev layer alone: null and malloc, 4 KiB and 128 KiB,
// QD 1 and 128, on one and on two reactors. Prints IOPS, MiB/s and latency
// percentiles: the ceiling the network path is measured against, and the
// CPU time per I/O (the whole process: every reactor, over the job's run).
//
//   node bench/bdev.ts [--time-ms 1000] [--rw read|write] [--json]

import { parseArgs } from 'node:util';
import { createMallocBdev } from '../src/modules/bdev/malloc/malloc.ts';
import { createNullBdev } from '../src/modules/bdev/null/null.ts';
import { spawnThread, type ThreadRef } from '../src/thread/index.ts';
import { percentileNs, startJob } from './lib/bdev-job.ts';
import { startReactors } from './lib/realms.ts';

const { values } = parseArgs({
  options: {
    'time-ms': { type: 'string', default: '1000' },
    rw: { type: 'string', default: 'read' },
    json: { type: 'boolean', default: false },
  },
});
const durationMs = Number(values['time-ms']);
const rw = values.rw === 'write' ? 'write' : 'read';

const reactors = await startReactors(2);
const app = reactors.realm.thread;

function spawn(name: string, reactor: number): Promise<ThreadRef> {
  return new Promise((resolve) => spawnThread(name, reactor, (r: ThreadRef) => resolve(r)));
}

const { bdevSetRealmThreads } = await import('../src/bdev/index.ts');
const realmThreads = [await spawn('bdev_realm_0', 0), await spawn('bdev_realm_1', 1)];
bdevSetRealmThreads(realmThreads);
await createNullBdev({ name: 'Null0', numBlocks: (1 << 30) / 4096, blockSize: 4096 });
await createMallocBdev({ name: 'Malloc0', numBlocks: (256 << 20) / 4096, blockSize: 4096 });
const workers = [await spawn('bench_0', 0), await spawn('bench_1', 1)];

interface Row {
  bdev: string;
  ioSize: number;
  qd: number;
  reactors: number;
  iops: number;
  mibps: number;
  p50us: number;
  p99us: number;
  p999us: number;
  errors: number;
  cpuNsPerIo: number;
}
const rows: Row[] = [];

for (const bdev of ['Null0', 'Malloc0']) {
  for (const ioSize of [4096, 131072]) {
    for (const qd of [1, 128]) {
      for (const nReactors of [1, 2]) {
        const cpu0 = process.cpuUsage();
        const results = await Promise.all(
          workers.slice(0, nReactors).map((w) => startJob(w, { bdev, ioSize, qd, durationMs, rw }, app.ref)),
        );
        const cpu = process.cpuUsage(cpu0);
        const hist = new Array<number>(results[0].hist.length).fill(0);
        let iops = 0;
        let errors = 0;
        let ios = 0;
        for (const r of results) {
          ios += r.ios;
          iops += (r.ios * 1000) / r.elapsedMs;
          errors += r.errors;
          r.hist.forEach((v, i) => {
            hist[i] += v;
          });
        }
        rows.push({
          bdev,
          ioSize,
          qd,
          reactors: nReactors,
          iops: Math.round(iops),
          mibps: Math.round((iops * ioSize) / (1 << 20)),
          p50us: percentileNs(hist, 0.5) / 1000,
          p99us: percentileNs(hist, 0.99) / 1000,
          p999us: percentileNs(hist, 0.999) / 1000,
          errors,
          cpuNsPerIo: Math.round(((cpu.user + cpu.system) * 1000) / ios),
        });
      }
    }
  }
}

if (values.json) {
  console.log(JSON.stringify({ rw, durationMs, rows }, null, 2));
} else {
  console.log(
    `bdev layer, ${rw}, ${durationMs} ms per job (latency = submit to callback on the submitting thread)`,
  );
  console.log('bdev     io_size  qd  reactors        IOPS    MiB/s   p50 µs   p99 µs  p99.9 µs  CPU ns/IO');
  for (const r of rows) {
    console.log(
      `${r.bdev.padEnd(8)} ${String(r.ioSize / 1024).padStart(5)}K ${String(r.qd).padStart(4)} ${String(r.reactors).padStart(9)} ${String(r.iops).padStart(11)} ${String(r.mibps).padStart(8)} ${r.p50us.toFixed(1).padStart(8)} ${r.p99us.toFixed(1).padStart(8)} ${r.p999us.toFixed(1).padStart(9)} ${String(r.cpuNsPerIo).padStart(10)}${r.errors ? `  errors=${r.errors}` : ''}`,
    );
  }
}
await reactors.stop();
