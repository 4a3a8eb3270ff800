// `nvmf top` against a running target: one screen (--once) and a few refreshes (-n)
// show the reactors, threads, pollers, subsystems and the queues of a connected host.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ChildTarget, GoodHost, startChildTarget, TEST_NQN } from '../lib/index.ts';

const NODE = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/nvmf.mjs', import.meta.url));

function top(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [CLI, 'top', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 99) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:2f7d7a2c-9c1e-4f0a-b7a1-0000000000e0';
let tgt: ChildTarget;
let host: GoodHost;
before(async () => {
  tgt = await startChildTarget();
  host = await GoodHost.connect({ port: tgt.port, hostnqn: HOSTNQN });
  await host.round();
});
after(async () => {
  await host.ctrlr.disconnect().catch(() => {});
  await tgt.stop();
});

test('nvmf top --once: reactors, threads, pollers, subsystems and the host queues', async () => {
  const r = await top(['-r', tgt.rpcPath, '--once']);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.ok(!out.includes('\u001b['), 'no screen control codes in --once');
  for (const section of ['REACTORS', 'THREADS', 'POLLERS', 'SUBSYSTEMS', 'QPAIRS'])
    assert.match(out, new RegExp(`^${section}$`, 'm'));
  const reactors = out.slice(out.indexOf('REACTORS'), out.indexOf('THREADS'));
  assert.match(reactors, /^ {2}0 +\d+\.\d% +\d+$/m);
  assert.match(reactors, /^ {2}1 +\d+\.\d% +\d+$/m);
  assert.match(out, /app_thread/);
  assert.match(out, /nvmf_tgt_poll_group_1/);
  assert.match(out, /nvmf_poll_group_poll +nvmf_tgt_poll_group_\d +active/);
  assert.match(out, /nvmf_ctrlr_keep_alive_poll +nvmf_tgt_poll_group_\d +timed +1000000us/);
  assert.match(
    out,
    new RegExp(`${TEST_NQN.replaceAll('.', '\\.')} +NVMe +1:Malloc0 +127\\.0\\.0\\.1:${tgt.port} +3`),
  );
  // the admin queue and the two I/O queues of the host
  const qpairs = out.slice(out.indexOf('QPAIRS'));
  for (const qid of [0, 1, 2])
    assert.match(
      qpairs,
      new RegExp(`${HOSTNQN} +\\d+ +${qid} +nvmf_tgt_poll_group_\\d +127\\.0\\.0\\.1:\\d+`),
    );
});

test('nvmf top -n 2 -d 0.2 refreshes with loads over the interval; bad arguments and no target fail', async () => {
  const r = await top(['-r', tgt.rpcPath, '-n', '2', '-d', '0.2']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.match(/^REACTORS$/gm)?.length, 2);
  assert.equal(r.stdout.match(/loads since start/g)?.length, 1, 'only the first screen is since start');

  const bad = await top(['-r', tgt.rpcPath, '-n', 'zero']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--iterations: 'zero' is not a positive integer/);
  const gone = await top(['-r', join(tgt.dir, 'nothing.sock'), '--once']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /cannot reach the target/);
});
