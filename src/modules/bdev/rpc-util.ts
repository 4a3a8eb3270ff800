// Shared helpers for the bdev RPC methods: SPDK-style error codes (negative
// errno) with a message that names the problem.

import { BdevError } from '../../bdev/index.ts';
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
export function rejectUnsupported(p: Record<string, unknown>, names: string[]): void {
  for (const n of names) {
    const v = p[n];
    if (v !== undefined && v !== 0 && v !== false && v !== -1) {
      throw new RpcError(
        -22,
        `${n}=${JSON.stringify(v)} is not supported (metadata and protection information are not implemented)`,
      );
    }
  }
}

export function mbToBlocks(totalSizeMb: number, blockSize: number): number {
  return Math.floor((totalSizeMb * 1024 * 1024) / blockSize);
}
