// bdev_nvme's RPCs (attach, detach, controllers, options, reset, DH-HMAC-CHAP
// keys; the multipath ones in rpc-multipath.ts): SPDK's method names,
// parameter names and rpc.py's flags (python/spdk/cli/bdev.py).

import { DHCHAP_DHGROUP_NAMES, DHCHAP_DIGEST_NAMES } from '../../../auth/index.ts';
import { RpcError, type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import {
  keyring,
  parseDhchapSecret,
  parsePskInterchange,
  TlsPskHash,
  tlsPskHashOf,
} from '../../../keyring/index.ts';
import { DISCOVERY_NQN, dhchapHostConfig, type TransportId } from '../../../nvme/index.ts';
import { NvmfTsError } from '../../../util/errors.ts';
import { decodeIdentifyController, IDENTIFY_SIZE } from '../../../wire/identify.ts';
import { decodeHealthLog, HEALTH_LOG_SIZE, LogPage } from '../../../wire/log.ts';
import { rejectUnsupported, rpcCall } from '../rpc-util.ts';
import {
  type AttachOptions,
  attachController,
  checkResiliencyParams,
  detachController,
  getController,
  listControllers,
  type NvmeCtrlr,
} from './controller-record.ts';
import { mergeMultipathOpts, type NvmeOptionName, nvmeOptions } from './options.ts';
import {
  groupMultipathOpts,
  type MultipathOptsParam,
  multipathCliParams,
  multipathOptsParam,
  nvmeErr,
  nvmeMultipathRpcMethods,
} from './rpc-multipath.ts';

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
  multipath_opts?: MultipathOptsParam;
  disable_sq_flow_control?: boolean;
}

const UUID_HOSTNQN =
  /^nqn\.2014-08\.org\.nvmexpress:uuid:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/**
 * DH-HMAC-CHAP keys named by the attach (keyring names, as SPDK takes them): their secrets,
 * read now, for the controller and every realm's I/O queue.
 */
function dhchapFromKeyring(
  p: Pick<AttachParams, 'dhchap_key' | 'dhchap_ctrlr_key'>,
): Pick<AttachOptions, 'dhchap' | 'dhchapKeyNames'> {
  if (p.dhchap_key === undefined) {
    if (p.dhchap_ctrlr_key !== undefined)
      throw new RpcError(-22, 'dhchap_ctrlr_key requires dhchap_key to be set');
    return {};
  }
  const read = (name: string) => {
    try {
      return parseDhchapSecret(keyring().read(name));
    } catch (e) {
      // SPDK answers a key it cannot find with ENOKEY
      throw new RpcError(-126, `Failed to load DH-HMAC-CHAP key '${name}': ${(e as Error).message}`);
    }
  };
  const dhchap = dhchapHostConfig({
    dhchapSecret: read(p.dhchap_key),
    ...(p.dhchap_ctrlr_key !== undefined ? { dhchapCtrlrSecret: read(p.dhchap_ctrlr_key) } : {}),
    dhchapDigests: nvmeOptions.dhchap_digests,
    dhchapDhgroups: nvmeOptions.dhchap_dhgroups,
  });
  return {
    dhchap,
    dhchapKeyNames: {
      dhchap_key: p.dhchap_key,
      ...(p.dhchap_ctrlr_key !== undefined ? { dhchap_ctrlr_key: p.dhchap_ctrlr_key } : {}),
    },
  };
}

/**
 * The TLS PSK text of keyring key `name`, read now (its queues, in every realm, derive their
 * identities from it); refused when unknown, malformed or SHA-384 (Node's TLS binds PSKs to SHA-256).
 */
function pskText(name: string): string {
  let text: string;
  try {
    text = keyring().read(name);
    if (tlsPskHashOf(parsePskInterchange(text)) !== TlsPskHash.SHA256) {
      throw new RpcError(
        -95,
        `PSK '${name}' is a 48-byte (SHA-384) key: Node's TLS binds external PSKs to SHA-256 (TLS_AES_128_GCM_SHA256), use a 32-byte key`,
      );
    }
  } catch (e) {
    if (e instanceof NvmfTsError && !(e instanceof RpcError))
      throw new RpcError(-22, `PSK '${name}': ${e.message}`);
    throw e;
  }
  return text;
}

