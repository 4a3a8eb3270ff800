// Shared helpers for the bdev RPC methods: SPDK-style error codes (negative
// errno) with a message that names the problem.

import { BdevError } from '../../bdev/module.ts';
import { RpcError } from '../../jsonrpc/index.ts';

const ERRNO: Record<string, number> = { EEXIST: -17, ENODEV: -19, EBUSY: -16, EINVAL: -22, ENOMEM: -12 };

export function toRpcError(e: unknown): Error {
  if (e instanceof RpcError) return e;
  if (e instanceof BdevError) return new RpcError(ERRNO[e.code] ?? -32603, e.message);
  return new RpcError(-32603, (e as Error)?.message ?? String(e));
}

/** Run a control-path call, mapping bdev errors to JSON-RPC errors. */
export async function rpcCall<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toRpcError(e);
  }
}

/** Reject SPDK parameters we accept for compatibility but cannot honour (metadata / DIF). */
export function rejectUnsupported<T extends object>(p: T, names: (keyof T & string)[]): void {
  for (const n of names) {
    const v = p[n] as unknown;
    if (v !== undefined && v !== 0 && v !== false && v !== -1) {
      throw new RpcError(
        -22,
        `${n}=${JSON.stringify(v)} is not supported (metadata and protection information are not implemented)`,
      );
    }
  }
}

function mbToBlocks(totalSizeMb: number, blockSize: number): number {
  return Math.floor((totalSizeMb * 1024 * 1024) / blockSize);
}

/** cliTransform of the RAM-like create methods: rpc.py's total_size (MiB) becomes num_blocks. */
export function totalSizeToNumBlocks(args: Record<string, unknown>): Record<string, unknown> {
  const { total_size, ...rest } = args;
  if (typeof total_size === 'number' && typeof rest.block_size === 'number') {
    rest.num_blocks = mbToBlocks(total_size, rest.block_size);
  }
  return rest;
}

/** The size of a new bdev in blocks: num_blocks, else total_size (MiB); -22 when neither is given. */
export function requestedNumBlocks(p: {
  num_blocks?: number;
  total_size?: number;
  block_size: number;
}): number {
  if (p.num_blocks !== undefined) return p.num_blocks;
  if (p.total_size !== undefined) return mbToBlocks(p.total_size, p.block_size);
  throw new RpcError(-22, 'num_blocks or total_size is required (the size of the bdev)');
}
