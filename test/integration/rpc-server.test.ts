// The JSON-RPC server over a real Unix socket: framing, batches, notifications,
// limits and bad input; after each bad case the server must still answer.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import {
  JsonStreamSplitter,
  RpcClient,
  RpcError,
  RpcErrorCode,
  RpcRegistry,
  RpcServer,
  RpcState,
} from '../../src/jsonrpc/index.ts';
import { waitForValue } from '../lib/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'nvmf-rpc-test-'));
const sockPath = join(dir, 'rpc.sock');
const registry = new RpcRegistry();
let server: RpcServer;
let notified = 0;

registry.registerAll([
  {
    name: 'echo',
    summary: 'Return params',
    states: RpcState.RUNTIME,
    params: [
      { name: 'value', type: 'any', help: 'anything' },
      { name: 'count', type: 'integer', min: 0, help: 'a count' },
    ],
    handler: (p: unknown) => p,
  },
  {
    name: 'slow_echo',
    summary: 'Return params after a delay',
    states: RpcState.RUNTIME,
    params: [{ name: 'ms', type: 'integer', required: true, min: 0, max: 1000, help: 'delay' }],
    handler: async (p: { ms: number }) => {
      await new Promise((r) => setTimeout(r, p.ms));
      return p.ms;
    },
  },
  {
    name: 'bad_result',
    summary: 'Return something JSON cannot carry',
    states: RpcState.RUNTIME,
    params: [],
    handler: () => ({ big: 1n }),
  },
  {
    name: 'notify_me',
    summary: 'Count notifications',
    states: RpcState.RUNTIME,
    params: [],
    handler: () => {
      notified++;
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

interface RawResult {
  values: unknown[];
  closed: boolean;
}

/** Write raw chunks, collect responses until `want` values arrive or the server closes (bounded). */
function rawExchange(chunks: (string | Buffer)[], want: number, timeoutMs = 5000): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const sock: Socket = createConnection(sockPath);
    const splitter = new JsonStreamSplitter(64 * 1024 * 1024);
    const values: unknown[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ values, closed });
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      sock.destroy();
      reject(new Error(`timed out with ${values.length}/${want} responses`));
    }, timeoutMs);
    sock.on('data', (d: Buffer) => {
      splitter.feed(d, (t) => values.push(JSON.parse(t)));
      if (values.length >= want && want > 0) finish(false);
    });
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.on('connect', async () => {
      for (const c of chunks) {
        sock.write(c);
        await new Promise((r) => setImmediate(r));
      }
    });
  });
}

async function assertStillServing(): Promise<void> {
  const c = await RpcClient.connect(sockPath, 3000);
  try {
    assert.deepEqual(await c.call('echo', { value: 'alive' }), { value: 'alive' });
  } finally {
    c.close();
  }
}

const req = (id: number | string | null | undefined, method: string, params?: unknown) => {
  const r: Record<string, unknown> = { jsonrpc: '2.0', method };
  if (id !== undefined) r.id = id;
  if (params !== undefined) r.params = params;
  return JSON.stringify(r);
};

test('client round trip; undefined result is sent as true', async () => {
  const c = await RpcClient.connect(sockPath, 3000);
  try {
    assert.deepEqual(await c.call('echo', { value: [1, { a: 'b' }] }), { value: [1, { a: 'b' }] });
    assert.equal(await c.call('notify_me'), true);
  } finally {
    c.close();
  }
});

test('requests split at every byte boundary are answered', async () => {
  const text = req(7, 'echo', { value: 'split {"}' });
  const chunks = [...Buffer.from(text)].map((b) => Buffer.from([b]));
  const r = await rawExchange(chunks, 1);
  assert.deepEqual(r.values, [{ jsonrpc: '2.0', id: 7, result: { value: 'split {"}' } }]);
});

test('several requests in one write are answered in order, even when the first is slow', async () => {
  const r = await rawExchange(
    [req(1, 'slow_echo', { ms: 50 }) + req(2, 'echo', { count: 2 }) + req('three', 'echo')],
    3,
  );
  assert.deepEqual(r.values, [
    { jsonrpc: '2.0', id: 1, result: 50 },
    { jsonrpc: '2.0', id: 2, result: { count: 2 } },
    { jsonrpc: '2.0', id: 'three', result: {} },
  ]);
});

test('1000 pipelined requests in one write are all answered in order (reading pauses and resumes)', async () => {
  let text = '';
  for (let i = 0; i < 1000; i++) text += req(i, 'echo', { count: i });
  const r = await rawExchange([text], 1000, 15000);
  assert.equal(r.values.length, 1000);
  for (let i = 0; i < 1000; i++)
    assert.deepEqual(r.values[i], { jsonrpc: '2.0', id: i, result: { count: i } });
});

