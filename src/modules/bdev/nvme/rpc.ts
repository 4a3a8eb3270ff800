// bdev_nvme_attach_controller / bdev_nvme_detach_controller /
// bdev_nvme_get_controllers: SPDK's method names, parameter names and
// rpc.py's flags (python/spdk/cli/bdev_nvme.py).

import { RpcError, type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import type { TransportId } from '../../../nvme/index.ts';
import { rejectUnsupported, rpcCall } from '../rpc-util.ts';
import {
  attachController,
  checkResiliencyParams,
  detachController,
  getController,
  listControllers,
  NvmeAttachError,
} from './ctrlr.ts';

interface AttachParams {
  name: string;
  trtype: string;
  traddr: string;
  adrfam?: string;
  trsvcid?: string;
  priority?: string;
  subnqn?: string;
  hostnqn?: string;
  hostaddr?: string;
  hostsvcid?: string;
  prchk_reftag?: boolean;
  prchk_guard?: boolean;
  hdgst?: boolean;
  ddgst?: boolean;
  fabrics_connect_timeout_us?: number;
  multipath?: string;
  num_io_queues?: number;
  ctrlr_loss_timeout_sec?: number;
  reconnect_delay_sec?: number;
  fast_io_fail_timeout_sec?: number;
  psk?: string;
  max_bdevs?: number;
  dhchap_key?: string;
  dhchap_ctrlr_key?: string;
  allow_unrecognized_csi?: boolean;
  multipath_opts?: Record<string, unknown>;
  disable_sq_flow_control?: boolean;
}

const UUID_HOSTNQN =
  /^nqn\.2014-08\.org\.nvmexpress:uuid:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

function nvmeErr(e: unknown): never {
  if (e instanceof NvmeAttachError) throw new RpcError(e.errno, e.message);
  throw e;
}

async function attach(p: AttachParams): Promise<string[]> {
  if (p.trtype.toLowerCase() !== 'tcp') {
    throw new RpcError(-22, `trtype ${p.trtype} is not supported (tcp only)`);
  }
  const adrfam = (p.adrfam ?? 'ipv4').toLowerCase();
  if (adrfam !== 'ipv4' && adrfam !== 'ipv6') {
    throw new RpcError(-22, `adrfam ${p.adrfam} is not supported (ipv4, ipv6)`);
  }
  if (p.subnqn === undefined || p.subnqn === '') throw new RpcError(-22, 'subnqn is required for trtype tcp');
  if (p.subnqn.length > 223) throw new RpcError(-22, `subnqn too long: ${p.subnqn}`);
  if (p.traddr.length > 255) throw new RpcError(-22, `traddr too long: ${p.traddr}`);
  const trsvcid = p.trsvcid ?? '4420';
  const port = Number(trsvcid);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RpcError(-22, `trsvcid ${trsvcid} is not a TCP port`);
  }
  if (p.hostnqn !== undefined && p.hostnqn.length > 223)
    throw new RpcError(-22, `hostnqn too long: ${p.hostnqn}`);
  if (
    p.multipath !== undefined &&
    p.multipath !== 'disable' &&
    p.multipath !== 'failover' &&
    p.multipath !== 'multipath'
  ) {
    throw new RpcError(-22, `multipath ${p.multipath} is not disable, failover or multipath`);
  }
  if (p.max_bdevs === 0) throw new RpcError(-22, 'max_bdevs cannot be zero');
  rejectUnsupported(p as unknown as Record<string, unknown>, ['prchk_reftag', 'prchk_guard']);
  for (const k of ['psk', 'dhchap_key', 'dhchap_ctrlr_key'] as const) {
    if (p[k] !== undefined)
      throw new RpcError(-22, `${k} is not supported (no TLS or DH-HMAC-CHAP on the host side yet)`);
  }
  const loss = p.ctrlr_loss_timeout_sec ?? 0;
  const delay = p.reconnect_delay_sec ?? 0;
  const fastFail = p.fast_io_fail_timeout_sec ?? 0;
  const bad = checkResiliencyParams(loss, delay, fastFail);
  if (bad !== null) throw new RpcError(-22, `The parameters are invalid: ${bad}`);
  // the host ID goes with the host NQN when the NQN names a UUID (as nvme-cli's defaults do)
  const hostnqn = p.hostnqn ?? `nqn.2014-08.org.nvmexpress:uuid:${crypto.randomUUID()}`;
  const hostid = UUID_HOSTNQN.exec(hostnqn)?.[1] ?? crypto.randomUUID();
  const trid: TransportId = {
    traddr: p.traddr,
    trsvcid,
    subnqn: p.subnqn,
    hostnqn,
    hostid,
    hdgst: p.hdgst === true,
    ddgst: p.ddgst === true,
  };
  const names = await attachController({
    name: p.name,
    trid,
    adrfam: adrfam === 'ipv6' ? 'IPv6' : 'IPv4',
    hostaddr: p.hostaddr,
    hostsvcid: p.hostsvcid,
    ctrlrLossTimeoutSec: loss,
    reconnectDelaySec: delay,
    fastIoFailTimeoutSec: fastFail,
    fabricsConnectTimeoutUs: p.fabrics_connect_timeout_us ?? 0,
  }).catch(nvmeErr);
  if (p.max_bdevs !== undefined && names.length > p.max_bdevs) {
    throw new RpcError(-22, `controller has ${names.length} namespaces, more than max_bdevs ${p.max_bdevs}`);
  }
  return names;
}

