// NVMe/TCP target transport, the poll group: one per poll-group thread, it
// owns that thread's connections (qpairs). Socket 'data' handlers only queue
// the chunk and wake the reactor; poll() parses the PDUs received since the
// last poll, handles closed sockets and expired connect timers, and flushes
// every qpair's queued PDUs as one corked burst (one writev) each.

import type net from 'node:net';
import type tls from 'node:tls';
import { wakeReactor } from '../../thread/index.ts';
import { logger } from '../../util/log.ts';
import type {
  QpairEvents,
  TlsPskMatch,
  TransportAddress,
  TransportOptions,
  TransportPollGroup,
} from '../transport.ts';
import { TcpQpair, type TcpQpairGroup, TcpQpairState } from './qpair.ts';
import { BufferPool } from './request.ts';
import { PlainSocket, type QpairSocket, RxBufferPool, type TlsServerSide, TlsSocket } from './socket.ts';
import { createTlsServerContext } from './tls-context.ts';

const log = logger('nvmf_tcp');

/**
 * A connection that has not completed a Fabrics Connect this long after it was
 * accepted is closed: without a controller no keep-alive covers it, so a host
 * that vanished (or never meant to speak) would hold the socket forever.
 * A Connect the core is still working on (e.g. waiting on a paused
 * subsystem) keeps it. `NVMF_TS_CONNECT_TIMEOUT_MS` overrides (tests).
 */
export const CONNECT_TIMEOUT_MS = readConnectTimeout();

function readConnectTimeout(): number {
  const v = Number(process.env.NVMF_TS_CONNECT_TIMEOUT_MS);
  return Number.isInteger(v) && v > 0 ? v : 30_000;
}

/** One poll-group thread's NVMe/TCP connections. */
export class TcpPollGroup implements TransportPollGroup, TcpQpairGroup, TlsServerSide {
  readonly opts: TransportOptions;
  readonly events: QpairEvents;
  readonly buffers: BufferPool;
  /** what plain connections read into */
  readonly rxBuffers = new RxBufferPool(64);
  /** value sent in ICResp: max_io_size, a multiple of 4 and at least 4096 */
  readonly maxH2CData: number;
  private readonly qpairs = new Set<TcpQpair>();
  private rxReady: TcpQpair[] = [];
  /** the list poll() parses from, swapped with rxReady (no array allocated per poll) */
  private rxParsing: TcpQpair[] = [];
  private txReady: TcpQpair[] = [];
  /** the list poll() flushes from, swapped with txReady */
  private txFlushing: TcpQpair[] = [];
  private closedReady: TcpQpair[] = [];
  /** qpairs whose connect timer fired (checked in poll, on the poll group's thread) */
  private connectDeadlineReady: TcpQpair[] = [];
  private readonly wake: () => void;
  private destroyed = false;
  /** the TLS server context of secure-channel connections, made with the first one */
  private tlsContext: tls.SecureContext | null = null;

  constructor(opts: TransportOptions, events: QpairEvents, wake: () => void) {
    this.opts = opts;
    this.events = events;
    this.wake = wake;
    this.maxH2CData = Math.max(4096, opts.max_io_size - (opts.max_io_size % 4));
    // keep what the busiest moment needed, up to the transport's shared buffers: keeping only
    // buf_cache_size made every command beyond it allocate a fresh max_io_size buffer (~30 µs
    // of CPU each once 64 commands were outstanding); SPDK makes such a command wait instead
    this.buffers = new BufferPool(
      opts.max_io_size,
      Math.max(0, opts.buf_cache_size, opts.num_shared_buffers),
    );
  }

  get qpairCount(): number {
    return this.qpairs.size;
  }

  get outstandingRequests(): number {
    let n = 0;
    for (const q of this.qpairs) n += q.outstanding + q.heldForFusedPartner;
    return n;
  }

  addSocket(socket: net.Socket, listenAddr: TransportAddress, secureChannel = false): void {
    if (this.destroyed) {
      socket.destroy();
      return;
    }
    // a secure-channel listener's connection does the TLS handshake here, on this reactor
    const conn: QpairSocket = secureChannel
      ? new TlsSocket(socket, this)
      : new PlainSocket(socket, this.rxBuffers);
    const qpair = new TcpQpair(this, conn, listenAddr);
    this.qpairs.add(qpair);
    if (log.debugEnabled()) {
      log.debug(
        `connection from ${qpair.peerAddr.traddr}:${qpair.peerAddr.trsvcid} to ${listenAddr.traddr}:${listenAddr.trsvcid}${secureChannel ? ' (TLS)' : ''}, ${this.qpairs.size} on this poll group`,
      );
    }
    // also bounds a TLS handshake that never completes
    this.armConnectTimer(qpair);
    conn.start(
      (buf: Buffer, length: number, pooled: boolean) => {
        qpair.rxChunks.push(buf);
        qpair.rxLengths.push(length);
        if (pooled) qpair.rxPooled.push(buf);
        if (!qpair.rxQueued) {
          qpair.rxQueued = true;
          this.rxReady.push(qpair);
        }
        this.wake();
      },
      () => {
        qpair.socketClosed = true;
        this.closedReady.push(qpair);
        this.wake();
      },
    );
  }

