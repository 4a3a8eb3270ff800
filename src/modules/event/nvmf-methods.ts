// nvmf_* JSON-RPC methods: SPDK's names, parameters and result shapes
// (python/spdk/rpc/nvmf.py, doc/jsonrpc.md). All run on the app thread.

import type { ConfigEntry } from '../../event/subsystem.ts';
import { type ParamSpec, RpcError, type RpcMethod, RpcState } from '../../jsonrpc/index.ts';
import { SubsystemType } from '../../nvmf/subsystem.ts';
import { getTarget, NvmfError, type NvmfTarget } from '../../nvmf/target.ts';
import type { TransportAddress, TransportOptions } from '../../nvmf/transport.ts';
import { getTransport } from '../../nvmf/transport.ts';
import { TICK_RATE } from '../../thread/index.ts';
import { DISCOVERY_NQN } from '../../wire/discovery.ts';

const RUNTIME = RpcState.RUNTIME;
const ANY_STATE = RpcState.STARTUP | RpcState.RUNTIME;

async function run<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof RpcError) throw e;
    if (e instanceof NvmfError) throw new RpcError(e.errno, e.message);
    throw new RpcError(-32603, (e as Error)?.message ?? String(e));
  }
}

function invalid(msg: string): never {
  throw new RpcError(-32602, msg);
}

const tgtName: ParamSpec = {
  name: 'tgt_name',
  type: 'string',
  help: 'Parent NVMe-oF target name (only the default target exists)',
  cli: { flags: ['-t', '--tgt-name'] },
};
const tgtNameG: ParamSpec = { ...tgtName, cli: { flags: ['-g', '--tgt-name'] } };
const tgtNameP: ParamSpec = { ...tgtName, cli: { flags: ['-p', '--tgt-name'] } };
const nqnPos: ParamSpec = {
  name: 'nqn',
  type: 'string',
  required: true,
  help: 'Subsystem NQN',
  cli: { positional: true },
};

function checkTgt(p: { tgt_name?: string }): void {
  if (p.tgt_name !== undefined && p.tgt_name !== 'nvmf_tgt' && p.tgt_name !== '') {
    throw new RpcError(-19, `Unable to find a target named ${p.tgt_name}`);
  }
}

// --------------------------------------------------------------- addresses

const ADRFAMS = ['ipv4', 'ipv6', 'ib', 'fc', 'intra_host'];

function normAddress(a: unknown, what: string): TransportAddress {
  if (a === null || typeof a !== 'object')
    invalid(`${what}: an object with trtype, traddr, trsvcid is required`);
  const o = a as Record<string, unknown>;
  if (typeof o.trtype !== 'string' || o.trtype === '') invalid(`${what}.trtype is required`);
  if (typeof o.traddr !== 'string' || o.traddr === '') invalid(`${what}.traddr is required`);
  const trsvcid = o.trsvcid === undefined ? '' : String(o.trsvcid);
  if (o.trtype.toUpperCase() === 'TCP' && !/^\d+$/.test(trsvcid))
    invalid(`${what}.trsvcid must be a port number for TCP`);
  let adrfam =
    typeof o.adrfam === 'string' && o.adrfam !== '' ? o.adrfam : o.traddr.includes(':') ? 'IPv6' : 'IPv4';
  if (!ADRFAMS.includes(adrfam.toLowerCase()))
    invalid(`${what}.adrfam '${adrfam}' is not one of IPv4, IPv6, IB, FC`);
  adrfam =
    adrfam.toLowerCase() === 'ipv4'
      ? 'IPv4'
      : adrfam.toLowerCase() === 'ipv6'
        ? 'IPv6'
        : adrfam.toUpperCase();
  return { trtype: o.trtype.toUpperCase(), adrfam, traddr: o.traddr, trsvcid };
}

const addressFlatParams: ParamSpec[] = [
  {
    name: 'trtype',
    type: 'string',
    help: 'NVMe-oF transport type: e.g., tcp (CLI; sent inside the address object)',
    cli: { flags: ['-t', '--trtype'] },
  },
  {
    name: 'traddr',
    type: 'string',
    help: 'NVMe-oF transport address: e.g., an ip address (CLI)',
    cli: { flags: ['-a', '--traddr'] },
  },
  {
    name: 'adrfam',
    type: 'string',
    help: 'NVMe-oF transport adrfam: e.g., ipv4, ipv6 (CLI)',
    cli: { flags: ['-f', '--adrfam'] },
  },
  {
    name: 'trsvcid',
    type: 'string',
    help: 'NVMe-oF transport service id: e.g., a port number (CLI)',
    cli: { flags: ['-s', '--trsvcid'] },
  },
];

function addressFromCli(args: Record<string, unknown>, key: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const addr: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined) continue;
    if (k === 'trtype' || k === 'traddr' || k === 'adrfam' || k === 'trsvcid') addr[k] = v;
    else out[k] = v;
  }
  if (Object.keys(addr).length > 0) out[key] = addr;
  return out;
}

