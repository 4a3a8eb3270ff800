// rbd bdev: a Ceph RBD image through librbd's asynchronous C API (the addon
// in native/rbd), SPDK's bdev_rbd.
//
// The record (app thread) owns the connections and images: a cluster
// registered by bdev_rbd_register_cluster is one librados connection shared
// by its bdevs; a bdev created without cluster_name gets a connection of its
// own (SPDK's two ways). The image is opened once per process and every
// realm's replica submits to that same rbd_image_t from its own thread (the
// addon's handles are process-wide), with completions coming back to the
// submitting realm's loop. One connection per process rather than per
// reactor: measured equal or better (docs/scale-out.md), and a second open
// of the image in one process would be a second client to the cluster.

import fs from 'node:fs';
import type { Bdev, BdevBackend, BdevDescriptor, BdevIo, BdevModule } from '../../../bdev/module.ts';
import {
  BdevError,
  BdevIoType,
  bdevGetRecord,
  bdevModuleDescriptor,
  bdevNotifyResize,
  bdevRegister,
  bdevUnregister,
  newBdevDescriptor,
} from '../../../bdev/module.ts';
import { logger } from '../../../util/log.ts';
import { RbdError } from './errors.ts';
import {
  type RbdImageRef,
  type RbdNativeError,
  RbdOp,
  type RealmCompletions,
  rbdAddon,
  rbdUnavailableReason,
  realmCompletions,
} from './native.ts';

const log = logger('bdev_rbd');

const ENOENT = -2;
const EEXIST = -17;
const EINVAL = -22;
const EBUSY = -16;
const ENOTSUP = -95;

/**
 * librados settings nvmf-ts applies unless the caller's config (or the config
 * file) names them; SPDK leaves librados' own defaults.
 * - rbd_cache off: several gateways serve one image, and a per-gateway cache
 *   could answer a read with data another gateway has since overwritten; off,
 *   every completed write is on the OSDs and the bdev has no volatile cache.
 * - rbd_skip_partial_discard off: the target tells hosts that deallocated
 *   blocks read as zeroes (DLFEAT), and librbd would otherwise skip a discard
 *   of less than a whole object, leaving the old data.
 * - op and mount timeouts: a cluster that stops answering fails I/O with an
 *   NVMe status after 30 s (librados' default is to wait forever), and a
 *   connect to a dead cluster fails after 30 s instead of 300.
 */
export const RBD_DEFAULT_SETTINGS: ReadonlyArray<readonly [string, string]> = [
  ['rbd_cache', 'false'],
  ['rbd_skip_partial_discard', 'false'],
  ['rados_osd_op_timeout', '30'],
  ['rados_mon_op_timeout', '30'],
  ['client_mount_timeout', '30'],
];

/** bdev_rbd_register_cluster's parameters, as given (get_clusters_info and save_config write them back). */
export interface RbdClusterOptions {
  name: string;
  user_id?: string;
  config_param?: Record<string, string>;
  config_file?: string;
  key_file?: string;
  core_mask?: string;
}

interface ClusterRecord {
  opts: RbdClusterOptions;
  handle: number;
  /** bdevs created on it */
  users: Set<string>;
}

const clusters = new Map<string, ClusterRecord>();

/** The descriptor's params: plain data, posted to every realm. */
export interface RbdParams {
  /** the addon's process-wide image handle */
  imageId: number;
  poolName: string;
  rbdName: string;
  userId?: string;
  config?: Record<string, string>;
  clusterName?: string;
  readOnly: boolean;
  /** librbd's cache is on: FUA writes are followed by a flush */
  cache: boolean;
}

/** App thread: what a bdev holds besides its descriptor. */
interface ImageRecord {
  /** the connection the bdev made for itself (no cluster_name), released with it */
  privateCluster: number | null;
  /** a watch notice or a resize is being handled: the next one waits for it */
  sizeChain: Promise<void>;
}

const images = new Map<string, ImageRecord>();
let createdCount = 0;

function available(): ReturnType<typeof rbdAddon> {
  const why = rbdUnavailableReason();
  if (why !== null) throw new RbdError(ENOTSUP, why);
  return rbdAddon();
}

function nativeError(e: unknown): RbdError {
  if (e instanceof RbdError) return e;
  const err = e as RbdNativeError;
  return new RbdError(typeof err.errno === 'number' ? err.errno : -5, err.message);
}

