// bdev_delay_create / bdev_delay_delete / bdev_delay_update_latency.

import { type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import { rpcCall } from '../rpc-util.ts';
import { createDelayBdev, deleteDelayBdev, type LatencyType, updateDelayLatency } from './delay.ts';

interface DelayCreateParams {
  base_bdev_name: string;
  name: string;
  uuid?: string;
  avg_read_latency: number;
  p99_read_latency: number;
  avg_write_latency: number;
  p99_write_latency: number;
}

export const delayRpcMethods: RpcMethod[] = [
  {
    name: 'bdev_delay_create',
    summary: 'Add a delay bdev on existing bdev (latencies in microseconds)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'base_bdev_name',
        type: 'string',
        required: true,
        help: 'Name of the existing bdev',
        cli: { flags: ['-b', '--base-bdev-name'] },
      },
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Name of the delay bdev',
        cli: { flags: ['-d', '--name'] },
      },
      { name: 'uuid', type: 'string', help: 'UUID of the bdev (optional)', cli: { flags: ['-u', '--uuid'] } },
      {
        name: 'avg_read_latency',
        type: 'integer',
        required: true,
        min: 0,
        help: 'Average latency applied to reads (µs)',
        cli: { flags: ['-r', '--avg-read-latency'], int: true },
      },
      {
        name: 'p99_read_latency',
        type: 'integer',
        required: true,
        min: 0,
        help: 'Latency applied to 1 in 100 reads (µs)',
        cli: { flags: ['-t', '--nine-nine-read-latency'], int: true },
      },
      {
        name: 'avg_write_latency',
        type: 'integer',
        required: true,
        min: 0,
        help: 'Average latency applied to writes (µs)',
        cli: { flags: ['-w', '--avg-write-latency'], int: true },
      },
      {
        name: 'p99_write_latency',
        type: 'integer',
        required: true,
        min: 0,
        help: 'Latency applied to 1 in 100 writes (µs)',
        cli: { flags: ['-n', '--nine-nine-write-latency'], int: true },
      },
    ],
    handler: (p: DelayCreateParams) =>
      rpcCall(() =>
        createDelayBdev({
          baseBdevName: p.base_bdev_name,
          name: p.name,
          uuid: p.uuid,
          avgReadLatency: p.avg_read_latency,
          p99ReadLatency: p.p99_read_latency,
          avgWriteLatency: p.avg_write_latency,
          p99WriteLatency: p.p99_write_latency,
        }),
      ),
  },
  {
    name: 'bdev_delay_delete',
    summary: 'Delete a delay bdev',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'delay bdev name', cli: { positional: true } },
    ],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        await deleteDelayBdev(p.name);
        return true;
      }),
  },
  {
    name: 'bdev_delay_update_latency',
    summary: 'Update one of the latency values for a given delay bdev',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'delay_bdev_name',
        type: 'string',
        required: true,
        help: 'The name of the given delay bdev',
        cli: { positional: true },
      },
      {
        name: 'latency_type',
        type: 'string',
        required: true,
        enum: ['avg_read', 'avg_write', 'p99_read', 'p99_write'],
        help: 'Latency bucket to update',
        cli: { positional: true },
      },
      {
        name: 'latency_us',
        type: 'integer',
        required: true,
        min: 0,
        help: 'new latency value in microseconds',
        cli: { positional: true, int: true },
      },
    ],
    handler: (p: { delay_bdev_name: string; latency_type: LatencyType; latency_us: number }) =>
      rpcCall(() => {
        updateDelayLatency(p.delay_bdev_name, p.latency_type, p.latency_us);
        return true;
      }),
  },
];
