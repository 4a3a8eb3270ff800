import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RpcError, RpcErrorCode, type RpcMethod, RpcRegistry, RpcState } from '../../../src/jsonrpc/index.ts';

function makeMethod(overrides: Partial<RpcMethod> = {}): RpcMethod {
  return {
    name: 'demo',
    summary: 'Demo method',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'a name' },
      { name: 'count', type: 'integer', min: 1, max: 10, default: 3, help: 'a count' },
      { name: 'ratio', type: 'number', help: 'a ratio' },
      { name: 'mode', type: 'string', enum: ['fast', 'slow'], help: 'a mode' },
      { name: 'flag', type: 'boolean', help: 'a flag' },
      { name: 'opts', type: 'object', help: 'options' },
      { name: 'list', type: 'array', help: 'a list' },
    ],
    handler: (p: unknown) => p,
    ...overrides,
  };
}

function runtimeRegistry(...ms: RpcMethod[]): RpcRegistry {
  const r = new RpcRegistry();
  r.registerAll(ms);
  r.setState(RpcState.RUNTIME);
  return r;
}

async function rejectsWith(p: Promise<unknown>, code: number, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof RpcError, `expected RpcError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

test('valid params reach the handler with defaults filled in', async () => {
  const r = runtimeRegistry(makeMethod());
  assert.deepEqual(await r.invoke('demo', { name: 'a', ratio: 1, flag: true, list: [1] }), {
    name: 'a',
    count: 3,
    ratio: 1,
    flag: true,
    list: [1],
  });
});

test('each kind of bad param is INVALID_PARAMS naming the field', async () => {
  const r = runtimeRegistry(makeMethod());
  const p = RpcErrorCode.INVALID_PARAMS;
  await rejectsWith(r.invoke('demo', {}), p, /Missing required parameter 'name'/);
  await rejectsWith(r.invoke('demo', undefined), p, /'name'/);
  await rejectsWith(r.invoke('demo', { name: 5 }), p, /'name': expected string, got integer/);
  await rejectsWith(r.invoke('demo', { name: 'a', count: 1.5 }), p, /'count': expected integer, got number/);
  await rejectsWith(r.invoke('demo', { name: 'a', count: 0 }), p, /'count': 0 is below the minimum 1/);
  await rejectsWith(r.invoke('demo', { name: 'a', count: 11 }), p, /'count': 11 is above the maximum 10/);
  await rejectsWith(r.invoke('demo', { name: 'a', ratio: 'x' }), p, /'ratio'/);
  await rejectsWith(
    r.invoke('demo', { name: 'a', mode: 'medium' }),
    p,
    /'mode': 'medium' is not one of fast, slow/,
  );
  await rejectsWith(r.invoke('demo', { name: 'a', flag: 1 }), p, /'flag': expected boolean/);
  await rejectsWith(r.invoke('demo', { name: 'a', opts: [] }), p, /'opts': expected object, got array/);
  await rejectsWith(r.invoke('demo', { name: 'a', list: {} }), p, /'list': expected array, got object/);
  await rejectsWith(r.invoke('demo', { name: 'a', bogus: 1 }), p, /Unknown parameter 'bogus'/);
  await rejectsWith(r.invoke('demo', ['a']), p, /takes a JSON object, got array/);
  await rejectsWith(r.invoke('demo', { name: null }), p, /'name': expected string, got null/);
});

test('unknown method is METHOD_NOT_FOUND with SPDK message', async () => {
  await rejectsWith(
    runtimeRegistry().invoke('nope', {}),
    RpcErrorCode.METHOD_NOT_FOUND,
    /^Method not found$/,
  );
});

test('state gate uses SPDK code -1 and wording in both directions', async () => {
  const r = new RpcRegistry();
  r.register(makeMethod({ name: 'runtime_only', params: [] }));
  r.register(makeMethod({ name: 'startup_only', params: [], states: RpcState.STARTUP }));
  r.register(makeMethod({ name: 'both', params: [], states: RpcState.STARTUP | RpcState.RUNTIME }));
  assert.equal(r.state, RpcState.STARTUP);
  await rejectsWith(r.invoke('runtime_only', {}), -1, /only be called after framework is initialized/);
  assert.deepEqual(await r.invoke('startup_only', {}), {});
  assert.deepEqual(await r.invoke('both', {}), {});
  r.setState(RpcState.RUNTIME);
  await rejectsWith(r.invoke('startup_only', {}), -1, /only be called before framework is initialized/);
  assert.deepEqual(await r.invoke('runtime_only', {}), {});
});

test('handler errors: RpcError passes through, other errors become INTERNAL_ERROR', async () => {
  const r = runtimeRegistry(
    makeMethod({
      name: 'rpc_err',
      params: [],
      handler: () => {
        throw new RpcError(-19, 'bdev x does not exist', { name: 'x' });
      },
    }),
    makeMethod({
      name: 'boom',
      params: [],
      handler: async () => {
        throw new Error('kaboom');
      },
    }),
  );
  await assert.rejects(r.invoke('rpc_err', {}), {
    code: -19,
    message: 'bdev x does not exist',
    data: { name: 'x' },
  });
  await rejectsWith(r.invoke('boom', {}), RpcErrorCode.INTERNAL_ERROR, /kaboom/);
});

test('registration rejects duplicates and duplicate params; list is sorted', () => {
  const r = new RpcRegistry();
  r.register(makeMethod({ name: 'b' }));
  r.register(makeMethod({ name: 'a' }));
  assert.throws(() => r.register(makeMethod({ name: 'a' })), /already registered/);
  assert.throws(
    () =>
      r.register(
        makeMethod({
          name: 'c',
          params: [
            { name: 'x', type: 'any', help: 'h' },
            { name: 'x', type: 'any', help: 'h' },
          ],
        }),
      ),
    /twice/,
  );
  assert.deepEqual(
    r.list().map((m) => m.name),
    ['a', 'b'],
  );
  assert.equal(r.get('a')?.name, 'a');
  assert.equal(r.get('zz'), undefined);
});

test('nested object members and array items are validated with the path in the message', async () => {
  const r = runtimeRegistry(
    makeMethod({
      name: 'nested',
      params: [
        {
          name: 'listen_address',
          type: 'object',
          required: true,
          help: 'address',
          properties: [
            { name: 'trtype', type: 'string', required: true, enum: ['tcp', 'TCP'], help: 'transport' },
            { name: 'trsvcid', type: 'string', help: 'port' },
          ],
        },
        {
          name: 'ports',
          type: 'array',
          help: 'ports',
          items: { name: 'port', type: 'integer', min: 1, max: 65535, help: 'p' },
        },
      ],
    }),
  );
  const p = RpcErrorCode.INVALID_PARAMS;
  assert.deepEqual(
    await r.invoke('nested', { listen_address: { trtype: 'tcp', trsvcid: '4420' }, ports: [1, 2] }),
    {
      listen_address: { trtype: 'tcp', trsvcid: '4420' },
      ports: [1, 2],
    },
  );
  await rejectsWith(
    r.invoke('nested', { listen_address: {} }),
    p,
    /Missing required parameter 'listen_address.trtype'/,
  );
  await rejectsWith(
    r.invoke('nested', { listen_address: { trtype: 'rdma' } }),
    p,
    /'listen_address.trtype': 'rdma' is not one of/,
  );
  await rejectsWith(
    r.invoke('nested', { listen_address: { trtype: 'tcp', bogus: 1 } }),
    p,
    /Unknown parameter 'listen_address.bogus' in listen_address/,
  );
  await rejectsWith(
    r.invoke('nested', { listen_address: { trtype: 'tcp', trsvcid: 4420 } }),
    p,
    /'listen_address.trsvcid': expected string/,
  );
  await rejectsWith(
    r.invoke('nested', { listen_address: { trtype: 'tcp' }, ports: [1, 0] }),
    p,
    /'ports\[1\]': 0 is below the minimum 1/,
  );
});