// ---------------------------------------------------------------- connections

/** "rbd cache", "rbd-cache" and "rbd_cache" are one librados option. */
function optionKey(k: string): string {
  return k.trim().toLowerCase().replace(/[ -]/g, '_');
}

/** The option names a Ceph config file sets (any section). */
function configFileKeys(file: string | null): Set<string> {
  const keys = new Set<string>();
  if (file === null) return keys;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return keys;
  }
  for (const line of text.split('\n')) {
    const m = /^\s*([^#;[=][^=]*?)\s*=/.exec(line);
    if (m !== null) keys.add(optionKey(m[1]));
  }
  return keys;
}

/** librados searches $CEPH_CONF, then /etc/ceph/ceph.conf (the places that matter here). */
function defaultConfigFile(): string | null {
  const env = process.env.CEPH_CONF;
  if (env !== undefined && env !== '') return env.split(',')[0].trim();
  return fs.existsSync('/etc/ceph/ceph.conf') ? '/etc/ceph/ceph.conf' : null;
}

/** Parse an SPDK core mask (hex, or a [0-3,5] list) into CPU numbers. */
export function parseCoreMask(mask: string): number[] {
  const s = mask.trim();
  const cpus: number[] = [];
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) throw new RbdError(EINVAL, `invalid core_mask ${mask}`);
    for (const part of s.slice(1, -1).split(',')) {
      const m = /^\s*(\d+)(?:\s*-\s*(\d+))?\s*$/.exec(part);
      if (m === null) throw new RbdError(EINVAL, `invalid core_mask ${mask}`);
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      for (let c = lo; c <= hi; c++) cpus.push(c);
    }
  } else {
    const hex = s.replace(/^0x/i, '');
    if (!/^[0-9a-f]+$/i.test(hex)) throw new RbdError(EINVAL, `invalid core_mask ${mask}`);
    let v = BigInt(`0x${hex}`);
    for (let c = 0; v > 0n; c++, v >>= 1n) if (v & 1n) cpus.push(c);
  }
  if (cpus.length === 0) throw new RbdError(EINVAL, `core_mask ${mask} names no CPU`);
  return cpus;
}

interface ConnectSpec {
  userId: string | null;
  /** read this file (must exist) */
  configFile: string | null;
  /** no file given: read librados' default places, quietly when there is none */
  readDefault: boolean;
  config: Record<string, string>;
  keyFile: string | null;
  cpus: number[] | null;
}

/** The settings the connection gets after its config file: our defaults, then the caller's, then the keyring. */
export function connectionSettings(spec: {
  configFile: string | null;
  readDefault: boolean;
  config: Record<string, string>;
  keyFile: string | null;
}): string[] {
  const given = new Set(Object.keys(spec.config).map(optionKey));
  const inFile = configFileKeys(spec.configFile ?? (spec.readDefault ? defaultConfigFile() : null));
  const out: string[] = [];
  for (const [k, v] of RBD_DEFAULT_SETTINGS) if (!given.has(k) && !inFile.has(k)) out.push(k, v);
  for (const [k, v] of Object.entries(spec.config)) out.push(k, v);
  if (spec.keyFile !== null) out.push('keyring', spec.keyFile);
  return out;
}

async function connect(spec: ConnectSpec): Promise<number> {
  const native = available();
  try {
    return await native.connect(
      spec.userId,
      spec.configFile,
      spec.readDefault,
      connectionSettings(spec),
      spec.cpus,
    );
  } catch (e) {
    throw nativeError(e);
  }
}

export async function registerCluster(opts: RbdClusterOptions): Promise<string> {
  if (clusters.has(opts.name)) throw new RbdError(EEXIST, `cluster ${opts.name} is already registered`);
  const cpus = opts.core_mask !== undefined ? parseCoreMask(opts.core_mask) : null;
  // a name taken while we connect loses the race below, not the connection
  const handle = await connect({
    userId: opts.user_id ?? null,
    configFile: opts.config_file ?? null,
    readDefault: true,
    config: opts.config_param ?? {},
    keyFile: opts.key_file ?? null,
    cpus,
  });
  if (clusters.has(opts.name)) {
    await rbdAddon().releaseCluster(handle);
    throw new RbdError(EEXIST, `cluster ${opts.name} is already registered`);
  }
  clusters.set(opts.name, { opts: { ...opts }, handle, users: new Set() });
  log.notice(`cluster ${opts.name} connected`);
  return opts.name;
}