export const nvmeRpcMethods: RpcMethod[] = [
  {
    name: 'bdev_nvme_attach_controller',
    summary: 'Add bdevs with nvme backend (one per namespace of a remote NVMe/TCP controller)',
    states: RpcState.RUNTIME,
    cliPrint: 'array',
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Name of the NVMe controller, prefix for each bdev name',
        cli: { flags: ['-b', '--name'] },
      },
      {
        name: 'trtype',
        type: 'string',
        required: true,
        help: 'NVMe-oF target trtype: tcp',
        cli: { flags: ['-t', '--trtype'] },
      },
      {
        name: 'traddr',
        type: 'string',
        required: true,
        help: 'NVMe-oF target address: an ip address',
        cli: { flags: ['-a', '--traddr'] },
      },
      {
        name: 'adrfam',
        type: 'string',
        help: 'NVMe-oF target adrfam: ipv4, ipv6',
        cli: { flags: ['-f', '--adrfam'] },
      },
      {
        name: 'trsvcid',
        type: 'string',
        help: 'NVMe-oF target trsvcid: a port number (default 4420)',
        cli: { flags: ['-s', '--trsvcid'] },
      },
      {
        name: 'priority',
        type: 'string',
        help: 'NVMe-oF connection priority (accepted, ignored)',
        cli: { flags: ['-p', '--priority'] },
      },
      { name: 'subnqn', type: 'string', help: 'NVMe-oF target subnqn', cli: { flags: ['-n', '--subnqn'] } },
      {
        name: 'hostnqn',
        type: 'string',
        help: 'NVMe-oF host NQN (default: a uuid NQN generated at attach and saved with the config)',
        cli: { flags: ['-q', '--hostnqn'] },
      },
      {
        name: 'hostaddr',
        type: 'string',
        help: 'NVMe-oF host address (reported; the OS picks the source address)',
        cli: { flags: ['-i', '--hostaddr'] },
      },
      {
        name: 'hostsvcid',
        type: 'string',
        help: 'NVMe-oF host svcid (reported; the OS picks the source port)',
        cli: { flags: ['-c', '--hostsvcid'] },
      },
      {
        name: 'prchk_reftag',
        type: 'boolean',
        help: 'Enable checking of PI reference tag (not supported)',
        cli: { flags: ['-r', '--prchk-reftag'], action: 'store_true' },
      },
      {
        name: 'prchk_guard',
        type: 'boolean',
        help: 'Enable checking of PI guard (not supported)',
        cli: { flags: ['-g', '--prchk-guard'], action: 'store_true' },
      },
      {
        name: 'hdgst',
        type: 'boolean',
        help: 'Enable TCP header digest',
        cli: { flags: ['-e', '--hdgst'], action: 'store_true' },
      },
      {
        name: 'ddgst',
        type: 'boolean',
        help: 'Enable TCP data digest',
        cli: { flags: ['-d', '--ddgst'], action: 'store_true' },
      },
      {
        name: 'fabrics_connect_timeout_us',
        type: 'integer',
        min: 0,
        help: 'Fabrics connect timeout in microseconds (0 = 10 s)',
        cli: { flags: ['--fabrics-timeout'], int: true },
      },
      {
        name: 'multipath',
        type: 'string',
        help: 'Multipath behavior: disable, failover, multipath (one path per controller here)',
        cli: { flags: ['-x', '--multipath'] },
      },
      {
        name: 'num_io_queues',
        type: 'integer',
        min: 1,
        help: 'Number of IO queues to request (accepted; one queue per reactor is used)',
        cli: { flags: ['--num-io-queues'], int: true },
      },
      {
        name: 'ctrlr_loss_timeout_sec',
        type: 'integer',
        min: -1,
        help: 'Seconds to keep reconnecting before deleting the controller: -1 forever, 0 (default) one attempt',
        cli: { flags: ['-l', '--ctrlr-loss-timeout-sec'], int: true },
      },
      {
        name: 'reconnect_delay_sec',
        type: 'integer',
        min: 0,
        help: 'Seconds between reconnect attempts (non-zero when ctrlr_loss_timeout_sec is not 0)',
        cli: { flags: ['-o', '--reconnect-delay-sec'], int: true },
      },
      {
        name: 'fast_io_fail_timeout_sec',
        type: 'integer',
        min: 0,
        help: 'Seconds after a connection loss when waiting I/O fails instead (0 = wait until deleted)',
        cli: { flags: ['-u', '--fast-io-fail-timeout-sec'], int: true },
      },
      {
        name: 'psk',
        type: 'string',
        help: 'TLS pre-shared key name (not supported)',
        cli: { flags: ['-k', '--psk'] },
      },
      {
        name: 'max_bdevs',
        type: 'integer',
        min: 0,
        help: 'The size of the name array for newly created bdevs. Default is 128',
        cli: { flags: ['-m', '--max-bdevs'], int: true },
      },
      {
        name: 'dhchap_key',
        type: 'string',
        help: 'DH-HMAC-CHAP key name (not supported)',
        cli: { flags: ['--dhchap-key'] },
      },
      {
        name: 'dhchap_ctrlr_key',
        type: 'string',
        help: 'DH-HMAC-CHAP controller key name (not supported)',
        cli: { flags: ['--dhchap-ctrlr-key'] },
      },
      {
        name: 'allow_unrecognized_csi',
        type: 'boolean',
        help: 'Allow namespaces with unrecognized command sets (accepted, ignored)',
        cli: { flags: ['-U', '--allow-unrecognized-csi'], action: 'store_true' },
      },
      {
        name: 'multipath_opts',
        type: 'object',
        help: 'Multipath policy, selector, min_io (accepted, ignored: one path)',
      },
      {
        name: 'disable_sq_flow_control',
        type: 'boolean',
        help: 'Disable SQ flow control (accepted, ignored)',
        cli: { flags: ['--disable-sq-flow-control'], action: 'store_true' },
      },
    ],
    handler: (p: AttachParams) => rpcCall(() => attach(p)),
  },
  {
    name: 'bdev_nvme_detach_controller',
    summary: 'Detach an NVMe controller and delete any associated bdevs',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Name of the controller',
        cli: { positional: true },
      },
      {
        name: 'trtype',
        type: 'string',
        help: 'NVMe-oF target trtype (path filter)',
        cli: { flags: ['-t', '--trtype'] },
      },
      {
        name: 'traddr',
        type: 'string',
        help: 'NVMe-oF target address (path filter)',
        cli: { flags: ['-a', '--traddr'] },
      },
      {
        name: 'adrfam',
        type: 'string',
        help: 'NVMe-oF target adrfam (path filter)',
        cli: { flags: ['-f', '--adrfam'] },
      },
      {
        name: 'trsvcid',
        type: 'string',
        help: 'NVMe-oF target trsvcid (path filter)',
        cli: { flags: ['-s', '--trsvcid'] },
      },
      {
        name: 'subnqn',
        type: 'string',
        help: 'NVMe-oF target subnqn (path filter)',
        cli: { flags: ['-n', '--subnqn'] },
      },
      {
        name: 'hostaddr',
        type: 'string',
        help: 'NVMe-oF host address (path filter)',
        cli: { flags: ['-i', '--hostaddr'] },
      },
      {
        name: 'hostsvcid',
        type: 'string',
        help: 'NVMe-oF host svcid (path filter)',
        cli: { flags: ['-c', '--hostsvcid'] },
      },
    ],
    handler: (p: { name: string; traddr?: string; trsvcid?: string; subnqn?: string; trtype?: string }) =>
      rpcCall(async () => {
        const rec = getController(p.name);
        if (rec === undefined) throw new RpcError(-19, `Controller ${p.name} does not exist`);
        // a path filter that does not match the (only) path: nothing to detach
        const t = rec.opts.trid;
        if (
          (p.traddr !== undefined && p.traddr !== t.traddr) ||
          (p.trsvcid !== undefined && p.trsvcid !== t.trsvcid) ||
          (p.subnqn !== undefined && p.subnqn !== t.subnqn) ||
          (p.trtype !== undefined && p.trtype.toLowerCase() !== 'tcp')
        ) {
          throw new RpcError(-19, `Controller ${p.name} has no path matching the given transport ID`);
        }
        await detachController(p.name).catch(nvmeErr);
        return true;
      }),
  },
  {
    name: 'bdev_nvme_get_controllers',
    summary: 'Display current NVMe controllers list or required NVMe controller',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        help: 'Name of the NVMe controller. Example: Nvme0',
        cli: { flags: ['-n', '--name'] },
      },
    ],
    handler: (p: { name?: string }) => {
      const recs = p.name !== undefined ? [getController(p.name)] : listControllers();
      if (recs[0] === undefined && p.name !== undefined) {
        throw new RpcError(-22, `Controller ${p.name} does not exist`);
      }
      return recs.map((r) => ({ name: r!.name, ctrlrs: [r!.infoJson()] }));
    },
  },
];