test('batch: one array answered with an array, notifications omitted', async () => {
  const before = notified;
  const batch = `[${req(1, 'echo', { count: 1 })},${req(undefined, 'notify_me')},${req(2, 'nope')},{"foo":1}]`;
  const r = await rawExchange([batch], 1);
  assert.equal(notified, before + 1);
  assert.deepEqual(r.values, [
    [
      { jsonrpc: '2.0', id: 1, result: { count: 1 } },
      { jsonrpc: '2.0', id: 2, error: { code: -32601, message: 'Method not found' } },
      { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid request' } },
    ],
  ]);
  const empty = await rawExchange(['[]'], 1);
  assert.deepEqual(empty.values, [
    { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid request' } },
  ]);
  await assertStillServing();
});

test('notification gets no answer (the next request is the first response)', async () => {
  const before = notified;
  const r = await rawExchange([req(undefined, 'notify_me') + req(undefined, 'nope') + req(5, 'echo')], 1);
  assert.deepEqual(r.values, [{ jsonrpc: '2.0', id: 5, result: {} }]);
  assert.equal(notified, before + 1);
});

test('unknown method, wrong types, bad request shapes get the right errors on a live connection', async () => {
  const r = await rawExchange(
    [
      req(1, 'nope'),
      req(2, 'echo', { count: 'x' }),
      req(3, 'echo', { count: -1 }),
      req(4, 'echo', { extra: 1 }),
      '{"jsonrpc":"1.0","method":"echo","id":5}',
      '{"jsonrpc":"2.0","id":6}',
      '{"jsonrpc":"2.0","method":"echo","id":7,"params":5}',
      req(8, 'echo', ['positional']),
      req(9, 'echo', { count: 1 }),
    ],
    9,
  );
  const errs = r.values.slice(0, 8).map((v) => (v as { error: { code: number; message: string } }).error);
  assert.equal(errs[0].code, RpcErrorCode.METHOD_NOT_FOUND);
  assert.equal(errs[1].code, RpcErrorCode.INVALID_PARAMS);
  assert.match(errs[1].message, /'count'/);
  assert.match(errs[2].message, /'count': -1 is below the minimum 0/);
  assert.match(errs[3].message, /Unknown parameter 'extra'/);
  assert.equal(errs[4].code, RpcErrorCode.INVALID_REQUEST);
  assert.equal(errs[5].code, RpcErrorCode.INVALID_REQUEST);
  assert.equal(errs[6].code, RpcErrorCode.INVALID_REQUEST);
  assert.equal(errs[7].code, RpcErrorCode.INVALID_PARAMS);
  assert.deepEqual(r.values[8], { jsonrpc: '2.0', id: 9, result: { count: 1 } });
  assert.equal(r.closed, false);
});

test('garbage gets -32700 Parse error and the connection is closed; server keeps serving', async () => {
  const r = await rawExchange(['hello world'], 0);
  assert.equal(r.closed, true);
  assert.deepEqual(r.values, [{ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }]);
  const bad = await rawExchange([`${req(1, 'echo')}{"jsonrpc": "2.0", "method": tru}`], 0);
  assert.equal(bad.closed, true);
  assert.deepEqual(bad.values, [
    { jsonrpc: '2.0', id: 1, result: {} },
    { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } },
  ]);
  await assertStillServing();
});

test('a 10 MB request is refused with -32600 and the connection closed; server keeps serving', async () => {
  const huge = req(1, 'echo', { value: 'x'.repeat(10 * 1024 * 1024) });
  const r = await rawExchange([huge], 0, 15000);
  assert.equal(r.closed, true);
  assert.equal(r.values.length, 1);
  const resp = r.values[0] as { id: null; error: { code: number; message: string } };
  assert.equal(resp.error.code, RpcErrorCode.INVALID_REQUEST);
  assert.match(resp.error.message, /too large/);
  await assertStillServing();
});

test('a request just under the limit is served', async () => {
  const value = 'y'.repeat(3 * 1024 * 1024);
  const c = await RpcClient.connect(sockPath, 10000);
  try {
    assert.deepEqual(await c.call('echo', { value }), { value });
  } finally {
    c.close();
  }
});

test('truncated JSON then hang-up: nothing breaks, server keeps serving', async () => {
  const sock = createConnection(sockPath);
  await new Promise((resolve) => sock.on('connect', resolve));
  sock.end('{"jsonrpc":"2.0","method":"echo","id":1,"params":{"value":"unterminated');
  await new Promise((resolve) => sock.on('close', resolve));
  await assertStillServing();
});

test('a result JSON cannot carry becomes INTERNAL_ERROR, not a crash', async () => {
  const r = await rawExchange([req(1, 'bad_result') + req(2, 'echo')], 2);
  assert.equal((r.values[0] as { error: { code: number } }).error.code, RpcErrorCode.INTERNAL_ERROR);
  assert.deepEqual(r.values[1], { jsonrpc: '2.0', id: 2, result: {} });
});

test('a client that half-closes right after its request still gets the answer', async () => {
  const sock = createConnection(sockPath);
  const splitter = new JsonStreamSplitter();
  const values: unknown[] = [];
  sock.on('data', (d: Buffer) => splitter.feed(d, (t) => values.push(JSON.parse(t))));
  sock.on('connect', () => sock.end(req(1, 'slow_echo', { ms: 20 })));
  await new Promise((resolve) => sock.on('close', resolve));
  assert.deepEqual(values, [{ jsonrpc: '2.0', id: 1, result: 20 }]);
});

test('RpcClient surfaces server errors as RpcError with code and message', async () => {
  const c = await RpcClient.connect(sockPath, 3000);
  try {
    await assert.rejects(c.call('echo', { count: 'x' }), (e: unknown) => {
      assert.ok(e instanceof RpcError);
      assert.equal(e.code, -32602);
      assert.match(e.message, /'count'/);
      return true;
    });
    // The connection is still usable afterwards.
    assert.deepEqual(await c.call('echo', { count: 3 }), { count: 3 });
  } finally {
    c.close();
  }
});

test('RpcClient.callBatch sends one array and returns every response in order', async () => {
  const c = await RpcClient.connect(sockPath, 3000);
  try {
    const r = await c.callBatch([
      { method: 'echo', params: { count: 1 } },
      { method: 'nope' },
      { method: 'slow_echo', params: { ms: 5 } },
    ]);
    assert.equal(r.length, 3);
    assert.deepEqual(r[0].result, { count: 1 });
    assert.equal((r[1].error as { code: number }).code, RpcErrorCode.METHOD_NOT_FOUND);
    assert.equal(r[2].result, 5);
    // Plain calls keep working on the same connection.
    assert.deepEqual(await c.call('echo', { count: 2 }), { count: 2 });
  } finally {
    c.close();
  }
});

test('client call times out when the server does not answer in time', async () => {
  const c = await RpcClient.connect(sockPath, 100);
  try {
    await assert.rejects(c.call('slow_echo', { ms: 500 }), /timed out/);
  } finally {
    c.close();
  }
});

test('listen removes a stale socket file, refuses a live one and a non-socket; close unlinks', async () => {
  const path = join(dir, 'other.sock');
  // A stale socket: a process bound the path and died without unlinking it.
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ],
    { stdio: 'ignore' },
  );
  await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(existsSync(path), true, 'the killed child left its socket file');

  const first = new RpcServer(registry, { path });
  await first.listen();
  await assert.rejects(new RpcServer(registry, { path }).listen(), /in use/);
  const c = await RpcClient.connect(path, 3000);
  assert.deepEqual(await c.call('echo', { count: 1 }), { count: 1 });
  c.close();
  await first.close();
  assert.equal(existsSync(path), false);

  const plain = join(dir, 'plain');
  writeFileSync(plain, 'x');
  await assert.rejects(new RpcServer(registry, { path: plain }).listen(), /not a socket/);
  assert.equal(existsSync(plain), true, 'a regular file is never removed');
});