export async function unregisterCluster(name: string): Promise<void> {
  const c = clusters.get(name);
  if (c === undefined) throw new RbdError(ENOENT, `cluster ${name} is not registered`);
  if (c.users.size > 0) {
    throw new RbdError(EBUSY, `cluster ${name} is still used by bdev ${[...c.users].join(', ')}`);
  }
  clusters.delete(name);
  await rbdAddon().releaseCluster(c.handle);
}

function clusterInfo(c: ClusterRecord): Record<string, unknown> {
  const o = c.opts;
  return {
    cluster_name: o.name,
    ...(o.user_id !== undefined ? { user_id: o.user_id } : {}),
    ...(o.config_param !== undefined ? { config_param: { ...o.config_param } } : {}),
    ...(o.config_file !== undefined ? { config_file: o.config_file } : {}),
    ...(o.key_file !== undefined ? { key_file: o.key_file } : {}),
    ...(o.core_mask !== undefined ? { core_mask: o.core_mask } : {}),
  };
}

/** bdev_rbd_get_clusters_info: one cluster by name, else all of them (SPDK: ENOENT when there is none). */
export function getClustersInfo(name?: string): Record<string, unknown> | Record<string, unknown>[] {
  if (name !== undefined) {
    const c = clusters.get(name);
    if (c === undefined) throw new RbdError(ENOENT, `cluster ${name} is not registered`);
    return clusterInfo(c);
  }
  if (clusters.size === 0) throw new RbdError(ENOENT, 'no cluster is registered');
  return [...clusters.values()].map(clusterInfo);
}

/** The librados value of an option on a registered cluster's connection (tests, diagnosis). */
export function clusterOption(name: string, key: string): string | null {
  const c = clusters.get(name);
  if (c === undefined) throw new RbdError(ENOENT, `cluster ${name} is not registered`);
  return rbdAddon().confGet(c.handle, key);
}

// ---------------------------------------------------------------- bdevs

export interface RbdCreateOptions {
  name?: string;
  poolName: string;
  rbdName: string;
  blockSize: number;
  userId?: string;
  config?: Record<string, string>;
  clusterName?: string;
  uuid?: string;
  readOnly?: boolean;
}

export async function createRbdBdev(o: RbdCreateOptions): Promise<string> {
  const native = available();
  const bs = o.blockSize;
  if (!Number.isInteger(bs) || bs < 512 || bs > 65536 || bs % 512 !== 0) {
    throw new RbdError(EINVAL, `block_size ${bs} is invalid (a multiple of 512 up to 65536)`);
  }
  const name = o.name ?? `Ceph${createdCount}`;
  if (bdevGetRecord(name) !== undefined) throw new RbdError(EEXIST, `bdev ${name} already exists`);
  let cluster: ClusterRecord | undefined;
  let privateCluster: number | null = null;
  if (o.clusterName !== undefined) {
    cluster = clusters.get(o.clusterName);
    if (cluster === undefined) {
      throw new RbdError(ENOENT, `cluster ${o.clusterName} is not registered (bdev_rbd_register_cluster)`);
    }
  } else {
    // SPDK: explicit config entries alone, else librados' default config file
    privateCluster = await connect({
      userId: o.userId ?? null,
      configFile: null,
      readDefault: o.config === undefined,
      config: o.config ?? {},
      keyFile: null,
      cpus: null,
    });
  }
  const handle = cluster?.handle ?? privateCluster!;
  // reserve the name on the cluster before the await, so unregister_cluster waits for us
  cluster?.users.add(name);
  let info: Awaited<ReturnType<typeof native.openImage>>;
  try {
    info = await native.openImage(handle, o.poolName, o.rbdName, o.readOnly === true);
  } catch (e) {
    cluster?.users.delete(name);
    if (privateCluster !== null) await native.releaseCluster(privateCluster);
    throw nativeError(e);
  }
  const numBlocks = Math.floor(info.size / bs);
  const params: RbdParams = {
    imageId: info.id,
    poolName: o.poolName,
    rbdName: o.rbdName,
    ...(o.userId !== undefined ? { userId: o.userId } : {}),
    ...(o.config !== undefined ? { config: { ...o.config } } : {}),
    ...(o.clusterName !== undefined ? { clusterName: o.clusterName } : {}),
    readOnly: o.readOnly === true,
    cache: info.cache,
  };
  const release = async (): Promise<void> => {
    cluster?.users.delete(name);
    await native.closeImage(info.id);
    if (privateCluster !== null) await native.releaseCluster(privateCluster);
  };
  if (numBlocks < 1) {
    await release();
    throw new RbdError(
      EINVAL,
      `image ${o.poolName}/${o.rbdName} (${info.size} bytes) is smaller than one block`,
    );
  }
  images.set(name, { privateCluster, sizeChain: Promise.resolve() });
  try {
    await bdevRegister(
      newBdevDescriptor({
        module: 'rbd',
        name,
        blockSize: bs,
        numBlocks,
        productName: 'Ceph Rbd Disk',
        writeCache: info.cache,
        ...(o.uuid !== undefined ? { uuid: o.uuid } : {}),
        params,
      }),
    );
  } catch (e) {
    images.delete(name);
    await release();
    throw e;
  }
  createdCount++;
  // a resize by another client (rbd resize, another gateway) reaches us through the header watch
  native.watchImage(info.id, () => followImageSize(name));
  log.notice(`bdev ${name}: rbd image ${o.poolName}/${o.rbdName}, ${numBlocks} blocks of ${bs}`);
  return name;
}

