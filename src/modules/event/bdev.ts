// The `bdev` framework subsystem: registers the bdev modules in every realm,
// gives the bdev layer one control thread per reactor, owns the generic bdev
// RPCs (bdev_get_bdevs, iostat, histogram, QoS, options) and writes the bdev
// section of save_config (options, then each bdev's create call, bases first).

import {
  type Bdev,
  BdevIoStats,
  type BdevRecord,
  bdevCollectStats,
  bdevGetRecord,
  bdevGetReplica,
  bdevListRecords,
  bdevSetHistogram,
  bdevSetQos,
  bdevSetRealmThreads,
  HISTOGRAM_BUCKETS,
  iostatJson,
  ioTypeNames,
  type QosLimits,
  setBdevIoPoolSize,
  TICK_RATE,
} from '../../bdev/index.ts';
import { bdevUnregister, getBdevModule, registerBdevModule } from '../../bdev/module.ts';
import type { FrameworkSubsystem } from '../../event/subsystem.ts';
import { RpcError, type RpcMethod, RpcState } from '../../jsonrpc/index.ts';
import { spawnThread, type ThreadRef } from '../../thread/index.ts';
import { InvalidArgumentError } from '../../util/errors.ts';
import { type BdevModuleEntry, bdevModuleTable } from '../bdev/index.ts';
import { rpcCall } from '../bdev/rpc-util.ts';

// ---- options (bdev_set_options) ----
const options = {
  bdev_io_pool_size: 65535,
  bdev_io_cache_size: 256,
  bdev_auto_examine: true,
  iobuf_small_cache_size: 128,
  iobuf_large_cache_size: 16,
};

/**
 * Modules from NVMF_TS_BDEV_MODULES (comma-separated file paths), loaded in every realm.
 * A file that does not load is not thrown here (this runs while the app's modules are
 * imported, where a throw ends the process with a stack trace): the reason is kept and
 * the bdev subsystem's realmInit refuses to start with it, in one line.
 */
async function loadExternalModules(): Promise<{ entries: BdevModuleEntry[]; error: Error | null }> {
  const list = (process.env.NVMF_TS_BDEV_MODULES ?? '').split(',').filter((s) => s.trim() !== '');
  const entries: BdevModuleEntry[] = [];
  const { pathToFileURL } = await import('node:url');
  const { resolve } = await import('node:path');
  for (const file of list) {
    const path = resolve(file.trim());
    let mod: { bdevModuleEntry?: BdevModuleEntry };
    try {
      mod = (await import(pathToFileURL(path).href)) as typeof mod;
    } catch (e) {
      const why =
        (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND'
          ? 'no such file'
          : (e as Error).message.split('\n')[0];
      return {
        entries,
        error: new InvalidArgumentError(`NVMF_TS_BDEV_MODULES: ${path} does not load: ${why}`),
      };
    }
    if (mod.bdevModuleEntry === undefined)
      return {
        entries,
        error: new InvalidArgumentError(`NVMF_TS_BDEV_MODULES: ${path} does not export bdevModuleEntry`),
      };
    entries.push(mod.bdevModuleEntry);
  }
  return { entries, error: null };
}

// Loaded when this module is evaluated (every realm, and the nvmf-rpc CLI, which then knows
// their methods too); registered explicitly by realmInit below.
const external = await loadExternalModules();
const externalEntries: BdevModuleEntry[] = external.entries;

// ---- bdev_get_bdevs ----
const ALL_IO_TYPE_NAMES = [
  'read',
  'write',
  'unmap',
  'flush',
  'reset',
  'nvme_admin',
  'nvme_io',
  'nvme_io_md',
  'write_zeroes',
  'zcopy',
  'get_zone_info',
  'zone_management',
  'zone_append',
  'compare',
  'compare_and_write',
  'abort',
  'seek_hole',
  'seek_data',
  'copy',
  'nvme_iov_md',
  'nvme_nssr',
  'write_uncorrectable',
];

function supportedIoTypes(bdev: Bdev | undefined): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const n of ALL_IO_TYPE_NAMES) out[n] = false;
  if (bdev === undefined) return out;
  for (const [t, n] of Object.entries(ioTypeNames)) out[n] = bdev.supportsIo(Number(t) as never);
  return out;
}

