// What one scrape of /metrics costs the target: a target on --cores with a null bdev, a
// subsystem with --namespaces namespaces and a host holding --queues I/O queues (idle, so
// the target does nothing else), then --scrapes scrapes back to back; the target's CPU
// time (user + system, every thread, from /proc) over the scrapes. A watched target pays
// about one scrape and one dashboard frame (the same walks, less formatting) a second,
// whatever its I/O rate: divide by the IOPS for a cost per I/O. Never gates CI.
//
//   node bench/metrics-cost.ts [--cores 0x3] [--namespaces 4] [--queues 4] [--scrapes 200]

import { parseArgs } from 'node:util';
import { NvmeController } from '../src/nvme/index.ts';
import { cpuSeconds, NULL_NQN, startNullTarget, stopNullTarget } from './lib/null-target.ts';

const { values } = parseArgs({
  options: {
    cores: { type: 'string', default: '0x3' },
    namespaces: { type: 'string', default: '4' },
    queues: { type: 'string', default: '4' },
    scrapes: { type: 'string', default: '200' },
  },
});
const nsCount = Number(values.namespaces);
const tgt = await startNullTarget({
  cores: values.cores ?? '0x3',
  args: ['-M', '0'],
  namespaces: nsCount,
  numBlocks: 65536,
});
try {
  const m = /metrics and dashboard on http:\/\/[^:]+:(\d+)\//.exec(tgt.log());
  if (m === null) throw new Error(`the target did not start its metrics server:\n${tgt.log()}`);
  const base = `http://127.0.0.1:${m[1]}`;
  const host = await NvmeController.connect({
    traddr: '127.0.0.1',
    trsvcid: String(tgt.port),
    subnqn: NULL_NQN,
  });
  await host.setNumQueues(Number(values.queues));
  for (let q = 0; q < Number(values.queues); q++) {
    const io = await host.createIoQpair(32);
    for (let n = 1; n <= nsCount; n++) await io.readAsync(n, 0, 1, Buffer.alloc(4096));
  }
  for (let i = 0; i < 20; i++) await (await fetch(`${base}/metrics`)).text(); // warm-up
  const pid = tgt.proc.pid as number;
  const scrapes = Number(values.scrapes);
  const before = cpuSeconds(pid);
  const t0 = performance.now();
  let bytes = 0;
  for (let i = 0; i < scrapes; i++) bytes += (await (await fetch(`${base}/metrics`)).text()).length;
  const wallMs = performance.now() - t0;
  const cpuMs = (cpuSeconds(pid) - before) * 1000;
  console.log(
    `${scrapes} scrapes (${nsCount} namespaces, ${values.queues} I/O queues, cores ${values.cores}): ` +
      `${(cpuMs / scrapes).toFixed(2)} ms target CPU per scrape, ${(wallMs / scrapes).toFixed(2)} ms wall, ` +
      `${Math.round(bytes / scrapes)} bytes`,
  );
  await host.disconnect();
} finally {
  await stopNullTarget(tgt);
}
