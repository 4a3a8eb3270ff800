// bdev_rbd_register_cluster / _unregister_cluster / _get_clusters_info,
// bdev_rbd_create / _delete / _resize: SPDK's names, parameters and rpc.py flags.

import { RpcError, type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import { rpcCall } from '../rpc-util.ts';
import { RbdError } from './errors.ts';
import {
  createRbdBdev,
  deleteRbdBdev,
  getClustersInfo,
  registerCluster,
  resizeRbdBdev,
  unregisterCluster,
} from './rbd.ts';

/** RbdError carries its own errno; everything else maps as for every bdev module. */
function call<T>(fn: () => T | Promise<T>): Promise<T> {
  return rpcCall(async () => {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof RbdError) throw new RpcError(e.errno, e.message);
      throw e;
    }
  });
}

/** rpc.py's repeated key=value flags become the JSON object SPDK expects. */
function keyValues(v: unknown, flag: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const entry of v as string[]) {
    const i = entry.indexOf('=');
    if (i <= 0) throw new RpcError(-22, `${flag} ${entry} not in key=value form`);
    out[entry.slice(0, i)] = entry.slice(i + 1);
  }
  return out;
}

function stringMap(v: unknown, name: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return v === null ? {} : undefined;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (typeof val !== 'string') throw new RpcError(-32602, `${name}.${k} must be a string`);
    out[k] = val;
  }
  return out;
}

interface RegisterClusterParams {
  name: string;
  user_id?: string;
  config_param?: Record<string, unknown>;
  config_file?: string;
  key_file?: string;
  core_mask?: string;
}

interface CreateParams {
  name?: string;
  user_id?: string;
  pool_name: string;
  rbd_name: string;
  block_size: number;
  config?: Record<string, unknown>;
  cluster_name?: string;
  uuid?: string;
  read_only?: boolean;
}

export const rbdRpcMethods: RpcMethod[] = [
  {
    name: 'bdev_rbd_register_cluster',
    summary: 'Add a Rados cluster with ceph rbd backend (one librados connection shared by its bdevs)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Name of the Rados cluster only known to rbd bdev',
        cli: { positional: true },
      },
      {
        name: 'user_id',
        type: 'string',
        help: 'Ceph user name (i.e. admin, not client.admin)',
        cli: { flags: ['--user'] },
      },
      {
        name: 'config_param',
        type: 'object',
        help: 'key=value configuration options for rados_conf_set (default: rely on config file)',
        cli: { flags: ['--config-param'], action: 'append' },
      },
      { name: 'config_file', type: 'string', help: 'The file path of the Rados configuration file' },
      { name: 'key_file', type: 'string', help: 'The file path of the Rados keyring file' },
      { name: 'core_mask', type: 'string', help: 'Set core mask for librbd IO context threads' },
    ],
    cliTransform: (args) => ({ ...args, config_param: keyValues(args.config_param, '--config-param') }),
    handler: (p: RegisterClusterParams) =>
      call(() =>
        registerCluster({
          name: p.name,
          ...(p.user_id !== undefined ? { user_id: p.user_id } : {}),
          ...(p.config_param !== undefined
            ? { config_param: stringMap(p.config_param, 'config_param') }
            : {}),
          ...(p.config_file !== undefined ? { config_file: p.config_file } : {}),
          ...(p.key_file !== undefined ? { key_file: p.key_file } : {}),
          ...(p.core_mask !== undefined ? { core_mask: p.core_mask } : {}),
        }),
      ),
  },
  {
    name: 'bdev_rbd_unregister_cluster',
    summary: 'Unregister a Rados cluster object (refused while an rbd bdev uses it)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Name of the Rados Cluster only known to rbd bdev',
        cli: { positional: true },
      },
    ],
    handler: (p: { name: string }) =>
      call(async () => {
        await unregisterCluster(p.name);
        return true;
      }),
  },
  {
    name: 'bdev_rbd_get_clusters_info',
    summary: 'Display registered Rados Cluster names and related info',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        help: 'Name of the registered Rados Cluster Name. Example: Cluster1',
        cli: { flags: ['-b', '--name'] },
      },
    ],
    cliPrint: 'json',
    handler: (p: { name?: string }) => call(() => getClustersInfo(p.name)),
  },
  {
    name: 'bdev_rbd_create',
    summary: 'Add a bdev with ceph rbd backend',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        help: 'Name of the bdev (default Ceph<N>)',
        cli: { flags: ['-b', '--name'] },
      },
      {
        name: 'user_id',
        type: 'string',
        help: 'Ceph user name (i.e. admin, not client.admin)',
        cli: { flags: ['--user'] },
      },
      { name: 'pool_name', type: 'string', required: true, help: 'rbd pool name', cli: { positional: true } },
      { name: 'rbd_name', type: 'string', required: true, help: 'rbd image name', cli: { positional: true } },
      {
        name: 'block_size',
        type: 'integer',
        required: true,
        min: 1,
        max: 0xffffffff,
        help: 'rbd block size',
        cli: { positional: true, int: true },
      },
      {
        name: 'config',
        type: 'object',
        help: 'key=value configuration options for rados_conf_set (default: rely on config file)',
        cli: { flags: ['--config'], action: 'append' },
      },
      {
        name: 'cluster_name',
        type: 'string',
        help: 'cluster name to identify the Rados cluster',
        cli: { flags: ['-c', '--cluster-name'] },
      },
      { name: 'uuid', type: 'string', help: 'UUID of the bdev', cli: { flags: ['-u', '--uuid'] } },
      {
        name: 'read_only',
        type: 'boolean',
        help: 'Set this bdev as read-only',
        cli: { flags: ['-r', '--readonly'], action: 'store_true' },
      },
    ],
    cliTransform: (args) => ({ ...args, config: keyValues(args.config, '--config') }),
    handler: (p: CreateParams) =>
      call(() =>
        createRbdBdev({
          ...(p.name !== undefined ? { name: p.name } : {}),
          poolName: p.pool_name,
          rbdName: p.rbd_name,
          blockSize: p.block_size,
          ...(p.user_id !== undefined ? { userId: p.user_id } : {}),
          ...(p.config !== undefined ? { config: stringMap(p.config, 'config') } : {}),
          ...(p.cluster_name !== undefined ? { clusterName: p.cluster_name } : {}),
          ...(p.uuid !== undefined ? { uuid: p.uuid } : {}),
          ...(p.read_only !== undefined ? { readOnly: p.read_only } : {}),
        }),
      ),
  },
  {
    name: 'bdev_rbd_delete',
    summary: 'Delete a rbd bdev',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'rbd bdev name', cli: { positional: true } },
    ],
    handler: (p: { name: string }) =>
      call(async () => {
        await deleteRbdBdev(p.name);
        return true;
      }),
  },
  {
    name: 'bdev_rbd_resize',
    summary: 'Resize a rbd bdev (grow only)',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'rbd bdev name', cli: { positional: true } },
      {
        name: 'new_size',
        type: 'integer',
        required: true,
        min: 1,
        help: 'new bdev size for resize operation. The unit is MiB',
        cli: { positional: true, int: true },
      },
    ],
    handler: (p: { name: string; new_size: number }) =>
      call(async () => {
        await resizeRbdBdev(p.name, p.new_size);
        return true;
      }),
  },
];