function rbdDescriptor(name: string): BdevDescriptor<RbdParams> {
  const desc = bdevModuleDescriptor(rbdModule, name);
  if (desc === undefined) throw new BdevError('ENODEV', `rbd bdev ${name} does not exist`);
  return desc;
}

export async function deleteRbdBdev(name: string): Promise<void> {
  await bdevUnregister(rbdDescriptor(name).name);
}

/** Run a size change after the previous one of this bdev (watch notices and resizes interleave). */
function serialized(name: string, step: () => Promise<void>): Promise<void> {
  const rec = images.get(name);
  if (rec === undefined) return step();
  const next = rec.sizeChain.then(step);
  rec.sizeChain = next.catch(() => {});
  return next;
}

/** The image's header changed: grow the bdev if the image grew (a shrink is refused, as SPDK does). */
function followImageSize(name: string): void {
  void serialized(name, async () => {
    const desc = bdevModuleDescriptor(rbdModule, name);
    if (desc === undefined) return;
    const bytes = await rbdAddon().imageSize(desc.params.imageId);
    const numBlocks = Math.floor(bytes / desc.blockSize);
    if (numBlocks > desc.numBlocks) {
      log.notice(`bdev ${name}: image grew to ${bytes} bytes, ${numBlocks} blocks`);
      await bdevNotifyResize(name, numBlocks);
    } else if (numBlocks < desc.numBlocks) {
      log.warn(`bdev ${name}: image shrank to ${bytes} bytes elsewhere; I/O past its end fails`);
    }
  }).catch((e: Error) => log.warn(`bdev ${name}: following the image's size: ${e.message}`));
}

/** bdev_rbd_resize: new size in MiB, not smaller than the current one (SPDK's rule). */
export async function resizeRbdBdev(name: string, newSizeMb: number): Promise<void> {
  const desc = rbdDescriptor(name);
  const currentMb = Math.floor((desc.numBlocks * desc.blockSize) / (1024 * 1024));
  if (newSizeMb < currentMb) {
    throw new RbdError(EINVAL, `the new size ${newSizeMb} MiB is smaller than the current ${currentMb} MiB`);
  }
  const bytes = newSizeMb * 1024 * 1024;
  await serialized(desc.name, async () => {
    try {
      await rbdAddon().resizeImage(desc.params.imageId, bytes);
    } catch (e) {
      throw nativeError(e);
    }
    const numBlocks = Math.floor(bytes / desc.blockSize);
    if (numBlocks !== desc.numBlocks) await bdevNotifyResize(desc.name, numBlocks);
  });
}

/** App thread, every replica gone: close the image, then the bdev's own connection. */
async function destroyRecord(desc: BdevDescriptor<RbdParams>): Promise<void> {
  const rec = images.get(desc.name);
  images.delete(desc.name);
  const native = rbdAddon();
  try {
    await native.closeImage(desc.params.imageId);
  } catch (e) {
    log.warn(`bdev ${desc.name}: closing the image: ${(e as Error).message}`);
  }
  if (desc.params.clusterName !== undefined) clusters.get(desc.params.clusterName)?.users.delete(desc.name);
  if (rec?.privateCluster != null) await native.releaseCluster(rec.privateCluster);
}

