// A complete, small bdev module: a sparse disk that keeps only the blocks
// ever written, in a Map. Unwritten blocks read as zeroes; unmap and
// write_zeroes drop blocks from the Map.
//
// A Map cannot be shared between realms (reactors), so the data lives in the
// realm of one "home" thread (the app thread that created the bdev). The
// replica in the home realm works on the Map directly; replicas in other
// realms send each I/O to the home thread by message and get the data back.
// This is the pattern for any module whose state cannot live in shared memory.
//
// Loaded by configuration: start nvmf_tgt with
//   NVMF_TS_BDEV_MODULES=./examples/sparse-bdev/sparse.ts
// (set it for nvmf-rpc too, so the CLI knows the methods) and create one with
//   nvmf-rpc bdev_sparse_create -b Sparse0 16384 4096   (num_blocks block_size)

import {
  type BdevBackend,
  type BdevDescriptor,
  BdevError,
  type BdevIo,
  BdevIoType,
  type BdevModule,
  bdevModuleDescriptor,
  bdevRegister,
  bdevUnregister,
  newBdevDescriptor,
} from '../../src/bdev/module.ts';
import type { RpcMethod } from '../../src/jsonrpc/index.ts';
import { RpcState } from '../../src/jsonrpc/index.ts';
import type { BdevModuleEntry } from '../../src/modules/bdev/index.ts';
import { rpcCall } from '../../src/modules/bdev/rpc-util.ts';
import { currentThread, defineHandler, sendMsg, type ThreadRef } from '../../src/thread/index.ts';

interface SparseParams {
  home: ThreadRef;
}

/** The blocks of every sparse bdev homed in this realm. */
const stores = new Map<string, Map<number, Buffer>>();

/** Run one I/O on a store. `data` is the payload for writes and the destination for reads. */
function runOnStore(
  store: Map<number, Buffer>,
  type: number,
  bs: number,
  offset: number,
  num: number,
  data: Buffer,
): void {
  for (let i = 0; i < num; i++) {
    const lba = offset + i;
    const chunk = data.subarray(i * bs, (i + 1) * bs);
    if (type === BdevIoType.READ) {
      const blk = store.get(lba);
      if (blk === undefined) chunk.fill(0);
      else blk.copy(chunk);
    } else if (type === BdevIoType.WRITE) {
      store.set(lba, Buffer.from(chunk)); // own copy: the caller's buffer is reused
    } else {
      store.delete(lba); // UNMAP / WRITE_ZEROES
    }
  }
}

interface RemoteIo {
  name: string;
  type: number;
  bs: number;
  offset: number;
  num: number;
  data: Uint8Array | null;
  replyTo: ThreadRef;
  token: number;
}

const remoteIo = defineHandler<RemoteIo>('example.sparse.io', (m) => {
  const store = stores.get(m.name);
  const data = Buffer.alloc(m.num * m.bs);
  if (m.data !== null) Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).copy(data);
  if (store !== undefined) runOnStore(store, m.type, m.bs, m.offset, m.num, data);
  sendMsg(m.replyTo, remoteDone, {
    token: m.token,
    ok: store !== undefined,
    data: m.type === BdevIoType.READ ? new Uint8Array(data) : null,
  });
});

// I/Os waiting for the home thread, in this realm
const waiting = new Map<number, BdevIo>();
let nextToken = 1;

const remoteDone = defineHandler<{ token: number; ok: boolean; data: Uint8Array | null }>(
  'example.sparse.done',
  (r) => {
    const io = waiting.get(r.token);
    if (io === undefined) return;
    waiting.delete(r.token);
    if (r.ok && r.data !== null)
      scatter(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength), io.iov);
    io.complete(r.ok);
  },
);

function gather(iov: Buffer[], len: number): Buffer {
  if (iov.length === 1 && iov[0].length === len) return iov[0];
  return Buffer.concat(iov, len);
}

function scatter(src: Buffer, iov: Buffer[]): void {
  let pos = 0;
  for (const b of iov) {
    if (pos >= src.length) break;
    pos += src.copy(b, 0, pos);
  }
}

class SparseBackend implements BdevBackend {
  private readonly name: string;
  private readonly bs: number;
  private readonly home: ThreadRef;
  private readonly local: Map<number, Buffer> | undefined;