export function bdevInfoJson(rec: BdevRecord): Record<string, unknown> {
  const d = rec.desc;
  const replica = bdevGetReplica(d.name);
  const q = rec.qos?.limits;
  return {
    name: d.name,
    aliases: d.aliases,
    product_name: d.productName,
    block_size: d.blockSize,
    num_blocks: d.numBlocks,
    preferred_write_alignment: 0,
    preferred_write_granularity: 0,
    optimal_write_size: 0,
    preferred_unmap_alignment: 0,
    preferred_unmap_granularity: 0,
    uuid: d.uuid,
    assigned_rate_limits: {
      rw_ios_per_sec: q?.rw_ios_per_sec ?? 0,
      rw_mbytes_per_sec: q?.rw_mbytes_per_sec ?? 0,
      r_mbytes_per_sec: q?.r_mbytes_per_sec ?? 0,
      w_mbytes_per_sec: q?.w_mbytes_per_sec ?? 0,
    },
    claimed: rec.claimedBy !== null,
    ...(rec.claimedBy !== null ? { claim_type: 'exclusive_write' } : {}),
    zoned: false,
    supported_io_types: supportedIoTypes(replica),
    driver_specific: replica?.backend.dumpInfo?.() ?? {},
  };
}

function findRecord(name: string): BdevRecord {
  const rec = bdevGetRecord(name);
  if (rec === undefined) throw new RpcError(-19, `bdev ${name} does not exist`);
  return rec;
}

function sumStats(snaps: Awaited<ReturnType<typeof bdevCollectStats>>): BdevIoStats {
  const s = new BdevIoStats();
  for (const x of snaps) s.add(x);
  return s;
}

const ticks = () => performance.now() * 1e6;