function addressOf(p: Record<string, unknown>, key: string): TransportAddress {
  if (p[key] !== undefined) return normAddress(p[key], key);
  return normAddress({ trtype: p.trtype, traddr: p.traddr, adrfam: p.adrfam, trsvcid: p.trsvcid }, key);
}

// --------------------------------------------------------------- transports

const transportParams: ParamSpec[] = [
  {
    name: 'trtype',
    type: 'string',
    required: true,
    help: 'Transport type (ex. TCP)',
    cli: { flags: ['-t', '--trtype'] },
  },
  tgtNameG,
  {
    name: 'max_queue_depth',
    type: 'integer',
    min: 1,
    max: 65535,
    help: 'Max number of outstanding I/O per queue',
    cli: { flags: ['-q', '--max-queue-depth'], int: true },
  },
  {
    name: 'max_qpairs_per_ctrlr',
    type: 'integer',
    min: 2,
    help: 'Deprecated: max qpairs per controller (admin included)',
    cli: { flags: ['-p', '--max-qpairs-per-ctrlr'], int: true },
  },
  {
    name: 'max_io_qpairs_per_ctrlr',
    type: 'integer',
    min: 1,
    max: 65535,
    help: 'Max number of I/O qpairs per controller',
    cli: { flags: ['-m', '--max-io-qpairs-per-ctrlr'], int: true },
  },
  {
    name: 'in_capsule_data_size',
    type: 'integer',
    min: 0,
    help: 'Max in-capsule data size (bytes)',
    cli: { flags: ['-c', '--in-capsule-data-size'], int: true },
  },
  {
    name: 'max_io_size',
    type: 'integer',
    min: 4096,
    help: 'Max I/O size (bytes)',
    cli: { flags: ['-i', '--max-io-size'], int: true },
  },
  {
    name: 'io_unit_size',
    type: 'integer',
    min: 512,
    help: 'I/O unit size (bytes)',
    cli: { flags: ['-u', '--io-unit-size'], int: true },
  },
  {
    name: 'max_aq_depth',
    type: 'integer',
    min: 2,
    max: 4096,
    help: 'Max number of admin commands per AQ',
    cli: { flags: ['-a', '--max-aq-depth'], int: true },
  },
  {
    name: 'num_shared_buffers',
    type: 'integer',
    min: 0,
    help: 'The number of pooled data buffers available to the transport',
    cli: { flags: ['-n', '--num-shared-buffers'], int: true },
  },
  {
    name: 'buf_cache_size',
    type: 'integer',
    min: 0,
    help: 'The number of shared buffers to reserve for each poll group',
    cli: { flags: ['-b', '--buf-cache-size'], int: true },
  },
  {
    name: 'zcopy',
    type: 'boolean',
    help: 'Use zero-copy operations if the underlying bdev supports them',
    cli: { flags: ['-z', '--zcopy'], action: 'store_true' },
  },
  {
    name: 'c2h_success',
    type: 'boolean',
    help: 'Enable C2H success optimization (TCP; CLI -o disables it)',
    cli: { flags: ['-o', '--c2h-success'], action: 'store_false' },
  },
  {
    name: 'dif_insert_or_strip',
    type: 'boolean',
    help: 'Enable DIF insert/strip (not supported: must be false)',
    cli: { flags: ['-f', '--dif-insert-or-strip'], action: 'store_true' },
  },
  {
    name: 'sock_priority',
    type: 'integer',
    min: 0,
    max: 6,
    help: 'The socket priority of the connection owned by this transport (TCP)',
    cli: { flags: ['-y', '--sock-priority'], int: true },
  },
  {
    name: 'abort_timeout_sec',
    type: 'integer',
    min: 0,
    help: 'Abort execution timeout value, in seconds',
    cli: { flags: ['-x', '--abort-timeout-sec'], int: true },
  },
  {
    name: 'ack_timeout',
    type: 'integer',
    min: 0,
    help: 'ACK timeout in milliseconds (RDMA only; stored)',
    cli: { flags: ['--ack-timeout'], int: true },
  },
  {
    name: 'data_wr_pool_size',
    type: 'integer',
    min: 0,
    help: 'Number of data WRs (RDMA only; stored)',
    cli: { flags: ['--data-wr-pool-size'], int: true },
  },
  {
    name: 'iobuf_small_cache_size',
    type: 'integer',
    min: 0,
    help: 'Per-poll-group small iobuf cache size (stored)',
  },
  {
    name: 'iobuf_large_cache_size',
    type: 'integer',
    min: 0,
    help: 'Per-poll-group large iobuf cache size (stored)',
  },
  { name: 'kas', type: 'integer', min: 0, help: 'Keep-alive granularity in 100 ms units (stored)' },
  { name: 'min_kato', type: 'integer', min: 0, help: 'Minimum keep-alive timeout in ms (stored)' },
  { name: 'disable_command_passthru', type: 'boolean', help: 'Disable command passthru (stored)' },
  // rpc.py always sends these RDMA/vfio-user switches (false by default); SPDK's TCP transport ignores them.
  ...(
    [
      ['no_srq', '-r', '--no-srq', 'Disable shared receive queue (RDMA only; ignored)'],
      ['no_wr_batching', '-w', '--no-wr-batching', 'Disable work requests batching (RDMA only; ignored)'],
      [
        'disable_mappable_bar0',
        '-M',
        '--disable-mappable-bar0',
        'Disable mmap of BAR0 (vfio-user only; ignored)',
      ],
      [
        'disable_adaptive_irq',
        '-I',
        '--disable-adaptive-irq',
        'Disable adaptive IRQ (vfio-user only; ignored)',
      ],
      [
        'disable_shadow_doorbells',
        '-S',
        '--disable-shadow-doorbells',
        'Disable shadow doorbells (vfio-user only; ignored)',
      ],
    ] as const
  ).map(
    ([name, short, long, help]): ParamSpec => ({
      name,
      type: 'boolean',
      help,
      cli: { flags: [short, long], action: 'store_true' },
    }),
  ),
];
const IGNORED_TRANSPORT_PARAMS = new Set([
  'no_srq',
  'no_wr_batching',
  'disable_mappable_bar0',
  'disable_adaptive_irq',
  'disable_shadow_doorbells',
]);

