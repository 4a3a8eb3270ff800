// nvmf-rpc argument parsing and printing (rpc.py syntax), with a stub method
// table shaped like SPDK's rpc.py commands, plus the real bdev_malloc_create.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildParams,
  formatError,
  formatResult,
  methodHelp,
  parseGlobal,
  pythonJson,
  runCli,
  shellSplit,
} from '../../../src/apps/nvmf-rpc.ts';
import { RpcError, type RpcMethod, RpcState } from '../../../src/jsonrpc/index.ts';
import { mallocRpcMethods } from '../../../src/modules/bdev/malloc/rpc.ts';
import { hostAndNamespaceMethods } from '../../../src/modules/event/nvmf-methods/hosts-namespaces.ts';
import { UsageError } from '../../../src/util/errors.ts';

const noop = () => true;

const createSubsystem: RpcMethod = {
  name: 'nvmf_create_subsystem',
  summary: 'Create an NVMe-oF subsystem',
  states: RpcState.RUNTIME,
  params: [
    { name: 'nqn', type: 'string', required: true, help: 'Subsystem NQN', cli: { positional: true } },
    {
      name: 'serial_number',
      type: 'string',
      help: 'Serial number',
      cli: { flags: ['-s', '--serial-number'] },
    },
    { name: 'model_number', type: 'string', help: 'Model number', cli: { flags: ['-d', '--model-number'] } },
    {
      name: 'allow_any_host',
      type: 'boolean',
      help: 'Allow any host',
      cli: { flags: ['-a', '--allow-any-host'], action: 'store_true' },
    },
    {
      name: 'max_namespaces',
      type: 'integer',
      help: 'Max namespaces',
      cli: { flags: ['-m', '--max-namespaces'], int: true },
    },
  ],
  handler: noop,
};

const addListener: RpcMethod = {
  name: 'nvmf_subsystem_add_listener',
  summary: 'Add a listener to an NVMe-oF subsystem',
  states: RpcState.RUNTIME,
  params: [
    { name: 'nqn', type: 'string', required: true, help: 'Subsystem NQN', cli: { positional: true } },
    {
      name: 'trtype',
      type: 'string',
      required: true,
      help: 'Transport type',
      cli: { flags: ['-t', '--trtype'] },
    },
    { name: 'traddr', type: 'string', required: true, help: 'Address', cli: { flags: ['-a', '--traddr'] } },
    {
      name: 'adrfam',
      type: 'string',
      enum: ['ipv4', 'ipv6'],
      help: 'Family',
      cli: { flags: ['-f', '--adrfam'] },
    },
    { name: 'trsvcid', type: 'string', help: 'Service id', cli: { flags: ['-s', '--trsvcid'] } },
  ],
  cliTransform(a) {
    const { nqn, ...listen_address } = a;
    return { nqn, listen_address };
  },
  handler: noop,
};

const createTransport: RpcMethod = {
  name: 'nvmf_create_transport',
  summary: 'Create an NVMe-oF transport',
  states: RpcState.RUNTIME,
  params: [
    {
      name: 'trtype',
      type: 'string',
      required: true,
      help: 'Transport type',
      cli: { flags: ['-t', '--trtype'] },
    },
    {
      name: 'io_unit_size',
      type: 'integer',
      help: 'I/O unit size',
      cli: { flags: ['-u', '--io-unit-size'], int: true },
    },
    {
      name: 'c2h_success',
      type: 'boolean',
      help: 'Disable C2H success optimization',
      cli: { flags: ['-o', '--c2h-success'], action: 'store_false' },
    },
    { name: 'hosts', type: 'array', help: 'Hosts', cli: { flags: ['--host'], action: 'append' } },
    { name: 'ratio', type: 'number', help: 'A ratio' },
  ],
  handler: noop,
};

const table = [createSubsystem, addListener, createTransport, ...mallocRpcMethods];

