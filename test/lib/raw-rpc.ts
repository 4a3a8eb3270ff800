// Raw JSON-RPC over the target's Unix socket: send bytes exactly as given,
// collect the responses (split like the client does) and whether the server
// closed the connection. For malformed, huge and batched requests.

import { createConnection } from 'node:net';
import { JsonStreamSplitter, type RpcClient } from '../../src/jsonrpc/index.ts';

export interface RawRpcResult {
  /** parsed top-level response values, in order */
  responses: unknown[];
  /** the server closed (ended) the connection */
  closed: boolean;
}

export interface RpcErrorObject {
  code: number;
  message: string;
}

/**
 * Connect to `path`, write `payload` (chunks written one by one), and collect responses until
 * `expect` responses arrived (then `settleMs` more, to see whether the server closes), the server
 * closed, or timeoutMs passed. The client never ends its side.
 */
export function rawRpc(
  path: string,
  payload: string | Buffer | Array<string | Buffer>,
  expect = 1,
  timeoutMs = 10_000,
  settleMs = 100,
): Promise<RawRpcResult> {
  return new Promise((resolve) => {
    const sock = createConnection(path);
    const splitter = new JsonStreamSplitter(1 << 30);
    const responses: unknown[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ responses, closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (c: Buffer) => {
      splitter.feed(c, (text) => {
        try {
          responses.push(JSON.parse(text));
        } catch {
          responses.push({ unparsable: text });
        }
      });
      if (responses.length >= expect) {
        // give the server a moment to close if it is going to
        if (settleMs > 0) setTimeout(() => finish(sock.readableEnded), settleMs);
        else finish(sock.readableEnded);
      }
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.on('connect', () => {
      const parts = Array.isArray(payload) ? payload : [payload];
      for (const p of parts) sock.write(p);
    });
  });
}

/** The error member of a response, or null when it is a success. */
export function errorOf(resp: unknown): RpcErrorObject | null {
  if (resp === null || typeof resp !== 'object') return null;
  const e = (resp as { error?: unknown }).error;
  if (e === null || typeof e !== 'object') return null;
  return e as RpcErrorObject;
}

/** A JSON-RPC 2.0 response is well formed: jsonrpc "2.0", an id member, exactly one of result/error. */
export function isWellFormedResponse(resp: unknown): boolean {
  if (resp === null || typeof resp !== 'object' || Array.isArray(resp)) return false;
  const r = resp as Record<string, unknown>;
  if (r.jsonrpc !== '2.0' || !('id' in r)) return false;
  const hasResult = 'result' in r;
  const hasError = 'error' in r;
  if (hasResult === hasError) return false;
  if (hasError) {
    const e = r.error as Record<string, unknown> | null;
    return e !== null && typeof e === 'object' && Number.isInteger(e.code) && typeof e.message === 'string';
  }
  return true;
}

/** save_config as canonical JSON text, for before/after comparisons. */
export async function configText(rpc: RpcClient): Promise<string> {
  return JSON.stringify(await rpc.call('save_config'));
}