export function transportConfigEntry(opts: TransportOptions): ConfigEntry {
  const o = opts as unknown as Record<string, unknown>;
  return {
    method: 'nvmf_create_transport',
    params: {
      trtype: opts.trtype,
      max_queue_depth: opts.max_queue_depth,
      max_io_qpairs_per_ctrlr: opts.max_io_qpairs_per_ctrlr,
      in_capsule_data_size: opts.in_capsule_data_size,
      max_io_size: opts.max_io_size,
      io_unit_size: opts.io_unit_size,
      max_aq_depth: opts.max_aq_depth,
      num_shared_buffers: opts.num_shared_buffers,
      buf_cache_size: opts.buf_cache_size,
      dif_insert_or_strip: opts.dif_insert_or_strip,
      zcopy: opts.zcopy,
      c2h_success: opts.c2h_success,
      sock_priority: opts.sock_priority,
      abort_timeout_sec: opts.abort_timeout_sec,
      ack_timeout: opts.ack_timeout,
      data_wr_pool_size: opts.data_wr_pool_size,
      ...(o.kas !== undefined ? { kas: o.kas } : {}),
      ...(o.min_kato !== undefined ? { min_kato: o.min_kato } : {}),
    },
  };
}

function transportJson(opts: TransportOptions): Record<string, unknown> {
  const e = transportConfigEntry(opts).params as Record<string, unknown>;
  return { ...e, trtype: opts.trtype };
}

// --------------------------------------------------------------- subsystems

function subsystemJson(t: NvmfTarget, nqn: string): Record<string, unknown> {
  const s = t.getSubsystem(nqn);
  const base: Record<string, unknown> = {
    nqn: s.nqn,
    subtype: s.subtype,
    listen_addresses: s.listeners.map((l) => ({ ...l.address })),
    allow_any_host: s.allowAnyHost,
    hosts: [...s.hosts].map((h) => ({ nqn: h })),
  };
  if (s.subtype === SubsystemType.DISCOVERY) return base;
  return {
    ...base,
    serial_number: s.serial,
    model_number: s.model,
    max_namespaces: s.maxNamespaces,
    min_cntlid: s.minCntlid,
    max_cntlid: s.maxCntlid,
    namespaces: [...s.namespaces.values()].map((n) => ({
      nsid: n.nsid,
      bdev_name: n.bdevName,
      name: n.bdevName,
      nguid: n.nguid,
      uuid: n.uuid,
      ...(n.eui64 ? { eui64: n.eui64 } : {}),
      ...(s.anaReporting ? { anagrpid: n.anaGroupId } : {}),
    })),
  };
}

export function subsystemConfigEntries(t: NvmfTarget): ConfigEntry[] {
  const out: ConfigEntry[] = [];
  const listenerEntries: ConfigEntry[] = [];
  for (const s of t.subsystems.values()) {
    if (s.subtype === SubsystemType.NVME) {
      out.push({
        method: 'nvmf_create_subsystem',
        params: {
          nqn: s.nqn,
          allow_any_host: s.allowAnyHost,
          serial_number: s.serial,
          model_number: s.model,
          max_namespaces: s.maxNamespaces,
          min_cntlid: s.minCntlid,
          max_cntlid: s.maxCntlid,
          ana_reporting: s.anaReporting,
        },
      });
      for (const h of s.hosts)
        out.push({ method: 'nvmf_subsystem_add_host', params: { nqn: s.nqn, host: h } });
      for (const n of s.namespaces.values()) {
        out.push({
          method: 'nvmf_subsystem_add_ns',
          params: {
            nqn: s.nqn,
            namespace: {
              nsid: n.nsid,
              bdev_name: n.bdevName,
              nguid: n.nguid,
              uuid: n.uuid,
              ...(n.eui64 ? { eui64: n.eui64 } : {}),
              no_auto_visible: n.noAutoVisible,
            },
          },
        });
      }
    }
    for (const l of s.listeners) {
      listenerEntries.push({
        method: 'nvmf_subsystem_add_listener',
        params: { nqn: s.nqn, listen_address: { ...l.address }, secure_channel: l.secureChannel },
      });
    }
  }
  for (const r of t.referrals) {
    out.push({
      method: 'nvmf_discovery_add_referral',
      params: { address: { ...r.address }, subnqn: r.subnqn, secure_channel: r.secureChannel },
    });
  }
  // discovery listeners first (as SPDK writes them), then the subsystems'
  listenerEntries.sort(
    (a, b) => Number(b.params?.nqn === DISCOVERY_NQN) - Number(a.params?.nqn === DISCOVERY_NQN),
  );
  return [...out, ...listenerEntries];
}

