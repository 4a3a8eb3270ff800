// What a TCP qpair needs of its connection, and the two connections it runs
// over: plain TCP (the accepted net.Socket) and TLS 1.3 on top of it (a
// tls.TLSSocket built on the poll group's reactor, so the TLS work runs
// there). The qpair reads PDUs from `onData` chunks and writes one burst per
// poll; neither implementation interprets the bytes.

import net from 'node:net';
import tls from 'node:tls';
import { BurstWriter } from '../../util/handle-writev.ts';
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
  /**
   * Deliver received bytes to `onData` (the first `length` bytes of `buf`; `pooled`: `buf` came
   * from the poll group's RxBufferPool and goes back there once parsed) and the end of the
   * connection to `onClose` (once).
   */
  start(onData: RxHandler, onClose: () => void): void;
  /** Optional: let `steering` choose where reads land (a socket reading with onread only). */
  steerReads?(steering: ReadSteering): void;
  /** write `bufs` in order as one burst; `done` (if any) runs once the last one is written */
  writeBurst(bufs: readonly Buffer[], done: (() => void) | null): void;
  /** close after what was written (TLS: close_notify first) */
  end(): void;
  destroy(): void;
  readonly destroyed: boolean;
}

export type RxHandler = (buf: Buffer, length: number, pooled: boolean) => void;

/**
 * Given to RxHandler for bytes read straight into the buffer ReadSteering named: they are
 * already where they belong, only their count is news.
 */
export const PLACED_DATA: Buffer = Buffer.alloc(0);

/** Chooses where a connection's reads land, and hears of every read in order. */
export interface ReadSteering {
  /** the buffer the next read fills (null: a pooled one) */
  nextReadTarget(): Buffer | null;
  /** at most this many bytes for the next pooled read (0: a whole buffer) */
  nextReadLimit(): number;
  /** bytes [0, n) of `buf` (pooled) were read */
  pooledRead(buf: Buffer, n: number): void;
  /** `n` bytes were read into the buffer nextReadTarget gave */
  placedRead(n: number): void;
}

/** What one socket read may fill (libuv's own suggestion for a stream read). */
export const RX_BUFFER_SIZE = 65536;

/**
 * Receive buffers of a poll group: a plain connection reads straight into one (no ArrayBuffer
 * allocated by Node per read, so no garbage per I/O), the qpair parses it at the next poll and
 * puts it back. Up to `keep` idle buffers are kept.
 */
export class RxBufferPool {
  private readonly free: Buffer[] = [];
  private readonly keep: number;

  constructor(keep: number) {
    this.keep = keep;
  }

  get(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(RX_BUFFER_SIZE);
  }

  put(buf: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buf);
  }
}

/** The libuv handle under a net.Socket (not in Node's types). */
type WithHandle = { _handle: object | null };

function ignoreError(): void {
  // 'close' follows every 'error': the qpair learns of the end there
}

/**
 * Plain NVMe/TCP: the accepted socket. When it has a libuv handle (a real accepted socket) a new
 * net.Socket takes the handle over with `onread`, so reads land in the poll group's pooled
 * buffers; anything else (a test's stand-in) is read through 'data' events.
 */
export class PlainSocket implements QpairSocket {
  private socket: net.Socket;
  private readonly pool: RxBufferPool | null;
  private steering: ReadSteering | null = null;
  /** the handle's next read fills the buffer the steering named, not a pooled one */
  private readingSteered = false;
  /** the pooled buffer the handle's next read fills (from its start, maybe not all of it) */
  private armed: Buffer | null = null;
  /** writes the bursts of the socket in use (the one start() makes from the handle, if any) */
  private writer: BurstWriter;
  readonly securePeer = null;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly remoteFamily: string;

  constructor(socket: net.Socket, pool: RxBufferPool | null = null) {
    this.socket = socket;
    this.writer = new BurstWriter(socket);
    this.pool = pool;
    // read now: the handle may move to another net.Socket, which learns no addresses from it
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.remoteFamily = socket.remoteFamily ?? 'IPv4';
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  start(onData: RxHandler, onClose: () => void): void {
    let s = this.socket;
    const pool = this.pool;
    const handle = (s as unknown as WithHandle)._handle;
    if (pool !== null && handle !== null && handle !== undefined && !s.destroyed) {
      (s as unknown as WithHandle)._handle = null;
      const own = new net.Socket({
        handle,
        readable: true,
        writable: true,
        onread: {
          // called after each read's callback: it names the buffer of the next read
          buffer: (): Buffer => {
            const steering = this.steering;
            const target = steering?.nextReadTarget() ?? null;
            this.readingSteered = target !== null;
            if (target !== null) return target;
            const b = pool.get();
            this.armed = b;
            const limit = steering?.nextReadLimit() ?? 0;
            return limit > 0 && limit < b.length ? b.subarray(0, limit) : b;
          },
          callback: (nread: number, buf: Uint8Array): boolean => {
            const steering = this.steering;
            if (this.readingSteered && steering !== null) {
              onData(PLACED_DATA, nread, false);
              steering.placedRead(nread);
            } else {
              // the whole pooled buffer (a limited read filled its start): it goes back whole
              const b = this.armed ?? (buf as Buffer);
              onData(b, nread, true);
              steering?.pooledRead(b, nread);
            }
            return true;
          },
        },
      } as net.SocketConstructorOpts);
      // the old object owns nothing now; destroying it ends its server's count of it
      s.destroy();
      s = own;
      this.socket = own;
      s.on('error', ignoreError);
      s.on('close', onClose);
      s.setNoDelay(true);
      this.writer = new BurstWriter(s);
      s.resume();
      return;
    }
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => onData(chunk, chunk.length, false));
    s.on('error', ignoreError);
    s.on('close', onClose);
    s.resume();
  }

  steerReads(steering: ReadSteering): void {
    // only a socket reading with onread chooses where a read lands
    if (this.pool !== null) this.steering = steering;
  }

  writeBurst(bufs: readonly Buffer[], done: (() => void) | null): void {
    this.writer.write(bufs, done);
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
  /** writes the TLS socket's bursts (through its stream: TLS encrypts there) */
  private writer: BurstWriter | null = null;
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

  start(onData: RxHandler, onClose: () => void): void {
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
    this.writer = new BurstWriter(t);
    t.on('data', (chunk: Buffer) => onData(chunk, chunk.length, false));
    t.on('error', (err: Error) => this.side.onTlsError(this, err));
    t.on('close', onClose);
    // the accepted socket came paused (pauseOnConnect): TLS reads it from here on
    this.raw.resume();
  }

  writeBurst(bufs: readonly Buffer[], done: (() => void) | null): void {
    this.writer?.write(bufs, done);
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