const rpcMethods: RpcMethod[] = [
  {
    name: 'bdev_get_bdevs',
    summary: 'Display current blockdev list or required blockdev',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        help: 'Name of the Blockdev. Example: Nvme0n1',
        cli: { flags: ['-b', '--name'] },
      },
      {
        name: 'timeout',
        type: 'integer',
        min: 0,
        help: 'Time in ms to wait for the bdev to appear (with name)',
        cli: { flags: ['-t', '--timeout-ms'], int: true },
      },
    ],
    handler: async (p: { name?: string; timeout?: number }) => {
      if (p.name === undefined) return bdevListRecords().map(bdevInfoJson);
      const until = Date.now() + (p.timeout ?? 0);
      for (;;) {
        const rec = bdevGetRecord(p.name);
        if (rec !== undefined) return [bdevInfoJson(rec)];
        if (Date.now() >= until) throw new RpcError(-19, `bdev ${p.name} does not exist`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  },
  {
    name: 'bdev_get_iostat',
    summary: 'Display current I/O statistics of all the blockdevs or specified blockdev',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', help: 'Name of the Blockdev', cli: { flags: ['-b', '--name'] } },
      { name: 'names', type: 'array', help: 'Bdev names (list)' },
      {
        name: 'per_channel',
        type: 'boolean',
        help: 'Display per channel IO stats for specified device',
        cli: { flags: ['-c', '--per-channel'], action: 'store_true' },
      },
      {
        name: 'reset_mode',
        type: 'string',
        enum: ['all', 'maxmin', 'error', 'none'],
        help: 'Mode to reset I/O statistics after getting',
        cli: { flags: ['--reset-mode'] },
      },
    ],
    handler: (p: { name?: string; names?: string[]; per_channel?: boolean; reset_mode?: string }) =>
      rpcCall(async () => {
        const recs =
          p.name !== undefined
            ? [findRecord(p.name)]
            : p.names !== undefined
              ? p.names.map(findRecord)
              : bdevListRecords();
        const reset = p.reset_mode === 'all';
        if (p.per_channel === true) {
          if (recs.length !== 1) throw new RpcError(-22, 'per_channel needs exactly one bdev name');
          const snaps = await bdevCollectStats(recs[0].desc.name, reset);
          return {
            tick_rate: TICK_RATE,
            ticks: Math.round(ticks()),
            name: recs[0].desc.name,
            channels: snaps
              .filter((s) => s.threadId !== undefined)
              .map((s) => {
                const st = new BdevIoStats();
                st.add(s);
                const { name: _n, ticks: _t, ...rest } = iostatJson('', st, 0);
                return { thread_id: s.threadId, ...rest };
              }),
          };
        }
        const bdevs = [];
        for (const r of recs) {
          bdevs.push(iostatJson(r.desc.name, sumStats(await bdevCollectStats(r.desc.name, reset)), ticks()));
        }
        return { tick_rate: TICK_RATE, ticks: Math.round(ticks()), bdevs };
      }),
  },
  {
    name: 'bdev_reset_iostat',
    summary: 'Reset I/O statistics of all the blockdevs or specified blockdev',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', help: 'Name of the Blockdev', cli: { flags: ['-b', '--name'] } },
      {
        name: 'mode',
        type: 'string',
        enum: ['all', 'maxmin', 'error', 'none'],
        help: 'Mode to reset I/O statistics',
        cli: { flags: ['-m', '--mode'] },
      },
    ],
    handler: (p: { name?: string; mode?: string }) =>
      rpcCall(async () => {
        const recs = p.name !== undefined ? [findRecord(p.name)] : bdevListRecords();
        if (p.mode !== 'none') for (const r of recs) await bdevCollectStats(r.desc.name, true);
        return true;
      }),
  },
  {
    name: 'bdev_enable_histogram',
    summary: 'Enable or disable histogram for specified bdev',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'bdev name', cli: { positional: true } },
      {
        name: 'enable',
        type: 'boolean',
        required: true,
        help: 'Enable or disable histograms on specified device',
        cli: { flags: ['--histogram'], action: 'store_true' },
      },
      {
        name: 'opc',
        type: 'string',
        help: 'io type (accepted; all types are recorded)',
        cli: { flags: ['-o', '--opc'] },
      },
      {
        name: 'granularity',
        type: 'integer',
        help: 'Histogram bucket granularity (accepted; log2 buckets)',
        cli: { flags: ['--granularity'], int: true },
      },
      {
        name: 'min_nsec',
        type: 'integer',
        help: 'accepted, ignored',
        cli: { flags: ['--min-nsec'], int: true },
      },
      {
        name: 'max_nsec',
        type: 'integer',
        help: 'accepted, ignored',
        cli: { flags: ['--max-nsec'], int: true },
      },
    ],
    handler: (p: { name: string; enable: boolean }) =>
      rpcCall(async () => {
        await bdevSetHistogram(findRecord(p.name).desc.name, p.enable);
        return true;
      }),
  },
  {
    name: 'bdev_get_histogram',
    summary: 'Get histogram for specified bdev (log2 ranges of nanoseconds, granularity 0)',
    states: RpcState.RUNTIME,
    params: [{ name: 'name', type: 'string', required: true, help: 'bdev name', cli: { positional: true } }],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        const rec = findRecord(p.name);
        if (!rec.histogram) throw new RpcError(-1, `histogram is not enabled on bdev ${rec.desc.name}`);
        const s = sumStats(await bdevCollectStats(rec.desc.name));
        // SPDK layout with granularity 0: range r holds [2^(r-1), 2^r); our bucket b is [2^b, 2^(b+1)) = range b+1
        const ranges = HISTOGRAM_BUCKETS + 1;
        const buf = Buffer.alloc(ranges * 8);
        for (let b = 0; b < HISTOGRAM_BUCKETS; b++)
          buf.writeBigUInt64LE(BigInt(s.histogram?.[b] ?? 0), (b + 1) * 8);
        return {
          histogram: buf.toString('base64'),
          granularity: 0,
          min_range: 0,
          max_range: ranges - 1,
          tsc_rate: TICK_RATE,
        };
      }),
  },
  {
    name: 'bdev_set_qos_limit',
    summary: 'Set QoS rate limit on a blockdev (enforced across all threads)',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Blockdev name to set QoS',
        cli: { positional: true },
      },
      {
        name: 'rw_ios_per_sec',
        type: 'integer',
        min: 0,
        help: 'R/W IOs per second limit (0 = unlimited)',
        cli: { flags: ['--rw-ios-per-sec'], int: true },
      },
      {
        name: 'rw_mbytes_per_sec',
        type: 'integer',
        min: 0,
        help: 'R/W megabytes per second limit (0 = unlimited)',
        cli: { flags: ['--rw-mbytes-per-sec'], int: true },
      },
      {
        name: 'r_mbytes_per_sec',
        type: 'integer',
        min: 0,
        help: 'Read megabytes per second limit (0 = unlimited)',
        cli: { flags: ['--r-mbytes-per-sec'], int: true },
      },
      {
        name: 'w_mbytes_per_sec',
        type: 'integer',
        min: 0,
        help: 'Write megabytes per second limit (0 = unlimited)',
        cli: { flags: ['--w-mbytes-per-sec'], int: true },
      },
    ],
    handler: (p: Partial<QosLimits> & { name: string }) =>
      rpcCall(async () => {
        const rec = findRecord(p.name);
        const keys = ['rw_ios_per_sec', 'rw_mbytes_per_sec', 'r_mbytes_per_sec', 'w_mbytes_per_sec'] as const;
        if (keys.every((k) => p[k] === undefined)) {
          throw new RpcError(
            -22,
            'no rate limit given (rw_ios_per_sec, rw_mbytes_per_sec, r_mbytes_per_sec, w_mbytes_per_sec)',
          );
        }
        // an omitted limit keeps its current value, as in SPDK
        const cur = rec.qos?.limits;
        const limits: QosLimits = {
          rw_ios_per_sec: p.rw_ios_per_sec ?? cur?.rw_ios_per_sec ?? 0,
          rw_mbytes_per_sec: p.rw_mbytes_per_sec ?? cur?.rw_mbytes_per_sec ?? 0,
          r_mbytes_per_sec: p.r_mbytes_per_sec ?? cur?.r_mbytes_per_sec ?? 0,
          w_mbytes_per_sec: p.w_mbytes_per_sec ?? cur?.w_mbytes_per_sec ?? 0,
        };
        await bdevSetQos(rec.desc.name, limits);
        return true;
      }),
  },
  {
    name: 'bdev_wait_for_examine',
    summary: 'Report when all bdevs have been examined (examine is synchronous here)',
    states: RpcState.STARTUP | RpcState.RUNTIME,
    params: [],
    handler: () => true,
  },
  {
    name: 'bdev_set_options',
    summary: 'Set options of bdev subsystem',
    states: RpcState.STARTUP,
    params: [
      {
        name: 'bdev_io_pool_size',
        type: 'integer',
        min: 1,
        help: 'Number of bdev_io structures kept pooled',
        cli: { flags: ['-p', '--bdev-io-pool-size'], int: true },
      },
      {
        name: 'bdev_io_cache_size',
        type: 'integer',
        min: 0,
        help: 'Maximum number of bdev_io structures cached per thread',
        cli: { flags: ['-c', '--bdev-io-cache-size'], int: true },
      },
      {
        name: 'bdev_auto_examine',
        type: 'boolean',
        help: 'Enable or disable auto examine',
        cli: { flags: ['--auto-examine'], action: 'store_true' },
      },
      {
        name: 'iobuf_small_cache_size',
        type: 'integer',
        min: 0,
        help: 'Size of the small iobuf per thread cache',
        cli: { flags: ['--iobuf-small-cache-size'], int: true },
      },
      {
        name: 'iobuf_large_cache_size',
        type: 'integer',
        min: 0,
        help: 'Size of the large iobuf per thread cache',
        cli: { flags: ['--iobuf-large-cache-size'], int: true },
      },
    ],
    handler: (p: Partial<typeof options>) => {
      Object.assign(options, Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)));
      setBdevIoPoolSize(options.bdev_io_pool_size);
      return true;
    },
  },
];

