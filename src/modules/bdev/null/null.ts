// null bdev: writes are discarded, reads return zeroes. The raw ceiling of the stack.

import type { BdevBackend, BdevDescriptor, BdevIo, BdevModule } from '../../../bdev/module.ts';
import {
  BdevError,
  BdevIoType,
  bdevModuleDescriptor,
  bdevNotifyResize,
  bdevRegister,
  bdevUnregister,
  newBdevDescriptor,
} from '../../../bdev/module.ts';
import { checkGeometry } from '../malloc/malloc.ts';

export interface NullParams {
  physicalBlockSize: number;
}

const SUPPORTED = new Set<number>([
  BdevIoType.READ,
  BdevIoType.WRITE,
  BdevIoType.WRITE_ZEROES,
  BdevIoType.FLUSH,
  BdevIoType.RESET,
]);

export class NullBackend implements BdevBackend {
  readonly blockSize: number;
  /** a write's data is never read */
  readonly consumesWriteDataInSubmit = true;
  constructor(blockSize: number) {
    this.blockSize = blockSize;
  }
  supportsIo(type: BdevIoType): boolean {
    return SUPPORTED.has(type);
  }
  submit(io: BdevIo): void {
    if (io.type === BdevIoType.READ) {
      let len = io.numBlocks * this.blockSize;
      for (let i = 0; i < io.iov.length && len > 0; i++) {
        const b = io.iov[i];
        const n = Math.min(b.length, len);
        b.fill(0, 0, n);
        len -= n;
      }
    }
    io.complete(true);
  }
}

export const nullModule: BdevModule<NullParams> = {
  name: 'null',
  createReplica(desc: BdevDescriptor<NullParams>): BdevBackend {
    return new NullBackend(desc.blockSize);
  },
  writeConfigJson(desc: BdevDescriptor<NullParams>) {
    const p = desc.params;
    return {
      method: 'bdev_null_create',
      params: {
        name: desc.name,
        num_blocks: desc.numBlocks,
        block_size: desc.blockSize,
        physical_block_size: p.physicalBlockSize,
        md_size: 0,
        dif_type: 0,
        dif_is_head_of_md: false,
        dif_pi_format: 0,
        uuid: desc.uuid,
        preferred_write_granularity: 0,
        preferred_write_alignment: 0,
        optimal_write_size: 0,
        preferred_unmap_granularity: 0,
        preferred_unmap_alignment: 0,
      },
    };
  },
};

export interface NullCreateOptions {
  name: string;
  numBlocks: number;
  blockSize: number;
  uuid?: string;
  physicalBlockSize?: number;
}

export async function createNullBdev(o: NullCreateOptions): Promise<string> {
  checkGeometry(o.blockSize, o.numBlocks);
  const params: NullParams = { physicalBlockSize: o.physicalBlockSize || o.blockSize };
  await bdevRegister(
    newBdevDescriptor({
      module: 'null',
      name: o.name,
      blockSize: o.blockSize,
      numBlocks: o.numBlocks,
      productName: 'Null disk',
      ...(o.uuid !== undefined ? { uuid: o.uuid } : {}),
      params,
    }),
  );
  return o.name;
}

function nullDescriptor(name: string): BdevDescriptor<NullParams> {
  const desc = bdevModuleDescriptor(nullModule, name);
  if (desc === undefined) throw new BdevError('ENODEV', `null bdev ${name} does not exist`);
  return desc;
}

export async function deleteNullBdev(name: string): Promise<void> {
  await bdevUnregister(nullDescriptor(name).name);
}

/** Resize to `newSizeMiB` MiB (bdev_null_resize); as in SPDK, only growth is allowed. */
export async function resizeNullBdev(name: string, newSizeMiB: number): Promise<void> {
  const desc = nullDescriptor(name);
  const numBlocks = Math.floor((newSizeMiB * 1024 * 1024) / desc.blockSize);
  if (numBlocks < desc.numBlocks)
    throw new BdevError('EINVAL', `null bdev ${name}: new size is smaller than the current size`);
  await bdevNotifyResize(desc.name, numBlocks);
}