  // ---- TlsServerSide

  get secureContext(): tls.SecureContext {
    this.tlsContext ??= createTlsServerContext();
    return this.tlsContext;
  }

  lookupPsk(identity: string): TlsPskMatch | null {
    return this.events.tlsPsk?.(identity) ?? null;
  }

  onTlsError(socket: TlsSocket, err: Error): void {
    const identity = socket.offeredIdentity === '' ? 'none offered' : `"${socket.offeredIdentity}"`;
    log.warn(
      `${socket.remoteAddress}:${socket.remotePort}: TLS connection failed (PSK identity ${identity}): ${err.message}`,
    );
  }

  private armConnectTimer(qpair: TcpQpair): void {
    qpair.connectTimer = setTimeout(() => {
      qpair.connectTimer = null;
      this.connectDeadlineReady.push(qpair);
      this.wake();
    }, CONNECT_TIMEOUT_MS);
    qpair.connectTimer.unref();
  }

  private checkConnectDeadline(qpair: TcpQpair): void {
    if (qpair.state === TcpQpairState.CLOSED || qpair.state === TcpQpairState.TERMINATING) return;
    if (qpair.context !== null) return;
    if (qpair.outstanding > 0) {
      this.armConnectTimer(qpair); // a Connect is with the core: give it another period
      return;
    }
    log.warn(
      `${qpair.peerAddr.traddr}:${qpair.peerAddr.trsvcid}: no Fabrics Connect within ${CONNECT_TIMEOUT_MS} ms, closing`,
    );
    qpair.disconnect('connect timeout');
  }

  markTx(qpair: TcpQpair): void {
    this.txReady.push(qpair);
    this.wake();
  }

  removeQpair(qpair: TcpQpair): void {
    this.qpairs.delete(qpair);
  }

  poll(): boolean {
    let busy = false;
    if (this.rxReady.length > 0) {
      const ready = this.rxReady;
      this.rxReady = this.rxParsing;
      this.rxParsing = ready;
      for (let i = 0; i < ready.length; i++) ready[i].processRx();
      // emptied by pops, which the JIT keeps inline and which keep the array's room; setting
      // length to 0 is a runtime call that drops it, and the next pushes grow it again
      while (ready.length > 0) ready.pop();
      busy = true;
    }
    if (this.closedReady.length > 0) {
      const closed = this.closedReady;
      this.closedReady = [];
      for (const q of closed) {
        // parse what arrived before the close first (a final command may complete the exchange)
        if (q.rxChunks.length > 0) q.processRx();
        q.handleClosed();
      }
      busy = true;
    }
    if (this.connectDeadlineReady.length > 0) {
      const late = this.connectDeadlineReady;
      this.connectDeadlineReady = [];
      for (const q of late) this.checkConnectDeadline(q);
      busy = true;
    }
    if (this.txReady.length > 0) {
      const ready = this.txReady;
      this.txReady = this.txFlushing;
      this.txFlushing = ready;
      for (let i = 0; i < ready.length; i++) ready[i].flush();
      while (ready.length > 0) ready.pop();
      busy = true;
    }
    return busy;
  }

  destroy(): void {
    this.destroyed = true;
    for (const q of this.qpairs) {
      if (q.connectTimer) clearTimeout(q.connectTimer);
      q.socket.destroy();
    }
  }
}

/**
 * Create a poll group for one poll-group thread. `wake` defaults to the realm
 * reactor's wake-up; tests without a reactor pass their own (e.g. setImmediate → poll).
 */
export function createTcpPollGroup(
  opts: TransportOptions,
  events: QpairEvents,
  wake: () => void = wakeReactor,
): TcpPollGroup {
  return new TcpPollGroup(opts, events, wake);
}

/** SPDK's TCP transport defaults (nvmf_create_transport -t TCP). */
export const TCP_DEFAULT_OPTIONS: TransportOptions = {
  trtype: 'TCP',
  max_queue_depth: 128,
  max_io_qpairs_per_ctrlr: 127,
  in_capsule_data_size: 4096,
  max_io_size: 131072,
  io_unit_size: 131072,
  max_aq_depth: 128,
  num_shared_buffers: 511,
  buf_cache_size: 32,
  dif_insert_or_strip: false,
  abort_timeout_sec: 1,
  c2h_success: true,
  sock_priority: 0,
  zcopy: false,
  ack_timeout: 0,
  data_wr_pool_size: 0,
};
