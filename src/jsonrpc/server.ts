// JSON-RPC 2.0 server on a Unix socket, wire-compatible with SPDK's rpc.py:
// unframed JSON values in, one JSON value per response out. Requests on one
// connection are answered in order. Garbage or an oversized request gets an
// error and that connection is closed; the server keeps serving others.

import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { RpcRegistry } from './registry.ts';
import { JsonStreamSplitter } from './splitter.ts';
import { noopLogger, RpcError, RpcErrorCode, type RpcLogger, RpcSocketError } from './types.ts';

export interface RpcServerOptions {
  path: string;
  logger?: RpcLogger;
  /** Largest accepted request in bytes (default 4 MiB). */
  maxRequestBytes?: number;
  /** Simultaneous connections; more are closed at once (default 64, SPDK_JSONRPC_MAX_CONNS). */
  maxConnections?: number;
}

type Id = string | number | null;

/** Requests parsed but not yet answered on one connection before it stops being read. */
const MAX_QUEUED_PER_CONNECTION = 128;

interface ErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

function errorResponse(id: Id, err: ErrorObject): Record<string, unknown> {
  const error: ErrorObject = { code: err.code, message: err.message };
  if (err.data !== undefined) error.data = err.data;
  return { jsonrpc: '2.0', id, error };
}

function isValidId(id: unknown): id is Id {
  return id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
}