/** Every bdev RPC: the generic ones and each module's. */
export function bdevRpcMethods(): RpcMethod[] {
  return [
    ...rpcMethods,
    ...bdevModuleTable.flatMap((e) => e.rpcMethods),
    ...externalEntries.flatMap((e) => e.rpcMethods),
  ];
}

/** save_config: options, each module's own calls, each bdev's create call (registration order puts bases first), QoS, examine. */
export function bdevWriteConfigJson(): Array<{ method: string; params?: Record<string, unknown> }> {
  const out: Array<{ method: string; params?: Record<string, unknown> }> = [
    { method: 'bdev_set_options', params: { ...options } },
  ];
  for (const e of [...bdevModuleTable, ...externalEntries]) out.push(...(e.module.configJson?.() ?? []));
  const recs = bdevListRecords();
  for (const r of recs) {
    const m = getBdevModule(r.desc.module);
    const c = m?.writeConfigJson?.(r.desc);
    if (c) out.push(c);
    out.push(...(m?.extraConfigJson?.(r.desc) ?? []));
  }
  for (const r of recs) {
    if (r.qos === null) continue;
    const params: Record<string, unknown> = { name: r.desc.name };
    for (const [k, v] of Object.entries(r.qos.limits)) if (v > 0) params[k] = v;
    out.push({ method: 'bdev_set_qos_limit', params });
  }
  out.push({ method: 'bdev_wait_for_examine' });
  return out;
}