// ---------------------------------------------------------------- the replica

/** One realm's replica: the process's open image, this realm's completion queue. */
export class RbdBackend implements BdevBackend {
  private readonly image: RbdImageRef;
  private readonly queue: RealmCompletions;
  private readonly blockSize: number;
  private readonly params: RbdParams;
  private released = false;

  constructor(desc: BdevDescriptor<RbdParams>) {
    const native = rbdAddon();
    const ref = native.acquireImage(desc.params.imageId);
    if (ref === null) throw new Error(`rbd image of bdev ${desc.name} is not open`);
    this.image = ref;
    this.queue = realmCompletions();
    this.blockSize = desc.blockSize;
    this.params = desc.params;
  }

  supportsIo(type: BdevIoType): boolean {
    switch (type) {
      case BdevIoType.READ:
      case BdevIoType.FLUSH:
      case BdevIoType.RESET:
        return true;
      case BdevIoType.WRITE:
      case BdevIoType.UNMAP:
      case BdevIoType.WRITE_ZEROES:
        return !this.params.readOnly;
      // compare-and-write: librbd 16 does it only within one 512-byte sector, so the bdev layer
      // emulates it (compare, then write, atomic within one gateway's realm)
      default:
        return false;
    }
  }

  submit(io: BdevIo): void {
    const bs = this.blockSize;
    const offset = io.offsetBlocks * bs;
    const length = io.numBlocks * bs;
    const iov = io.iov.length === 1 ? io.iov[0] : io.iov;
    switch (io.type) {
      case BdevIoType.READ:
        this.queue.submit(this.image, io, RbdOp.READ, offset, length, iov, false);
        return;
      case BdevIoType.WRITE:
        this.queue.submit(this.image, io, RbdOp.WRITE, offset, length, iov, io.fua && this.params.cache);
        return;
      case BdevIoType.UNMAP:
        this.queue.submit(this.image, io, RbdOp.DISCARD, offset, length, null, false);
        return;
      case BdevIoType.WRITE_ZEROES:
        this.queue.submit(this.image, io, RbdOp.WRITE_ZEROES, offset, length, null, false);
        return;
      case BdevIoType.FLUSH:
        this.queue.submit(this.image, io, RbdOp.FLUSH, 0, 0, null, false);
        return;
      default:
        io.complete(true); // reset: librbd cannot cancel; nothing is queued here
    }
  }

  destruct(): void {
    if (this.released) return;
    this.released = true;
    rbdAddon().releaseImage(this.image);
  }

  dumpInfo(): Record<string, unknown> {
    const p = this.params;
    const c = p.clusterName !== undefined ? clusters.get(p.clusterName) : undefined;
    const conn =
      c !== undefined
        ? clusterInfo(c)
        : {
            ...(p.userId !== undefined ? { user_id: p.userId } : {}),
            ...(p.config !== undefined ? { config: p.config } : {}),
          };
    const { cluster_name: _, ...rest } = conn as Record<string, unknown>;
    return {
      rbd: {
        pool_name: p.poolName,
        rbd_name: p.rbdName,
        ...(p.clusterName !== undefined ? { cluster_name: p.clusterName } : {}),
        ...rest,
      },
    };
  }
}

export const rbdModule: BdevModule<RbdParams> = {
  name: 'rbd',
  createReplica(desc: BdevDescriptor<RbdParams>, _bdev: Bdev): BdevBackend {
    return new RbdBackend(desc);
  },
  configJson() {
    return [...clusters.values()].map((c) => {
      const { cluster_name, ...rest } = clusterInfo(c);
      return { method: 'bdev_rbd_register_cluster', params: { name: cluster_name, ...rest } };
    });
  },
  writeConfigJson(desc: BdevDescriptor<RbdParams>) {
    const p = desc.params;
    return {
      method: 'bdev_rbd_create',
      params: {
        name: desc.name,
        pool_name: p.poolName,
        rbd_name: p.rbdName,
        block_size: desc.blockSize,
        ...(p.userId !== undefined ? { user_id: p.userId } : {}),
        ...(p.config !== undefined ? { config: { ...p.config } } : {}),
        ...(p.clusterName !== undefined ? { cluster_name: p.clusterName } : {}),
        uuid: desc.uuid,
        ...(p.readOnly ? { read_only: true } : {}),
      },
    };
  },
  destroyRecord,
};
