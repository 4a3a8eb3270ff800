// Logs you can steer: -L checked against the registered flags, SPDK's log RPCs (applied in
// every reactor), real debug lines under nvmf, nvmf_tcp, bdev, rpc and thread, connects and
// disconnects at the default level with host NQN, address, queue and reactor, and a log
// file that rotates.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { NvmeController } from '../../src/nvme/index.ts';
import { type ChildTarget, spawnTarget, startChildTarget, TEST_NQN, waitFor } from '../lib/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'nvmf-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:6c0b3c4e-1d2a-4f6b-8c9d-00000000abcd';

/** Connect a host with one I/O queue, do one read, disconnect. */
async function visit(tgt: ChildTarget): Promise<void> {
  const c = await NvmeController.connect({
    traddr: '127.0.0.1',
    trsvcid: tgt.port,
    subnqn: TEST_NQN,
    hostnqn: HOSTNQN,
  });
  try {
    await c.setNumQueues(1);
    const q = await c.createIoQpair(8);
    await q.readAsync(1, 0, 1, Buffer.alloc(512));
  } finally {
    await c.disconnect();
  }
}

test('-L with a flag nobody registered is a usage error naming the registered ones', async () => {
  const t = spawnTarget({ rpcPath: join(dir, 'bad.sock'), args: ['-L', 'nvmf_tcpp'] });
  const exit = await t.exit;
  assert.equal(exit.code, 2);
  assert.match(t.log(), /unknown log flag 'nvmf_tcpp' \(registered: .*nvmf_tcp.*\)/);
  assert.doesNotMatch(t.log(), /\n\s+at /, 'one line, no stack');
});

test('connects and disconnects at the default level: host NQN, address, queue, reactor', async () => {
  const tgt = await startChildTarget();
  try {
    await visit(tgt);
    const adminUp = new RegExp(
      `NOTICE r\\d nvmf: host ${HOSTNQN} connected to ${TEST_NQN}: ctrlr \\d+ admin queue from 127\\.0\\.0\\.1:\\d+ on reactor \\d`,
    );
    const ioUp = new RegExp(
      `host ${HOSTNQN} connected to ${TEST_NQN}: ctrlr \\d+ I/O queue 1 from 127\\.0\\.0\\.1:\\d+ on reactor \\d`,
    );
    const adminDown = new RegExp(`host ${HOSTNQN} disconnected from ${TEST_NQN}: ctrlr \\d+ admin queue`);
    await waitFor('the disconnect logged', () => adminDown.test(tgt.log()), { timeoutMs: 10_000 });
    assert.match(tgt.log(), adminUp);
    assert.match(tgt.log(), ioUp);
    assert.match(
      tgt.log(),
      new RegExp(`host ${HOSTNQN} disconnected from ${TEST_NQN}: ctrlr \\d+ I/O queue 1`),
    );
    // nothing at debug level by default
    assert.doesNotMatch(tgt.log(), / DEBUG /);
  } finally {
    await tgt.stop();
  }
});

test("log RPCs: levels and flags as SPDK's, applied in every reactor", async () => {
  const tgt = await startChildTarget();
  try {
    assert.equal(await tgt.call('log_get_print_level'), 'NOTICE');
    assert.equal(await tgt.call('log_get_level'), 'NOTICE');
    const flags = await tgt.call<Record<string, boolean>>('log_get_flags');
    for (const f of ['nvmf', 'nvmf_tcp', 'bdev', 'rpc', 'thread']) assert.equal(flags[f], false, f);
    await assert.rejects(tgt.call('log_set_flag', { flag: 'nope' }), /unknown log flag 'nope'/);
    await assert.rejects(tgt.call('log_set_print_level', { level: 'LOUD' }), /unknown log level/);

    assert.equal(await tgt.call('log_set_flag', { flag: 'nvmf_tcp' }), true);
    assert.equal((await tgt.call<Record<string, boolean>>('log_get_flags')).nvmf_tcp, true);
    await visit(tgt);
    // the two queues land on both poll groups: both reactors print nvmf_tcp debug lines
    await waitFor(
      'ICReq debug lines from both reactors',
      () => /DEBUG r0 nvmf_tcp: .*ICReq/.test(tgt.log()) && /DEBUG r1 nvmf_tcp: .*ICReq/.test(tgt.log()),
      {
        timeoutMs: 10_000,
        detail: () => tgt.log(),
      },
    );

    assert.equal(await tgt.call('log_clear_flag', { flag: 'nvmf_tcp' }), true);
    const mark = tgt.log().length;
    await visit(tgt);
    await waitFor('the disconnect logged', () => tgt.log().slice(mark).includes('disconnected from'), {
      timeoutMs: 10_000,
    });
    assert.doesNotMatch(tgt.log().slice(mark), /DEBUG/);

    assert.equal(await tgt.call('log_set_print_level', { level: 'WARNING' }), true);
    assert.equal(await tgt.call('log_get_print_level'), 'WARNING');
    const quiet = tgt.log().length;
    await visit(tgt);
    assert.equal(await tgt.call('log_set_level', { level: 'INFO' }), true);
    assert.equal(await tgt.call('log_get_level'), 'INFO');
    assert.doesNotMatch(tgt.log().slice(quiet), /connected to/, 'notices are not printed at WARNING');
  } finally {
    await tgt.stop();
  }
});

test('-L nvmf -L nvmf_tcp -L bdev -L rpc -L thread: each prints real debug lines', async () => {
  const flags = ['nvmf', 'nvmf_tcp', 'bdev', 'rpc', 'thread'];
  const tgt = await startChildTarget({ args: flags.flatMap((f) => ['-L', f]) });
  try {
    await visit(tgt);
    await tgt.call('bdev_get_bdevs');
    for (const f of flags) {
      await waitFor(`debug lines of ${f}`, () => new RegExp(`DEBUG r\\d ${f}: `).test(tgt.log()), {
        timeoutMs: 10_000,
        detail: () => tgt.log(),
      });
    }
    assert.match(tgt.log(), /DEBUG r\d nvmf: Connect qid 0 .* from host /);
    assert.match(tgt.log(), /DEBUG r0 rpc: RPC request bdev_get_bdevs/);
    assert.match(tgt.log(), /DEBUG r\d bdev: (register|open) Malloc0/);
    assert.match(tgt.log(), /DEBUG r\d thread: (thread|poller) /);
  } finally {
    await tgt.stop();
  }
});

test('--log-file: the log is appended to a file that rotates past --log-file-max-size', async () => {
  const file = join(dir, 'tgt.log');
  const tgt = await startChildTarget({
    args: ['--log-file', file, '--log-file-max-size', '2k', '-L', 'nvmf'],
  });
  try {
    for (let i = 0; i < 4 && !existsSync(`${file}.1`); i++) await visit(tgt);
    await waitFor('a rotated file', () => existsSync(`${file}.1`), { timeoutMs: 10_000 });
    const rotated = readFileSync(`${file}.1`, 'utf8');
    assert.match(rotated, /nvmf/);
    assert.ok(rotated.length >= 2048, `rotated at ${rotated.length} bytes`);
  } finally {
    await tgt.stop();
  }
  assert.match(
    readFileSync(file, 'utf8') + readFileSync(`${file}.1`, 'utf8'),
    /all subsystems initialized|connected to/,
  );
});
