import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCpumask } from '../../../src/event/cpumask.ts';
import { type FrameworkSubsystem, orderSubsystems } from '../../../src/event/subsystem.ts';
import { frameworkSubsystems, rpcMethodTable } from '../../../src/modules/event/index.ts';

function sub(name: string, depends: string[] = []): FrameworkSubsystem {
  return { name, depends, init: async () => {}, fini: async () => {}, writeConfigJson: () => [] };
}

test('subsystems are ordered after their dependencies, depth first in table order', () => {
  const order = orderSubsystems([
    sub('nvmf', ['bdev', 'sock']),
    sub('sock'),
    sub('bdev', ['accel']),
    sub('accel'),
  ]);
  assert.deepEqual(
    order.map((s) => s.name),
    ['accel', 'bdev', 'sock', 'nvmf'],
  );
});

test('a missing dependency, a cycle and a duplicate are clear errors', () => {
  assert.throws(() => orderSubsystems([sub('a', ['nope'])]), /'a' depends on 'nope', which does not exist/);
  assert.throws(
    () => orderSubsystems([sub('a', ['b']), sub('b', ['c']), sub('c', ['a'])]),
    /cycle: a -> b -> c -> a/,
  );
  assert.throws(() => orderSubsystems([sub('a'), sub('a')]), /listed twice/);
});

test('the framework table orders and every method has a schema and a summary', () => {
  const names = orderSubsystems(frameworkSubsystems).map((s) => s.name);
  assert.deepEqual(names.slice(0, 5), ['scheduler', 'sock', 'iobuf', 'keyring', 'accel']);
  const methods = rpcMethodTable();
  const seen = new Set<string>();
  for (const m of methods) {
    assert.ok(!seen.has(m.name), `duplicate ${m.name}`);
    seen.add(m.name);
    assert.ok(m.summary.length > 0, m.name);
    assert.ok(Array.isArray(m.params), m.name);
    for (const p of m.params) assert.ok(p.help.length > 0, `${m.name}.${p.name}`);
  }
  for (const n of [
    'spdk_get_version',
    'rpc_get_methods',
    'framework_get_subsystems',
    'framework_get_config',
    'framework_start_init',
    'framework_wait_init',
    'framework_get_reactors',
    'thread_get_stats',
    'thread_get_pollers',
    'thread_get_io_channels',
    'save_config',
    'load_config',
    'spdk_kill_instance',
    'framework_set_scheduler',
    'sock_set_default_impl',
    'sock_impl_set_options',
    'iobuf_set_options',
    'accel_set_options',
  ]) {
    assert.ok(seen.has(n), n);
  }
});

test('cpumask: hex masks and core lists', () => {
  assert.deepEqual(parseCpumask('0x3'), [0, 1]);
  assert.deepEqual(parseCpumask('0x1'), [0]);
  assert.deepEqual(parseCpumask('A'), [1, 3]);
  assert.deepEqual(parseCpumask('0x10'), [4]);
  assert.deepEqual(parseCpumask('[0,1]'), [0, 1]);
  assert.deepEqual(parseCpumask('[0, 2-4]'), [0, 2, 3, 4]);
  assert.throws(() => parseCpumask('0x0'), /selects no core/);
  assert.throws(() => parseCpumask('zz'), /hex mask/);
  assert.throws(() => parseCpumask('[1,'), /must end/);
  assert.throws(() => parseCpumask('[3-1]'), /backwards/);
});
