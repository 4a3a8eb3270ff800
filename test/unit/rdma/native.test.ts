import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  Access,
  type AddonLocation,
  CmEventType,
  explainLoadFailure,
  explainMissingAddon,
  loadRdmaAddon,
  QpState,
  RdmaUnavailableError,
  rdmaAvailability,
  SendFlags,
  WcFlags,
  WcOpcode,
  WcStatus,
  WorkCompletion,
  WorkRequest,
  WrOpcode,
} from '../../../src/rdma/index.ts';

function scratch(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nvmf-rdma-loader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function location(dir: string): AddonLocation {
  mkdirSync(join(dir, 'include'), { recursive: true });
  return {
    addonPath: join(dir, 'nvmf_rdma.node'),
    statusPath: join(dir, 'status.json'),
    includeDir: join(dir, 'include'),
  };
}

function header(dir: string, path: string): void {
  mkdirSync(join(dir, 'include', path, '..'), { recursive: true });
  writeFileSync(join(dir, 'include', path), '');
}

test('no addon and no development headers: the sentence names both Debian packages', (t) => {
  const where = location(scratch(t));
  const error = explainMissingAddon(where);
  assert.ok(error instanceof RdmaUnavailableError);
  assert.deepEqual(error.missing, ['libibverbs-dev', 'librdmacm-dev']);
  assert.equal(error.code, 'NVMF_ERR_RDMA_UNAVAILABLE');
  assert.match(error.message, /^RDMA is unavailable: /);
  assert.match(error.message, /libibverbs-dev and librdmacm-dev are not installed/);
  assert.match(error.message, /apt-get install libibverbs-dev librdmacm-dev/);
  assert.match(error.message, /node native\/rdma\/build\.mjs/);
  assert.throws(
    () => loadRdmaAddon(where),
    (e: Error) => e instanceof RdmaUnavailableError && e.message === error.message,
  );
});

test('one header present: only the other package is named', (t) => {
  const dir = scratch(t);
  header(dir, 'infiniband/verbs.h');
  const error = explainMissingAddon(location(dir));
  assert.deepEqual(error?.missing, ['librdmacm-dev']);
  assert.match(
    error?.message ?? '',
    /librdmacm-dev is not installed \(Debian: apt-get install librdmacm-dev\)/,
  );
});

test('headers present but nothing built: says to build', (t) => {
  const dir = scratch(t);
  header(dir, 'infiniband/verbs.h');
  header(dir, 'rdma/rdma_cma.h');
  const error = explainMissingAddon(location(dir));
  assert.deepEqual(error?.missing, []);
  assert.match(error?.message ?? '', /is not built yet: run "node native\/rdma\/build\.mjs"/);
});

test("the install's status file wins: missing tools, a skipped build, a failed build", (t) => {
  const dir = scratch(t);
  const where = location(dir);
  writeFileSync(
    where.statusPath,
    JSON.stringify({ built: false, missing: ['a C compiler (build-essential)', 'make'] }),
  );
  const tools = explainMissingAddon(where);
  assert.deepEqual(tools?.missing, ['a C compiler (build-essential)', 'make']);
  assert.match(tools?.message ?? '', /a C compiler \(build-essential\) and make are not installed/);
  assert.match(tools?.message ?? '', /apt-get install build-essential make/);
  writeFileSync(where.statusPath, JSON.stringify({ built: false, skipped: true, missing: [] }));
  assert.match(explainMissingAddon(where)?.message ?? '', /NVMF_TS_SKIP_RDMA_BUILD was set/);
  writeFileSync(
    where.statusPath,
    JSON.stringify({ built: false, missing: [], failed: 'node-gyp exited with 2' }),
  );
  assert.match(explainMissingAddon(where)?.message ?? '', /its build failed \(node-gyp exited with 2\)/);
});

test('an addon that will not load: the runtime libraries are named, other failures quoted', (t) => {
  const runtime = explainLoadFailure(
    new Error('libibverbs.so.1: cannot open shared object file: No such file or directory'),
  );
  assert.deepEqual(runtime.missing, ['libibverbs1']);
  assert.match(
    runtime.message,
    /because libibverbs1 is not installed \(Debian: apt-get install libibverbs1\)/,
  );
  const dir = scratch(t);
  const where = location(dir);
  writeFileSync(where.addonPath, 'not a shared object');
  assert.equal(explainMissingAddon(where), null, 'the file exists');
  assert.throws(
    () => loadRdmaAddon(where),
    (e: Error) => e instanceof RdmaUnavailableError && /the RDMA addon cannot load: /.test(e.message),
  );
});

// The values work-request.ts mirrors, by the addon's constant names.
const MIRRORED: Array<[string, number]> = [
  ['WR_WORDS', WorkRequest.WORDS],
  ['WR_HEADER_WORDS', WorkRequest.HEADER_WORDS],
  ['WR_MAX_SGE', WorkRequest.MAX_SGE],
  ['WR_OPCODE', WorkRequest.OPCODE],
  ['WR_FLAGS', WorkRequest.FLAGS],
  ['WR_ID_LO', WorkRequest.ID_LO],
  ['WR_ID_HI', WorkRequest.ID_HI],
  ['WR_NUM_SGE', WorkRequest.NUM_SGE],
  ['WR_IMM_OR_INV', WorkRequest.IMM_OR_INV],
  ['WR_REMOTE_ADDR_LO', WorkRequest.REMOTE_ADDR_LO],
  ['WR_REMOTE_ADDR_HI', WorkRequest.REMOTE_ADDR_HI],
  ['WR_RKEY', WorkRequest.RKEY],
  ['WC_WORDS', WorkCompletion.WORDS],
  ['WC_ID_LO', WorkCompletion.ID_LO],
  ['WC_ID_HI', WorkCompletion.ID_HI],
  ['WC_STATUS', WorkCompletion.STATUS],
  ['WC_OPCODE', WorkCompletion.OPCODE],
  ['WC_BYTE_LEN', WorkCompletion.BYTE_LEN],
  ['WC_QP_NUM', WorkCompletion.QP_NUM],
  ['WC_FLAGS', WorkCompletion.FLAGS],
  ['WC_IMM_OR_INV', WorkCompletion.IMM_OR_INV],
  ...Object.entries(WrOpcode).map(([k, v]): [string, number] => [`OP_${k}`, v]),
  ...Object.entries(SendFlags).map(([k, v]): [string, number] => [`SEND_${k}`, v]),
  ...Object.entries(Access).map(([k, v]): [string, number] => [`ACCESS_${k}`, v]),
  ...Object.entries(WcOpcode).map(([k, v]): [string, number] => [`WC_${k}`, v]),
  ...Object.entries(WcFlags).map(([k, v]): [string, number] => [`WC_${k}`, v]),
  ...Object.entries(WcStatus).map(([k, v]): [string, number] => [`WC_${k}`, v]),
  ...Object.entries(QpState).map(([k, v]): [string, number] => [`QPS_${k}`, v]),
  ...Object.entries(CmEventType).map(([k, v]): [string, number] => [`CM_${k}`, v]),
];

// Runs in a worker: the addon must load there too (one instance per realm).
const WORKER_PROBE = `
const { parentPort } = require('node:worker_threads');
const addon = require(${JSON.stringify('PATH')});
let channel = 'created';
try { addon.createEventChannel().destroy(); } catch (e) { channel = e.code; }
let construct = '';
try { new addon.CmId(); } catch (e) { construct = e.message; }
parentPort.postMessage({ constants: addon.constants, devices: addon.devices().length, channel, construct });
`;

test('on this machine: the built addon loads in the main thread and in a worker, its constants match work-request.ts; or the reason names what is missing', async () => {
  const availability = rdmaAvailability();
  if (!availability.available) {
    // a machine without the development packages: the sentence -t RDMA will print
    assert.match(availability.reason, /^RDMA is unavailable: the RDMA addon/);
    assert.ok(
      availability.missing.length > 0 ||
        /not built yet|NVMF_TS_SKIP_RDMA_BUILD|build failed/.test(availability.reason),
    );
    return;
  }
  const addon = loadRdmaAddon();
  for (const [name, value] of MIRRORED) assert.equal(addon.constants[name], value, name);
  assert.ok(Array.isArray(addon.devices()));
  assert.throws(() => new (addon as unknown as { CmId: new () => unknown }).CmId(), /not constructible/);
  const path = (await import('../../../src/rdma/native.ts')).defaultAddonLocation().addonPath;
  const probe = WORKER_PROBE.replace(JSON.stringify('PATH'), JSON.stringify(path));
  const fromWorker = await new Promise<{
    constants: Record<string, number>;
    devices: number;
    channel: string;
    construct: string;
  }>((resolve, reject) => {
    const worker = new Worker(probe, { eval: true });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  assert.deepEqual(fromWorker.constants, addon.constants);
  assert.equal(fromWorker.devices, addon.devices().length);
  // without /dev/infiniband (this host has no RDMA device) the event channel fails with ENODEV
  assert.ok(['created', 'ENODEV', 'ENOENT'].includes(fromWorker.channel), fromWorker.channel);
  assert.match(fromWorker.construct, /not constructible/);
});
