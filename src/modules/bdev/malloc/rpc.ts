// bdev_malloc_create / bdev_malloc_delete (SPDK's names and parameters).

import { type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import { rejectUnsupported, requestedNumBlocks, rpcCall, totalSizeToNumBlocks } from '../rpc-util.ts';
import { createMallocBdev, deleteMallocBdev } from './malloc.ts';

interface MallocCreateParams {
  name?: string;
  num_blocks?: number;
  total_size?: number;
  block_size: number;
  physical_block_size?: number;
  uuid?: string;
  optimal_io_boundary?: number;
  md_size?: number;
  md_interleave?: boolean;
  dif_type?: number;
  dif_is_head_of_md?: boolean;
  dif_pi_format?: number;
  numa_id?: number;
}

export const mallocRpcMethods: RpcMethod[] = [
  {
    name: 'bdev_malloc_create',
    summary: 'Create a bdev with malloc backend (RAM shared by every reactor)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        help: 'Name of the bdev (default: MallocN)',
        cli: { flags: ['-b', '--name'] },
      },
      { name: 'uuid', type: 'string', help: 'UUID of the bdev (optional)', cli: { flags: ['-u', '--uuid'] } },
      {
        name: 'total_size',
        type: 'number',
        min: 0,
        help: 'Size of malloc bdev in MB (CLI positional; sent as num_blocks)',
        cli: { positional: true },
      },
      {
        name: 'block_size',
        type: 'integer',
        required: true,
        min: 512,
        max: 65536,
        help: 'Data block size for this bdev',
        cli: { positional: true, int: true },
      },
      {
        name: 'num_blocks',
        type: 'integer',
        min: 1,
        help: 'Number of blocks (JSON; the CLI computes it from total_size)',
      },
      {
        name: 'physical_block_size',
        type: 'integer',
        min: 0,
        help: 'Physical block size for this bdev',
        cli: { flags: ['-p', '--physical-block-size'], int: true },
      },
      {
        name: 'optimal_io_boundary',
        type: 'integer',
        min: 0,
        help: 'Split on optimal IO boundary, in number of blocks, default 0 (disabled)',
        cli: { flags: ['-o', '--optimal-io-boundary'], int: true },
      },
      {
        name: 'md_size',
        type: 'integer',
        min: 0,
        help: 'Metadata size (only 0 is supported)',
        cli: { flags: ['-m', '--md-size'], int: true },
      },
      {
        name: 'md_interleave',
        type: 'boolean',
        help: 'Metadata interleaved (not supported)',
        cli: { flags: ['-i', '--md-interleave'], action: 'store_true' },
      },
      {
        name: 'dif_type',
        type: 'integer',
        min: 0,
        max: 3,
        help: 'Protection information type (only 0 is supported)',
        cli: { flags: ['-t', '--dif-type'], int: true },
      },
      {
        name: 'dif_is_head_of_md',
        type: 'boolean',
        help: 'PI in the first 8 bytes of metadata (not supported)',
        cli: { flags: ['-d', '--dif-is-head-of-md'], action: 'store_true' },
      },
      {
        name: 'dif_pi_format',
        type: 'integer',
        min: 0,
        max: 2,
        help: 'Protection information format (only 0)',
        cli: { flags: ['-f', '--dif-pi-format'], int: true },
      },
      {
        name: 'numa_id',
        type: 'integer',
        help: 'NUMA node ID (ignored)',
        cli: { flags: ['-n', '--numa-id'], int: true },
      },
    ],
    cliTransform: totalSizeToNumBlocks,
    handler: (p: MallocCreateParams) =>
      rpcCall(() => {
        rejectUnsupported(p, ['md_size', 'md_interleave', 'dif_type', 'dif_is_head_of_md', 'dif_pi_format']);
        const numBlocks = requestedNumBlocks(p);
        return createMallocBdev({
          name: p.name,
          numBlocks,
          blockSize: p.block_size,
          uuid: p.uuid,
          physicalBlockSize: p.physical_block_size,
          optimalIoBoundary: p.optimal_io_boundary,
        });
      }),
  } as RpcMethod,
  {
    name: 'bdev_malloc_delete',
    summary: 'Delete a malloc disk',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'malloc bdev name', cli: { positional: true } },
    ],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        await deleteMallocBdev(p.name);
        return true;
      }),
  },
];