  constructor(desc: BdevDescriptor<SparseParams>) {
    this.name = desc.name;
    this.bs = desc.blockSize;
    this.home = desc.params.home;
    // the replica built in the home thread's realm owns the store
    if (currentThread().ref.reactor === this.home.reactor) {
      this.local = new Map();
      stores.set(this.name, this.local);
    }
  }

  supportsIo(type: BdevIoType): boolean {
    return (
      type === BdevIoType.READ ||
      type === BdevIoType.WRITE ||
      type === BdevIoType.UNMAP ||
      type === BdevIoType.WRITE_ZEROES ||
      type === BdevIoType.FLUSH ||
      type === BdevIoType.RESET
    );
  }

  submit(io: BdevIo): void {
    const t = io.type;
    if (t === BdevIoType.FLUSH || t === BdevIoType.RESET) {
      io.complete(true);
      return;
    }
    const len = io.numBlocks * this.bs;
    const store = stores.get(this.name);
    if (store !== undefined) {
      // home realm: work in place
      const data = t === BdevIoType.READ || t === BdevIoType.WRITE ? gather(io.iov, len) : Buffer.alloc(0);
      runOnStore(store, t, this.bs, io.offsetBlocks, io.numBlocks, data);
      if (t === BdevIoType.READ && data !== io.iov[0]) scatter(data, io.iov);
      io.complete(true);
      return;
    }
    const token = nextToken++;
    waiting.set(token, io);
    sendMsg(this.home, remoteIo, {
      name: this.name,
      type: t,
      bs: this.bs,
      offset: io.offsetBlocks,
      num: io.numBlocks,
      data: t === BdevIoType.WRITE ? new Uint8Array(gather(io.iov, len)) : null,
      replyTo: currentThread().ref,
      token,
    });
  }

  destruct(): void {
    if (this.local !== undefined) stores.delete(this.name);
  }

  dumpInfo(): Record<string, unknown> {
    return { sparse: { blocks_stored: stores.get(this.name)?.size ?? null } };
  }
}

export const sparseModule: BdevModule<SparseParams> = {
  name: 'sparse',
  createReplica: (desc) => new SparseBackend(desc),
  writeConfigJson: (desc) => ({
    method: 'bdev_sparse_create',
    params: { name: desc.name, num_blocks: desc.numBlocks, block_size: desc.blockSize, uuid: desc.uuid },
  }),
};

export async function createSparseBdev(name: string, numBlocks: number, blockSize: number, uuid?: string) {
  await bdevRegister(
    newBdevDescriptor({
      module: 'sparse',
      name,
      numBlocks,
      blockSize,
      productName: 'Sparse disk',
      ...(uuid !== undefined ? { uuid } : {}),
      params: { home: currentThread().ref },
    }),
  );
  return name;
}

const rpcMethods: RpcMethod[] = [
  {
    name: 'bdev_sparse_create',
    summary: 'Create a sparse bdev (example module: keeps only written blocks)',
    states: RpcState.RUNTIME,
    params: [
      { name: 'name', type: 'string', required: true, help: 'bdev name', cli: { flags: ['-b', '--name'] } },
      {
        name: 'num_blocks',
        type: 'integer',
        required: true,
        min: 1,
        help: 'number of blocks',
        cli: { positional: true, int: true },
      },
      {
        name: 'block_size',
        type: 'integer',
        required: true,
        min: 512,
        max: 65536,
        help: 'block size in bytes',
        cli: { positional: true, int: true },
      },
      { name: 'uuid', type: 'string', help: 'UUID (optional)', cli: { flags: ['-u', '--uuid'] } },
    ],
    handler: (p: { name: string; num_blocks: number; block_size: number; uuid?: string }) =>
      rpcCall(() => createSparseBdev(p.name, p.num_blocks, p.block_size, p.uuid)),
  },
  {
    name: 'bdev_sparse_delete',
    summary: 'Delete a sparse bdev',
    states: RpcState.RUNTIME,
    params: [{ name: 'name', type: 'string', required: true, help: 'bdev name', cli: { positional: true } }],
    handler: (p: { name: string }) =>
      rpcCall(async () => {
        const desc = bdevModuleDescriptor(sparseModule, p.name);
        if (desc === undefined) throw new BdevError('ENODEV', `sparse bdev ${p.name} does not exist`);
        await bdevUnregister(desc.name);
        return true;
      }),
  },
];

/** What the bdev subsystem loads from NVMF_TS_BDEV_MODULES. */
export const bdevModuleEntry: BdevModuleEntry = { module: sparseModule, rpcMethods };
