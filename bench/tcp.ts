// NVMe/TCP through the host library: 4 KiB and 128 KiB, read and write, QD 1
// and 32, against a running target (--port) or, by default, the transport
// alone with an in-process fake core (no bdev layer: the transport's ceiling).
//
//   node bench/tcp.ts [--port 4420] [--addr 127.0.0.1] [--nqn NQN] [--time-ms 1000] [--digests] [--json]

import { parseArgs } from 'node:util';
import { NvmeController, type NvmeIoQpair } from '../src/nvme/index.ts';
import { startFakeTarget } from '../test/lib/fake-core.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    addr: { type: 'string', default: '127.0.0.1' },
    nqn: { type: 'string', default: 'nqn.2016-06.io.spdk:cnode1' },
    'time-ms': { type: 'string', default: '1000' },
    digests: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const durationMs = Number(values['time-ms']);
const fake = values.port ? null : await startFakeTarget(65536);
const port = values.port ?? String(fake?.port);

const ctrlr = await NvmeController.connect({
  traddr: values.addr ?? '127.0.0.1',
  trsvcid: port,
  subnqn: values.nqn ?? '',
  hdgst: values.digests,
  ddgst: values.digests,
});
const io = await ctrlr.createIoQpair(128);
const blocks = 65536; // 32 MiB region at 512-byte blocks

function run(
  q: NvmeIoQpair,
  rw: 'read' | 'write',
  size: number,
  qd: number,
): Promise<{ iops: number; mibs: number; latUs: number }> {
  const nlb = size / 512;
  const bufs = Array.from({ length: qd }, () => Buffer.alloc(size, 0x5a));
  let done = 0;
  let latSum = 0;
  let next = 0;
  const end = performance.now() + durationMs;
  const start = performance.now();
  return new Promise((resolve, reject) => {
    let inflight = 0;
    const issue = (slot: number) => {
      const lba = (next++ * nlb) % (blocks - nlb);
      const t0 = performance.now();
      inflight++;
      const cb = (status: number) => {
        inflight--;
        if (status !== 0) return reject(new Error(`status 0x${status.toString(16)}`));
        done++;
        latSum += performance.now() - t0;
        if (performance.now() < end) issue(slot);
        else if (inflight === 0) {
          const secs = (performance.now() - start) / 1000;
          resolve({ iops: done / secs, mibs: (done * size) / secs / 1048576, latUs: (latSum / done) * 1000 });
        }
      };
      const ok = rw === 'read' ? q.read(1, lba, nlb, bufs[slot], cb) : q.write(1, lba, nlb, bufs[slot], cb);
      if (!ok) reject(new Error('submit refused'));
    };
    for (let i = 0; i < qd; i++) issue(i);
  });
}

const results = [];
for (const size of [4096, 131072]) {
  for (const rw of ['read', 'write'] as const) {
    for (const qd of [1, 32]) {
      const r = await run(io, rw, size, qd);
      results.push({ size, rw, qd, ...r });
      if (!values.json) {
        console.log(
          `${rw.padEnd(5)} ${String(size / 1024).padStart(3)} KiB QD${String(qd).padEnd(2)}  ${Math.round(r.iops).toString().padStart(7)} IOPS  ${r.mibs.toFixed(0).padStart(5)} MiB/s  mean ${r.latUs.toFixed(0)} µs`,
        );
      }
    }
  }
}
if (values.json)
  console.log(
    JSON.stringify({
      target: fake ? 'fake-core' : `${values.addr}:${port}`,
      digests: values.digests,
      results,
    }),
  );
await ctrlr.disconnect();
await fake?.close();
