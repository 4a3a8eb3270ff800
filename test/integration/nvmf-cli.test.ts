// The `nvmf` CLI against a real nvmf_tgt process: discovery, the controller
// summary, the identify/log/feature decoders, data written then read back
// through files, and the exit codes for bad arguments and unreachable targets.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ChildTarget, freePort, startChildTarget } from '../lib/index.ts';

const NODE = process.execPath;
const CLI = fileURLToPath(new URL('../../bin/nvmf.mjs', import.meta.url));
const NQN = 'nqn.2016-06.io.spdk:cnode1';
const NQN2 = 'nqn.2016-06.io.spdk:cnode2';
const ALLOWED_HOST = 'nqn.2014-08.org.nvmexpress:uuid:7d2f8c1e-3a4b-4c5d-8e9f-0a1b2c3d4e5f';
const dir = mkdtempSync(join(tmpdir(), 'nvmf-cli-'));
let target: ChildTarget;
let port = 0;
/** the host identity (hostnqn/hostid) is kept under the temp dir, not in ~/.config */
const HOST_ENV = { ...process.env, XDG_CONFIG_HOME: dir };

/** the target's configuration; startChildTarget fills in the port for '$PORT' */
function targetConfig(): unknown {
  const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '$PORT' };
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 16384, block_size: 512 } },
          { method: 'bdev_null_create', params: { name: 'Null0', num_blocks: 65536, block_size: 4096 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          {
            method: 'nvmf_create_subsystem',
            params: {
              nqn: NQN,
              allow_any_host: true,
              serial_number: 'SPDKCLI01',
              model_number: 'nvmf-ts cli test',
            },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 2, bdev_name: 'Null0' } },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: 'nqn.2014-08.org.nvmexpress.discovery', listen_address: listen },
          },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address: listen } },
          // a subsystem only ALLOWED_HOST may reach: checks that -q reaches the Connect data
          { method: 'nvmf_create_subsystem', params: { nqn: NQN2, allow_any_host: false } },
          { method: 'nvmf_subsystem_add_host', params: { nqn: NQN2, host: ALLOWED_HOST } },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN2, listen_address: listen } },
        ],
      },
    ],
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  raw: Buffer;
}

function nvmf(args: string[], input?: Buffer): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      NODE,
      [CLI, ...args],
      { timeout: 30000, encoding: 'buffer', maxBuffer: 1 << 24, env: HOST_ENV },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 99) : 0;
        resolve({ code, stdout: stdout.toString('latin1'), stderr: stderr.toString(), raw: stdout });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

/** Connect options in their long forms (valid for every command). */
const conn = () => ['-t', 'tcp', '-a', '127.0.0.1', '--trsvcid', String(port), '--nqn', NQN];

async function ok(args: string[], input?: Buffer): Promise<Run> {
  const r = await nvmf(args, input);
  assert.equal(
    r.code,
    0,
    `nvmf ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n--- target log ---\n${target.log()}`,
  );
  return r;
}

before(async () => {
  target = await startChildTarget({ cores: '0x1', config: targetConfig() });
  port = Number(target.port);
});

