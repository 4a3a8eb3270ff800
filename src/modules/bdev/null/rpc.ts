// bdev_null_create / bdev_null_delete / bdev_null_resize.

import { type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import { rejectUnsupported, requestedNumBlocks, rpcCall, totalSizeToNumBlocks } from '../rpc-util.ts';
import { createNullBdev, deleteNullBdev, resizeNullBdev } from './null.ts';

interface NullCreateParams {
  name: string;
  num_blocks?: number;
  total_size?: number;
  block_size: number;
  physical_block_size?: number;
  uuid?: string;
  md_size?: number;
  dif_type?: number;
  dif_is_head_of_md?: boolean;
  dif_pi_format?: number;
}

const layoutHints = [
  ['preferred_write_alignment', '-a', 'Preferred write alignment in blocks'],
  ['preferred_write_granularity', '-g', 'Preferred write granularity in blocks'],
  ['optimal_write_size', '-s', 'Optimal write size in blocks'],
  ['preferred_unmap_alignment', '-c', 'Preferred unmap alignment in blocks'],
  ['preferred_unmap_granularity', '-r', 'Preferred unmap granularity in blocks'],
] as const;

export const nullRpcMethods: RpcMethod[] = [
  {
    name: 'bdev_null_create',
    summary: 'Add a bdev with null backend (writes discarded, reads return zeroes)',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'Block device name', cli: { positional: true } },
      { name: 'uuid', type: 'string', help: 'UUID of the bdev (optional)', cli: { flags: ['-u', '--uuid'] } },
      {
        name: 'total_size',
        type: 'integer',
        min: 1,
        help: 'Size of null bdev in MB (CLI positional; sent as num_blocks)',
        cli: { positional: true, int: true },
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
        name: 'md_size',
        type: 'integer',
        min: 0,
        help: 'Metadata size (only 0 is supported)',
        cli: { flags: ['-m', '--md-size'], int: true },
      },
      {
        name: 'dif_type',
        type: 'integer',
        min: 0,
        max: 3,
        help: 'Protection information type (only 0)',
        cli: { flags: ['-t', '--dif-type'], int: true },
      },
      {
        name: 'dif_is_head_of_md',
        type: 'boolean',
        help: 'PI at head of metadata (not supported)',
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
      ...layoutHints.map(([name, flag, help]) => ({
        name,
        type: 'integer' as const,
        min: 0,
        help: `${help} (accepted, reported as 0)`,
        cli: { flags: [flag, `--${name.replaceAll('_', '-')}`], int: true },
      })),
    ],
    cliTransform: totalSizeToNumBlocks,
    handler: (p: NullCreateParams) =>
      rpcCall(() => {
        rejectUnsupported(p, ['md_size', 'dif_type', 'dif_is_head_of_md', 'dif_pi_format']);
        const numBlocks = requestedNumBlocks(p);
        return createNullBdev({
          name: p.name,
          numBlocks,
          blockSize: p.block_size,
          uuid: p.uuid,
          physicalBlockSize: p.physical_block_size,
        });
      }),
  } as RpcMethod,
  {
    name: 'bdev_null_delete',
    summary: 'Delete a null bdev',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'null bdev name', cli: { positional: true } },
    ],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        await deleteNullBdev(p.name);
        return true;
      }),
  },
  {
    name: 'bdev_null_resize',
    summary: 'Resize a null bdev (grow only)',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'null bdev name', cli: { positional: true } },
      {
        name: 'new_size',
        type: 'integer',
        required: true,
        min: 1,
        help: 'new bdev size in MiB',
        cli: { positional: true, int: true },
      },
    ],
    handler: (p: { name: string; new_size: number }) =>
      rpcCall(async () => {
        await resizeNullBdev(p.name, p.new_size);
        return true;
      }),
  },
];