function spawn(name: string, reactor: number): Promise<ThreadRef> {
  return new Promise((resolve) => spawnThread(name, reactor, (r: ThreadRef) => resolve(r)));
}

export const bdevSubsystem: FrameworkSubsystem = {
  name: 'bdev',
  depends: ['accel', 'iobuf'],
  realmInit() {
    if (external.error !== null) throw external.error;
    for (const e of [...bdevModuleTable, ...externalEntries]) registerBdevModule(e.module);
  },
  async init(app) {
    const refs: ThreadRef[] = [];
    for (let r = 0; r < app.reactorCount; r++) refs.push(await spawn(`bdev_realm_${r}`, r));
    bdevSetRealmThreads(refs);
  },
  async fini(app) {
    // stacked bdevs are removed with (before) their bases; a descriptor nobody closes
    // must not hang shutdown, so each removal gets a bounded wait
    const log = app.logger('bdev');
    for (const r of bdevListRecords().reverse()) {
      if (bdevGetRecord(r.desc.name) === undefined) continue;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<'timeout'>((res) => {
        timer = setTimeout(() => res('timeout'), 5000);
      });
      const outcome = await Promise.race([bdevUnregister(r.desc.name).catch((e: Error) => e), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout')
        log.warn(`bdev ${r.desc.name}: descriptors still open after 5 s, shutting down anyway`);
      else if (outcome instanceof Error) log.warn(`bdev ${r.desc.name}: ${outcome.message}`);
    }
  },
  writeConfigJson: bdevWriteConfigJson,
  get rpcMethods() {
    return bdevRpcMethods();
  },
};