after(async () => {
  await target?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('discover: nvme-cli style entries, human and JSON', async () => {
  const human = await ok(['discover', '-t', 'tcp', '-a', '127.0.0.1', '-s', String(port)]);
  assert.match(human.stdout, /Discovery Log Number of Records 2, Generation counter \d+/);
  assert.match(
    human.stdout,
    /=====Discovery Log Entry 1======\ntrtype: {2}tcp\nadrfam: {2}ipv4\nsubtype: nvme subsystem\n/,
  );
  assert.match(human.stdout, new RegExp(`subnqn: {2}${NQN}\ntraddr: {2}127\\.0\\.0\\.1\n`));

  const json = JSON.parse(
    (await ok(['discover', '-t', 'tcp', '-a', '127.0.0.1', '-s', String(port), '-o', 'json'])).stdout,
  );
  assert.equal(typeof json.genctr, 'number');
  assert.equal(json.records.length, 2);
  const nvm = json.records.find((r: Record<string, unknown>) => r.subnqn === NQN);
  assert.deepEqual(
    { ...nvm, treq: undefined },
    {
      trtype: 'tcp',
      adrfam: 'ipv4',
      subtype: 'nvme subsystem',
      treq: undefined,
      portid: nvm.portid,
      trsvcid: String(port),
      subnqn: NQN,
      traddr: '127.0.0.1',
      eflags: 'none',
      sectype: 'none',
    },
  );
  // as SPDK: a port without TLS says the secure channel is not required
  assert.match(nvm.treq, /^not required/);
  const self = json.records.find((r: Record<string, unknown>) => r.subtype === 'current discovery subsystem');
  assert.equal(self.subnqn, 'nqn.2014-08.org.nvmexpress.discovery');
});

test('connect prints the controller summary and disconnects', async () => {
  const human = await ok(['connect', '-t', 'tcp', '-a', '127.0.0.1', '-s', String(port), '-n', NQN]);
  assert.match(human.stdout, /^connected to nqn\.2016-06\.io\.spdk:cnode1 at 127\.0\.0\.1:\d+\n/);
  assert.match(human.stdout, /mn {8}: nvmf-ts cli test\n/);
  assert.match(human.stdout, /sn {8}: SPDKCLI01\n/);
  assert.match(human.stdout, /nsid 1: 16384 blocks of 512 bytes \(8\.00 MiB\)\n/);
  assert.match(human.stdout, /disconnected\n$/);

  const s = JSON.parse((await ok(['connect', ...conn(), '-o', 'json'])).stdout);
  assert.ok(s.cntlid > 0);
  assert.equal(s.mn, 'nvmf-ts cli test');
  assert.equal(s.sn, 'SPDKCLI01');
  assert.equal(typeof s.fr, 'string');
  assert.deepEqual(
    s.namespaces.map((n: Record<string, number>) => [n.nsid, n.nsze, n.block_size]),
    [
      [1, 16384, 512],
      [2, 65536, 4096],
    ],
  );
});

test('-q/-I set the host NQN and host ID of the Connect', async () => {
  const base = ['connect', '-t', 'tcp', '-a', '127.0.0.1', '-s', String(port), '-n', NQN2, '-o', 'json'];
  const refused = await nvmf(base);
  assert.equal(refused.code, 1, 'a host not on the list is refused');
  assert.match(refused.stderr, /^nvmf connect: Connect failed/);
  const allowed = await ok([...base, '-q', ALLOWED_HOST, '-I', '7d2f8c1e-3a4b-4c5d-8e9f-0a1b2c3d4e5f']);
  assert.equal(JSON.parse(allowed.stdout).subnqn, NQN2);
  // the discovery log is filtered by host: the allowed host also sees cnode2
  const disc = ['discover', '-t', 'tcp', '-a', '127.0.0.1', '-s', String(port), '-o', 'json'];
  const mine = JSON.parse((await ok([...disc, '-q', ALLOWED_HOST])).stdout);
  assert.ok(mine.records.some((r: { subnqn: string }) => r.subnqn === NQN2));
  const others = JSON.parse((await ok(disc)).stdout);
  assert.ok(!others.records.some((r: { subnqn: string }) => r.subnqn === NQN2));
  const badId = await nvmf([...base, '-q', ALLOWED_HOST, '-I', 'not-a-uuid']);
  assert.equal(badId.code, 2);
});

test('identify (id-ctrl) decodes the fields with nvme-cli names', async () => {
  const id = JSON.parse((await ok(['identify', ...conn(), '-o', 'json'])).stdout);
  assert.equal(id.sn, 'SPDKCLI01');
  assert.equal(id.mn, 'nvmf-ts cli test');
  assert.equal(id.subnqn, NQN);
  assert.ok(id.cntlid > 0);
  assert.ok(id.ver >= 0x10300, `ver 0x${id.ver.toString(16)}`);
  assert.equal(id.sqes, 0x66);
  assert.equal(id.cqes, 0x44);
  assert.ok(id.nn >= 2);
  assert.ok(id.ioccsz >= 4, 'ioccsz covers at least the 64-byte SQE');
  assert.equal(id.iorcsz, 1);
  assert.ok(id.mdts > 0);
  assert.notEqual(id.sgls & 0x1, 0);
  for (const k of ['vid', 'oacs', 'oncs', 'vwc', 'kas', 'maxcmd', 'cntrltype', 'fcatt', 'msdbd'])
    assert.equal(typeof id[k], 'number', k);

  const human = await ok(['id-ctrl', ...conn()]);
  assert.match(human.stdout, /^NVME Identify Controller:\n/);
  assert.match(human.stdout, /\nsqes {6}: 0x66\n/);
  assert.match(human.stdout, new RegExp(`\nsubnqn {4}: ${NQN}\n`));
});

test('id-ns and list-ns', async () => {
  const ns = JSON.parse((await ok(['id-ns', ...conn(), '-n', '1', '-o', 'json'])).stdout);
  assert.equal(ns.nsze, 16384);
  assert.equal(ns.ncap, 16384);
  assert.equal(ns.nlbaf, 0);
  assert.equal(ns.flbas, 0);
  assert.deepEqual(ns.lbafs, [{ ms: 0, ds: 9, rp: 0 }]);
  assert.match(ns.nguid, /^[0-9a-f]{32}$/);
  assert.match(ns.eui64, /^[0-9a-f]{16}$/);
  const ns2 = JSON.parse((await ok(['id-ns', ...conn(), '-n', '2', '-o', 'json'])).stdout);
  assert.equal(ns2.lbafs[0].ds, 12);

  const human = await ok(['id-ns', ...conn(), '-n', '1']);
  assert.match(human.stdout, /^NVME Identify Namespace 1:\nnsze {6}: 16384\n/);
  assert.match(human.stdout, /lbaf {2}0 : ms:0 {3}lbads:9 {2}rp:0 \(in use\)\n/);

  const list = JSON.parse((await ok(['list-ns', ...conn(), '-o', 'json'])).stdout);
  assert.deepEqual(list, { nsid_list: [{ nsid: 1 }, { nsid: 2 }] });
  assert.equal((await ok(['list-ns', ...conn()])).stdout, '[   0]:0x1\n[   1]:0x2\n');
});

test('get-log, get-feature, smart-log, error-log', async () => {
  const log = JSON.parse(
    (await ok(['get-log', ...conn(), '--log-id=2', '--log-len=512', '-o', 'json'])).stdout,
  );
  assert.equal(log.log_id, 2);
  assert.equal(log.length, 512);
  assert.equal(log.data.length, 1024);
  const dump = await ok(['get-log', ...conn(), '-i', '2', '-l', '32']);
  assert.match(dump.stdout, /log_id:2 namespace_id:0xffffffff\n {7}0 {2}1/);
  assert.match(dump.stdout, /\n0010: /);
  const raw = await ok(['get-log', ...conn(), '-i', '2', '-l', '64', '-b']);
  assert.equal(raw.raw.length, 64);

  const feat = JSON.parse((await ok(['get-feature', ...conn(), '-f', '7', '-o', 'json'])).stdout);
  assert.equal(feat.feature_id, 7);
  assert.equal(feat.name, 'Number of Queues');
  assert.ok((feat.value & 0xffff) >= 1, 'at least one I/O submission queue');
  const featHuman = await ok(['get-feature', ...conn(), '-f', '0x7']);
  assert.match(featHuman.stdout, /^get-feature:0x07 \(Number of Queues\), Current value:0x[0-9a-f]{8}\n$/);

  const smart = JSON.parse((await ok(['smart-log', ...conn(), '-o', 'json'])).stdout);
  for (const k of [
    'critical_warning',
    'temperature',
    'available_spare',
    'available_spare_threshold',
    'percentage_used',
    'data_units_read',
    'data_units_written',
    'host_read_commands',
    'host_write_commands',
    'controller_busy_time',
    'power_cycles',
    'power_on_hours',
    'unsafe_shutdowns',
    'media_errors',
    'num_err_log_entries',
  ])
    assert.equal(typeof smart[k], 'number', k);
  const smartHuman = await ok(['smart-log', ...conn()]);
  assert.match(
    smartHuman.stdout,
    /^Smart Log for NVME device:nqn\.2016-06\.io\.spdk:cnode1 namespace-id:ffffffff\n/,
  );
  assert.match(smartHuman.stdout, /\nhost_read_commands +: \d+\n/);

  const errors = JSON.parse((await ok(['error-log', ...conn(), '-e', '4', '-o', 'json'])).stdout);
  assert.equal(errors.errors.length, 4);
  assert.deepEqual(Object.keys(errors.errors[0]).slice(0, 4), [
    'error_count',
    'sqid',
    'cmdid',
    'status_field',
  ]);
});

test('write a file, read it back through the CLI (files, stdout, digests)', async () => {
  const data = Buffer.alloc(300 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
  const inFile = join(dir, 'in.bin');
  const outFile = join(dir, 'out.bin');
  writeFileSync(inFile, data);
  // 600 blocks of 512 bytes: more than one MDTS-sized command
  const blocks = data.length / 512;
  await ok([
    'write',
    ...conn(),
    '-n',
    '1',
    '-s',
    '100',
    '-c',
    String(blocks - 1),
    '-z',
    String(data.length),
    '-d',
    inFile,
  ]);
  const r = await ok([
    'read',
    ...conn(),
    '-n',
    '1',
    '-s',
    '100',
    '-c',
    String(blocks - 1),
    '-z',
    String(data.length),
    '-d',
    outFile,
  ]);
  assert.match(r.stderr, /read: Success/);
  assert.ok(readFileSync(outFile).equals(data), 'read data differs from written data');

  // one block to stdout, with header and data digests
  const one = await ok(['read', ...conn(), '-g', '-G', '-n', '1', '-s', '101', '-c', '0']);
  assert.ok(one.raw.equals(data.subarray(512, 1024)));

  // write from stdin (short input is zero-padded to the block)
  await ok(['write', ...conn(), '-G', '-n', '1', '-s', '5', '-c', '0', '--fua'], Buffer.from('hello'));
  const back = await ok(['read', ...conn(), '-n', '1', '-s', '5', '-c', '0']);
  assert.equal(back.raw.length, 512);
  assert.equal(back.raw.subarray(0, 5).toString(), 'hello');
  assert.ok(back.raw.subarray(5).every((b) => b === 0));
});

test('compare, write-zeroes, dsm --ad and flush', async () => {
  const data = Buffer.alloc(4096);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 1) & 0xff;
  const file = join(dir, 'cmp.bin');
  writeFileSync(file, data);
  const at = (slba: number, count: number) => ['-n', '1', '-s', String(slba), '-c', String(count - 1)];
  await ok(['write', ...conn(), ...at(2000, 8), '-d', file]);
  const same = await ok(['compare', ...conn(), ...at(2000, 8), '-d', file]);
  assert.match(same.stderr, /compare: Success/);
  const differs = await nvmf(['compare', ...conn(), ...at(2001, 8), '-d', file]);
  assert.equal(differs.code, 1);
  assert.match(differs.stderr, /^nvmf compare: Compare failed: COMPARE_FAILURE/);

  await ok(['write-zeroes', ...conn(), ...at(2000, 2)]);
  await ok(['dsm', ...conn(), '-n', '1', '-s', '2004,2006', '-b', '1,2', '--ad']);
  await ok(['flush', ...conn(), '-n', '1']);
  const back = (await ok(['read', ...conn(), ...at(2000, 8)])).raw;
  const zero = (from: number, to: number) => back.subarray(from * 512, to * 512).every((b) => b === 0);
  assert.ok(zero(0, 2), 'write-zeroes left data');
  assert.ok(back.subarray(1024, 2048).equals(data.subarray(1024, 2048)), 'blocks 2-3 untouched');
  assert.ok(zero(4, 5) && zero(6, 8), 'deallocated blocks read as zeroes (DLFEAT)');
  assert.ok(back.subarray(2560, 3072).equals(data.subarray(2560, 3072)), 'block 5 untouched');

  const mismatch = await nvmf(['dsm', ...conn(), '-n', '1', '-s', '1,2', '-b', '1', '--ad']);
  assert.equal(mismatch.code, 2);
  assert.match(mismatch.stderr, /--slbs has 2 ranges but --blocks has 1/);
});

test('bad arguments exit 2 with the usage; --help exits 0', async () => {
  const cases: string[][] = [
    ['identify', '-t', 'tcp', '-s', String(port), '-n', NQN], // no -a
    ['identify', ...conn(), '--bogus'],
    ['id-ns', '-t', 'tcp', '-a', '127.0.0.1', '-s', String(port), '-n', NQN], // -n is the NSID here
    ['read', ...conn(), '-n', '1', '-c', '3', '-z', '100'], // buffer too small for 4 blocks
    ['get-log', ...conn(), '-l', '512'], // no log id
    ['identify', ...conn(), '-o', 'yaml'],
    ['discover', '-t', 'fc', '-a', '127.0.0.1'],
    ['no-such-command'],
    [],
  ];
  for (const args of cases) {
    const r = await nvmf(args);
    assert.equal(r.code, 2, `nvmf ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /usage: nvmf/, `nvmf ${args.join(' ')} printed no usage`);
  }
  const idns = await nvmf(cases[2]);
  assert.match(idns.stderr, /-n is the namespace ID for this command; give the subsystem NQN with --nqn/);

  const help = await nvmf(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /commands:\n {2}discover/);
  const cmdHelp = await nvmf(['read', '--help']);
  assert.equal(cmdHelp.code, 0);
  assert.match(cmdHelp.stdout, /-c, --block-count N +number of blocks, 0-based/);
});

test('an unreachable target, an unknown subsystem or a bad LBA exit 1 with one line', async () => {
  const closed = await freePort();
  const r = await nvmf(['identify', '-t', 'tcp', '-a', '127.0.0.1', '-s', String(closed), '-n', NQN]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^nvmf identify: .*ECONNREFUSED.*\n$/);

  const unknown = await nvmf([
    'identify',
    '-t',
    'tcp',
    '-a',
    '127.0.0.1',
    '-s',
    String(port),
    '-n',
    'nqn.2016-06.io.spdk:nope',
  ]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^nvmf identify: Connect failed: .*\n$/);

  const inactive = await nvmf(['read', ...conn(), '-n', '7', '-c', '0']);
  assert.equal(inactive.code, 1);
  assert.match(inactive.stderr, /^nvmf read: namespace 7 is not an active namespace/);

  const lba = await nvmf(['read', ...conn(), '-n', '1', '-s', '16384', '-c', '0']);
  assert.equal(lba.code, 1);
  assert.match(lba.stderr, /^nvmf read: Read failed: LBA_OUT_OF_RANGE/);
});
