// The nvmf-rpc executable against a live RpcServer: output and exit status as rpc.py's.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RpcError, RpcRegistry, RpcServer, RpcState } from '../../src/jsonrpc/index.ts';

const cli = fileURLToPath(new URL('../../src/apps/nvmf-rpc.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'nvmf-rpc-cli-'));
const sockPath = join(dir, 'rpc.sock');
const registry = new RpcRegistry();
let server: RpcServer;
const received: unknown[] = [];

registry.registerAll([
  {
    name: 'test_echo',
    summary: 'Return params',
    states: RpcState.RUNTIME,
    params: [{ name: 'value', type: 'any', help: 'anything' }],
    handler: (p: unknown) => {
      received.push(p);
      return p;
    },
  },
  {
    name: 'test_name',
    summary: 'Return a string',
    states: RpcState.RUNTIME,
    params: [],
    handler: () => 'Malloc0',
  },
  {
    name: 'test_fail',
    summary: 'Always fails',
    states: RpcState.RUNTIME,
    params: [{ name: 'name', type: 'string', help: 'a name' }],
    handler: (p: { name?: string }) => {
      throw new RpcError(-19, `bdev ${p.name} does not exist`);
    },
  },
]);
registry.setState(RpcState.RUNTIME);

before(async () => {
  server = new RpcServer(registry, { path: sockPath });
  await server.listen();
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function runCliProcess(
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, ...args], { timeout: 20000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 99) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(stdin ?? '');
  });
}

test('raw call prints the JSON result indented 2 and exits 0', async () => {
  const r = await runCliProcess(['-s', sockPath, 'call', 'test_echo', '{"value":{"a":[1,2]}}']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{\n  "value": {\n    "a": [\n      1,\n      2\n    ]\n  }\n}\n');
});

test('a method outside the local table is still sent (no params / one JSON object)', async () => {
  const r = await runCliProcess(['-s', sockPath, 'test_name']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Malloc0\n');
  const before = received.length;
  const e = await runCliProcess(['-s', sockPath, 'test_echo']);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.stdout, '{}\n');
  assert.deepEqual(received.slice(before), [{}]);
});

test('an RPC error prints rpc.py JSONRPCException text and exits 1', async () => {
  const r = await runCliProcess(['-s', sockPath, 'call', 'test_fail', '{"name":"nope"}']);
  assert.equal(r.code, 1);
  assert.equal(
    r.stdout,
    'request:\n{\n  "name": "nope",\n  "method": "test_fail",\n  "req_id": 1\n}\nGot JSON-RPC error response\nresponse:\n{\n  "code": -19,\n  "message": "bdev nope does not exist"\n}\n',
  );
  const m = await runCliProcess(['-s', sockPath, 'call', 'no_such_method']);
  assert.equal(m.code, 1);
  assert.match(m.stdout, /"code": -32601,\n {2}"message": "Method not found"/);
});

test('no server on the socket: exit 1 naming the socket', async () => {
  const r = await runCliProcess(['-s', join(dir, 'absent.sock'), 'call', 'test_name']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /absent\.sock/);
});

test("commands from stdin run on one connection; the first error stops with rpc.py's Exception text", async () => {
  const ok = await runCliProcess(['-s', sockPath], 'test_name\ncall test_echo \'{"value": 1}\'\n');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'Malloc0\n{\n  "value": 1\n}\n');
  const bad = await runCliProcess(
    ['-s', sockPath],
    'test_name\ncall test_fail \'{"name": "x"}\'\ntest_name\n',
  );
  assert.equal(bad.code, 1);
  assert.equal(
    bad.stdout,
    'Malloc0\nException:\ntest_name\ncall test_fail \'{"name": "x"}\' <<<\nrequest:\n{\n  "name": "x",\n  "method": "test_fail",\n  "req_id": 2\n}\nGot JSON-RPC error response\nresponse:\n{\n  "code": -19,\n  "message": "bdev x does not exist"\n}\n',
  );
});

test('-b sends the stdin commands as one batch: results on stdout, errors on stderr, exit 1 on any error', async () => {
  const before = received.length;
  const ok = await runCliProcess(['-s', sockPath, '-b'], 'test_name\ncall test_echo \'{"value": 2}\'\n');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, '"Malloc0"\n{\n  "value": 2\n}\n');
  assert.deepEqual(received.slice(before), [{ value: 2 }]);
  const bad = await runCliProcess(['-s', sockPath, '-b'], 'call test_fail \'{"name": "y"}\'\ntest_name\n');
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, '"Malloc0"\n');
  assert.equal(bad.stderr, '{\n  "code": -19,\n  "message": "bdev y does not exist"\n}\n');
});

test('--server: one command line per input line, each output ends with **STATUS', async () => {
  const input = [
    `-s ${sockPath} test_name`,
    `-s ${sockPath} call test_fail '{"name": "z"}'`,
    `-s ${sockPath} call test_echo '{"value": 3}'`,
    '',
  ].join('\n');
  const r = await runCliProcess(['--server'], input);
  assert.equal(r.code, 0, r.stderr);
  const blocks = r.stdout.split(/^\*\*STATUS=/m);
  assert.equal(blocks[0], 'Malloc0\n');
  assert.match(blocks[1], /^0\n/);
  assert.match(blocks[1], /"message": "bdev z does not exist"/);
  assert.match(blocks[2], /^1\n\{\n {2}"value": 3\n\}\n$/);
  assert.equal(blocks[3], '0\n');
});
