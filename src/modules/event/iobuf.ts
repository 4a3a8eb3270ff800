// The iobuf subsystem: buffer pool sizes with SPDK's names and defaults.
// Node allocates buffers itself; the values are kept for the transports'
// buffer caches and so SPDK configurations load and save unchanged.

import type { FrameworkSubsystem } from '../../event/subsystem.ts';
import { type RpcMethod, RpcState } from '../../jsonrpc/index.ts';

const options = {
  small_pool_count: 8192,
  large_pool_count: 1024,
  small_bufsize: 8192,
  large_bufsize: 135168,
  enable_numa: false,
};
export type IobufOptions = typeof options;

export function iobufOptions(): IobufOptions {
  return { ...options };
}

const setOptions: RpcMethod<Partial<IobufOptions>, boolean> = {
  name: 'iobuf_set_options',
  summary: 'Set iobuf pool options',
  states: RpcState.STARTUP,
  params: [
    {
      name: 'small_pool_count',
      type: 'integer',
      min: 64,
      help: 'Number of small buffers in the global pool',
      cli: { flags: ['--small-pool-count'] },
    },
    {
      name: 'large_pool_count',
      type: 'integer',
      min: 8,
      help: 'Number of large buffers in the global pool',
      cli: { flags: ['--large-pool-count'] },
    },
    {
      name: 'small_bufsize',
      type: 'integer',
      min: 1,
      help: 'Size of a small buffer',
      cli: { flags: ['--small-bufsize'] },
    },
    {
      name: 'large_bufsize',
      type: 'integer',
      min: 1,
      help: 'Size of a large buffer',
      cli: { flags: ['--large-bufsize'] },
    },
    {
      name: 'enable_numa',
      type: 'boolean',
      help: 'Enable per-NUMA node buffer pools',
      cli: { flags: ['--enable-numa'], action: 'store_true' },
    },
  ],
  handler(p) {
    if (p.small_pool_count !== undefined) options.small_pool_count = p.small_pool_count;
    if (p.large_pool_count !== undefined) options.large_pool_count = p.large_pool_count;
    if (p.small_bufsize !== undefined) options.small_bufsize = p.small_bufsize;
    if (p.large_bufsize !== undefined) options.large_bufsize = p.large_bufsize;
    if (p.enable_numa !== undefined) options.enable_numa = p.enable_numa;
    return true;
  },
};

export const iobufSubsystem: FrameworkSubsystem = {
  name: 'iobuf',
  depends: [],
  async init() {},
  async fini() {},
  writeConfigJson() {
    return [{ method: 'iobuf_set_options', params: { ...options } }];
  },
  rpcMethods: [setOptions],
};
