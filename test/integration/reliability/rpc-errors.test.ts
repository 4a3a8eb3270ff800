// RPC-level bad input against a real nvmf_tgt process over its Unix socket,
// written raw: every bad request gets a JSON-RPC error naming the problem,
// save_config is identical before and after (nothing changed), another RPC
// connection keeps working, and a well-behaved host keeps doing verified I/O.

import assert from 'node:assert/strict';
import { createConnection, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import {
  type ChildTarget,
  configText,
  errorOf,
  GoodHost,
  isWellFormedResponse,
  rawRpc,
  startChildTarget,
  TEST_BDEV,
  TEST_NQN,
  waitFor,
} from '../../lib/index.ts';

const CNODE2 = 'nqn.2016-06.io.spdk:cnode2';
const HOST = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555';

let target: ChildTarget;
let good: GoodHost;
let baseline = '';

before(async () => {
  // -L rpc: the server logs each request it handles (method and id), in order; the
  // test of a client that never reads counts its requests there
  target = await startChildTarget({ args: ['-L', 'rpc'] });
  // a second subsystem (no namespace) with one allowed host, and a spare bdev
  await target.rpc.call('nvmf_create_subsystem', { nqn: CNODE2, serial_number: 'SPDK2' });
  await target.rpc.call('nvmf_subsystem_add_host', { nqn: CNODE2, host: HOST });
  await target.rpc.call('bdev_malloc_create', { name: 'Spare', num_blocks: 1024, block_size: 512 });
  good = await GoodHost.connect({ port: target.port, lbaBase: 4096 });
  baseline = await configText(target.rpc);
});

after(async () => {
  await good?.close();
  const code = await target?.stop();
  assert.equal(code, 0, 'the target exits cleanly');
});

function req(method: string, params?: unknown, id: unknown = 1): string {
  const r: Record<string, unknown> = { jsonrpc: '2.0', method, id };
  if (params !== undefined) r.params = params;
  return JSON.stringify(r);
}

/** save_config equals the baseline; on a difference show where, not both whole texts. */
function assertSameConfig(now: string): void {
  if (now === baseline) return;
  let i = 0;
  while (i < now.length && now[i] === baseline[i]) i++;
  assert.fail(
    `save_config changed at ${i}:\n  before: ${baseline.slice(i - 80, i + 160)}\n  after:  ${now.slice(i - 80, i + 160)}`,
  );
}

/** Run `bad` with the good host doing I/O; then the config is unchanged and both still work. */
async function unchanged(bad: () => Promise<void>): Promise<void> {
  const since = good.rounds;
  good.start();
  assert.ok(await good.waitRounds(since + 1), 'the good host completes I/O before the bad input');
  await bad();
  assertSameConfig(await configText(target.rpc));
  const now = good.rounds;
  assert.ok(await good.waitRounds(now + 1), 'the good host completes I/O after the bad input');
  await good.assertHealthy(since, 1);
  assert.ok(target.alive());
  assert.deepEqual(target.uncaughtErrors(), [], 'no exception escaped in the target');
}

/** One request on a fresh connection: a JSON-RPC error whose code and message match. */
async function expectError(body: string, code: number, message: RegExp, what: string): Promise<void> {
  const r = await rawRpc(target.rpcPath, body);
  assert.equal(r.responses.length, 1, `${what}: one response`);
  assert.ok(isWellFormedResponse(r.responses[0]), `${what}: well formed ${JSON.stringify(r.responses[0])}`);
  const e = errorOf(r.responses[0]);
  assert.ok(e, `${what}: an error, got ${JSON.stringify(r.responses[0])}`);
  assert.equal(e.code, code, `${what}: code (${e.message})`);
  assert.match(e.message, message, `${what}: message`);
}

test('malformed JSON: Parse error (-32700), that connection closed, the others unaffected', async () => {
  await unchanged(async () => {
    for (const body of ['{"jsonrpc":"2.0","id":1,"method":"x"]', 'hello', '}{', '\u0000\u0001{']) {
      const r = await rawRpc(target.rpcPath, body);
      assert.equal(r.responses.length, 1, JSON.stringify(body));
      assert.deepEqual(r.responses[0], {
        jsonrpc: '2.0',
        id: null,
        error: { code: -32700, message: 'Parse error' },
      });
      assert.ok(r.closed, `${JSON.stringify(body)}: connection closed`);
    }
    // a request already answered on the same connection before the garbage keeps its answer
    const r = await rawRpc(target.rpcPath, `${req('spdk_get_version')}}{`, 2);
    assert.equal(r.responses.length, 2);
    assert.ok((r.responses[0] as { result?: { version?: string } }).result?.version);
    assert.equal(errorOf(r.responses[1])?.code, -32700);
    assert.ok(r.closed);
  });
});

test('huge JSON: over the 4 MiB request limit is refused and closed, memory stays bounded', async () => {
  await unchanged(async () => {
    const rssBefore = target.rssBytes();
    const big = req('bdev_malloc_create', { name: 'x'.repeat(5 << 20), num_blocks: 1, block_size: 512 });
    const r = await rawRpc(target.rpcPath, big, 1, 20_000);
    assert.equal(errorOf(r.responses[0])?.code, -32600);
    assert.match(errorOf(r.responses[0])?.message ?? '', /Request too large \(limit 4194304 bytes\)/);
    assert.ok(r.closed, 'connection closed');
    // an endless value: the server stops buffering at the limit, whatever more comes
    const chunk = Buffer.alloc(1 << 20, 0x20);
    chunk[0] = 0x5b; // '['
    const endless: Buffer[] = [chunk];
    for (let i = 0; i < 24; i++) endless.push(Buffer.alloc(1 << 20, 0x31));
    const r2 = await rawRpc(target.rpcPath, endless, 1, 20_000);
    assert.equal(errorOf(r2.responses[0])?.code, -32600);
    assert.ok(r2.closed);
    const grown = target.rssBytes() - rssBefore;
    assert.ok(grown < 96 << 20, `target RSS grew by ${grown} bytes`);
    // deep nesting inside the limit: an answer, not a crash
    const deep = `{"jsonrpc":"2.0","id":7,"method":"spdk_get_version","params":{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`;
    const r3 = await rawRpc(target.rpcPath, deep, 1, 20_000);
    assert.equal(r3.responses.length, 1);
    assert.ok(errorOf(r3.responses[0]), 'an error (unknown parameter or parse error)');
    assert.ok(target.alive());
  });
});

const FLOOD = 20_000;
const FLOOD_ID = 10_000_000;

/** Requests of the flood the server has handled (its `-L rpc` line for each), in `log`. */
function floodHandled(log: string): number {
  let n = 0;
  for (const m of log.matchAll(/RPC request save_config id=(\d+)/g)) if (Number(m[1]) >= FLOOD_ID) n++;
  return n;
}

let probes = 0;

/** One request on a connection of its own; returns the log up to the server's line for it. */
async function probe(): Promise<string> {
  const id = `probe-${++probes}`;
  const r = await rawRpc(target.rpcPath, req('spdk_get_version', undefined, id), 1, 10_000, 0);
  assert.equal(r.responses.length, 1, `${id} answered`);
  const line = `RPC request spdk_get_version id="${id}"`;
  await waitFor(`${id} in the target's log`, () => target.log().includes(line));
  const log = target.log();
  return log.slice(0, log.indexOf(line));
}

/**
 * The server has stopped reading `sock`: over three requests on other connections, each sent
 * after the previous one was answered (so at least one full turn of the server's event loop
 * lies between the first and the last), it handled no request of the flood, though the flood
 * still had bytes for it to read. (The server handles every request of a chunk it read before
 * it turns its loop again: save_config answers at once.)
 */
async function stoppedReading(sock: Socket): Promise<boolean> {
  const first = floodHandled(await probe());
  await probe();
  const last = floodHandled(await probe());
  return first === last && sock.writableLength > 0;
}

test('a client that sends without reading its answers is not read further: target memory stays bounded', async () => {
  await unchanged(async () => {
    const rssBefore = target.rssBytes();
    const sock = createConnection(target.rpcPath);
    sock.on('error', () => {});
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.pause(); // never read: every answer (a ~5 KB save_config) stays with the server
    // ~1 MB of requests, ~100 MB of answers; ids from FLOOD_ID on, to find them in the log
    const burst = Buffer.from(
      Array.from({ length: FLOOD }, (_, i) => req('save_config', undefined, FLOOD_ID + i)).join(''),
    );
    sock.write(burst);
    await waitFor('the server to handle part of the flood', () => floodHandled(target.log()) > 0, {
      timeoutMs: 30_000,
    });
    await waitFor('the server to stop reading the flood', () => stoppedReading(sock), { timeoutMs: 30_000 });
    const handled = floodHandled(target.log());
    assert.ok(handled < FLOOD, `the server stopped after ${handled} of ${FLOOD} requests`);
    const grown = target.rssBytes() - rssBefore;
    // another client is served meanwhile
    assert.ok(Array.isArray(await target.rpc.call('bdev_get_bdevs')));
    sock.destroy();
    assert.ok(grown < 48 << 20, `target RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
  });
});

test('params that are not an object, wrong types, out-of-range values, unknown and missing params', async () => {
  await unchanged(async () => {
    const mc = (p: unknown) => req('bdev_malloc_create', p);
    await expectError(mc([1, 2]), -32602, /takes a JSON object, got array/, 'array params');
    await expectError(
      '{"jsonrpc":"2.0","id":1,"method":"bdev_malloc_create","params":"Malloc9"}',
      -32600,
      /Invalid request/,
      'string params',
    );
    await expectError(
      mc({ name: 'M9', num_blocks: 'many', block_size: 512 }),
      -32602,
      /'num_blocks': expected integer, got string/,
      'wrong type',
    );
    await expectError(
      mc({ name: 'M9', num_blocks: 1.5, block_size: 512 }),
      -32602,
      /'num_blocks': expected integer, got number/,
      'fraction',
    );
    await expectError(
      mc({ name: 'M9', num_blocks: -5, block_size: 512 }),
      -32602,
      /num_blocks.*minimum/,
      'negative',
    );
    await expectError(
      mc({ name: 'M9', num_blocks: 8, block_size: 513 }),
      -22,
      /block_size 513/,
      'block size',
    );
    await expectError(
      mc({ name: 'M9', num_blocks: 1e15, block_size: 512 }),
      -12,
      /M9/,
      'too big to allocate',
    );
    await expectError(
      mc({ name: 'M9', num_blocks: 8, block_size: 512, color: 'red' }),
      -32602,
      /Unknown parameter 'color'/,
      'unknown param',
    );
    await expectError(mc({ name: 'M9', block_size: 512 }), -22, /num_blocks|total_size/, 'no size');
    await expectError(
      req('nvmf_subsystem_add_ns', { nqn: TEST_NQN, namespace: { bdev_name: 'Spare', nsid: 'one' } }),
      -32602,
      /namespace\.nsid/,
      'nested wrong type',
    );
    await expectError(
      req('nvmf_subsystem_add_listener', {
        nqn: TEST_NQN,
        listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '99999' },
      }),
      -22,
      /Invalid port 99999: a TCP port is 1 to 65535/,
      'port out of range',
    );
    await expectError(req('nvmf_create_subsystem', { nqn: 'not-an-nqn' }), -22, /not-an-nqn/, 'bad NQN');
    await expectError(req('no_such_method', {}), -32601, /Method not found/, 'unknown method');
  });
});

test('names that exist already: bdev, subsystem, namespace ID, listener, host', async () => {
  await unchanged(async () => {
    await expectError(
      req('bdev_malloc_create', { name: TEST_BDEV, num_blocks: 8, block_size: 512 }),
      -17,
      /Malloc0 already exists/,
      'bdev',
    );
    await expectError(req('nvmf_create_subsystem', { nqn: TEST_NQN }), -17, /already exists/, 'subsystem');
    await expectError(
      req('nvmf_subsystem_add_ns', { nqn: TEST_NQN, namespace: { nsid: 1, bdev_name: 'Spare' } }),
      -22,
      /NSID 1 is already in use/,
      'nsid',
    );
    await expectError(
      req('nvmf_subsystem_add_listener', {
        nqn: TEST_NQN,
        listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: target.port },
      }),
      -17,
      /Listener already exists/,
      'listener',
    );
    await expectError(
      req('nvmf_subsystem_add_host', { nqn: CNODE2, host: HOST }),
      -22,
      /already on the list/,
      'host',
    );
    await expectError(req('nvmf_create_transport', { trtype: 'TCP' }), -17, /already exists/, 'transport');
  });
});

test("names that don't exist: bdev, subsystem, namespace, listener, host", async () => {
  await unchanged(async () => {
    await expectError(req('bdev_malloc_delete', { name: 'Nope' }), -19, /Nope does not exist/, 'bdev');
    await expectError(
      req('nvmf_delete_subsystem', { nqn: 'nqn.2016-06.io.spdk:none' }),
      -19,
      /Unable to find subsystem/,
      'subsystem',
    );
    await expectError(
      req('nvmf_subsystem_add_ns', { nqn: TEST_NQN, namespace: { bdev_name: 'Nope' } }),
      -19,
      /bdev Nope/,
      'namespace of a missing bdev',
    );
    await expectError(
      req('nvmf_subsystem_remove_ns', { nqn: TEST_NQN, nsid: 7 }),
      -22,
      /no namespace 7/,
      'namespace',
    );
    await expectError(
      req('nvmf_subsystem_remove_listener', {
        nqn: TEST_NQN,
        listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '1' },
      }),
      -2,
      /Unable to find listener/,
      'listener',
    );
    await expectError(
      req('nvmf_subsystem_remove_host', {
        nqn: CNODE2,
        host: 'nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555',
      }),
      -2,
      /Unable to remove host .*not on the list/,
      'host',
    );
  });
});

test('a bdev in use (exported, so claimed) cannot be exported again or stacked on: the error names the claim', async () => {
  await unchanged(async () => {
    await expectError(
      req('nvmf_subsystem_add_ns', { nqn: CNODE2, namespace: { bdev_name: TEST_BDEV } }),
      -16,
      /Malloc0 already claimed: type exclusive_write by module NVMe-oF Target/,
      'export twice',
    );
    await expectError(
      req('bdev_passthru_create', { base_bdev_name: TEST_BDEV, name: 'PT0' }),
      -16,
      /Malloc0 already claimed: type exclusive_write by module NVMe-oF Target/,
      'stack on it',
    );
    const bdevs = (await target.rpc.call('bdev_get_bdevs', { name: TEST_BDEV })) as { claimed: boolean }[];
    assert.equal(bdevs[0].claimed, true);
  });
  // removing the namespace releases the claim: the spare bdev round trip shows it
  await target.rpc.call('nvmf_subsystem_add_ns', { nqn: CNODE2, namespace: { nsid: 5, bdev_name: 'Spare' } });
  await target.rpc.call('nvmf_subsystem_remove_ns', { nqn: CNODE2, nsid: 5 });
  const spare = (await target.rpc.call('bdev_get_bdevs', { name: 'Spare' })) as { claimed: boolean }[];
  assert.equal(spare[0].claimed, false, 'claim released');
  assertSameConfig(await configText(target.rpc));
});

test('a batch with good and bad requests: one answer per request with an id, in order', async () => {
  await unchanged(async () => {
    const batch = `[${[
      req('spdk_get_version', undefined, 1),
      req('no_such_method', undefined, 2),
      req('bdev_malloc_create', { name: 'B1', num_blocks: 'x', block_size: 512 }, 3),
      '{"jsonrpc":"2.0","method":"bdev_get_bdevs"}',
      '17',
      req('nvmf_delete_subsystem', { nqn: 'nqn.2016-06.io.spdk:none' }, 'six'),
      req('bdev_get_bdevs', { name: TEST_BDEV }, 7),
    ].join(',')}]`;
    // a request after the batch on the same connection: its answer shows the connection lived on
    const r = await rawRpc(
      target.rpcPath,
      [batch, req('spdk_get_version', undefined, 'after')],
      2,
      10_000,
      0,
    );
    assert.equal(r.responses.length, 2, 'one answer for the batch, one for the request after it');
    assert.equal((r.responses[1] as { id?: unknown }).id, 'after');
    assert.ok((r.responses[1] as { result?: unknown }).result, 'the request after the batch answered');
    const out = r.responses[0] as Array<Record<string, unknown>>;
    assert.ok(Array.isArray(out));
    for (const o of out) assert.ok(isWellFormedResponse(o), JSON.stringify(o));
    assert.deepEqual(
      out.map((o) => o.id),
      [1, 2, 3, null, 'six', 7],
      'notification unanswered, the non-object answered with id null',
    );
    assert.ok(out[0].result);
    assert.equal(errorOf(out[1])?.code, -32601);
    assert.equal(errorOf(out[2])?.code, -32602);
    assert.equal(errorOf(out[3])?.code, -32600);
    assert.match(errorOf(out[4])?.message ?? '', /Unable to find subsystem/);
    assert.ok(Array.isArray(out[5].result));
    // an empty batch is an invalid request
    await expectError('[]', -32600, /Invalid request/, 'empty batch');
    assert.equal(r.closed, false, 'a batch with bad members does not close the connection');
  });
});
