// Shared vocabulary of the bdev layer: I/O types, completion statuses and the
// structured-cloneable descriptor a bdev is replicated from in every realm.

/** I/O types (SPDK_BDEV_IO_TYPE_*, the subset nvmf-ts supports). */
export const BdevIoType = {
  READ: 1,
  WRITE: 2,
  UNMAP: 3,
  FLUSH: 4,
  RESET: 5,
  WRITE_ZEROES: 6,
  COMPARE: 7,
  COMPARE_AND_WRITE: 8,
  ABORT: 9,
} as const;
export type BdevIoType = (typeof BdevIoType)[keyof typeof BdevIoType];

/** I/O types that change the blocks they name (need a writable descriptor; wait for locks and lends). */
export function changesBlocks(type: BdevIoType): boolean {
  return (
    type === BdevIoType.WRITE ||
    type === BdevIoType.WRITE_ZEROES ||
    type === BdevIoType.UNMAP ||
    type === BdevIoType.COMPARE_AND_WRITE
  );
}

/** Names used by bdev_get_bdevs `supported_io_types`, indexed like BdevIoType. */
export const ioTypeNames: Readonly<Record<BdevIoType, string>> = {
  1: 'read',
  2: 'write',
  3: 'unmap',
  4: 'flush',
  5: 'reset',
  6: 'write_zeroes',
  7: 'compare',
  8: 'compare_and_write',
  9: 'abort',
};

/** Completion status of a bdev_io (SPDK_BDEV_IO_STATUS_*). */
export const BdevIoStatus = {
  PENDING: 0,
  SUCCESS: 1,
  FAILED: -1,
  /** the module set an explicit NVMe status (sct/sc) */
  NVME_ERROR: -2,
  MISCOMPARE: -3,
  ABORTED: -4,
  NOMEM: -5,
} as const;
export type BdevIoStatus = (typeof BdevIoStatus)[keyof typeof BdevIoStatus];

/** A run of blocks (unmap ranges). */
export interface BlockRange {
  offsetBlocks: number;
  numBlocks: number;
}

/**
 * Everything a realm needs to build its replica of a bdev. Must be
 * structured-cloneable (plain data, SharedArrayBuffers): it is posted to
 * every reactor.
 */
export interface BdevDescriptor<P extends object = object> {
  /** name of the module (table entry) that builds the replica */
  module: string;
  name: string;
  aliases: string[];
  uuid: string;
  blockSize: number;
  numBlocks: number;
  productName: string;
  writeCache: boolean;
  /** 0 = none */
  optimalIoBoundary: number;
  splitOnOptimalIoBoundary: boolean;
  /** largest I/O the module accepts, in blocks; 0 = no limit */
  maxTransferBlocks: number;
  /** bdevs this one is stacked on (opened and claimed by it) */
  baseBdevs: string[];
  /**
   * module-specific parameters (e.g. malloc's SharedArrayBuffer), typed by
   * the module: only the module named in `module` reads them
   */
  params: P;
}

/** A descriptor with the layer's defaults for everything not given. */
export function newBdevDescriptor<P extends object>(
  d: Pick<BdevDescriptor<P>, 'module' | 'name' | 'blockSize' | 'numBlocks' | 'params'> &
    Partial<BdevDescriptor<P>>,
): BdevDescriptor<P> {
  return {
    aliases: [],
    uuid: crypto.randomUUID(),
    productName: d.module,
    writeCache: false,
    optimalIoBoundary: 0,
    splitOnOptimalIoBoundary: false,
    maxTransferBlocks: 0,
    baseBdevs: [],
    ...d,
  };
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}