function usageError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UsageError, `expected UsageError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('nvmf_create_subsystem NQN -a -s SN -d MN', () => {
  assert.deepEqual(
    buildParams(createSubsystem, [
      'nqn.2016-06.io.spdk:cnode1',
      '-a',
      '-s',
      'SPDK001',
      '-d',
      'Model X',
      '-m',
      '0x20',
    ]),
    {
      nqn: 'nqn.2016-06.io.spdk:cnode1',
      allow_any_host: true,
      serial_number: 'SPDK001',
      model_number: 'Model X',
      max_namespaces: 32,
    },
  );
  assert.deepEqual(buildParams(createSubsystem, ['--serial-number=S1', 'nqn.x']), {
    nqn: 'nqn.x',
    serial_number: 'S1',
  });
});

test('bdev_malloc_create -b Malloc0 64 512 converts MB to num_blocks', () => {
  assert.deepEqual(buildParams(mallocRpcMethods[0], ['-b', 'Malloc0', '64', '512']), {
    name: 'Malloc0',
    block_size: 512,
    num_blocks: 131072,
  });
  usageError(() => buildParams(mallocRpcMethods[0], ['64']), /required: block_size/);
  usageError(() => buildParams(mallocRpcMethods[0], ['64', 'abc']), /invalid int value: 'abc'/);
});

test('listener flags are nested by cliTransform', () => {
  assert.deepEqual(
    buildParams(addListener, ['nqn.a', '-t', 'tcp', '-a', '127.0.0.1', '-s', '4420', '-f', 'ipv4']),
    { nqn: 'nqn.a', listen_address: { trtype: 'tcp', traddr: '127.0.0.1', trsvcid: '4420', adrfam: 'ipv4' } },
  );
  usageError(() => buildParams(addListener, ['nqn.a', '-a', 'x']), /required: -t\/--trtype/);
});

test('store_false, append, default long flags, numbers', () => {
  assert.deepEqual(
    buildParams(createTransport, [
      '-t',
      'TCP',
      '-o',
      '-u',
      '8192',
      '--host',
      'h1',
      '--host',
      'h2',
      '--ratio',
      '0.5',
    ]),
    { trtype: 'TCP', c2h_success: false, io_unit_size: 8192, hosts: ['h1', 'h2'], ratio: 0.5 },
  );
  usageError(() => buildParams(createTransport, ['-t', 'TCP', '--ratio', 'abc']), /invalid float value/);
});

test('unknown flags, extra positionals and missing values are usage errors', () => {
  usageError(() => buildParams(createSubsystem, ['nqn.x', '--bogus']), /unrecognized arguments: --bogus/);
  usageError(() => buildParams(createSubsystem, ['nqn.x', 'extra']), /unrecognized arguments: extra/);
  usageError(() => buildParams(createSubsystem, ['nqn.x', '-s']), /-s: expected one argument/);
  usageError(() => buildParams(createSubsystem, []), /required: nqn/);
  usageError(() => buildParams(createSubsystem, ['nqn.x', '-a=1']), /unrecognized arguments/);
});

test('global options are parsed before METHOD', () => {
  const g = parseGlobal([
    '-s',
    '/tmp/x.sock',
    '-t',
    '2.5',
    '-r',
    '3',
    '-v',
    'bdev_get_bdevs',
    '-b',
    'Malloc0',
  ]);
  assert.equal(g.opts.socket, '/tmp/x.sock');
  assert.equal(g.opts.timeoutMs, 2500);
  assert.equal(g.opts.retries, 3);
  assert.equal(g.opts.verbose, true);
  assert.equal(g.method, 'bdev_get_bdevs');
  assert.deepEqual(g.rest, ['-b', 'Malloc0']);
  assert.equal(parseGlobal([]).opts.socket, '/var/tmp/spdk.sock');
  usageError(() => parseGlobal(['-t', 'soon', 'x']), /invalid timeout/);
  assert.equal(parseGlobal(['--verbose', 'DEBUG', 'm']).opts.verbose, true);
  assert.equal(parseGlobal(['--verbose', 'ERROR', 'm']).method, 'm');
  usageError(() => parseGlobal(['--verbose', 'LOUD', 'm']), /invalid choice/);
  usageError(() => parseGlobal(['--plugin', 'x', 'm']), /unrecognized arguments: --plugin/);
});

test('per-method help lists every parameter with its flags', () => {
  const help = methodHelp(createSubsystem);
  assert.match(help, /^usage: nvmf-rpc nvmf_create_subsystem \[-h\] \[-s SERIAL_NUMBER\]/);
  for (const p of createSubsystem.params) assert.ok(help.includes(p.help), `help mentions ${p.name}`);
  assert.match(help, /-a, --allow-any-host/);
});

test('results print like rpc.py: strings unquoted, true silent, objects indented', () => {
  assert.equal(formatResult(mallocRpcMethods[0], 'Malloc0'), 'Malloc0');
  assert.equal(formatResult(undefined, true), undefined);
  assert.equal(formatResult(undefined, { a: [1] }), '{\n  "a": [\n    1\n  ]\n}');
  assert.equal(formatResult({ ...createSubsystem, cliPrint: 'array' }, ['a', 'b']), 'a b');
  assert.equal(formatResult({ ...createSubsystem, cliPrint: 'json' }, true), 'true');
  assert.equal(formatResult({ ...createSubsystem, cliPrint: 'none' }, { a: 1 }), undefined);
});

test('errors print rpc.py JSONRPCException text', () => {
  const text = formatError('bdev_malloc_delete', { name: 'x' }, 1, new RpcError(-19, 'No such device'));
  assert.equal(
    text,
    [
      'request:',
      '{\n  "name": "x",\n  "method": "bdev_malloc_delete",\n  "req_id": 1\n}',
      'Got JSON-RPC error response',
      'response:',
      '{\n  "code": -19,\n  "message": "No such device"\n}',
    ].join('\n'),
  );
});

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) } };
}

test('runCli: --dry-run prints the request; usage errors exit 2; -h exits 0', async () => {
  const c = capture();
  assert.equal(
    await runCli(['--dry-run', 'bdev_malloc_create', '-b', 'M0', '8', '4096'], { methods: table, io: c.io }),
    0,
  );
  assert.deepEqual(JSON.parse(c.out.join('\n').replace(/^Request:\n/, '')), {
    method: 'bdev_malloc_create',
    params: { name: 'M0', block_size: 4096, num_blocks: 2048 },
  });
  const u = capture();
  assert.equal(await runCli(['nvmf_create_subsystem'], { methods: table, io: u.io }), 2);
  assert.match(u.err.join('\n'), /error: the following arguments are required: nqn/);
  const h = capture();
  assert.equal(await runCli(['nvmf_create_subsystem', '--help'], { methods: table, io: h.io }), 0);
  assert.match(h.out.join('\n'), /Create an NVMe-oF subsystem/);
  const top = capture();
  assert.equal(await runCli(['--help'], { methods: table, io: top.io }), 0);
  assert.match(top.out.join('\n'), /nvmf_subsystem_add_listener\s+Add a listener/);
  const unk = capture();
  assert.equal(await runCli(['no_such_method', 'a', 'b'], { methods: table, io: unk.io }), 2);
  assert.match(unk.err.join('\n'), /unknown method 'no_such_method'/);
  const raw = capture();
  assert.equal(
    await runCli(['--dry-run', 'call', 'anything', '{"k":[1]}'], { methods: table, io: raw.io }),
    0,
  );
  assert.match(raw.out.join('\n'), /"method": "anything"/);
  const badJson = capture();
  assert.equal(await runCli(['call', 'anything', '{oops'], { methods: table, io: badJson.io }), 2);
});

test('runCli: a cliTransform refusing a flag combination is a usage error with the method usage (exit 2)', async () => {
  const c = capture();
  const table = [hostAndNamespaceMethods.find((m) => m.name === 'nvmf_subsystem_allow_any_host')!];
  assert.equal(
    await runCli(['--dry-run', 'nvmf_subsystem_allow_any_host', 'nqn.x', '-e', '-d'], {
      methods: table,
      io: c.io,
    }),
    2,
  );
  assert.match(c.err.join('\n'), /usage: nvmf-rpc nvmf_subsystem_allow_any_host/);
  assert.match(c.err.join('\n'), /error: -e and -d are mutually exclusive/);
  const ok = capture();
  assert.equal(
    await runCli(['--dry-run', 'nvmf_subsystem_allow_any_host', 'nqn.x', '-d'], {
      methods: table,
      io: ok.io,
    }),
    0,
  );
  assert.match(ok.out.join('\n'), /"allow_any_host": false/);
});

test('runCli: connection failure exits 1 with a message naming the socket', async () => {
  const c = capture();
  assert.equal(
    await runCli(['-s', '/nonexistent/dir/x.sock', 'call', 'spdk_get_version'], { methods: [], io: c.io }),
    1,
  );
  assert.match(c.out.join('\n'), /\/nonexistent\/dir\/x\.sock/);
});

test('shellSplit follows shlex.split quoting', () => {
  assert.deepEqual(shellSplit(`bdev_malloc_create -b 'My Disk' 64 512`), [
    'bdev_malloc_create',
    '-b',
    'My Disk',
    '64',
    '512',
  ]);
  assert.deepEqual(shellSplit(`call x '{"a": "b c"}'`), ['call', 'x', '{"a": "b c"}']);
  assert.deepEqual(shellSplit(`a "q\\"x\\"" b\\ c ''`), ['a', 'q"x"', 'b c', '']);
  assert.deepEqual(shellSplit('   '), []);
  assert.throws(() => shellSplit(`a 'open`), /No closing quotation/);
});

test('output escapes non-ASCII like Python json.dumps', () => {
  assert.equal(pythonJson({ n: 'é✓' }), '{\n  "n": "\\u00e9\\u2713"\n}');
  assert.equal(formatResult(undefined, 'Disk✓'), 'Disk\\u2713');
});

test('script mode (no METHOD): one command per line, comments and blanks skipped, dry-run', async () => {
  const c = capture();
  const script = '# setup\n\nbdev_malloc_create -b M0 8 4096\n  \ncall anything \'{"k": 1}\'\n';
  assert.equal(await runCli(['--dry-run'], { methods: table, io: c.io, stdin: script }), 0);
  const text = c.out.join('\n');
  assert.match(text, /"method": "bdev_malloc_create"/);
  assert.match(text, /"num_blocks": 2048/);
  assert.match(text, /"method": "anything"/);
  const bad = capture();
  assert.equal(
    await runCli(['--dry-run'], { methods: table, io: bad.io, stdin: 'nvmf_create_subsystem\n' }),
    2,
  );
  assert.match(bad.err.join('\n'), /required: nqn/);
});