const ANA_STATES = ['optimized', 'non_optimized', 'inaccessible', 'persistent_loss', 'change'] as const;

/** A method that names a subsystem (positional NQN, optional tgt_name) and runs one target operation on it. */
function subsystemOperation(
  name: string,
  summary: string,
  operation: (target: NvmfTarget, nqn: string) => Promise<void>,
): RpcMethod {
  return {
    name,
    summary,
    states: RUNTIME,
    params: [nqnPos, tgtName],
    handler: (p: { nqn: string; tgt_name?: string }) =>
      run(async () => {
        checkTgt(p);
        await operation(getTarget(), p.nqn);
        return true;
      }),
  };
}

// --------------------------------------------------------------- the table

export const nvmfRpcMethods: RpcMethod[] = [
  {
    name: 'nvmf_create_transport',
    summary: 'Create an NVMe-oF transport (TCP)',
    states: RUNTIME,
    params: transportParams,
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p);
        const plugin = getTransport(String(p.trtype));
        if (plugin === undefined)
          throw new RpcError(-22, `Transport type '${p.trtype}' is not supported (only TCP)`);
        if (p.dif_insert_or_strip === true) throw new RpcError(-22, 'dif_insert_or_strip is not supported');
        const opts = plugin.defaults() as TransportOptions & Record<string, unknown>;
        for (const spec of transportParams) {
          if (spec.name === 'tgt_name' || spec.name === 'trtype' || spec.name === 'max_qpairs_per_ctrlr')
            continue;
          if (IGNORED_TRANSPORT_PARAMS.has(spec.name)) continue;
          if (p[spec.name] !== undefined) opts[spec.name] = p[spec.name];
        }
        if (p.max_qpairs_per_ctrlr !== undefined && p.max_io_qpairs_per_ctrlr === undefined) {
          opts.max_io_qpairs_per_ctrlr = Number(p.max_qpairs_per_ctrlr) - 1;
        }
        opts.trtype = plugin.name;
        if (opts.io_unit_size > opts.max_io_size) opts.io_unit_size = opts.max_io_size;
        if (opts.in_capsule_data_size % 16 !== 0)
          throw new RpcError(-22, 'in_capsule_data_size must be a multiple of 16');
        await getTarget().createTransport(opts);
        return true;
      }),
  },
  {
    name: 'nvmf_get_transports',
    summary: 'Display NVMe-oF transports and their options',
    states: RUNTIME,
    params: [
      {
        name: 'trtype',
        type: 'string',
        help: 'Transport type (optional filter)',
        cli: { flags: ['--trtype'] },
      },
      { ...tgtName, cli: { flags: ['-t', '--tgt-name'] } },
    ],
    handler: (p: { trtype?: string; tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        const list = [...getTarget().transports.values()].filter(
          (o) => p.trtype === undefined || o.trtype.toUpperCase() === p.trtype.toUpperCase(),
        );
        if (p.trtype !== undefined && list.length === 0)
          throw new RpcError(-19, `Transport type '${p.trtype}' not found`);
        return list.map(transportJson);
      }),
  },
  {
    name: 'nvmf_create_subsystem',
    summary: 'Create an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      tgtName,
      {
        name: 'serial_number',
        type: 'string',
        help: 'Format: "sn" etc. (default 00000000000000000000)',
        cli: { flags: ['-s', '--serial-number'] },
      },
      {
        name: 'model_number',
        type: 'string',
        help: 'Model number (default "SPDK bdev Controller")',
        cli: { flags: ['-d', '--model-number'] },
      },
      {
        name: 'allow_any_host',
        type: 'boolean',
        help: 'Allow any host to connect (no host NQN check)',
        cli: { flags: ['-a', '--allow-any-host'], action: 'store_true' },
      },
      {
        name: 'max_namespaces',
        type: 'integer',
        min: 0,
        max: 1024,
        help: 'Maximum number of namespaces allowed (default 32)',
        cli: { flags: ['-m', '--max-namespaces'], int: true },
      },
      {
        name: 'ana_reporting',
        type: 'boolean',
        help: 'Enable ANA reporting feature',
        cli: { flags: ['-r', '--ana-reporting'], action: 'store_true' },
      },
      {
        name: 'min_cntlid',
        type: 'integer',
        min: 1,
        max: 0xffef,
        help: 'Minimum controller ID (default 1)',
        cli: { flags: ['-i', '--min-cntlid'], int: true },
      },
      {
        name: 'max_cntlid',
        type: 'integer',
        min: 1,
        max: 0xffef,
        help: 'Maximum controller ID (default 0xffef)',
        cli: { flags: ['-I', '--max-cntlid'], int: true },
      },
      { name: 'max_discard_size_kib', type: 'integer', min: 0, help: 'Maximum discard size in KiB (stored)' },
      {
        name: 'max_write_zeroes_size_kib',
        type: 'integer',
        min: 0,
        help: 'Maximum write zeroes size in KiB (stored)',
      },
      { name: 'passthrough', type: 'boolean', help: 'Passthrough identify (not supported; must be false)' },
      { name: 'enable_nssr', type: 'boolean', help: 'NVM subsystem reset (not supported; must be false)' },
    ],
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        if (p.passthrough === true || p.enable_nssr === true)
          throw new RpcError(-22, 'passthrough and enable_nssr are not supported');
        const maxNs =
          p.max_namespaces === undefined || p.max_namespaces === 0 ? 32 : Number(p.max_namespaces);
        await getTarget().createSubsystem({
          nqn: String(p.nqn),
          serial: p.serial_number === undefined ? '00000000000000000000' : String(p.serial_number),
          model: p.model_number === undefined ? 'SPDK bdev Controller' : String(p.model_number),
          allowAnyHost: p.allow_any_host === true,
          maxNamespaces: maxNs,
          minCntlid: p.min_cntlid === undefined ? 1 : Number(p.min_cntlid),
          maxCntlid: p.max_cntlid === undefined ? 0xffef : Number(p.max_cntlid),
          anaReporting: p.ana_reporting === true,
        });
        return true;
      }),
  },
  subsystemOperation('nvmf_delete_subsystem', 'Delete an NVMe-oF subsystem', (t, nqn) =>
    t.deleteSubsystem(nqn),
  ),
  subsystemOperation(
    'nvmf_subsystem_pause',
    'Pause an NVMe-oF subsystem: new I/O waits until resume, I/O in flight drains before the call returns, admin commands go on',
    (t, nqn) => t.pauseSubsystem(nqn),
  ),
  subsystemOperation(
    'nvmf_subsystem_resume',
    'Resume a paused NVMe-oF subsystem: the I/O that waited runs, in arrival order',
    (t, nqn) => t.resumeSubsystem(nqn),
  ),
  {
    name: 'nvmf_get_subsystems',
    summary: 'Display NVMe-oF subsystems',
    states: RUNTIME,
    params: [
      { name: 'nqn', type: 'string', help: 'Subsystem NQN (optional filter)', cli: { positional: true } },
      { ...tgtName, cli: { flags: ['-t', '--tgt-name'] } },
    ],
    handler: (p: { nqn?: string; tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        const t = getTarget();
        if (p.nqn !== undefined) return [subsystemJson(t, p.nqn)];
        return [...t.subsystems.keys()].map((n) => subsystemJson(t, n));
      }),
  },
  {
    name: 'nvmf_subsystem_add_listener',
    summary: 'Add a listener to an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      { name: 'listen_address', type: 'object', help: 'Listen address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      tgtNameP,
      {
        name: 'ana_state',
        type: 'string',
        enum: ANA_STATES,
        help: 'ANA state of the listener (default optimized)',
        cli: { flags: ['-n', '--ana-state'] },
      },
      {
        name: 'secure_channel',
        type: 'boolean',
        help: 'Require a secure channel (TLS; not supported)',
        cli: { flags: ['-k', '--secure-channel'], action: 'store_true' },
      },
      { name: 'sock_impl', type: 'string', help: 'Socket implementation (posix only)' },
    ],
    cliTransform: (a) => addressFromCli(a, 'listen_address'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        if (p.secure_channel === true) throw new RpcError(-22, 'secure_channel (TLS) is not supported');
        const addr = addressOf(p, 'listen_address');
        await getTarget().addListener(String(p.nqn), addr, (p.ana_state as string) ?? 'optimized', false);
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_remove_listener',
    summary: 'Remove a listener from an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      { name: 'listen_address', type: 'object', help: 'Listen address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      tgtNameP,
    ],
    cliTransform: (a) => addressFromCli(a, 'listen_address'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        await getTarget().removeListener(String(p.nqn), addressOf(p, 'listen_address'));
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_get_listeners',
    summary: 'Display the listeners of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [nqnPos, tgtName],
    handler: (p: { nqn: string; tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        const s = getTarget().getSubsystem(p.nqn);
        return s.listeners.map((l) => ({
          address: { ...l.address },
          ana_state: l.anaState,
          ...(s.anaReporting
            ? {
                ana_states: [...s.namespaces.values()].map((n) => ({
                  ana_group: n.anaGroupId,
                  ana_state: l.anaState,
                })),
              }
            : {}),
        }));
      }),
  },
  {
    name: 'nvmf_subsystem_listener_set_ana_state',
    summary: 'Set the ANA state of a listener',
    states: RUNTIME,
    params: [
      nqnPos,
      { name: 'listen_address', type: 'object', help: 'Listen address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      {
        name: 'ana_state',
        type: 'string',
        required: true,
        enum: ANA_STATES,
        help: 'ANA state',
        cli: { flags: ['-n', '--ana-state'] },
      },
      {
        name: 'anagrpid',
        type: 'integer',
        min: 1,
        help: 'ANA group ID (default: all groups)',
        cli: { flags: ['-g', '--anagrpid'], int: true },
      },
      tgtNameP,
    ],
    cliTransform: (a) => addressFromCli(a, 'listen_address'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        await getTarget().setAnaState(String(p.nqn), addressOf(p, 'listen_address'), String(p.ana_state));
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_add_ns',
    summary: 'Add a namespace to an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      {
        name: 'namespace',
        type: 'object',
        help: 'Namespace: {bdev_name, nsid, nguid, eui64, uuid, anagrpid, no_auto_visible}',
      },
      {
        name: 'bdev_name',
        type: 'string',
        help: 'The name of the bdev that will back this namespace (CLI)',
        cli: { positional: true },
      },
      {
        name: 'nsid',
        type: 'integer',
        min: 0,
        help: 'The requested NSID (optional, CLI)',
        cli: { flags: ['-n', '--nsid'], int: true },
      },
      {
        name: 'nguid',
        type: 'string',
        help: 'Namespace globally unique identifier (optional, CLI)',
        cli: { flags: ['-g', '--nguid'] },
      },
      {
        name: 'eui64',
        type: 'string',
        help: 'Namespace EUI-64 identifier (optional, CLI)',
        cli: { flags: ['-e', '--eui64'] },
      },
      {
        name: 'uuid',
        type: 'string',
        help: 'Namespace UUID (optional, CLI)',
        cli: { flags: ['-u', '--uuid'] },
      },
      {
        name: 'anagrpid',
        type: 'integer',
        min: 1,
        help: 'ANA group ID (optional, CLI)',
        cli: { flags: ['-a', '--anagrpid'], int: true },
      },
      {
        name: 'no_auto_visible',
        type: 'boolean',
        help: 'Do not auto make namespace visible to controllers (CLI)',
        cli: { flags: ['-i', '--no-auto-visible'], action: 'store_true' },
      },
      tgtName,
    ],
    cliTransform: (a) => {
      const out: Record<string, unknown> = {};
      const ns: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(a)) {
        if (v === undefined) continue;
        if (['bdev_name', 'nsid', 'nguid', 'eui64', 'uuid', 'anagrpid', 'no_auto_visible'].includes(k))
          ns[k] = v;
        else out[k] = v;
      }
      out.namespace = ns;
      return out;
    },
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        const ns = (p.namespace ?? p) as Record<string, unknown>;
        if (typeof ns.bdev_name !== 'string' || ns.bdev_name === '')
          invalid('namespace.bdev_name is required');
        // the namespace object is free-form (rpc.py flattens it too): check its numbers here
        for (const k of ['nsid', 'anagrpid']) {
          const v = ns[k];
          if (v !== undefined && (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 0xfffffffe))
            invalid(`namespace.${k} ${JSON.stringify(v)} is not an integer in 0..4294967294`);
        }
        if (ns.no_auto_visible !== undefined && typeof ns.no_auto_visible !== 'boolean')
          invalid('namespace.no_auto_visible must be a boolean');
        if (ns.uuid !== undefined && !/^[0-9a-fA-F-]{36}$/.test(String(ns.uuid)))
          invalid(`namespace.uuid '${ns.uuid}' is not a UUID`);
        if (ns.nguid !== undefined && !/^[0-9a-fA-F]{32}$/.test(String(ns.nguid).replace(/-/g, '')))
          invalid(`namespace.nguid '${ns.nguid}' is not 16 bytes of hex`);
        if (ns.eui64 !== undefined && !/^[0-9a-fA-F]{16}$/.test(String(ns.eui64).replace(/-/g, '')))
          invalid(`namespace.eui64 '${ns.eui64}' is not 8 bytes of hex`);
        return getTarget().addNamespace(String(p.nqn), {
          bdevName: ns.bdev_name,
          nsid: ns.nsid === undefined ? undefined : Number(ns.nsid),
          uuid: ns.uuid === undefined ? undefined : String(ns.uuid).toLowerCase(),
          nguid: ns.nguid === undefined ? undefined : String(ns.nguid),
          eui64: ns.eui64 === undefined ? undefined : String(ns.eui64).replace(/-/g, '').toUpperCase(),
          anaGroupId: ns.anagrpid === undefined ? undefined : Number(ns.anagrpid),
          noAutoVisible: ns.no_auto_visible === true,
        });
      }),
  },
  {
    name: 'nvmf_subsystem_remove_ns',
    summary: 'Remove a namespace from an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      {
        name: 'nsid',
        type: 'integer',
        required: true,
        min: 1,
        help: 'The requested NSID',
        cli: { positional: true, int: true },
      },
      tgtName,
    ],
    handler: (p: { nqn: string; nsid: number; tgt_name?: string }) =>
      run(async () => {
        checkTgt(p);
        await getTarget().removeNamespace(p.nqn, p.nsid);
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_add_host',
    summary: 'Add a host to the allowed list of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      { name: 'host', type: 'string', required: true, help: 'Host NQN to allow', cli: { positional: true } },
      tgtName,
      { name: 'psk', type: 'string', help: 'PSK for TLS (not supported)' },
      { name: 'dhchap_key', type: 'string', help: 'DH-HMAC-CHAP key (not supported)' },
      { name: 'dhchap_ctrlr_key', type: 'string', help: 'DH-HMAC-CHAP controller key (not supported)' },
    ],
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        if (p.psk !== undefined || p.dhchap_key !== undefined || p.dhchap_ctrlr_key !== undefined) {
          throw new RpcError(-22, 'TLS PSK and DH-HMAC-CHAP keys are not supported');
        }
        await getTarget().addHost(String(p.nqn), String(p.host));
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_remove_host',
    summary: 'Remove a host from the allowed list of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      { name: 'host', type: 'string', required: true, help: 'Host NQN to remove', cli: { positional: true } },
      tgtName,
    ],
    handler: (p: { nqn: string; host: string; tgt_name?: string }) =>
      run(async () => {
        checkTgt(p);
        await getTarget().removeHost(p.nqn, p.host);
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_allow_any_host',
    summary: 'Allow any host to connect to the NVMe-oF subsystem, or only the listed ones',
    states: RUNTIME,
    params: [
      nqnPos,
      {
        name: 'allow_any_host',
        type: 'boolean',
        help: 'Allow any host (true) or only the listed hosts (false)',
      },
      {
        name: 'enable',
        type: 'boolean',
        help: 'CLI: allow any host',
        cli: { flags: ['-e', '--enable'], action: 'store_true' },
      },
      {
        name: 'disable',
        type: 'boolean',
        help: 'CLI: allow only the listed hosts',
        cli: { flags: ['-d', '--disable'], action: 'store_true' },
      },
      tgtName,
    ],
    cliTransform: (a) => {
      const { enable, disable, ...rest } = a;
      if (enable === true && disable === true) throw new Error('-e and -d are mutually exclusive');
      return { ...rest, allow_any_host: disable !== true };
    },
    handler: (p: {
      nqn: string;
      allow_any_host?: boolean;
      enable?: boolean;
      disable?: boolean;
      tgt_name?: string;
    }) =>
      run(async () => {
        checkTgt(p);
        const allow = p.allow_any_host ?? (p.disable === true ? false : p.enable === true ? true : undefined);
        if (allow === undefined) invalid('allow_any_host is required');
        await getTarget().allowAnyHost(p.nqn, allow);
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_get_controllers',
    summary: 'Display the controllers of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [nqnPos, tgtName],
    handler: (p: { nqn: string; tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        const t = getTarget();
        t.getSubsystem(p.nqn);
        return [...t.ctrlrs.values()]
          .filter((c) => c.subnqn === p.nqn)
          .map((c) => ({
            cntlid: c.cntlid,
            hostnqn: c.hostnqn,
            hostid: formatHostid(c.hostid),
            num_io_qpairs: c.ioQueues.size,
          }));
      }),
  },
  {
    name: 'nvmf_subsystem_get_qpairs',
    summary: 'Display the queue pairs of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [nqnPos, tgtName],
    handler: (p: { nqn: string; tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        return getTarget().qpairs(p.nqn);
      }),
  },
  {
    name: 'nvmf_get_stats',
    summary: 'Display current statistics of the NVMe-oF target (per poll group)',
    states: RUNTIME,
    params: [{ ...tgtName, cli: { flags: ['-t', '--tgt-name'] } }],
    handler: (p: { tgt_name?: string }) =>
      run(async () => {
        checkTgt(p);
        const groups = await getTarget().stats();
        return { tick_rate: TICK_RATE, poll_groups: groups };
      }),
  },
  {
    name: 'nvmf_set_config',
    summary: 'Set the NVMe-oF target configuration',
    states: ANY_STATE,
    params: [
      {
        name: 'discovery_filter',
        type: 'string',
        help: 'Discovery log filter: match_any or a combination of transport, address, svcid (e.g. "transport,address")',
        cli: { flags: ['-d', '--discovery-filter'] },
      },
      {
        name: 'admin_cmd_passthru',
        type: 'object',
        help: 'Admin command passthru flags (stored; passthru not supported)',
      },
      {
        name: 'poll_groups_mask',
        type: 'string',
        help: 'CPU mask of poll groups (stored)',
        cli: { flags: ['-m', '--poll-groups-mask'] },
      },
      { name: 'dhchap_digests', type: 'array', help: 'DH-HMAC-CHAP digests (stored)' },
      { name: 'dhchap_dhgroups', type: 'array', help: 'DH-HMAC-CHAP DH groups (stored)' },
      { name: 'dup_host_policy', type: 'string', help: 'Duplicate host policy (stored)' },
    ],
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        const t = getTarget();
        if (p.discovery_filter !== undefined) {
          const f = String(p.discovery_filter);
          const ok =
            f === 'match_any' || f.split(',').every((x) => ['transport', 'address', 'svcid'].includes(x));
          if (!ok) throw new RpcError(-22, `invalid discovery_filter '${f}'`);
          await t.setDiscoveryFilter(f);
        }
        if (p.admin_cmd_passthru !== undefined)
          Object.assign(t.config.admin_cmd_passthru, p.admin_cmd_passthru);
        if (Array.isArray(p.dhchap_digests)) t.config.dhchap_digests = p.dhchap_digests.map(String);
        if (Array.isArray(p.dhchap_dhgroups)) t.config.dhchap_dhgroups = p.dhchap_dhgroups.map(String);
        if (p.dup_host_policy !== undefined) t.config.dup_host_policy = String(p.dup_host_policy);
        return true;
      }),
  },
  {
    name: 'nvmf_set_max_subsystems',
    summary: 'Set the maximum number of NVMe-oF subsystems',
    states: ANY_STATE,
    params: [
      {
        name: 'max_subsystems',
        type: 'integer',
        required: true,
        min: 1,
        help: 'Maximum number of subsystems',
        cli: { positional: true, int: true },
      },
    ],
    handler: (p: { max_subsystems: number }) =>
      run(() => {
        getTarget().maxSubsystems = p.max_subsystems;
        return true;
      }),
  },
  {
    name: 'nvmf_set_crdt',
    summary: 'Set the command retry delay times',
    states: ANY_STATE,
    params: [
      {
        name: 'crdt1',
        type: 'integer',
        min: 0,
        max: 65535,
        help: 'Command Retry Delay Time 1 (100 ms units)',
        cli: { flags: ['-t1', '--crdt1'], int: true },
      },
      {
        name: 'crdt2',
        type: 'integer',
        min: 0,
        max: 65535,
        help: 'Command Retry Delay Time 2',
        cli: { flags: ['-t2', '--crdt2'], int: true },
      },
      {
        name: 'crdt3',
        type: 'integer',
        min: 0,
        max: 65535,
        help: 'Command Retry Delay Time 3',
        cli: { flags: ['-t3', '--crdt3'], int: true },
      },
    ],
    handler: (p: { crdt1?: number; crdt2?: number; crdt3?: number }) =>
      run(() => {
        const t = getTarget();
        t.crdt = [p.crdt1 ?? t.crdt[0], p.crdt2 ?? t.crdt[1], p.crdt3 ?? t.crdt[2]];
        return true;
      }),
  },
  {
    name: 'nvmf_discovery_add_referral',
    summary: 'Add a discovery service referral',
    states: RUNTIME,
    params: [
      { name: 'address', type: 'object', help: 'Referral address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      {
        name: 'subnqn',
        type: 'string',
        help: 'Subsystem NQN (default: the discovery NQN)',
        cli: { flags: ['-n', '--subnqn'] },
      },
      {
        name: 'secure_channel',
        type: 'boolean',
        help: 'The referral requires a secure channel',
        cli: { flags: ['-k', '--secure-channel'], action: 'store_true' },
      },
      tgtNameP,
    ],
    cliTransform: (a) => addressFromCli(a, 'address'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        const address = addressOf(p, 'address');
        await getTarget().addReferral({
          address,
          subnqn: p.subnqn === undefined ? DISCOVERY_NQN : String(p.subnqn),
          secureChannel: p.secure_channel === true,
        });
        return true;
      }),
  },
  {
    name: 'nvmf_discovery_remove_referral',
    summary: 'Remove a discovery service referral',
    states: RUNTIME,
    params: [
      { name: 'address', type: 'object', help: 'Referral address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      {
        name: 'subnqn',
        type: 'string',
        help: 'Subsystem NQN (default: the discovery NQN)',
        cli: { flags: ['-n', '--subnqn'] },
      },
      tgtNameP,
    ],
    cliTransform: (a) => addressFromCli(a, 'address'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        await getTarget().removeReferral(
          addressOf(p, 'address'),
          p.subnqn === undefined ? DISCOVERY_NQN : String(p.subnqn),
        );
        return true;
      }),
  },
  {
    name: 'nvmf_discovery_get_referrals',
    summary: 'Display discovery service referrals',
    states: RUNTIME,
    params: [{ ...tgtName, cli: { flags: ['-t', '--tgt-name'] } }],
    handler: (p: { tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        return getTarget().referrals.map((r) => ({
          address: { ...r.address },
          secure_channel: r.secureChannel,
          subnqn: r.subnqn,
        }));
      }),
  },
];

function formatHostid(hex: string): string {
  if (hex.length !== 32) return hex;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
