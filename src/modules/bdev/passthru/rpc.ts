// bdev_passthru_create / bdev_passthru_delete.

import { type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import { rpcCall } from '../rpc-util.ts';
import { createPassthruBdev, deletePassthruBdev } from './passthru.ts';

export const passthruRpcMethods: RpcMethod[] = [
  {
    name: 'bdev_passthru_create',
    summary: 'Add a pass through bdev on existing bdev (claims the base)',
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
        help: 'Name of the pass through bdev',
        cli: { flags: ['-p', '--name'] },
      },
      { name: 'uuid', type: 'string', help: 'UUID of the bdev', cli: { flags: ['-u', '--uuid'] } },
    ],
    handler: (p: { base_bdev_name: string; name: string; uuid?: string }) =>
      rpcCall(() => createPassthruBdev({ baseBdevName: p.base_bdev_name, name: p.name, uuid: p.uuid })),
  },
  {
    name: 'bdev_passthru_delete',
    summary: 'Delete a pass through bdev',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'pass through bdev name',
        cli: { positional: true },
      },
    ],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        await deletePassthruBdev(p.name);
        return true;
      }),
  },
];
