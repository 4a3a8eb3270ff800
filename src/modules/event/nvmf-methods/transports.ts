// nvmf_* methods of the transports and the statistics of their poll groups
// (SPDK's nvmf_rpc.c: nvmf_create_transport, nvmf_get_transports, nvmf_get_stats).

import type { ConfigEntry } from '../../../event/subsystem.ts';
import { type ParamSpec, RpcError, type RpcMethod } from '../../../jsonrpc/index.ts';
import { getTarget } from '../../../nvmf/target.ts';
import { getTransport, type TransportOptions } from '../../../nvmf/transport.ts';
import { TICK_RATE } from '../../../thread/index.ts';
import { checkTgt, RUNTIME, run, tgtName, tgtNameG } from './common.ts';

const transportParams: ParamSpec[] = [
  {
    name: 'trtype',
    type: 'string',
    required: true,
    help: 'Transport type (TCP or RDMA)',
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
  {
    name: 'num_cqe',
    type: 'integer',
    min: 1,
    help: 'Number of CQ entries, only used when no_srq=true (RDMA only)',
    cli: { flags: ['-d', '--num-cqe'], int: true },
  },
  {
    name: 'max_srq_depth',
    type: 'integer',
    min: 1,
    help: 'Number of elements in the per-thread shared receive queue (RDMA only)',
    cli: { flags: ['-s', '--max-srq-depth'], int: true },
  },
  {
    name: 'acceptor_backlog',
    type: 'integer',
    min: 1,
    help: 'Pending connections allowed in the backlog before failing new connection attempts (RDMA only)',
    cli: { flags: ['-l', '--acceptor-backlog'], int: true },
  },
  { name: 'kas', type: 'integer', min: 0, help: 'Keep-alive granularity in 100 ms units (stored)' },
  { name: 'min_kato', type: 'integer', min: 0, help: 'Minimum keep-alive timeout in ms (stored)' },
  { name: 'disable_command_passthru', type: 'boolean', help: 'Disable command passthru (stored)' },
  // rpc.py always sends these RDMA/vfio-user switches (false by default); SPDK's TCP transport ignores them.
  ...(
    [
      [
        'no_srq',
        '-r',
        '--no-srq',
        'Disable shared receive queue even for devices that support it (RDMA only)',
      ],
      ['no_wr_batching', '-w', '--no-wr-batching', 'Disable work requests batching (RDMA only)'],
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
/** The RDMA transport's own options (SPDK's rdma_transport_opts); the TCP transport ignores them. */
const RDMA_ONLY_PARAMS = ['num_cqe', 'max_srq_depth', 'no_srq', 'acceptor_backlog', 'no_wr_batching'];
const VFIO_USER_PARAMS = ['disable_mappable_bar0', 'disable_adaptive_irq', 'disable_shadow_doorbells'];
/** The options the transport `trtype` does not take. */
function ignoredParams(trtype: string): Set<string> {
  return new Set(trtype === 'RDMA' ? VFIO_USER_PARAMS : [...RDMA_ONLY_PARAMS, ...VFIO_USER_PARAMS]);
}

export function transportConfigEntry(opts: TransportOptions): ConfigEntry {
  const o = opts as unknown as Record<string, unknown>;
  if (opts.trtype === 'RDMA') {
    // SPDK's common options, then the RDMA transport's own (its dump_opts)
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
        abort_timeout_sec: opts.abort_timeout_sec,
        ack_timeout: opts.ack_timeout,
        data_wr_pool_size: opts.data_wr_pool_size,
        max_srq_depth: opts.max_srq_depth,
        no_srq: opts.no_srq,
        ...(opts.no_srq === true ? { num_cqe: opts.num_cqe } : {}),
        acceptor_backlog: opts.acceptor_backlog,
        no_wr_batching: opts.no_wr_batching,
        ...(o.kas !== undefined ? { kas: o.kas } : {}),
        ...(o.min_kato !== undefined ? { min_kato: o.min_kato } : {}),
      },
    };
  }
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

export const transportMethods: RpcMethod[] = [
  {
    name: 'nvmf_create_transport',
    summary: 'Create an NVMe-oF transport (TCP, RDMA)',
    states: RUNTIME,
    params: transportParams,
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p);
        const plugin = getTransport(String(p.trtype));
        if (plugin === undefined)
          throw new RpcError(-22, `Transport type '${p.trtype}' is not supported (TCP, RDMA)`);
        if (p.dif_insert_or_strip === true) throw new RpcError(-22, 'dif_insert_or_strip is not supported');
        const opts = plugin.defaults() as TransportOptions & Record<string, unknown>;
        const ignored = ignoredParams(plugin.name);
        for (const spec of transportParams) {
          if (spec.name === 'tgt_name' || spec.name === 'trtype' || spec.name === 'max_qpairs_per_ctrlr')
            continue;
          if (ignored.has(spec.name)) continue;
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
];