/** Probe whether something is listening on a Unix socket path. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class RpcServer {
  private readonly registry: RpcRegistry;
  private readonly path: string;
  private readonly logger: RpcLogger;
  private readonly maxRequestBytes: number;
  private readonly maxConnections: number;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(registry: RpcRegistry, opts: RpcServerOptions) {
    this.registry = registry;
    this.path = opts.path;
    this.logger = opts.logger ?? noopLogger;
    this.maxRequestBytes = opts.maxRequestBytes ?? 4 * 1024 * 1024;
    this.maxConnections = opts.maxConnections ?? 64;
  }

  async listen(): Promise<void> {
    if (existsSync(this.path)) {
      if (!lstatSync(this.path).isSocket())
        throw new RpcSocketError(`RPC socket path ${this.path} exists and is not a socket`);
      if (await socketIsLive(this.path))
        throw new RpcSocketError(`RPC socket ${this.path} is in use by another process`);
      unlinkSync(this.path); // stale socket from a previous run
    }
    // Half-open: a client may end its side right after its request and still read the answer.
    const server = createServer({ allowHalfOpen: true }, (sock) => this.onConnection(sock));
    server.maxConnections = this.maxConnections;
    server.on('drop', () =>
      this.logger.warn(`RPC connection refused: over ${this.maxConnections} connections`),
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error(`RPC server error: ${err.message}`));
    this.server = server;
    this.logger.debug(`RPC server listening on ${this.path}`);
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  private onConnection(sock: Socket): void {
    this.sockets.add(sock);
    const splitter = new JsonStreamSplitter(this.maxRequestBytes);
    // Requests are handled one after another so responses keep request order.
    let queue: Promise<void> = Promise.resolve();
    let closing = false;
    let queued = 0;
    // answers the client has not read yet (over the socket's high-water mark)
    let backlogged = false;
    // Read only while the client keeps up: fewer than MAX_QUEUED_PER_CONNECTION requests
    // unanswered and its answers drained. A client that sends without reading would
    // otherwise make the server buffer every answer in memory.
    const updateFlow = (): void => {
      if (closing) return;
      if (queued >= MAX_QUEUED_PER_CONNECTION || backlogged) sock.pause();
      else sock.resume();
    };
    const send = (msg: unknown): void => {
      if (sock.destroyed || !sock.writable) return;
      if (!sock.write(JSON.stringify(msg)) && !backlogged) {
        backlogged = true;
        updateFlow();
      }
    };
    sock.on('drain', () => {
      backlogged = false;
      updateFlow();
    });
    const fatal = (err: ErrorObject): void => {
      if (closing) return;
      closing = true;
      queue = queue.then(() => {
        send(errorResponse(null, err));
        sock.end();
      });
    };
    sock.on('data', (chunk: Buffer) => {
      if (closing) return;
      const err = splitter.feed(chunk, (text) => {
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch {
          fatal({ code: RpcErrorCode.PARSE_ERROR, message: 'Parse error' });
          return;
        }
        // A client that sends faster than it reads stops being read until it catches up.
        if (++queued === MAX_QUEUED_PER_CONNECTION) updateFlow();
        queue = queue
          .then(async () => {
            const resp = await this.handleValue(value);
            if (resp !== undefined) send(resp);
          })
          .catch((err) => this.logger.error(`RPC response failed: ${(err as Error)?.stack ?? String(err)}`))
          .finally(() => {
            if (queued-- === MAX_QUEUED_PER_CONNECTION) updateFlow();
          });
      });
      if (err === 'garbage') fatal({ code: RpcErrorCode.PARSE_ERROR, message: 'Parse error' });
      else if (err === 'too_large') {
        fatal({
          code: RpcErrorCode.INVALID_REQUEST,
          message: `Request too large (limit ${this.maxRequestBytes} bytes)`,
        });
      }
    });
    sock.on('end', () => {
      // A truncated value at EOF cannot be answered usefully: the peer is gone.
      if (!closing && splitter.midValue) this.logger.warn('RPC connection closed mid-request');
      if (!closing) queue.then(() => sock.end());
    });
    sock.on('error', (err) => this.logger.debug(`RPC connection error: ${err.message}`));
    sock.on('close', () => this.sockets.delete(sock));
  }

  /** Answer one parsed top-level value (single request or batch); undefined = nothing to send. */
  private async handleValue(value: unknown): Promise<unknown> {
    if (!Array.isArray(value)) return this.handleRequest(value);
    if (value.length === 0) {
      return errorResponse(null, { code: RpcErrorCode.INVALID_REQUEST, message: 'Invalid request' });
    }
    const out: unknown[] = [];
    for (const item of value) {
      const r = await this.handleRequest(item);
      if (r !== undefined) out.push(r);
    }
    return out.length > 0 ? out : undefined;
  }

  private async handleRequest(req: unknown): Promise<Record<string, unknown> | undefined> {
    if (req === null || typeof req !== 'object' || Array.isArray(req)) {
      return errorResponse(null, { code: RpcErrorCode.INVALID_REQUEST, message: 'Invalid request' });
    }
    const r = req as Record<string, unknown>;
    const hasId = 'id' in r;
    const id: Id = hasId && isValidId(r.id) ? r.id : null;
    if (r.jsonrpc !== '2.0' || typeof r.method !== 'string' || (hasId && !isValidId(r.id))) {
      return errorResponse(id, { code: RpcErrorCode.INVALID_REQUEST, message: 'Invalid request' });
    }
    if (r.params !== undefined && (r.params === null || typeof r.params !== 'object')) {
      return errorResponse(id, { code: RpcErrorCode.INVALID_REQUEST, message: 'Invalid request' });
    }
    this.logger.debug(`RPC request ${r.method} id=${JSON.stringify(id)}`);
    try {
      const result = await this.registry.invoke(r.method, r.params, this.logger);
      if (!hasId) return undefined; // notification
      const value = result === undefined ? true : result;
      try {
        JSON.stringify(value);
      } catch (e) {
        return errorResponse(id, {
          code: RpcErrorCode.INTERNAL_ERROR,
          message: `${r.method} produced a result that is not JSON: ${(e as Error).message}`,
        });
      }
      return { jsonrpc: '2.0', id, result: value };
    } catch (e) {
      if (!hasId) return undefined;
      if (e instanceof RpcError) return errorResponse(id, e);
      return errorResponse(id, { code: RpcErrorCode.INTERNAL_ERROR, message: String(e) });
    }
  }
}
