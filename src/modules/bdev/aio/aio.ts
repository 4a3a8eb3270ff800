// aio (file) bdev: a regular file or a block device. Every realm opens the
// file itself; reads and writes go through libuv's thread pool (fs.readv /
// fs.writev), so the reactor never blocks. flush = fdatasync; FUA writes are
// followed by fdatasync. Unmap and write_zeroes write zeroes: Node has no
// fallocate(PUNCH_HOLE) without native code, so the file keeps its blocks.

import fs from 'node:fs';
import path from 'node:path';
import type { Bdev, BdevBackend, BdevDescriptor, BdevIo, BdevModule } from '../../../bdev/module.ts';
import {
  BdevError,
  BdevIoType,
  bdevModuleDescriptor,
  bdevNotifyResize,
  bdevRegister,
  bdevUnregister,
  newBdevDescriptor,
} from '../../../bdev/module.ts';
import { InvalidArgumentError } from '../../../util/errors.ts';

export interface AioParams {
  filename: string;
  readonly: boolean;
  /** block_size as given to bdev_aio_create (0 = detected) */
  requestedBlockSize: number;
  fallocate: boolean;
}

/** Size in bytes and logical block size of a file or block device. */
export function probeFile(filename: string): {
  bytes: number;
  logicalBlockSize: number;
  blockDevice: boolean;
} {
  const st = fs.statSync(filename);
  if (st.isBlockDevice()) {
    const dev = path.basename(fs.realpathSync(filename));
    const sys = `/sys/class/block/${dev}`;
    const sectors = Number(fs.readFileSync(`${sys}/size`, 'utf8').trim());
    let lbs = 512;
    try {
      lbs = Number(fs.readFileSync(`${sys}/queue/logical_block_size`, 'utf8').trim()) || 512;
    } catch {
      // partitions have no queue/ of their own: 512 is the safe default
    }
    return { bytes: sectors * 512, logicalBlockSize: lbs, blockDevice: true };
  }
  if (!st.isFile())
    throw new InvalidArgumentError(`${filename} is neither a regular file nor a block device`);
  return { bytes: st.size, logicalBlockSize: 512, blockDevice: false };
}

const SUPPORTED = new Set<number>([
  BdevIoType.READ,
  BdevIoType.WRITE,
  BdevIoType.FLUSH,
  BdevIoType.UNMAP,
  BdevIoType.WRITE_ZEROES,
  BdevIoType.RESET,
]);

let zeroes = Buffer.alloc(1 << 20);

export class AioBackend implements BdevBackend {
  readonly fd: number;
  readonly blockSize: number;
  readonly params: AioParams;
  constructor(desc: BdevDescriptor<AioParams>) {
    this.params = desc.params;
    this.blockSize = desc.blockSize;
    // control path (bdev registration message): a synchronous open is fine here
    this.fd = fs.openSync(this.params.filename, this.params.readonly ? 'r' : 'r+');
  }

  supportsIo(type: BdevIoType): boolean {
    if (
      this.params.readonly &&
      type !== BdevIoType.READ &&
      type !== BdevIoType.FLUSH &&
      type !== BdevIoType.RESET
    ) {
      return false;
    }
    return SUPPORTED.has(type);
  }

  submit(io: BdevIo): void {
    const bs = this.blockSize;
    const pos = io.offsetBlocks * bs;
    const len = io.numBlocks * bs;
    switch (io.type) {
      case BdevIoType.READ:
        fs.readv(this.fd, trim(io.iov, len), pos, (err, n) => {
          io.complete(err === null && n === len);
        });
        return;
      case BdevIoType.WRITE:
        fs.writev(this.fd, trim(io.iov, len), pos, (err, n) => {
          if (err !== null || n !== len) {
            io.complete(false);
            return;
          }
          if (!io.fua) io.complete(true);
          else fs.fdatasync(this.fd, (e) => io.complete(e === null));
        });
        return;
      case BdevIoType.FLUSH:
        fs.fdatasync(this.fd, (err) => io.complete(err === null));
        return;
      case BdevIoType.UNMAP:
      case BdevIoType.WRITE_ZEROES:
        this.writeZeroes(io, pos, len);
        return;
      default:
        io.complete(true);
    }
  }

