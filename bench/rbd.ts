// The rbd bdev against fio's own librbd engine on the same cluster and image:
// 4 KiB random writes and random reads at QD 16, IOPS and the ratio (ours /
// fio's), the median of interleaved rounds. And the connection question: one
// librados connection and one open image for the whole process (what the
// module does: every reactor submits to it) against one connection and image
// per reactor (two more bdevs on the image, each with its own connection), QD 8
// on each of two reactors; IOPS, and the threads and memory they add.
//
//   node bench/rbd.ts [--time-ms 5000] [--rounds 3] [--json]
//
// Uses the cluster of $CEPH_CONF when set (client.admin, pool rbd), else starts
// one with scripts/ceph-cluster.sh in a temp folder (test/lib/ceph.ts).

import { execFile } from 'node:child_process';
import { appendFileSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRbdBdev, deleteRbdBdev, registerCluster } from '../src/modules/bdev/rbd/rbd.ts';
import { spawnThread, type ThreadRef } from '../src/thread/index.ts';
import { CephCluster } from '../test/lib/ceph.ts';
import { startJob } from './lib/bdev-job.ts';
import { startReactors } from './lib/realms.ts';

const { values } = parseArgs({
  options: {
    'time-ms': { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const durationMs = Number(values['time-ms']);
const rounds = Number(values.rounds);
const IMAGE = 'nvmf-ts-bench';
const IMAGE_MB = 256;

let cluster: CephCluster | null = null;
let baseConf = process.env.CEPH_CONF;
if (baseConf === undefined) {
  cluster = await CephCluster.start();
  baseConf = cluster.conf;
}
// one config for both sides: librbd's cache off for fio too, as the bdev has it
const conf = join(cluster?.dir ?? '/tmp', `bench-${process.pid}.conf`);
copyFileSync(baseConf, conf);
appendFileSync(conf, '\n[client.admin]\nrbd cache = false\n');
const env = { ...process.env, CEPH_CONF: conf };

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { env, maxBuffer: 64 << 20 }, (err, out, errOut) =>
      err ? reject(new Error(`${cmd}: ${err.message}\n${errOut}`)) : resolve(out),
    ),
  );
}

await run('rbd', ['rm', `rbd/${IMAGE}`]).catch(() => {});
await run('rbd', ['create', '--size', String(IMAGE_MB), '--image-feature', 'layering', `rbd/${IMAGE}`]);
// written once, so reads read objects (a never-written object answers without touching the disk)
await run('rbd', [
  'bench',
  '--io-type',
  'write',
  '--io-size',
  '4M',
  '--io-total',
  `${IMAGE_MB}M`,
  `rbd/${IMAGE}`,
]);

async function fio(rw: 'randwrite' | 'randread'): Promise<number> {
  const out = await run('fio', [
    '--name=rbd',
    '--ioengine=rbd',
    '--clientname=admin',
    '--pool=rbd',
    `--rbdname=${IMAGE}`,
    `--rw=${rw}`,
    '--bs=4k',
    '--iodepth=16',
    '--numjobs=1',
    '--time_based',
    `--runtime=${Math.max(1, Math.round(durationMs / 1000))}`,
    '--output-format=json',
  ]);
  const job = JSON.parse(out).jobs[0];
  return Math.round(rw === 'randread' ? job.read.iops : job.write.iops);
}

const reactors = await startReactors(2);
const app = reactors.realm.thread;
function spawn(name: string, reactor: number): Promise<ThreadRef> {
  return new Promise((resolve) => spawnThread(name, reactor, (r: ThreadRef) => resolve(r)));
}
const { bdevSetRealmThreads } = await import('../src/bdev/index.ts');
bdevSetRealmThreads([await spawn('bdev_realm_0', 0), await spawn('bdev_realm_1', 1)]);
const workers = [await spawn('bench_0', 0), await spawn('bench_1', 1)];

function procStatus(): { threads: number; rssMb: number } {
  const s = readFileSync('/proc/self/status', 'utf8');
  return {
    threads: Number(/Threads:\s+(\d+)/.exec(s)![1]),
    rssMb: Math.round(Number(/VmRSS:\s+(\d+)/.exec(s)![1]) / 1024),
  };
}

/** Jobs on reactors: [bdev, reactor, qd]; total IOPS. */
async function jobs(rw: 'read' | 'write', plan: Array<[string, number, number]>): Promise<number> {
  const results = await Promise.all(
    plan.map(([bdev, r, qd]) =>
      startJob(workers[r], { bdev, ioSize: 4096, qd, durationMs, rw, random: true }, app.ref),
    ),
  );
  let iops = 0;
  for (const r of results) {
    if (r.errors > 0) throw new Error(`${r.errors} I/O errors`);
    iops += (r.ios * 1000) / r.elapsedMs;
  }
  return Math.round(iops);
}

function monHost(): string {
  return /mon host = (\S+)/.exec(readFileSync(conf, 'utf8'))![1];
}
function keyring(): string {
  return /keyring = (\S+)/.exec(readFileSync(conf, 'utf8'))![1];
}
/** A bdev on the image with a librados connection of its own. */
async function privateBdev(name: string): Promise<void> {
  await createRbdBdev({
    name,
    poolName: 'rbd',
    rbdName: IMAGE,
    blockSize: 4096,
    userId: 'admin',
    config: { mon_host: monHost(), keyring: keyring() },
  });
}

const base = procStatus();
await registerCluster({ name: 'bench', user_id: 'admin', config_file: conf });
await createRbdBdev({ name: 'Rbd0', poolName: 'rbd', rbdName: IMAGE, blockSize: 4096, clusterName: 'bench' });
const one = procStatus();
await privateBdev('Rbd1');
await privateBdev('Rbd2');
const three = procStatus();

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// rounds interleave fio and ours (and the two connection layouts): the machine's load moves a lot
const samples: Record<string, number[]> = {};
const add = (k: string, v: number) => {
  samples[k] ??= [];
  samples[k].push(v);
};
for (let round = 0; round < rounds; round++) {
  for (const [rw, fioRw] of [
    ['write', 'randwrite'],
    ['read', 'randread'],
  ] as const) {
    add(`fio ${rw}`, await fio(fioRw));
    add(`ours ${rw}`, await jobs(rw, [['Rbd0', 0, 16]]));
    add(
      `process ${rw}`,
      await jobs(rw, [
        ['Rbd0', 0, 8],
        ['Rbd0', 1, 8],
      ]),
    );
    add(
      `reactor ${rw}`,
      await jobs(rw, [
        ['Rbd1', 0, 8],
        ['Rbd2', 1, 8],
      ]),
    );
  }
}
const m = (k: string) => median(samples[k]);
const rows = (['write', 'read'] as const).map((rw) => ({
  test: `4K rand${rw} QD16`,
  ours: m(`ours ${rw}`),
  fio: m(`fio ${rw}`),
  ratio: Math.round((m(`ours ${rw}`) / m(`fio ${rw}`)) * 100) / 100,
}));
const result = {
  durationMs,
  rounds,
  rows,
  samples,
  connections: {
    perProcess: {
      write: m('process write'),
      read: m('process read'),
      threads: one.threads - base.threads,
      rssMb: one.rssMb - base.rssMb,
    },
    // two connections for two reactors; per connection = half of what two added
    perReactor: {
      write: m('reactor write'),
      read: m('reactor read'),
      threads: 2 * Math.round((three.threads - one.threads) / 2),
      rssMb: three.rssMb - one.rssMb,
    },
  },
};
if (values.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(
    `rbd bdev (bdev layer, one reactor) vs fio --ioengine=rbd: 4K, QD 16, median of ${rounds} interleaved runs of ${durationMs} ms, image ${IMAGE_MB} MiB`,
  );
  console.log('test                    nvmf-ts IOPS   fio IOPS   ratio');
  for (const r of rows)
    console.log(
      `${r.test.padEnd(22)} ${String(r.ours).padStart(13)} ${String(r.fio).padStart(10)} ${r.ratio.toFixed(2).padStart(7)}`,
    );
  const c = result.connections;
  console.log('\nconnections, 2 reactors x QD 8, 4K random: write IOPS, read IOPS; threads and RSS they add');
  console.log(
    `one per process  ${String(c.perProcess.write).padStart(8)} ${String(c.perProcess.read).padStart(8)}  +${c.perProcess.threads} threads  +${c.perProcess.rssMb} MiB`,
  );
  console.log(
    `one per reactor  ${String(c.perReactor.write).padStart(8)} ${String(c.perReactor.read).padStart(8)}  +${c.perReactor.threads} threads  +${c.perReactor.rssMb} MiB`,
  );
  console.log(`samples: ${JSON.stringify(samples)}`);
}
await deleteRbdBdev('Rbd0');
await deleteRbdBdev('Rbd1');
await deleteRbdBdev('Rbd2');
await reactors.stop();
await run('rbd', ['rm', `rbd/${IMAGE}`]).catch(() => {});
await cluster?.stop();
process.exit(0);
