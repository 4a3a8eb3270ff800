// rpc.py command lines against the real method table: the params nvmf-rpc
// builds equal what SPDK's rpc.py sends (leaving out the false-by-default
// switches rpc.py also sends), and the server-side schema accepts rpc.py's
// full requests.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildParams, methodHelp, shellSplit } from '../../../src/apps/nvmf-rpc.ts';
import { type RpcMethod, validateParams } from '../../../src/jsonrpc/index.ts';
import { rpcMethodTable } from '../../../src/modules/event/index.ts';

const table = new Map<string, RpcMethod>(rpcMethodTable().map((m) => [m.name, m]));

function parse(line: string): Record<string, unknown> {
  const [name, ...args] = shellSplit(line);
  const m = table.get(name);
  assert.ok(m, `${name} is registered`);
  return buildParams(m, args);
}

const cases: Array<[string, Record<string, unknown>]> = [
  ['nvmf_create_transport -t TCP -u 8192 -o', { trtype: 'TCP', io_unit_size: 8192, c2h_success: false }],
  [
    'nvmf_create_transport -t tcp -q 128 -c 4096',
    { trtype: 'tcp', max_queue_depth: 128, in_capsule_data_size: 4096 },
  ],
  [
    'nvmf_create_subsystem nqn.2016-06.io.spdk:cnode1 -a -s SPDK00000000000001 -d SPDK_Controller1',
    {
      nqn: 'nqn.2016-06.io.spdk:cnode1',
      allow_any_host: true,
      serial_number: 'SPDK00000000000001',
      model_number: 'SPDK_Controller1',
    },
  ],
  [
    'nvmf_create_subsystem nqn.2016-06.io.spdk:cnode2 -m 32',
    { nqn: 'nqn.2016-06.io.spdk:cnode2', max_namespaces: 32 },
  ],
  [
    'nvmf_subsystem_add_listener nqn.2016-06.io.spdk:cnode1 -t tcp -a 127.0.0.1 -s 4420 -f ipv4',
    {
      nqn: 'nqn.2016-06.io.spdk:cnode1',
      listen_address: { trtype: 'tcp', traddr: '127.0.0.1', trsvcid: '4420', adrfam: 'ipv4' },
    },
  ],
  [
    'nvmf_subsystem_add_ns nqn.2016-06.io.spdk:cnode1 Malloc0',
    { nqn: 'nqn.2016-06.io.spdk:cnode1', namespace: { bdev_name: 'Malloc0' } },
  ],
  [
    'nvmf_subsystem_add_ns -n 2 nqn.2016-06.io.spdk:cnode1 Malloc1',
    { nqn: 'nqn.2016-06.io.spdk:cnode1', namespace: { bdev_name: 'Malloc1', nsid: 2 } },
  ],
  [
    'nvmf_subsystem_add_host nqn.2016-06.io.spdk:cnode1 nqn.2014-08.org.nvmexpress:uuid:1234',
    { nqn: 'nqn.2016-06.io.spdk:cnode1', host: 'nqn.2014-08.org.nvmexpress:uuid:1234' },
  ],
  ['nvmf_subsystem_remove_ns nqn.2016-06.io.spdk:cnode1 1', { nqn: 'nqn.2016-06.io.spdk:cnode1', nsid: 1 }],
  ['bdev_malloc_create -b Malloc0 64 512', { name: 'Malloc0', block_size: 512, num_blocks: 131072 }],
  ['bdev_null_create Null0 100 4096', { name: 'Null0', block_size: 4096, num_blocks: 25600 }],
  ['bdev_get_bdevs -b Malloc0', { name: 'Malloc0' }],
  [
    'bdev_delay_create -b Malloc0 -d Delay0 -r 10 -t 20 -w 30 -n 40',
    {
      base_bdev_name: 'Malloc0',
      name: 'Delay0',
      avg_read_latency: 10,
      p99_read_latency: 20,
      avg_write_latency: 30,
      p99_write_latency: 40,
    },
  ],
  ['rpc_get_methods --current', { current: true }],
  ['spdk_kill_instance SIGTERM', { sig_name: 'SIGTERM' }],
];

for (const [line, expected] of cases) {
  test(`rpc.py syntax: ${line}`, () => {
    assert.deepEqual(parse(line), expected);
  });
}

test('the server schema accepts the full requests rpc.py sends (including its false-by-default switches)', () => {
  const requests: Array<[string, Record<string, unknown>]> = [
    [
      'nvmf_create_transport',
      {
        trtype: 'TCP',
        io_unit_size: 8192,
        c2h_success: false,
        zcopy: false,
        dif_insert_or_strip: false,
        no_srq: false,
        no_wr_batching: false,
        disable_mappable_bar0: false,
        disable_adaptive_irq: false,
        disable_shadow_doorbells: false,
        disable_command_passthru: false,
      },
    ],
    [
      'nvmf_create_subsystem',
      {
        nqn: 'nqn.2016-06.io.spdk:cnode1',
        allow_any_host: true,
        ana_reporting: false,
        enable_nssr: false,
        passthrough: false,
        serial_number: 'S1',
      },
    ],
    [
      'nvmf_subsystem_add_listener',
      {
        nqn: 'nqn.a',
        secure_channel: false,
        listen_address: { trtype: 'tcp', traddr: '127.0.0.1', trsvcid: '4420' },
      },
    ],
    [
      'nvmf_subsystem_add_ns',
      { nqn: 'nqn.a', namespace: { bdev_name: 'Malloc0', hide_metadata: false, no_auto_visible: false } },
    ],
    [
      'bdev_malloc_create',
      { name: 'M0', block_size: 512, num_blocks: 8, md_interleave: false, dif_is_head_of_md: false },
    ],
    ['bdev_null_create', { name: 'N0', block_size: 512, num_blocks: 8, dif_is_head_of_md: false }],
    ['rpc_get_methods', { current: true, include_aliases: false }],
  ];
  const rejected: string[] = [];
  for (const [name, params] of requests) {
    const m = table.get(name);
    assert.ok(m, `${name} is registered`);
    try {
      validateParams(m, params);
    } catch (e) {
      rejected.push(`${name}: ${(e as Error).message}`);
    }
  }
  assert.deepEqual(rejected, []);
});

test('every registered method renders its --help', () => {
  for (const m of table.values()) {
    const help = methodHelp(m);
    assert.match(help, new RegExp(`^usage: nvmf-rpc ${m.name} `));
  }
});
