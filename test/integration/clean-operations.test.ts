// What a new user runs into: one-line errors instead of stack traces, failures
// logged once, SPDK's NQN rules, a port out of range named as such, and a malloc
// bdev the machine cannot back refused up front.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ChildTarget, spawnTarget } from '../lib/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-clean-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Starts nvmf_tgt expecting it to fail start-up; returns its exit code and output. */
async function failedStart(configText: string | null, env: NodeJS.ProcessEnv = process.env) {
  const configPath = configText === null ? undefined : join(dir, `cfg-${Math.random()}.json`);
  if (configPath !== undefined) writeFileSync(configPath, configText ?? '');
  const t = spawnTarget({ cores: '0x1', rpcPath: join(dir, `rpc-${Math.random()}.sock`), configPath, env });
  const exit = await t.exit;
  return { code: exit.code, log: t.log() };
}

test('a --json whose top level is not an object: one line naming the shape, exit 1', async () => {
  const r = await failedStart('[1, 2]');
  assert.equal(r.code, 1);
  const errors = r.log.split('\n').filter((l) => l.includes('ERROR'));
  assert.equal(errors.length, 1, r.log);
  assert.match(
    errors[0],
    /start-up failed: the configuration must be an object with a "subsystems" array .* not an array/,
  );
});

test('NVMF_TS_BDEV_MODULES naming a missing file: one line, no stack trace, exit 1', async () => {
  const r = await failedStart(null, { ...process.env, NVMF_TS_BDEV_MODULES: '/nonexistent/module.ts' });
  assert.equal(r.code, 1);
  assert.match(
    r.log,
    /ERROR .*start-up failed: NVMF_TS_BDEV_MODULES: \/nonexistent\/module\.ts does not load: no such file/,
  );
  assert.doesNotMatch(r.log, /^\s+at /m, 'no stack trace');
});

test('an initialization failure is logged once (the listener port is taken)', async () => {
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as { port: number }).port;
  try {
    const cfg = {
      subsystems: [
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            {
              method: 'nvmf_create_subsystem',
              params: { nqn: 'nqn.2016-06.io.spdk:cnode1', allow_any_host: true },
            },
            {
              method: 'nvmf_subsystem_add_listener',
              params: {
                nqn: 'nqn.2016-06.io.spdk:cnode1',
                listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
              },
            },
          ],
        },
      ],
    };
    const r = await failedStart(JSON.stringify(cfg));
    assert.equal(r.code, 1);
    const errors = r.log.split('\n').filter((l) => l.includes('ERROR'));
    assert.equal(errors.length, 1, r.log);
    assert.match(errors[0], /Unable to listen on address 127\.0\.0\.1:\d+/);
  } finally {
    busy.close();
  }
});

test('NQNs follow SPDK rules, a port out of range is an invalid parameter, an unbackable malloc bdev is refused', async () => {
  const t = await ChildTarget.start({ cores: '0x1' });
  try {
    await assert.rejects(
      t.rpc.call('nvmf_create_subsystem', { nqn: 'nqn.2016-06.io.spdk' }),
      /must contain a name after a ':'/,
    );
    await assert.rejects(
      t.rpc.call('nvmf_create_subsystem', { nqn: 'nqn.2016-06.9io.spdk:x' }),
      /labels start with a letter/,
    );
    await assert.rejects(
      t.rpc.call('nvmf_subsystem_add_listener', {
        nqn: 'nqn.2016-06.io.spdk:cnode1',
        listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '70000' },
      }),
      (e: { code: number; message: string }) => {
        assert.equal(e.code, -22);
        assert.match(e.message, /Invalid port 70000: a TCP port is 1 to 65535/);
        return true;
      },
    );
    const tooBig = 2 * totalmem();
    await assert.rejects(
      t.rpc.call('bdev_malloc_create', { name: 'Huge', num_blocks: tooBig / 4096, block_size: 4096 }),
      /cannot back Huge with RAM: it needs \d+ MiB, the machine has \d+ MiB available/,
    );
    assert.deepEqual(
      await t.rpc.call('bdev_get_bdevs', { name: 'Malloc0' }).then((b) => (b as unknown[]).length),
      1,
    );
    // what fits is still created
    assert.equal(
      await t.rpc.call('bdev_malloc_create', { name: 'Small', num_blocks: 256, block_size: 512 }),
      'Small',
    );
  } finally {
    await t.stop();
  }
});
