// The Prometheus endpoint: off by default, started by --metrics-port or metrics_enable on
// 127.0.0.1; after a load, each metric family shows the counts the RPCs show
// (bdev_get_iostat, nvmf_get_stats, framework_get_reactors) and what the host did.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  type ChildTarget,
  GoodHost,
  startChildTarget,
  TEST_BDEV,
  TEST_BLOCK_SIZE,
  TEST_NQN,
} from '../lib/index.ts';

type Sample = { name: string; labels: Record<string, string>; value: number };

/** Parse the text exposition into samples (the format is line based). */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function pick(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const s = samples.filter(
    (x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  assert.ok(s.length > 0, `no sample ${name} ${JSON.stringify(labels)}`);
  return s.reduce((n, x) => n + x.value, 0);
}

async function scrape(port: number): Promise<{ text: string; samples: Sample[]; type: string }> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(r.status, 200);
  const text = await r.text();
  return { text, samples: parse(text), type: r.headers.get('content-type') ?? '' };
}

let tgt: ChildTarget;
let port: number;
before(async () => {
  tgt = await startChildTarget({ args: ['--metrics-port', '0'] });
  const st = await tgt.call<{ enabled: boolean; address: string; port: number }>('metrics_get_status');
  assert.equal(st.enabled, true);
  assert.equal(st.address, '127.0.0.1', 'loopback unless told otherwise');
  port = st.port;
});
after(async () => {
  await tgt.stop();
});

test('off by default: a target started without --metrics-port serves nothing', async () => {
  const plain = await startChildTarget({ cores: '0x1' });
  try {
    assert.deepEqual(await plain.call('metrics_get_status'), { enabled: false });
    assert.ok(!plain.log().includes('metrics and dashboard on'));
  } finally {
    await plain.stop();
  }
});

test('after a load the scrape shows what bdev_get_iostat, nvmf_get_stats and the host saw', async () => {
  const hostnqn = 'nqn.2014-08.org.nvmexpress:uuid:0d7a0a4e-4b5e-4b6e-9a4e-000000000014';
  const host = await GoodHost.connect({ port: tgt.port, hostnqn });
  host.start();
  assert.ok(await host.waitRounds(40), `rounds: ${host.rounds}, errors: ${host.errors.join('; ')}`);
  const report = await host.stop();
  assert.deepEqual(report.errors, []);
  const rounds = report.rounds;

  const iostat = (
    await tgt.call<{ bdevs: Array<Record<string, number | string>> }>('bdev_get_iostat', { name: TEST_BDEV })
  ).bdevs[0];
  const groups = await tgt.pollGroups();
  const { samples, type, text } = await scrape(port);
  assert.match(type, /^text\/plain; version=0\.0\.4/);
  assert.match(text, /# TYPE nvmf_namespace_latency_seconds histogram/);

  // bdev iostat
  assert.equal(
    pick(samples, 'nvmf_bdev_operations_total', { bdev: TEST_BDEV, op: 'read' }),
    iostat.num_read_ops,
  );
  assert.equal(
    pick(samples, 'nvmf_bdev_operations_total', { bdev: TEST_BDEV, op: 'write' }),
    iostat.num_write_ops,
  );
  assert.equal(pick(samples, 'nvmf_bdev_bytes_total', { bdev: TEST_BDEV, op: 'read' }), iostat.bytes_read);
  assert.equal(
    pick(samples, 'nvmf_bdev_bytes_total', { bdev: TEST_BDEV, op: 'write' }),
    iostat.bytes_written,
  );

  // nvmf_get_stats, per poll group
  for (const g of groups) {
    assert.equal(
      pick(samples, 'nvmf_poll_group_completed_io_total', { poll_group: g.name }),
      g.completed_nvme_io,
    );
  }

  // per namespace: every round is one write and one read of 16 blocks
  const ns = { subsystem: TEST_NQN, nsid: '1' };
  assert.equal(pick(samples, 'nvmf_namespace_operations_total', { ...ns, op: 'write' }), rounds);
  assert.equal(pick(samples, 'nvmf_namespace_operations_total', { ...ns, op: 'read' }), rounds);
  assert.equal(
    pick(samples, 'nvmf_namespace_bytes_total', { ...ns, op: 'read' }),
    rounds * 16 * TEST_BLOCK_SIZE,
  );
  assert.equal(iostat.num_read_ops, rounds, 'the bdev saw the same reads');
  assert.equal(pick(samples, 'nvmf_namespace_latency_seconds_count', { ...ns, op: 'read' }), rounds);
  assert.equal(
    pick(samples, 'nvmf_namespace_latency_seconds_bucket', { ...ns, op: 'read', le: '+Inf' }),
    rounds,
  );
  assert.ok(pick(samples, 'nvmf_namespace_latency_seconds_sum', { ...ns, op: 'read' }) > 0);

  // per host: one controller, three queues, no error yet
  const h = { subsystem: TEST_NQN, host: hostnqn };
  assert.equal(pick(samples, 'nvmf_host_connects_total', h), 1);
  assert.equal(pick(samples, 'nvmf_host_disconnects_total', h), 0);
  assert.equal(pick(samples, 'nvmf_host_queues', h), 3);

  // reactors and RPC calls
  assert.ok(pick(samples, 'nvmf_reactor_busy_seconds_total', { reactor: '0' }) > 0);
  assert.ok(pick(samples, 'nvmf_reactor_idle_seconds_total', { reactor: '1' }) > 0);
  assert.ok(pick(samples, 'nvmf_rpc_calls_total', { method: 'bdev_get_iostat', result: 'ok' }) >= 1);

  // an error by status: a read past the end of the namespace
  await assert.rejects(host.ctrlr.ioQueues[0].readAsync(1, 32768, 1, Buffer.alloc(TEST_BLOCK_SIZE)));
  await host.ctrlr.disconnect();
  await tgt.settled();
  const later = (await scrape(port)).samples;
  assert.equal(pick(later, 'nvmf_host_errors_total', { ...h, status: 'LBA_OUT_OF_RANGE' }), 1);
  assert.equal(pick(later, 'nvmf_host_disconnects_total', h), 1);
  // every label set is bounded: no per-command label anywhere
  for (const s of later) assert.ok(!('cid' in s.labels) && !('lba' in s.labels), JSON.stringify(s));
});

test('metrics_disable stops the server, metrics_enable starts it again; save_config keeps it', async () => {
  assert.equal(await tgt.call('metrics_disable'), true);
  await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`));
  const r = await tgt.call<{ address: string; port: number }>('metrics_enable', { port: 0 });
  assert.equal(r.address, '127.0.0.1');
  const { samples } = await scrape(r.port);
  // RPC calls are counted from start-up, whether the server ran or not
  assert.ok(pick(samples, 'nvmf_rpc_calls_total', { method: 'metrics_disable', result: 'ok' }) >= 1);
  assert.ok(pick(samples, 'nvmf_rpc_calls_total', { method: 'metrics_enable', result: 'ok' }) >= 1);
  const cfg = await tgt.call<{ subsystems: Array<{ subsystem: string; config: unknown[] }> }>('save_config');
  assert.deepEqual(cfg.subsystems.find((s) => s.subsystem === 'metrics')?.config, [
    { method: 'metrics_enable', params: { port: r.port, address: '127.0.0.1' } },
  ]);
  port = r.port;
});
