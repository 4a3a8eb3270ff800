// nvmf-rpc against a real nvmf_tgt process: the rpc.py command lines a user
// types to export a malloc bdev over NVMe/TCP, then read back and delete.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ChildTarget } from '../lib/index.ts';

const NODE = process.execPath;
const CLI = fileURLToPath(new URL('../../src/apps/nvmf-rpc.ts', import.meta.url));
let tgt: ChildTarget;
let sock = '';

function rpc(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [CLI, '-s', sock, '-t', '10', ...args], { timeout: 20000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout, stderr });
    });
  });
}

async function ok(...args: string[]): Promise<string> {
  const r = await rpc(...args);
  assert.equal(
    r.code,
    0,
    `nvmf-rpc ${args.join(' ')} failed:\n${r.stdout}${r.stderr}\n--- target log ---\n${tgt.log()}`,
  );
  return r.stdout;
}

before(async () => {
  // a bare target (no configuration): the commands below build everything
  tgt = await ChildTarget.start({ cores: '0x1', config: null });
  sock = tgt.rpcPath;
});

after(async () => {
  await tgt?.stop();
});

test('version, then malloc bdev + TCP subsystem built with rpc.py command lines', async () => {
  const version = JSON.parse(await ok('spdk_get_version')) as { version: string };
  assert.match(version.version, /^nvmf-ts v\d+\.\d+\.\d+/);

  assert.equal(await ok('bdev_malloc_create', '-b', 'Malloc0', '8', '512'), 'Malloc0\n');
  const bdevs = JSON.parse(await ok('bdev_get_bdevs', '-b', 'Malloc0')) as Array<Record<string, unknown>>;
  assert.equal(bdevs[0].num_blocks, 16384);
  assert.equal(bdevs[0].block_size, 512);

  assert.equal(await ok('nvmf_create_transport', '-t', 'TCP', '-u', '8192'), '');
  assert.equal(
    await ok('nvmf_create_subsystem', 'nqn.2016-06.io.spdk:cnode1', '-a', '-s', 'SPDK001', '-d', 'Ctrl1'),
    '',
  );
  await ok('nvmf_subsystem_add_ns', 'nqn.2016-06.io.spdk:cnode1', 'Malloc0');
  const subs = JSON.parse(await ok('nvmf_get_subsystems', 'nqn.2016-06.io.spdk:cnode1')) as Array<
    Record<string, unknown>
  >;
  assert.equal(subs.length, 1);
  assert.equal(subs[0].serial_number, 'SPDK001');
  assert.equal(subs[0].allow_any_host, true);
  assert.equal((subs[0].namespaces as Array<{ bdev_name: string }>)[0].bdev_name, 'Malloc0');
});

test('errors come back in rpc.py format with exit 1; usage errors exit 2', async () => {
  const dup = await rpc('bdev_malloc_create', '-b', 'Malloc0', '8', '512');
  assert.equal(dup.code, 1);
  assert.match(dup.stdout, /^request:\n\{\n {2}"name": "Malloc0",/);
  assert.match(dup.stdout, /Got JSON-RPC error response\nresponse:\n\{\n {2}"code": -17,/);

  const state = await rpc('framework_start_init');
  assert.equal(state.code, 1);
  assert.match(
    state.stdout,
    /"code": -1,\n {2}"message": "Method may only be called before framework is initialized/,
  );

  const usage = await rpc('nvmf_create_subsystem');
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /the following arguments are required: nqn/);
});

test('a script on stdin runs in order on one connection', async () => {
  const out = await new Promise<{ code: number; stdout: string }>((resolve) => {
    const child = execFile(NODE, [CLI, '-s', sock], { timeout: 20000 }, (err, stdout) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout }),
    );
    child.stdin?.end('bdev_null_create Null0 16 4096\nbdev_get_bdevs -b Null0\nbdev_null_delete Null0\n');
  });
  assert.equal(out.code, 0, out.stdout);
  const [name, ...rest] = out.stdout.split('\n');
  assert.equal(name, 'Null0');
  const bdev = JSON.parse(rest.join('\n')) as Array<{ name: string; num_blocks: number }>;
  assert.deepEqual([bdev[0].name, bdev[0].num_blocks], ['Null0', 4096]);
  const gone = await rpc('bdev_get_bdevs', '-b', 'Null0');
  assert.equal(gone.code, 1);
});
