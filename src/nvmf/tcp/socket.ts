// What a TCP qpair needs of its connection, and the two connections it runs
// over: plain TCP (the accepted net.Socket) and TLS 1.3 on top of it (a
// tls.TLSSocket built on the poll group's reactor, so the TLS work runs
// there). The qpair reads PDUs from `onData` chunks and writes one burst per
// poll; neither implementation interprets the bytes.

import type net from 'node:net';
import tls from 'node:tls';
import type { SecurePeer, TlsPskMatch } from '../transport.ts';

/** A server TLSSocket's options: Node takes the server's pskCallback here too (its types omit it). */
export type TlsServerSocketOptions = tls.TLSSocketOptions & Pick<tls.TlsOptions, 'pskCallback'>;

/** A qpair's connection. */
export interface QpairSocket {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly remoteFamily: string;
  /** who the TLS handshake authenticated (null: plain TCP, or no handshake yet) */
  readonly securePeer: SecurePeer | null;
  /** deliver received bytes to `onData` and the end of the connection to `onClose` (once) */
  start(onData: (chunk: Buffer) => void, onClose: () => void): void;
  /** write `bufs` in order as one burst; `done` (if any) runs once the last one is written */
  writeBurst(bufs: readonly Buffer[], done: (() => void) | null): void;
  /** close after what was written (TLS: close_notify first) */
  end(): void;
  destroy(): void;
  readonly destroyed: boolean;
}

function ignoreError(): void {
  // 'close' follows every 'error': the qpair learns of the end there
}

function corkedWrite(s: net.Socket, bufs: readonly Buffer[], done: (() => void) | null): void {
  s.cork();
  const last = bufs.length - 1;
  for (let i = 0; i < last; i++) s.write(bufs[i]);
  if (done === null) s.write(bufs[last]);
  else s.write(bufs[last], done);
  s.uncork();
}

/** Plain NVMe/TCP: the accepted socket itself. */
export class PlainSocket implements QpairSocket {
  private readonly socket: net.Socket;
  readonly securePeer = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
  }

  get remoteAddress(): string {
    return this.socket.remoteAddress ?? '';
  }
  get remotePort(): number {
    return this.socket.remotePort ?? 0;
  }
  get remoteFamily(): string {
    return this.socket.remoteFamily ?? 'IPv4';
  }
  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  start(onData: (chunk: Buffer) => void, onClose: () => void): void {
    const s = this.socket;
    s.setNoDelay(true);
    s.on('data', onData);
    s.on('error', ignoreError);
    s.on('close', onClose);
    s.resume();
  }

  writeBurst(bufs: readonly Buffer[], done: (() => void) | null): void {
    corkedWrite(this.socket, bufs, done);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** What a TLS connection needs of its poll group. */
export interface TlsServerSide {
  readonly secureContext: tls.SecureContext;
  /** the PSK of a host's identity (null: unknown, the handshake fails) */
  lookupPsk(identity: string): TlsPskMatch | null;
  /** a handshake or record error ended the connection (logged by the poll group) */
  onTlsError(socket: TlsSocket, err: Error): void;
}

/**
 * NVMe/TCP over TLS 1.3 (secure channel): the accepted socket wrapped as a TLS server. The
 * handshake comes first; `onData` then gets the decrypted stream, the qpair's first PDU an
 * ICReq as on plain TCP.
 */
export class TlsSocket implements QpairSocket {
  private readonly raw: net.Socket;
  private readonly side: TlsServerSide;
  private tlsSocket: tls.TLSSocket | null = null;
  private peer: SecurePeer | null = null;
  /** the identity the host offered (for logs), '' before its ClientHello */
  offeredIdentity = '';

  constructor(raw: net.Socket, side: TlsServerSide) {
    this.raw = raw;
    this.side = side;
  }

  get remoteAddress(): string {
    return this.raw.remoteAddress ?? '';
  }
  get remotePort(): number {
    return this.raw.remotePort ?? 0;
  }
  get remoteFamily(): string {
    return this.raw.remoteFamily ?? 'IPv4';
  }
  get securePeer(): SecurePeer | null {
    return this.peer;
  }
  get destroyed(): boolean {
    return this.tlsSocket?.destroyed ?? this.raw.destroyed;
  }

  start(onData: (chunk: Buffer) => void, onClose: () => void): void {
    this.raw.setNoDelay(true);
    this.raw.on('error', ignoreError);
    const options: TlsServerSocketOptions = {
      isServer: true,
      secureContext: this.side.secureContext,
      requestCert: false,
      pskCallback: (_socket, identity) => {
        this.offeredIdentity = identity;
        const match = this.side.lookupPsk(identity);
        if (match === null) return null;
        this.peer = match.peer;
        return match.psk;
      },
    };
    const t = new tls.TLSSocket(this.raw, options);
    this.tlsSocket = t;
    t.on('data', onData);
    t.on('error', (err: Error) => this.side.onTlsError(this, err));
    t.on('close', onClose);
    // the accepted socket came paused (pauseOnConnect): TLS reads it from here on
    this.raw.resume();
  }

  writeBurst(bufs: readonly Buffer[], done: (() => void) | null): void {
    const t = this.tlsSocket;
    if (t === null) return;
    corkedWrite(t, bufs, done);
  }

  end(): void {
    if (this.tlsSocket) this.tlsSocket.end();
    else this.raw.end();
  }

  destroy(): void {
    if (this.tlsSocket) this.tlsSocket.destroy();
    else this.raw.destroy();
  }
}