test('connections over maxConnections are closed; freed slots are usable again', async () => {
  const path = join(dir, 'limited.sock');
  const limited = new RpcServer(registry, { path, maxConnections: 2 });
  await limited.listen();
  try {
    const a = await RpcClient.connect(path, 3000);
    const b = await RpcClient.connect(path, 3000);
    assert.deepEqual(await a.call('echo', { count: 1 }), { count: 1 });
    assert.deepEqual(await b.call('echo', { count: 2 }), { count: 2 });
    const c = await RpcClient.connect(path, 3000);
    await assert.rejects(c.call('echo', { count: 3 }), /closed|EPIPE|ECONNRESET/);
    c.close();
    a.close();
    // The server notices the close asynchronously; retry briefly (bounded).
    const answered = await waitForValue(
      'a freed connection slot',
      async () => {
        const d = await RpcClient.connect(path, 3000);
        const r = await d.call('echo', { count: 4 }).catch(() => undefined);
        d.close();
        return r;
      },
      { timeoutMs: 1000 },
    );
    assert.deepEqual(answered, { count: 4 });
    b.close();
  } finally {
    await limited.close();
  }
});

test('random bytes and mangled requests never take the server down (property)', async () => {
  const valid = req(1, 'echo', { value: 'ok', count: 1 });
  const mangled = fc
    .tuple(fc.nat({ max: valid.length }), fc.nat({ max: valid.length }), fc.string({ maxLength: 8 }))
    .map(([a, b, ins]) => valid.slice(0, Math.min(a, b)) + ins + valid.slice(Math.max(a, b)));
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
    mangled.map((t) => Buffer.from(t)),
  );
  await fc.assert(
    fc.asyncProperty(input, async (bytes) => {
      const sock = createConnection(sockPath);
      await new Promise<void>((resolve) => {
        sock.on('error', () => resolve());
        sock.on('close', () => resolve());
        // Half-close after writing: the server answers what it can and ends its side.
        sock.on('connect', () => sock.end(bytes));
        sock.resume();
        setTimeout(() => {
          sock.destroy();
          resolve();
        }, 500);
      });
    }),
    { numRuns: 60 },
  );
  await assertStillServing();
});
