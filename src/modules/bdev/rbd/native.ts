// The rbd addon (native/rbd, built at install) as this realm sees it: loading
// it, or saying exactly why it cannot be loaded, and the realm's completion
// queue that turns the addon's (tag, status) batches back into finished
// bdev_ios. Every realm loads the addon itself (it is context aware); the
// clusters and images it opens are process-wide and named by numeric ids.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BdevIo } from '../../../bdev/module.ts';
import { wakeReactor } from '../../../thread/index.ts';
import { logger } from '../../../util/log.ts';
import { GenericStatus, StatusCodeType } from '../../../wire/nvme.ts';
import { RbdError } from './errors.ts';

/** The addon's I/O operations (native/rbd/nvmf_rbd.c). */
export const RbdOp = {
  READ: 0,
  WRITE: 1,
  DISCARD: 2,
  WRITE_ZEROES: 3,
  FLUSH: 4,
} as const;
export type RbdOp = (typeof RbdOp)[keyof typeof RbdOp];

/** What openImage answers. */
export interface RbdImageInfo {
  id: number;
  size: number;
  /** log2 of the object size */
  order: number;
  features: number;
  /** librbd's cache is on for this connection */
  cache: boolean;
}

declare const imageBrand: unique symbol;
/** A realm's reference to an open image (an N-API External). */
export type RbdImageRef = { readonly [imageBrand]: true };
declare const queueBrand: unique symbol;
type RbdQueueRef = { readonly [queueBrand]: true };

/** An Error from the addon: `errno` is the negative errno librados/librbd returned. */
export interface RbdNativeError extends Error {
  errno: number;
}

export interface RbdAddon {
  version(): { librbd: string; librados: string };
  /** rados_create(user) → read confFile (or the default places when readDefaultConf) → set each pair → connect */
  connect(
    user: string | null,
    confFile: string | null,
    readDefaultConf: boolean,
    settings: string[],
    cpus: number[] | null,
  ): Promise<number>;
  releaseCluster(id: number): Promise<void>;
  confGet(id: number, key: string): string | null;
  openImage(clusterId: number, pool: string, image: string, readOnly: boolean): Promise<RbdImageInfo>;
  closeImage(id: number): Promise<void>;
  acquireImage(id: number): RbdImageRef | null;
  releaseImage(ref: RbdImageRef): void;
  imageSize(id: number): Promise<number>;
  resizeImage(id: number, bytes: number): Promise<number>;
  watchImage(id: number, onChange: () => void): number;
  createCompletionQueue(onDone: (count: number) => void, results: Int32Array): RbdQueueRef;
  aio(
    queue: RbdQueueRef,
    image: RbdImageRef,
    op: RbdOp,
    offset: number,
    length: number,
    data: Buffer | Buffer[] | null,
    tag: number,
    fua: boolean,
  ): number;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** Where the build puts the addon; NVMF_TS_RBD_ADDON_DIR names another build folder (tests). */
function buildDir(): string {
  return process.env.NVMF_TS_RBD_ADDON_DIR ?? path.resolve(HERE, '../../../../native/rbd/build');
}

let addon: RbdAddon | null = null;
let unavailable: string | null = null;

/** Why the addon cannot be used, or null when it loads. */
export function rbdUnavailableReason(): string | null {
  if (addon === null && unavailable === null) load();
  return unavailable;
}

function load(): void {
  const dir = buildDir();
  const file = path.join(dir, 'Release', 'nvmf_rbd.node');
  if (!fs.existsSync(file)) {
    let why: string;
    try {
      why = fs.readFileSync(path.join(dir, 'MISSING'), 'utf8').trim().replace(/\s+/g, ' ');
    } catch {
      why =
        `the rbd addon is not built (${file} does not exist): install librbd-dev and librados-dev ` +
        `(and g++, make, python3), then run npm rebuild`;
    }
    unavailable = `Ceph RBD is not available: ${why}`;
    return;
  }
  try {
    addon = createRequire(import.meta.url)(file) as RbdAddon;
  } catch (e) {
    unavailable =
      `Ceph RBD is not available: ${file} does not load (${(e as Error).message.split('\n')[0]}); ` +
      `install librbd1 and librados2 (apt-get install librbd1), then run npm rebuild`;
  }
}

/** The addon; throws with the reason when this installation has none. */
export function rbdAddon(): RbdAddon {
  if (addon === null && unavailable === null) load();
  // -95 (ENOTSUP), as the RPCs answer when the addon is missing
  if (addon === null) throw new RbdError(-95, unavailable ?? 'Ceph RBD is not available');
  return addon;
}

// ---------------------------------------------------------------- the realm's completion queue

const EINVAL = 22;
const EROFS = 30;

const log = logger('bdev_rbd');

/** (tag, status) pairs per batch; a larger batch comes in several calls */
const RESULT_PAIRS = 256;

/**
 * The realm's I/O in flight through the addon: tag → bdev_io in a slot
 * array with a free list (no allocation per I/O once warm), one completion
 * queue whose batches arrive on this realm's loop.
 */
export class RealmCompletions {
  private readonly native: RbdAddon;
  private readonly results = new Int32Array(RESULT_PAIRS * 2);
  private readonly slots: Array<BdevIo | null> = [];
  private readonly freeTags: number[] = [];
  private readonly queue: RbdQueueRef;
  inFlight = 0;

  constructor(native: RbdAddon) {
    this.native = native;
    this.queue = native.createCompletionQueue((n) => this.delivered(n), this.results);
  }

  submit(
    image: RbdImageRef,
    io: BdevIo,
    op: RbdOp,
    offset: number,
    length: number,
    data: Buffer | Buffer[] | null,
    fua: boolean,
  ): void {
    let tag = this.freeTags.pop();
    if (tag === undefined) {
      tag = this.slots.length;
      this.slots.push(null);
    }
    this.slots[tag] = io;
    const rc = this.native.aio(this.queue, image, op, offset, length, data, tag, fua);
    if (rc !== 0) {
      this.slots[tag] = null;
      this.freeTags.push(tag);
      finish(io, rc);
      return;
    }
    this.inFlight++;
  }

  private delivered(n: number): void {
    const r = this.results;
    for (let i = 0; i < n; i++) {
      const tag = r[2 * i];
      const io = this.slots[tag];
      this.slots[tag] = null;
      this.freeTags.push(tag);
      this.inFlight--;
      if (io === null) continue;
      try {
        finish(io, r[2 * i + 1]);
      } catch (e) {
        // a throwing completion is a bug upstream; the rest of the batch still completes
        log.error(`completing an rbd I/O: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      }
    }
    // the batch arrived from outside the reactor's loop: make sure it runs the completions
    wakeReactor();
  }
}

/** librbd's answer (0 or -errno) as the bdev_io's status. */
function finish(io: BdevIo, status: number): void {
  if (status === 0) io.complete(true);
  else if (status === -EINVAL) io.completeNvme(StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE);
  else if (status === -EROFS)
    io.completeNvme(StatusCodeType.GENERIC, GenericStatus.COMMAND_NAMESPACE_IS_PROTECTED);
  else io.complete(false); // EIO, ETIMEDOUT (rados_osd_op_timeout), EBLOCKLISTED...: Internal Device Error
}

let completions: RealmCompletions | null = null;

/** This realm's completion queue (made on first use). */
export function realmCompletions(): RealmCompletions {
  completions ??= new RealmCompletions(rbdAddon());
  return completions;
}
