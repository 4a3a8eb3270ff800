// bdev_nvme's multipath RPCs (SPDK's names, parameters and rpc.py's flags):
// bdev_nvme_get_io_paths, bdev_nvme_get_path_iostat, bdev_nvme_set_preferred_path,
// bdev_nvme_set_multipath_policy, and the multipath_opts parameter that
// bdev_nvme_attach_controller and bdev_nvme_set_options share.

import { BdevIoStats, bdevModuleDescriptor, iostatJson } from '../../../bdev/module.ts';
import { type ParamSpec, RpcError, type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import { rpcCall } from '../rpc-util.ts';
import { collectIoPaths, collectPathIostat } from './backend.ts';
import { getController, NvmeAttachError, type NvmeCtrlr, nvmeModule } from './controller-record.ts';
import { nvmeOptions } from './options.ts';
import { DEFAULT_MULTIPATH, type MultipathConfig } from './shared.ts';

/** The multipath_opts object of attach and set_options (SPDK's members). */
export interface MultipathOptsParam {
  policy?: string;
  selector?: string;
  min_io?: number;
}

const POLICIES = ['active_passive', 'active_active'];
const SELECTORS = ['round_robin', 'queue_depth'];

export function multipathOptsParam(help: string): ParamSpec {
  return {
    name: 'multipath_opts',
    type: 'object',
    help,
    properties: [
      { name: 'policy', type: 'string', enum: POLICIES, help: 'Multipath policy' },
      { name: 'selector', type: 'string', enum: SELECTORS, help: 'Multipath selector (active_active)' },
      {
        name: 'min_io',
        type: 'integer',
        min: 0,
        max: 0xffffffff,
        help: 'I/Os routed to a path before switching (round_robin selector only)',
      },
    ],
  };
}

/** rpc.py's --policy/--selector/--min-io, which its client groups as multipath_opts. */
export const multipathCliParams: ParamSpec[] = [
  {
    name: 'policy',
    type: 'string',
    enum: POLICIES,
    help: 'Multipath policy (CLI; sent inside multipath_opts)',
    cli: { flags: ['--policy'] },
  },
  {
    name: 'selector',
    type: 'string',
    enum: SELECTORS,
    help: 'Multipath selector (CLI; sent inside multipath_opts)',
    cli: { flags: ['--selector'] },
  },
  {
    name: 'min_io',
    type: 'integer',
    min: 1,
    help: 'I/Os per path before switching, round_robin only (CLI; sent inside multipath_opts)',
    cli: { flags: ['--min-io'], int: true },
  },
];

/** rpc.py groups --policy/--selector/--min-io as multipath_opts. */
export function groupMultipathOpts(args: Record<string, unknown>): Record<string, unknown> {
  const { policy, selector, min_io, ...rest } = args;
  const mp: Record<string, unknown> = {};
  if (policy !== undefined) mp.policy = policy;
  if (selector !== undefined) mp.selector = selector;
  if (min_io !== undefined) mp.min_io = min_io;
  if (Object.keys(mp).length > 0) rest.multipath_opts = mp;
  return rest;
}

/** An NvmeAttachError as the JSON-RPC error SPDK answers (its errno). */
export function nvmeErr(e: unknown): never {
  if (e instanceof NvmeAttachError) throw new RpcError(e.errno, e.message);
  throw e;
}

/** The controller record of nvme bdev `name` (-19 when there is no such nvme bdev, as SPDK). */
function controllerOfBdev(name: string): NvmeCtrlr {
  const desc = bdevModuleDescriptor(nvmeModule, name);
  const rec = desc === undefined ? undefined : getController(desc.params.ctrlrName);
  if (desc === undefined || rec === undefined || rec.attachId !== desc.params.attachId) {
    throw new RpcError(-19, `bdev ${name} is not an nvme bdev`);
  }
  return rec;
}

/** bdev_nvme_set_multipath_policy's parameters as SPDK reads them; the configuration or an RpcError. */
function multipathPolicyOf(p: { policy: string; selector?: string; rr_min_io?: number }): MultipathConfig {
  if (p.policy !== 'active_active') {
    // SPDK: a selector only goes with active_active (its decode fails)
    if (p.selector !== undefined) throw new RpcError(-32603, 'selector only works in active_active mode');
    return { ...DEFAULT_MULTIPATH };
  }
  const selector = (p.selector ?? 'round_robin') as MultipathConfig['selector'];
  if (selector === 'round_robin' && p.rr_min_io === 0) throw new RpcError(-22, 'rr_min_io must be non-zero');
  return { policy: 'active_active', selector, minIo: p.rr_min_io ?? 1 };
}

/** The `name` of the RPCs on one nvme bdev (rpc.py's -b). */
const BDEV_NAME_PARAM: ParamSpec = {
  name: 'name',
  type: 'string',
  required: true,
  help: 'Name of the NVMe bdev',
  cli: { flags: ['-b', '--name'] },
};

export const nvmeMultipathRpcMethods: RpcMethod[] = [
  {
    name: 'bdev_nvme_get_io_paths',
    summary: 'Display active I/O paths',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        help: 'Name of the NVMe bdev',
        cli: { flags: ['-n', '--name'] },
      },
    ],
    handler: (p: { name?: string }) =>
      rpcCall(async () => ({ poll_groups: await collectIoPaths(p.name ?? null) })),
  },
  {
    name: 'bdev_nvme_get_path_iostat',
    summary: 'Display the I/O statistics of each path of an NVMe bdev (bdev_nvme_set_options io_path_stat)',
    states: RpcState.RUNTIME,
    params: [BDEV_NAME_PARAM],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        // SPDK's refusal, -EPERM, before it looks at the name
        if (!nvmeOptions.io_path_stat)
          throw new RpcError(-1, 'RPC not enabled if enable_io_path_stat is false');
        const rec = controllerOfBdev(p.name);
        const byPath = await collectPathIostat(p.name);
        return {
          name: p.name,
          // every path in attach order, as SPDK lists the bdev's namespaces; counts of successful I/O
          stats: rec.allPaths.map((path) => {
            const {
              name: _name,
              ticks: _ticks,
              ...stat
            } = iostatJson(p.name, byPath.get(path.attachId) ?? new BdevIoStats(), 0);
            return { trid: path.tridJson(), stat };
          }),
        };
      }),
  },
  {
    name: 'bdev_nvme_set_preferred_path',
    summary: 'Set the preferred I/O path for an NVMe bdev when in multipath mode',
    states: RpcState.RUNTIME,
    params: [
      BDEV_NAME_PARAM,
      {
        name: 'cntlid',
        type: 'integer',
        required: true,
        min: 0,
        max: 0xffff,
        help: 'NVMe-oF controller ID',
        cli: { flags: ['-c', '--cntlid'], int: true },
      },
    ],
    handler: (p: { name: string; cntlid: number }) =>
      rpcCall(async () => {
        await controllerOfBdev(p.name).setPreferredPath(p.name, p.cntlid).catch(nvmeErr);
        return true;
      }),
  },
  {
    name: 'bdev_nvme_set_multipath_policy',
    summary: 'Set multipath policy of the NVMe bdev',
    states: RpcState.RUNTIME,
    params: [
      BDEV_NAME_PARAM,
      {
        name: 'policy',
        type: 'string',
        required: true,
        enum: POLICIES,
        help: 'Multipath policy: active_active or active_passive',
        cli: { flags: ['-p', '--policy'] },
      },
      {
        name: 'selector',
        type: 'string',
        enum: SELECTORS,
        help: 'Multipath selector: round_robin or queue_depth, used in active-active mode. Default is round_robin',
        cli: { flags: ['-s', '--selector'] },
      },
      {
        name: 'rr_min_io',
        type: 'integer',
        min: 0,
        max: 0xffffffff,
        help: 'Number of I/Os routed to the current path before switching to another (round_robin; default 1)',
        cli: { flags: ['-r', '--rr-min-io'], int: true },
      },
    ],
    handler: (p: { name: string; policy: string; selector?: string; rr_min_io?: number }) =>
      rpcCall(async () => {
        const m = multipathPolicyOf(p);
        await controllerOfBdev(p.name).setMultipath(p.name, m).catch(nvmeErr);
        return true;
      }),
  },
];