async function attach(p: AttachParams): Promise<string[]> {
  const trtype = p.trtype.toLowerCase();
  if (trtype !== 'tcp' && trtype !== 'rdma') {
    throw new RpcError(-22, `trtype ${p.trtype} is not supported (tcp, rdma)`);
  }
  const adrfam = (p.adrfam ?? 'ipv4').toLowerCase();
  if (adrfam !== 'ipv4' && adrfam !== 'ipv6') {
    throw new RpcError(-22, `adrfam ${p.adrfam} is not supported (ipv4, ipv6)`);
  }
  if (p.name === '') throw new RpcError(-22, 'name must not be empty');
  if (p.subnqn === undefined || p.subnqn === '') throw new RpcError(-22, 'subnqn is required for trtype tcp');
  if (p.subnqn === DISCOVERY_NQN) {
    throw new RpcError(-22, `subnqn ${p.subnqn} is a discovery subsystem: attach an NVM subsystem`);
  }
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
  rejectUnsupported(p, ['prchk_reftag', 'prchk_guard']);
  const dhchap = dhchapFromKeyring(p);
  const tlsKey = p.psk === undefined ? undefined : pskText(p.psk);
  const loss = p.ctrlr_loss_timeout_sec ?? nvmeOptions.ctrlr_loss_timeout_sec;
  const delay = p.reconnect_delay_sec ?? nvmeOptions.reconnect_delay_sec;
  const fastFail = p.fast_io_fail_timeout_sec ?? nvmeOptions.fast_io_fail_timeout_sec;
  const bad = checkResiliencyParams(loss, delay, fastFail);
  if (bad !== null) throw new RpcError(-22, `The parameters are invalid: ${bad}`);
  const multipath = mergeMultipathOpts(nvmeOptions.multipath, p.multipath_opts);
  if (typeof multipath === 'string') throw new RpcError(-22, `Invalid multipath_opts: ${multipath}`);
  // the host ID goes with the host NQN when the NQN names a UUID (as nvme-cli's defaults do);
  // a further path of a controller is the same host
  const first = getController(p.name)?.opts.trid;
  const hostnqn = p.hostnqn ?? first?.hostnqn ?? `nqn.2014-08.org.nvmexpress:uuid:${crypto.randomUUID()}`;
  const hostid =
    UUID_HOSTNQN.exec(hostnqn)?.[1] ??
    (first?.hostnqn === hostnqn ? first.hostid : undefined) ??
    crypto.randomUUID();
  const trid: TransportId = {
    ...(trtype === 'rdma' ? { trtype: 'rdma' as const } : {}),
    traddr: p.traddr,
    trsvcid,
    subnqn: p.subnqn,
    hostnqn,
    hostid,
    hdgst: p.hdgst === true,
    ddgst: p.ddgst === true,
    ...(tlsKey !== undefined ? { tlsKey } : {}),
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
    keepAliveTimeoutMs: nvmeOptions.keep_alive_timeout_ms,
    ...(p.psk !== undefined ? { pskName: p.psk } : {}),
    ...(p.multipath !== undefined ? { multipath: p.multipath as AttachOptions['multipath'] } : {}),
    multipathConfig: multipath,
    ...dhchap,
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
        help: 'Multipath behavior: disable, failover, multipath (failover and multipath add a path to an existing name)',
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
        help: 'Name of the keyring key with the TLS PSK (interchange format): connect over TLS 1.3',
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
        help: 'DH-HMAC-CHAP key name (keyring): the host secret, used when the controller asks for authentication',
        cli: { flags: ['--dhchap-key'] },
      },
      {
        name: 'dhchap_ctrlr_key',
        type: 'string',
        help: 'DH-HMAC-CHAP controller key name (keyring): the controller must prove itself with it',
        cli: { flags: ['--dhchap-ctrlr-key'] },
      },
      {
        name: 'allow_unrecognized_csi',
        type: 'boolean',
        help: 'Allow namespaces with unrecognized command sets (accepted, ignored)',
        cli: { flags: ['-U', '--allow-unrecognized-csi'], action: 'store_true' },
      },
      multipathOptsParam(
        "This controller's multipath policy (policy, selector, min_io; default: bdev_nvme_set_options')",
      ),
      {
        name: 'disable_sq_flow_control',
        type: 'boolean',
        help: 'Disable SQ flow control (accepted, ignored)',
        cli: { flags: ['--disable-sq-flow-control'], action: 'store_true' },
      },
      ...multipathCliParams,
    ],
    cliTransform: groupMultipathOpts,
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
        const matches = (r: NvmeCtrlr) => {
          const t = r.opts.trid;
          return !(
            (p.traddr !== undefined && p.traddr !== t.traddr) ||
            (p.trsvcid !== undefined && p.trsvcid !== t.trsvcid) ||
            (p.subnqn !== undefined && p.subnqn !== t.subnqn) ||
            (p.trtype !== undefined && p.trtype.toLowerCase() !== 'tcp')
          );
        };
        const filtered = p.traddr !== undefined || p.trsvcid !== undefined;
        // a filter naming a further path of a multipath controller: that path alone goes
        const path = filtered ? rec.paths.find(matches) : undefined;
        if (path !== undefined) {
          await rec.detachPath(path);
          return true;
        }
        if (!matches(rec)) {
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
      return recs.map((r) => ({ name: r!.name, ctrlrs: [r!, ...r!.paths].map((x) => x.infoJson()) }));
    },
  },
  {
    name: 'bdev_nvme_get_controller_health_info',
    summary: 'Display health log of the required NVMe controller (SMART / Health Information, log page 02h)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Name of the NVMe controller. Example: Nvme0',
        cli: { flags: ['-c', '--name'] },
      },
    ],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        const rec = getController(p.name);
        // SPDK's code and words for both
        if (rec === undefined) throw new RpcError(-32603, 'Device not found');
        // the first path whose admin queue is up (SPDK asks the first path, up or not)
        const path = rec.allPaths.find((x) => x.ctrlr !== null && !x.ctrlr.failed);
        if (path === undefined || path.ctrlr === null) throw new RpcError(-32603, 'Internal error.');
        const c = path.ctrlr;
        let page: Buffer;
        try {
          page = await c.getLogPage(LogPage.HEALTH, Buffer.alloc(HEALTH_LOG_SIZE));
        } catch {
          throw new RpcError(-32603, 'Internal error.');
        }
        const h = decodeHealthLog(page);
        const id = decodeIdentifyController(c.cdata ?? Buffer.alloc(IDENTIFY_SIZE));
        const info: Record<string, unknown> = {
          model_number: id.mn.trim(),
          serial_number: id.sn.trim(),
          firmware_revision: id.fr.trim(),
          traddr: path.opts.trid.traddr,
          critical_warning: h.critical_warning,
          // kelvin on the wire, less 273 as SPDK; a target reporting none (0 K) shows 0, not SPDK's wrapped negative
          temperature_celsius: Math.max(0, h.temperature - 273),
          available_spare_percentage: h.available_spare,
          available_spare_threshold_percentage: h.available_spare_threshold,
          percentage_used: h.percentage_used,
          data_units_read: h.data_units_read,
          data_units_written: h.data_units_written,
          host_read_commands: h.host_read_commands,
          host_write_commands: h.host_write_commands,
          controller_busy_time: h.controller_busy_time,
          power_cycles: h.power_cycles,
          power_on_hours: h.power_on_hours,
          unsafe_shutdowns: h.unsafe_shutdowns,
          media_errors: h.media_errors,
          num_err_log_entries: h.num_err_log_entries,
          warning_temperature_time_minutes: h.warning_temp_time,
          critical_composite_temperature_time_minutes: h.critical_comp_time,
        };
        // SPDK writes the key once per sensor that reads; a JSON object keeps the last
        const sensors = h.temperature_sensors.filter((k) => k !== 0);
        if (sensors.length > 0) info.temperature_sensor_celsius = (sensors.at(-1) as number) - 273;
        return info;
      }),
  },
  {
    name: 'bdev_nvme_set_options',
    summary: 'Set options for the bdev nvme type (before any controller is attached)',
    states: RpcState.STARTUP | RpcState.RUNTIME,
    params: [
      {
        name: 'action_on_timeout',
        type: 'string',
        enum: ['none', 'reset', 'abort'],
        help: 'Action on command timeout: none, reset, abort (accepted, ignored)',
        cli: { flags: ['-a', '--action-on-timeout'] },
      },
      {
        name: 'timeout_us',
        type: 'integer',
        min: 0,
        help: 'Timeout for each command, in microseconds (accepted, ignored)',
        cli: { flags: ['-t', '--timeout-us'], int: true },
      },
      {
        name: 'timeout_admin_us',
        type: 'integer',
        min: 0,
        help: 'Timeout for each admin command, in microseconds (accepted, ignored)',
        cli: { flags: ['--timeout-admin-us'], int: true },
      },
      {
        name: 'keep_alive_timeout_ms',
        type: 'integer',
        min: 0,
        help: 'Keep alive timeout in ms sent in Connect; an unanswered Keep Alive this long resets the controller; 0 disables',
        cli: { flags: ['-k', '--keep-alive-timeout-ms'], int: true },
      },
      {
        name: 'arbitration_burst',
        type: 'integer',
        min: 0,
        help: 'Arbitration burst (accepted, ignored)',
        cli: { flags: ['--arbitration-burst'], int: true },
      },
      {
        name: 'low_priority_weight',
        type: 'integer',
        min: 0,
        help: 'Low priority weight (accepted, ignored)',
        cli: { flags: ['--low-priority-weight'], int: true },
      },
      {
        name: 'medium_priority_weight',
        type: 'integer',
        min: 0,
        help: 'Medium priority weight (accepted, ignored)',
        cli: { flags: ['--medium-priority-weight'], int: true },
      },
      {
        name: 'high_priority_weight',
        type: 'integer',
        min: 0,
        help: 'High priority weight (accepted, ignored)',
        cli: { flags: ['--high-priority-weight'], int: true },
      },
      {
        name: 'nvme_adminq_poll_period_us',
        type: 'integer',
        min: 0,
        help: 'Admin queue poll period (accepted, ignored: completions are event driven)',
        cli: { flags: ['-p', '--nvme-adminq-poll-period-us'], int: true },
      },
      {
        name: 'nvme_ioq_poll_period_us',
        type: 'integer',
        min: 0,
        help: 'I/O queue poll period (accepted, ignored: completions are event driven)',
        cli: { flags: ['-i', '--nvme-ioq-poll-period-us'], int: true },
      },
      {
        name: 'io_queue_requests',
        type: 'integer',
        min: 0,
        help: 'Requests per I/O queue (accepted, ignored)',
        cli: { flags: ['-s', '--io-queue-requests'], int: true },
      },
      {
        name: 'delay_cmd_submit',
        type: 'boolean',
        help: 'Batch command submission (accepted; submissions are batched per tick anyway)',
        cli: { flags: ['-d', '--disable-delay-cmd-submit'], action: 'store_false' },
      },
      {
        name: 'transport_retry_count',
        type: 'integer',
        min: 0,
        help: 'Transport retry count (accepted, ignored)',
        cli: { flags: ['-c', '--transport-retry-count'], int: true },
      },
      {
        name: 'bdev_retry_count',
        type: 'integer',
        min: -1,
        help: 'bdev layer retry count (accepted, ignored: errors pass through)',
        cli: { flags: ['-r', '--bdev-retry-count'], int: true },
      },
      {
        name: 'transport_ack_timeout',
        type: 'integer',
        min: 0,
        max: 31,
        help: 'Transport ACK timeout, 2^n ms (accepted, ignored)',
        cli: { flags: ['-e', '--transport-ack-timeout'], int: true },
      },
      {
        name: 'ctrlr_loss_timeout_sec',
        type: 'integer',
        min: -1,
        help: 'Default ctrlr_loss_timeout_sec of bdev_nvme_attach_controller',
        cli: { flags: ['-l', '--ctrlr-loss-timeout-sec'], int: true },
      },
      {
        name: 'reconnect_delay_sec',
        type: 'integer',
        min: 0,
        help: 'Default reconnect_delay_sec of bdev_nvme_attach_controller',
        cli: { flags: ['-o', '--reconnect-delay-sec'], int: true },
      },
      {
        name: 'fast_io_fail_timeout_sec',
        type: 'integer',
        min: 0,
        help: 'Default fast_io_fail_timeout_sec of bdev_nvme_attach_controller',
        cli: { flags: ['-u', '--fast-io-fail-timeout-sec'], int: true },
      },
      {
        name: 'disable_auto_failback',
        type: 'boolean',
        help: 'Disable automatic failback: active_passive stays on the path it failed over to when an earlier path comes back (bdev_nvme_set_preferred_path fails back)',
        cli: { flags: ['-f', '--disable-auto-failback'], action: 'store_true' },
      },
      {
        name: 'generate_uuids',
        type: 'boolean',
        help: 'Generate UUIDs for namespaces without one (accepted, ignored)',
        cli: { flags: ['--generate-uuids'], action: 'store_true' },
      },
      {
        name: 'transport_tos',
        type: 'integer',
        min: 0,
        max: 255,
        help: 'IPv4 type of service (accepted, ignored)',
        cli: { flags: ['--transport-tos'], int: true },
      },
      {
        name: 'nvme_error_stat',
        type: 'boolean',
        help: 'Collect NVMe error counts (accepted, ignored)',
        cli: { flags: ['-m', '--nvme-error-stat'], action: 'store_true' },
      },
      {
        name: 'rdma_srq_size',
        type: 'integer',
        min: 0,
        help: 'RDMA only (accepted, ignored)',
        cli: { flags: ['-q', '--rdma-srq-size'], int: true },
      },
      {
        name: 'io_path_stat',
        type: 'boolean',
        help: "Count each path's I/O per namespace (bdev_nvme_get_path_iostat)",
        cli: { flags: ['--io-path-stat'], action: 'store_true' },
      },
      {
        name: 'allow_accel_sequence',
        type: 'boolean',
        help: 'Accel sequences (accepted, ignored)',
        cli: { flags: ['--allow-accel-sequence'], action: 'store_true' },
      },
      {
        name: 'rdma_max_cq_size',
        type: 'integer',
        min: 0,
        help: 'RDMA only (accepted, ignored)',
        cli: { flags: ['--rdma-max-cq-size'], int: true },
      },
      {
        name: 'rdma_cm_event_timeout_ms',
        type: 'integer',
        min: 0,
        help: 'RDMA only (accepted, ignored)',
        cli: { flags: ['--rdma-cm-event-timeout-ms'], int: true },
      },
      {
        name: 'dhchap_digests',
        type: 'array',
        help: 'DH-HMAC-CHAP digests an attach offers: sha256, sha384, sha512 (default all)',
        cli: { flags: ['--dhchap-digests'] },
        items: { name: 'item', type: 'string', help: 'a name' },
      },
      {
        name: 'dhchap_dhgroups',
        type: 'array',
        help: 'DH-HMAC-CHAP DH groups an attach offers: null, ffdhe2048 ... ffdhe8192 (default all)',
        cli: { flags: ['--dhchap-dhgroups'] },
        items: { name: 'item', type: 'string', help: 'a name' },
      },
      {
        name: 'rdma_umr_per_io',
        type: 'boolean',
        help: 'RDMA only (accepted, ignored)',
        cli: { flags: ['--rdma-umr-per-io'], action: 'store_true' },
      },
      {
        name: 'tcp_connect_timeout_ms',
        type: 'integer',
        min: 0,
        help: 'TCP connect timeout in ms (accepted, ignored: fabrics_connect_timeout_us of the attach applies)',
        cli: { flags: ['--tcp-connect-timeout-ms'], int: true },
      },
      {
        name: 'enable_flush',
        type: 'boolean',
        help: 'Pass flush to NVMe (accepted; flush always passes through)',
        cli: { flags: ['--enable-flush'], action: 'store_true' },
      },
      multipathOptsParam('The multipath policy of an attach that gives none (policy, selector, min_io)'),
      ...multipathCliParams,
    ],
    cliTransform: groupMultipathOpts,
    handler: (p: Record<string, unknown>) => {
      if (listControllers().length > 0) {
        throw new RpcError(-1, 'RPC not permitted with nvme controllers already attached');
      }
      const given = <K extends NvmeOptionName>(k: K): (typeof nvmeOptions)[K] =>
        (p[k] as (typeof nvmeOptions)[K] | undefined) ?? nvmeOptions[k];
      if (given('timeout_us') === 0 && given('timeout_admin_us') !== 0) {
        throw new RpcError(-22, "Invalid options: Can't have (timeout_us == 0) with (timeout_admin_us > 0)");
      }
      const loss = given('ctrlr_loss_timeout_sec');
      const delay = given('reconnect_delay_sec');
      const fastFail = given('fast_io_fail_timeout_sec');
      const bad = checkResiliencyParams(loss, delay, fastFail);
      if (bad !== null) throw new RpcError(-22, `The parameters are invalid: ${bad}`);
      const names = (v: unknown, known: string[], what: string): string[] | undefined => {
        if (!Array.isArray(v)) return undefined;
        const bad = v.map(String).find((n) => !known.includes(n));
        // SPDK: a name it does not know fails the decode
        if (bad !== undefined) throw new RpcError(-32602, `unknown DH-HMAC-CHAP ${what} '${bad}'`);
        return v.map(String);
      };
      const digests = names(p.dhchap_digests, DHCHAP_DIGEST_NAMES, 'digest');
      const dhgroups = names(p.dhchap_dhgroups, DHCHAP_DHGROUP_NAMES, 'DH group');
      const multipath = mergeMultipathOpts(nvmeOptions.multipath, p.multipath_opts as MultipathOptsParam);
      if (typeof multipath === 'string') throw new RpcError(-22, `Invalid multipath_opts: ${multipath}`);
      const o = nvmeOptions as Record<string, unknown>;
      for (const k of Object.keys(nvmeOptions)) {
        if (k !== 'multipath' && p[k] !== undefined) o[k] = p[k];
      }
      if (digests !== undefined) nvmeOptions.dhchap_digests = digests;
      if (dhgroups !== undefined) nvmeOptions.dhchap_dhgroups = dhgroups;
      nvmeOptions.multipath = multipath;
      return true;
    },
  },
  {
    name: 'bdev_nvme_set_hotplug',
    summary: 'Set hotplug options for bdev nvme type (PCIe only: accepted, nothing to watch)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'enable',
        type: 'boolean',
        required: true,
        help: 'Enable or disable hotplug',
        cli: { flags: ['--hotplug'], action: 'store_true' },
      },
      {
        name: 'period_us',
        type: 'integer',
        min: 0,
        help: 'How often the hotplug is processed for insert and remove events',
        cli: { flags: ['-r', '--period-us'], int: true },
      },
    ],
    handler: (p: { enable: boolean }) => {
      if (p.enable)
        throw new RpcError(-22, 'hotplug is for PCIe devices; nvmf-ts attaches fabrics controllers only');
      return true;
    },
  },
  {
    name: 'bdev_nvme_reset_controller',
    summary: 'Reset an NVMe controller: reconnect it (every realm reconnects its I/O queue)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Name of the NVMe controller',
        cli: { positional: true },
      },
      {
        name: 'cntlid',
        type: 'integer',
        min: 0,
        help: 'NVMe controller ID',
        cli: { flags: ['-c', '--cntlid'], int: true },
      },
    ],
    handler: (p: { name: string; cntlid?: number }) =>
      rpcCall(async () => {
        const rec = getController(p.name);
        if (rec === undefined) throw new RpcError(-19, `Controller ${p.name} does not exist`);
        const cur = rec.infoJson().cntlid;
        if (p.cntlid !== undefined && p.cntlid !== cur) {
          throw new RpcError(-19, `Controller ${p.name} has no controller with cntlid ${p.cntlid}`);
        }
        await rec.reset().catch(nvmeErr);
        return true;
      }),
  },
  {
    name: 'bdev_nvme_set_keys',
    summary: 'Set DH-HMAC-CHAP keys and force (re)authentication on all connected qpairs',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Name of the NVMe controller',
        cli: { positional: true },
      },
      {
        name: 'dhchap_key',
        type: 'string',
        help: 'DH-HMAC-CHAP key name (keyring; none: the controller stops authenticating)',
        cli: { flags: ['--dhchap-key'] },
      },
      {
        name: 'dhchap_ctrlr_key',
        type: 'string',
        help: 'DH-HMAC-CHAP controller key name (keyring; needs dhchap_key)',
        cli: { flags: ['--dhchap-ctrlr-key'] },
      },
    ],
    handler: (p: { name: string; dhchap_key?: string; dhchap_ctrlr_key?: string }) =>
      rpcCall(async () => {
        // the keys first, as SPDK looks them up before the controller
        const keys = dhchapFromKeyring(p);
        const rec = getController(p.name);
        if (rec === undefined) throw new RpcError(-19, `Could not find bdev_ctrlr ${p.name}`);
        await rec.setKeys(keys.dhchap ?? null, keys.dhchapKeyNames ?? {}).catch(nvmeErr);
        return true;
      }),
  },
  ...nvmeMultipathRpcMethods,
];
