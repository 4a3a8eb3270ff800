// The accel subsystem: nvmf-ts computes CRC32C and copies in software; the
// options exist so configurations written for SPDK load and save unchanged.

import type { FrameworkSubsystem } from '../../event/subsystem.ts';
import type { RpcMethod } from '../../jsonrpc/index.ts';
import { RpcState } from '../../jsonrpc/index.ts';

const options = {
  small_cache_size: 128,
  large_cache_size: 16,
  task_count: 2048,
  sequence_count: 2048,
  buf_count: 2048,
};
type AccelOptions = typeof options;

const setOptions: RpcMethod<Partial<AccelOptions>, boolean> = {
  name: 'accel_set_options',
  summary: 'Set accel framework options',
  states: RpcState.STARTUP,
  params: [
    {
      name: 'small_cache_size',
      type: 'integer',
      min: 0,
      help: 'Size of the small iobuf cache',
      cli: { flags: ['--small-cache-size'] },
    },
    {
      name: 'large_cache_size',
      type: 'integer',
      min: 0,
      help: 'Size of the large iobuf cache',
      cli: { flags: ['--large-cache-size'] },
    },
    {
      name: 'task_count',
      type: 'integer',
      min: 1,
      help: 'Maximum number of tasks per IO channel',
      cli: { flags: ['--task-count'] },
    },
    {
      name: 'sequence_count',
      type: 'integer',
      min: 1,
      help: 'Maximum number of sequences per IO channel',
      cli: { flags: ['--sequence-count'] },
    },
    {
      name: 'buf_count',
      type: 'integer',
      min: 1,
      help: 'Maximum number of accel buffers per IO channel',
      cli: { flags: ['--buf-count'] },
    },
  ],
  handler(p) {
    for (const k of Object.keys(options) as Array<keyof AccelOptions>)
      if (p[k] !== undefined) options[k] = p[k];
    return true;
  },
};

const getOptions: RpcMethod<Record<string, never>, Record<string, unknown>> = {
  name: 'accel_get_opc_assignments',
  summary: 'Get list of opcode name to module assignments',
  states: RpcState.RUNTIME,
  params: [],
  handler() {
    return {
      copy: 'software',
      fill: 'software',
      crc32c: 'software',
      copy_crc32c: 'software',
      compare: 'software',
    };
  },
};

export const accelSubsystem: FrameworkSubsystem = {
  name: 'accel',
  depends: ['iobuf'],
  async init() {},
  async fini() {},
  writeConfigJson() {
    return [{ method: 'accel_set_options', params: { ...options } }];
  },
  rpcMethods: [setOptions, getOptions],
};
