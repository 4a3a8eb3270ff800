// Acceptor side of the NVMe/TCP transport: one net.Server per listen address.
// Accepted sockets are paused (pauseOnConnect) and handed to a callback; the
// target core decides which poll group (realm) adopts them, possibly after
// transferring the socket to a worker.

import net from 'node:net';
import type { TransportAddress } from '../transport.ts';

export type AcceptCallback = (socket: net.Socket, listenAddr: TransportAddress) => void;

export class TcpListener {
  readonly address: TransportAddress;
  private readonly onAccept: AcceptCallback;
  private server: net.Server | null = null;

  constructor(address: TransportAddress, onAccept: AcceptCallback) {
    this.address = address;
    this.onAccept = onAccept;
  }

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  /** Port actually bound (useful when trsvcid is '0' in tests). */
  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /** Start listening; rejects with the bind error (EADDRINUSE, EADDRNOTAVAIL...). */
  listen(): Promise<void> {
    if (this.server) return Promise.resolve();
    const server = net.createServer({ pauseOnConnect: true, noDelay: true });
    server.on('connection', (socket) => {
      try {
        this.onAccept(socket, this.address);
      } catch {
        socket.destroy();
      }
    });
    const port = Number.parseInt(this.address.trsvcid, 10);
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.server = null;
        reject(err);
      };
      server.once('error', onError);
      server.listen({ host: this.address.traddr, port, ipv6Only: this.address.adrfam === 'IPv6' }, () => {
        server.off('error', onError);
        // a later server error (rare) must not crash the process
        server.on('error', () => {});
        this.server = server;
        resolve();
      });
    });
  }

  /** Stop accepting; existing connections are not touched. */
  close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}
