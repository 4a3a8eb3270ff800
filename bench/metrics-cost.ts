// What one scrape of /metrics costs the target: a target on --cores with a null bdev, a
// subsystem with --namespaces namespaces and a host holding --queues I/O queues (idle, so
// the target does nothing else), then --scrapes scrapes back to back; the target's CPU
// time (user + system, every thread, from /proc) over the scrapes. A watched target pays
// about one scrape and one dashboard frame (the same walks, less formatting) a second,
// whatever its I/O rate: divide by the IOPS for a cost per I/O. Never gates CI.
//
//   node bench/metrics-cost.ts [--cores 0x3] [--namespaces 4] [--queues 4] [--scrapes 200]

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { NvmeController } from '../src/nvme/index.ts';

const { values } = parseArgs({
  options: {
    cores: { type: 'string', default: '0x3' },
    namespaces: { type: 'string', default: '4' },
    queues: { type: 'string', default: '4' },
    scrapes: { type: 'string', default: '200' },
  },
});
const TGT = fileURLToPath(new URL('../bin/nvmf_tgt.mjs', import.meta.url));
const NQN = 'nqn.2016-06.io.spdk:metrics';
const CLOCK_TICKS = 100;

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

const nsCount = Number(values.namespaces);
const dir = mkdtempSync(join(tmpdir(), 'metrics-cost-'));
const port = await freePort();
const bdevs = Array.from({ length: nsCount }, (_v, i) => ({
  method: 'bdev_null_create',
  params: { name: `Null${i}`, num_blocks: 65536, block_size: 4096 },
}));
writeFileSync(
  join(dir, 'config.json'),
  JSON.stringify({
    subsystems: [
      { subsystem: 'bdev', config: bdevs },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
          ...bdevs.map((b, i) => ({
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: i + 1, bdev_name: b.params.name } },
          })),
          {
            method: 'nvmf_subsystem_add_listener',
            params: {
              nqn: NQN,
              listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
            },
          },
        ],
      },
    ],
  }),
);
let log = '';
const proc: ChildProcess = spawn(
  process.execPath,
  [TGT, '-m', values.cores ?? '0x3', '-r', join(dir, 'sock'), '--json', join(dir, 'config.json'), '-M', '0'],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
proc.stdout?.on('data', (d) => {
  log += d;
});
proc.stderr?.on('data', (d) => {
  log += d;
});
try {
  for (let i = 0; i < 200 && !/all subsystems initialized/.test(log); i++)
    await new Promise((r) => setTimeout(r, 50));
  const m = /metrics and dashboard on http:\/\/[^:]+:(\d+)\//.exec(log);
  if (m === null) throw new Error(`the target did not start its metrics server:\n${log}`);
  const base = `http://127.0.0.1:${m[1]}`;
  const host = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: String(port), subnqn: NQN });
  await host.setNumQueues(Number(values.queues));
  for (let q = 0; q < Number(values.queues); q++) {
    const io = await host.createIoQpair(32);
    for (let n = 1; n <= nsCount; n++) await io.readAsync(n, 0, 1, Buffer.alloc(4096));
  }
  for (let i = 0; i < 20; i++) await (await fetch(`${base}/metrics`)).text(); // warm-up
  const pid = proc.pid as number;
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
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
