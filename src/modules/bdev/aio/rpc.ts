// bdev_aio_create / bdev_aio_delete / bdev_aio_rescan.

import { type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import { rpcCall } from '../rpc-util.ts';
import { createAioBdev, deleteAioBdev, rescanAioBdev } from './aio.ts';

interface AioCreateParams {
  filename: string;
  name: string;
  block_size?: number;
  readonly?: boolean;
  fallocate?: boolean;
  uuid?: string;
  nowait?: boolean;
}

export const aioRpcMethods: RpcMethod[] = [
  {
    name: 'bdev_aio_create',
    summary: 'Add a bdev backed by a file or block device (I/O off the reactor)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'filename',
        type: 'string',
        required: true,
        help: 'Path to device or file (ex: /dev/sda)',
        cli: { positional: true },
      },
      { name: 'name', type: 'string', required: true, help: 'Block device name', cli: { positional: true } },
      {
        name: 'block_size',
        type: 'integer',
        min: 0,
        max: 65536,
        help: 'Block size for this bdev (default: detected)',
        cli: { positional: true, int: true },
      },
      {
        name: 'readonly',
        type: 'boolean',
        help: 'Set this bdev as read-only',
        cli: { flags: ['-r', '--readonly'], action: 'store_true' },
      },
      {
        name: 'fallocate',
        type: 'boolean',
        help: 'Support unmap/write_zeroes by fallocate (done by writing zeroes here)',
        cli: { flags: ['--fallocate'], action: 'store_true' },
      },
      { name: 'uuid', type: 'string', help: 'UUID of the bdev (optional)', cli: { flags: ['-u', '--uuid'] } },
      {
        name: 'nowait',
        type: 'boolean',
        help: 'RWF_NOWAIT (accepted, ignored)',
        cli: { flags: ['--no-wait'], action: 'store_true' },
      },
    ],
    handler: (p: AioCreateParams) =>
      rpcCall(() =>
        createAioBdev({
          name: p.name,
          filename: p.filename,
          blockSize: p.block_size,
          readonly: p.readonly,
          fallocate: p.fallocate,
          uuid: p.uuid,
        }),
      ),
  },
  {
    name: 'bdev_aio_delete',
    summary: 'Delete an aio disk',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'aio bdev name', cli: { positional: true } },
    ],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        await deleteAioBdev(p.name);
        return true;
      }),
  },
  {
    name: 'bdev_aio_rescan',
    summary: 'Rescan a bdev size with aio backend',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'Block device name', cli: { positional: true } },
    ],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        await rescanAioBdev(p.name);
        return true;
      }),
  },
];
