// bdev_error_create / bdev_error_delete / bdev_error_inject_error.

import { type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import { rpcCall } from '../rpc-util.ts';
import {
  createErrorBdev,
  deleteErrorBdev,
  type ErrorTypeName,
  type Injection,
  injectError,
} from './error.ts';

interface InjectParams {
  name: string;
  io_type: Injection['ioType'];
  error_type: ErrorTypeName;
  num?: number;
  queue_depth?: number;
  corrupt_offset?: number;
  corrupt_value?: number;
  nvme_sct?: number;
  nvme_sc?: number;
}

export const errorRpcMethods: RpcMethod[] = [
  {
    name: 'bdev_error_create',
    summary: 'Add bdev with error injection backend (named EE_<base>)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'base_name',
        type: 'string',
        required: true,
        help: 'base bdev name',
        cli: { positional: true },
      },
      { name: 'uuid', type: 'string', help: 'UUID for this bdev', cli: { flags: ['--uuid'] } },
    ],
    handler: (p: { base_name: string; uuid?: string }) =>
      rpcCall(() => createErrorBdev({ baseName: p.base_name, uuid: p.uuid })),
  },
  {
    name: 'bdev_error_delete',
    summary: 'Delete an error bdev',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'error bdev name', cli: { positional: true } },
    ],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        await deleteErrorBdev(p.name);
        return true;
      }),
  },
  {
    name: 'bdev_error_inject_error',
    summary: 'Inject errors into an error bdev by I/O type, count and status',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'the name of the error injection bdev',
        cli: { positional: true },
      },
      {
        name: 'io_type',
        type: 'string',
        required: true,
        enum: ['clear', 'read', 'write', 'unmap', 'flush', 'all'],
        help: 'IO type',
        cli: { positional: true },
      },
      {
        name: 'error_type',
        type: 'string',
        required: true,
        enum: ['failure', 'nvme_failure', 'pending', 'corrupt_data', 'nomem'],
        help: 'Error type',
        cli: { positional: true },
      },
      {
        name: 'num',
        type: 'integer',
        min: 0,
        default: 1,
        help: 'the number of commands you want to fail',
        cli: { flags: ['-n', '--num'], int: true },
      },
      {
        name: 'queue_depth',
        type: 'integer',
        min: 0,
        help: 'queue depth threshold (accepted, ignored)',
        cli: { flags: ['-q', '--queue-depth'], int: true },
      },
      {
        name: 'corrupt_offset',
        type: 'integer',
        min: 0,
        help: 'byte offset to corrupt (corrupt_data)',
        cli: { flags: ['-o', '--corrupt-offset'], int: true },
      },
      {
        name: 'corrupt_value',
        type: 'integer',
        min: 0,
        max: 255,
        help: 'value XORed into the byte (corrupt_data; 0 = 0xff)',
        cli: { flags: ['-v', '--corrupt-value'], int: true },
      },
      {
        name: 'nvme_sct',
        type: 'integer',
        min: 0,
        max: 7,
        help: "The NVMe SCT for 'nvme_failure'. Default is 0.",
        cli: { flags: ['--nvme-sct'], int: true },
      },
      {
        name: 'nvme_sc',
        type: 'integer',
        min: 0,
        max: 255,
        help: "The NVMe SC for 'nvme_failure'. Default is 0.",
        cli: { flags: ['--nvme-sc'], int: true },
      },
    ],
    handler: (p: InjectParams) =>
      rpcCall(() => {
        injectError(p.name, {
          ioType: p.io_type,
          errorType: p.error_type,
          num: p.num ?? 1,
          nvmeSct: p.nvme_sct ?? 0,
          nvmeSc: p.nvme_sc ?? 0,
          corruptOffset: p.corrupt_offset ?? 0,
          corruptValue: p.corrupt_value ?? 0,
        });
        return true;
      }),
  },
];