  private writeZeroes(io: BdevIo, pos: number, len: number): void {
    if (len === 0) {
      io.complete(true);
      return;
    }
    if (zeroes.length < this.blockSize) zeroes = Buffer.alloc(this.blockSize);
    const n = Math.min(len, zeroes.length - (zeroes.length % this.blockSize));
    fs.write(this.fd, zeroes, 0, n, pos, (err) => {
      if (err !== null) io.complete(false);
      else this.writeZeroes(io, pos + n, len - n);
    });
  }

  destruct(): void {
    fs.close(this.fd, () => {});
  }

  dumpInfo(): Record<string, unknown> {
    return {
      aio: {
        filename: this.params.filename,
        block_size_override: this.params.requestedBlockSize !== 0,
        readonly: this.params.readonly,
        fallocate: this.params.fallocate,
        nowait: false,
      },
    };
  }
}

function trim(iov: Buffer[], len: number): Buffer[] {
  let total = 0;
  for (const b of iov) total += b.length;
  if (total === len) return iov;
  const out: Buffer[] = [];
  for (let i = 0; i < iov.length && len > 0; i++) {
    const b = iov[i];
    out.push(b.length <= len ? b : b.subarray(0, len));
    len -= Math.min(b.length, len);
  }
  return out;
}

export const aioModule: BdevModule<AioParams> = {
  name: 'aio',
  createReplica(desc: BdevDescriptor<AioParams>, _bdev: Bdev): BdevBackend {
    return new AioBackend(desc);
  },
  writeConfigJson(desc: BdevDescriptor<AioParams>) {
    const p = desc.params;
    return {
      method: 'bdev_aio_create',
      params: {
        name: desc.name,
        ...(p.requestedBlockSize !== 0 ? { block_size: desc.blockSize } : {}),
        filename: p.filename,
        readonly: p.readonly,
        fallocate: p.fallocate,
        uuid: desc.uuid,
        nowait: false,
      },
    };
  },
};

export interface AioCreateOptions {
  name: string;
  filename: string;
  blockSize?: number;
  readonly?: boolean;
  fallocate?: boolean;
  uuid?: string;
}

export async function createAioBdev(o: AioCreateOptions): Promise<string> {
  let probe: ReturnType<typeof probeFile>;
  try {
    probe = probeFile(o.filename);
  } catch (e) {
    throw new BdevError('ENODEV', `cannot open ${o.filename}: ${(e as Error).message}`);
  }
  const blockSize = o.blockSize || probe.logicalBlockSize;
  if (blockSize < probe.logicalBlockSize || blockSize % 512 !== 0 || blockSize > 65536) {
    throw new BdevError(
      'EINVAL',
      `block_size ${blockSize} is invalid for ${o.filename} (logical block size ${probe.logicalBlockSize})`,
    );
  }
  const numBlocks = Math.floor(probe.bytes / blockSize);
  if (numBlocks < 1)
    throw new BdevError('EINVAL', `${o.filename} is smaller than one block of ${blockSize} bytes`);
  const params: AioParams = {
    filename: o.filename,
    readonly: o.readonly ?? false,
    requestedBlockSize: o.blockSize ?? 0,
    fallocate: o.fallocate ?? false,
  };
  await bdevRegister(
    newBdevDescriptor({
      module: 'aio',
      name: o.name,
      blockSize,
      numBlocks,
      productName: 'AIO disk',
      writeCache: true, // the page cache: flush (fdatasync) makes writes durable
      ...(o.uuid !== undefined ? { uuid: o.uuid } : {}),
      params,
    }),
  );
  return o.name;
}

function aioDescriptor(name: string): BdevDescriptor<AioParams> {
  const desc = bdevModuleDescriptor(aioModule, name);
  if (desc === undefined) throw new BdevError('ENODEV', `aio bdev ${name} does not exist`);
  return desc;
}

export async function deleteAioBdev(name: string): Promise<void> {
  await bdevUnregister(aioDescriptor(name).name);
}

/** bdev_aio_rescan: pick up a new file size. */
export async function rescanAioBdev(name: string): Promise<void> {
  const desc = aioDescriptor(name);
  const numBlocks = Math.floor(probeFile(desc.params.filename).bytes / desc.blockSize);
  if (numBlocks !== desc.numBlocks) await bdevNotifyResize(desc.name, numBlocks);
}
