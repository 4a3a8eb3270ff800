// JSON-RPC 2.0 client for the Unix socket (used by the CLI and tests).

import { createConnection, type Socket } from 'node:net';
import { JsonStreamSplitter } from './splitter.ts';
import { RpcClientError, RpcError, RpcErrorCode } from './types.ts';

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
  /** Waits for an array response (callBatch), keyed by its first request's id. */
  batch?: boolean;
}

export class RpcClient {
  private readonly sock: Socket;
  private readonly timeoutMs: number;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly splitter = new JsonStreamSplitter(1 << 30);
  private closedError: Error | null = null;

  private constructor(sock: Socket, timeoutMs: number) {
    this.sock = sock;
    this.timeoutMs = timeoutMs;
    sock.on('data', (chunk: Buffer) => {
      const err = this.splitter.feed(chunk, (text) => this.onResponse(text));
      if (err !== null)
        this.failAll(
          new RpcClientError('NVMF_ERR_RPC_BAD_RESPONSE', `malformed response from the RPC server (${err})`),
        );
    });
    sock.on('error', (e) => this.failAll(e));
    sock.on('close', () => this.failAll(new RpcClientError('NVMF_ERR_RPC_CLOSED', 'RPC connection closed')));
  }

  /** Connect to the server's socket; rejects after timeoutMs (default 60 s, rpc.py's default). */
  static connect(path: string, timeoutMs = 60_000): Promise<RpcClient> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new RpcClientError('NVMF_ERR_RPC_TIMEOUT', `timed out connecting to ${path}`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new RpcClient(sock, timeoutMs));
      });
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(
          new RpcClientError(
            'NVMF_ERR_RPC_CONNECT',
            `cannot connect to the RPC socket ${path}: ${e.message}`,
            {
              cause: e,
            },
          ),
        );
      });
    });
  }

  /** Call a method; resolves with the result or rejects with RpcError carrying the server's code and message. */
  call(method: string, params?: unknown): Promise<unknown> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const req: Record<string, unknown> = { jsonrpc: '2.0', method, id };
    if (params !== undefined) req.params = params;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcClientError('NVMF_ERR_RPC_TIMEOUT', `timed out waiting for the response to ${method}`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.sock.write(JSON.stringify(req));
    });
  }

  /**
   * Send several calls as one JSON-RPC batch (an array); resolves with the
   * server's response objects ({id, result} or {id, error}) in its order.
   */
  callBatch(
    calls: ReadonlyArray<{ method: string; params?: unknown }>,
  ): Promise<Array<Record<string, unknown>>> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    if (calls.length === 0) return Promise.resolve([]);
    const reqs = calls.map((c) => {
      const req: Record<string, unknown> = { jsonrpc: '2.0', method: c.method, id: this.nextId++ };
      if (c.params !== undefined) req.params = c.params;
      return req;
    });
    const key = reqs[0].id as number;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new RpcClientError('NVMF_ERR_RPC_TIMEOUT', 'timed out waiting for the batch response'));
      }, this.timeoutMs);
      this.pending.set(key, { resolve: resolve as (v: unknown) => void, reject, timer, batch: true });
      this.sock.write(JSON.stringify(reqs));
    });
  }

  close(): void {
    this.failAll(new RpcClientError('NVMF_ERR_RPC_CLOSED', 'RPC client closed'));
    this.sock.destroy();
  }

  private onResponse(text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.failAll(
        new RpcClientError('NVMF_ERR_RPC_BAD_RESPONSE', 'unparsable response from the RPC server'),
      );
      return;
    }
    if (Array.isArray(parsed)) {
      const first = parsed[0] as { id?: unknown } | undefined;
      const key = typeof first?.id === 'number' ? first.id : -1;
      const b = this.pending.get(key);
      if (b?.batch) {
        this.pending.delete(key);
        clearTimeout(b.timer);
        b.resolve(parsed);
      }
      return;
    }
    const msg = parsed as Record<string, unknown>;
    const id = typeof msg.id === 'number' ? msg.id : -1;
    const p = this.pending.get(id);
    if (p === undefined) {
      // An id-less error (e.g. Parse error) concerns the oldest outstanding call.
      const first = this.pending.entries().next();
      if (msg.error === undefined || first.done) return;
      this.settle(first.value[0], first.value[1], msg);
      return;
    }
    this.settle(id, p, msg);
  }

  private settle(id: number, p: Pending, msg: Record<string, unknown>): void {
    this.pending.delete(id);
    clearTimeout(p.timer);
    const err = msg.error as { code?: number; message?: string; data?: unknown } | undefined;
    if (err !== undefined) {
      p.reject(
        new RpcError(err.code ?? RpcErrorCode.INTERNAL_ERROR, err.message ?? 'unknown error', err.data),
      );
    } else p.resolve(msg.result);
  }

  private failAll(e: Error): void {
    if (this.closedError === null) this.closedError = e;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(e);
    }
  }
}
