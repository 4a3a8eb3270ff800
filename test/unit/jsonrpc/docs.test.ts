// Every registered method has a schema, help and summary, and docs/rpc.md is
// exactly what `npm run docs:rpc` generates from the current method table.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { lintRpcMethods, type RpcMethod, RpcState, renderRpcDocs } from '../../../src/jsonrpc/index.ts';
import { rpcMethodTable } from '../../../src/modules/event/index.ts';

const methods = rpcMethodTable();

test('every registered method has a summary, a params schema, help for each param and sane CLI flags', () => {
  assert.ok(methods.length > 0, 'the method table is not empty');
  assert.deepEqual(lintRpcMethods(methods), []);
});

test('docs/rpc.md is current (regenerate with `npm run docs:rpc`)', () => {
  let current = '';
  try {
    current = readFileSync(new URL('../../../docs/rpc.md', import.meta.url), 'utf8');
  } catch {
    assert.fail('docs/rpc.md is missing: run `npm run docs:rpc`');
  }
  const expected = renderRpcDocs(methods);
  if (current !== expected) {
    const documented = new Set([...current.matchAll(/^## (\S+)$/gm)].map((m) => m[1]));
    const missing = methods.map((m) => m.name).filter((n) => !documented.has(n));
    assert.fail(
      `docs/rpc.md is stale${missing.length > 0 ? ` (undocumented: ${missing.join(', ')})` : ''}: run \`npm run docs:rpc\``,
    );
  }
});

test('the lint catches each kind of schema gap', () => {
  const ok: RpcMethod = {
    name: 'demo_method',
    summary: 'Demo',
    states: RpcState.RUNTIME,
    params: [{ name: 'size', type: 'integer', min: 1, help: 'a size', cli: { flags: ['-s'] } }],
    handler: () => true,
  };
  assert.deepEqual(lintRpcMethods([ok]), []);
  const cases: Array<[Partial<RpcMethod>, RegExp]> = [
    [{ summary: '' }, /missing summary/],
    [{ states: 0 }, /states/],
    [{ name: 'BadName' }, /lower_snake_case/],
    [{ params: undefined as unknown as RpcMethod['params'] }, /missing params schema/],
    [{ params: [{ name: 'x', type: 'string', help: '' }] }, /param x: missing help/],
    [{ params: [{ name: 'x', type: 'strng' as 'string', help: 'h' }] }, /unknown type strng/],
    [{ params: [{ name: 'x', type: 'integer', default: 0, min: 1, help: 'h' }] }, /default does not satisfy/],
    [{ params: [{ name: 'x', type: 'integer', enum: ['a'], help: 'h' }] }, /enum needs type string/],
    [
      {
        params: [
          { name: 'x', type: 'string', help: 'h', cli: { flags: ['-s'] } },
          { name: 'y', type: 'string', help: 'h', cli: { flags: ['-s'] } },
        ],
      },
      /flag -s also used by x/,
    ],
    [{ params: [{ name: 'x', type: 'string', help: 'h', cli: { flags: ['-h'] } }] }, /reserved for help/],
    [
      {
        params: [
          { name: 'x', type: 'object', help: 'h', properties: [{ name: 'y', type: 'string', help: '' }] },
        ],
      },
      /param x\.y: missing help/,
    ],
    [{ params: [{ name: 'x', type: 'string', help: 'h', properties: [] }] }, /properties need type object/],
    [
      {
        params: [
          { name: 'x', type: 'array', help: 'h', items: { name: 'i', type: 'nope' as 'any', help: 'h' } },
        ],
      },
      /x\[\]: unknown type nope/,
    ],
  ];
  for (const [patch, pattern] of cases) {
    const problems = lintRpcMethods([{ ...ok, ...patch }]);
    assert.ok(
      problems.some((p) => pattern.test(p)),
      `${pattern} in ${JSON.stringify(problems)}`,
    );
  }
  assert.match(lintRpcMethods([ok, ok]).join('\n'), /registered twice/);
});

test('rendered docs list every method with its params and are deterministic', () => {
  const text = renderRpcDocs(methods);
  assert.equal(text, renderRpcDocs([...methods].reverse()));
  for (const m of methods) {
    assert.ok(text.includes(`\n## ${m.name}\n`), `section for ${m.name}`);
    for (const p of m.params)
      assert.ok(text.includes(`| ${p.name} | ${p.type} |`), `${m.name}.${p.name} row`);
  }
});

test('nested members get their own rows in the docs', () => {
  const text = renderRpcDocs([
    {
      name: 'demo_nested',
      summary: 'Demo',
      states: RpcState.RUNTIME,
      params: [
        {
          name: 'listen_address',
          type: 'object',
          help: 'address',
          properties: [{ name: 'trtype', type: 'string', required: true, help: 'transport type' }],
        },
      ],
      handler: () => true,
    },
  ]);
  assert.ok(text.includes('| listen_address.trtype | string | yes | transport type |'));
});
