// The contract between the NVMe-oF target core (src/nvmf/*.ts) and a
// transport (src/nvmf/tcp/, src/nvmf/rdma/), and the table of transport
// plug-ins. SPDK keeps the same split: lib/nvmf/transport.c defines the table,
// tcp.c and rdma.c fill it. The core never touches sockets or verbs; the
// transport never interprets an NVMe command beyond what moving its data needs.

import type { Socket } from 'node:net';
import type { BdevIo, LentData } from '../bdev/index.ts';

/** Direction of a command's data, from the host's point of view. */
export const XferDir = {
  NONE: 0,
  /** host to controller (write-like): data is in `req.iov` before the core sees the request */
  HOST_TO_CONTROLLER: 1,
  /** controller to host (read-like): the core fills `req.iov` (or replaces it) before completing */
  CONTROLLER_TO_HOST: 2,
} as const;
export type XferDir = (typeof XferDir)[keyof typeof XferDir];

/**
 * One command in flight. Objects are pooled per qpair by the transport and
 * reused: the core must not keep a reference after `complete()`.
 */
export interface NvmfRequest {
  readonly qpair: NvmfQpair;
  /** the 64-byte SQE, read in place (offsets: `Sqe` in wire/nvme.ts) */
  readonly cmd: Buffer;
  /** the 16-byte CQE; zeroed by the transport before dispatch. The core writes
   * DW0/DW1 and the status field; the transport writes SQHD, SQID and CID. */
  readonly rsp: Buffer;
  xferDir: XferDir;
  /** data length in bytes taken from the command's SGL */
  length: number;
  /** data buffers: `length` bytes in total for data-carrying commands. For
   * CONTROLLER_TO_HOST the core may replace the array (e.g. views of a
   * malloc bdev's memory) as long as the total stays `length`. */
  iov: Buffer[];
  /** when the core traced the command's start (performance.now(), ms); 0: not traced. Starts
   * at 0; `complete()` calls trace.ts traceCommandComplete when it is not 0 (which clears it) */
  traceStart: number;
  /** when the core started executing it (thread nowUs), for the latency histograms */
  startUs?: number;
  /** Fused ordering (fused.ts) keeps these on the requests of a transport that uses it: the
   * other half of a fused pair, whether this half is ready and waiting for it, and whether the
   * pairing failed (the core then answers Command Aborted due to Missing Fused Command). */
  fusedPartner?: NvmfRequest | null;
  fusedReady?: boolean;
  fusedFailed?: boolean;
  /**
   * Set (non-null) while `iov` is a WRITE's data the transport only lends for the call that
   * hands the request to the core (NVMe/TCP: in-capsule data left in the receive buffer). The
   * core passes it to bdevWrite with `iov` itself, which lets a module that consumes write data
   * in submit take it, or has the transport `keep()` a copy first. Whatever else holds the
   * request past that call holds it through `iov`: once the call returns the transport copies
   * data still lent into the request's own buffer and points `iov` there.
   */
  lentData?: LentData | null;
  /**
   * Set by a transport that can send a read's data from memory the bdev lends (zero-copy: a
   * malloc bdev's own blocks) and will call ctrlr-bdev.ts endZcopy once that data is out
   * (or dropped). The core then may set `iov` to the lent views and `zcopyIo` to the lend.
   * For a write the core lent memory to before its data came (QpairEvents.landWrite),
   * `zcopyIo` is that lend until the core completes the write; a transport that drops the
   * request before handing it over calls endZcopy too.
   */
  zcopy?: boolean;
  zcopyIo?: BdevIo | null;
  /** hand the request back: the transport sends data (C2H) and/or the response capsule */
  complete(): void;
}

/** One queue (one connection for NVMe/TCP, one RC queue pair for NVMe/RDMA). */
export interface NvmfQpair {
  /** set by the core on Fabrics Connect */
  qid: number;
  /** SQ size (entries) from Connect (sqsize + 1) */
  sqSize: number;
  /** the core's context of this queue: attached when Fabrics Connect succeeds, null before and
   * once the queue is gone; the transport only asks whether one is attached */
  context: QueueContext | null;
  /** true when the host asked for SQ flow control to be disabled (Connect CATTR bit 2) */
  sqFlowControlDisabled: boolean;
  /** transport name, e.g. 'TCP', 'RDMA' */
  readonly trtype: string;
  /** the listener address the host connected to, and the host's address */
  readonly listenAddr: TransportAddress;
  readonly peerAddr: TransportAddress;
  /** the NQNs the host's TLS PSK identity names when the queue came through a secure channel
   * (its Connect must name the same), null on a plain connection */
  readonly securePeer?: SecurePeer | null;
  /** close the connection; in-flight requests are completed or dropped by the transport, then
   * `QpairEvents.onQpairDisconnected` is called once */
  disconnect(reason?: string): void;
}

/** Who a TLS connection authenticated as: the host and subsystem its PSK identity names. */
export interface SecurePeer {
  hostnqn: string;
  subnqn: string;
}

/** The core's answer to a PSK identity a host offered: the TLS PSK and who it stands for. */
export interface TlsPskMatch {
  psk: Buffer;
  peer: SecurePeer;
}

/**
 * What the core attaches to a queue on a successful Connect (SPDK's qpair->ctrlr): on an admin
 * queue its controller (NvmfCtrlr, target-controller.ts), on an I/O queue an IoQueue
 * (io-queue.ts). The core hands it every command that is not a Fabrics command.
 */
export interface QueueContext {
  /** the controller the queue belongs to */
  readonly cntlid: number;
  /** an admin command (admin queue) or an NVM command (I/O queue) that arrived on this queue */
  execute(req: NvmfRequest): void;
}

export interface TransportAddress {
  trtype: string; // 'TCP'
  adrfam: string; // 'IPv4' | 'IPv6'
  traddr: string;
  trsvcid: string;
}

/**
 * What a transport poll group calls into the core (implemented by the nvmf poll group). A
 * transport that hands commands over in another order than they arrived (data after an R2T,
 * an RDMA READ) keeps fused pairs together with a FusedOrder (fused.ts) per queue.
 */
export interface QpairEvents {
  /** a new queue finished transport set-up (ICReq/ICResp done) and waits for Connect */
  onQpairConnected(qpair: NvmfQpair): void;
  /** a fully received command (data included for HOST_TO_CONTROLLER) */
  onRequest(req: NvmfRequest): void;
  /**
   * A write whose data is not in yet (NVMe/TCP: before its R2T): true when the core pointed
   * `iov` at the bdev's own memory for the data to land in (zero-copy write) and set
   * `zcopyIo`; the transport fills `iov` and hands the request over with onRequest as usual.
   * Optional, and asked only when the data is checked before it arrives (no data digest).
   */
  landWrite?(req: NvmfRequest): boolean;
  /** the connection closed: the core completes (aborted) what it holds waiting for an event
   * (AERs, commands queued on a paused subsystem), since onQpairDisconnected waits for them */
  onQpairClosing?(qpair: NvmfQpair): void;
  /** the queue is gone; called once, after every request handed to the core has completed */
  onQpairDisconnected(qpair: NvmfQpair): void;
  /** a TLS handshake on a secure-channel listener: the PSK for this identity, null when no host
   * of any subsystem has one (the handshake then fails) */
  tlsPsk?(identity: string): TlsPskMatch | null;
}

/** SPDK's TCP transport options (nvmf_create_transport), names as rpc.py sends them. */
export interface TransportOptions {
  trtype: string;
  max_queue_depth: number; // 128
  max_io_qpairs_per_ctrlr: number; // 127
  in_capsule_data_size: number; // 4096
  max_io_size: number; // 131072
  io_unit_size: number; // 131072
  max_aq_depth: number; // 128
  num_shared_buffers: number; // 511
  buf_cache_size: number; // 32
  dif_insert_or_strip: boolean;
  abort_timeout_sec: number; // 1
  c2h_success: boolean; // true
  sock_priority: number; // 0
  zcopy: boolean;
  ack_timeout: number;
  data_wr_pool_size: number;
  /** smallest keep-alive timeout in ms (--min-kato); an admin Connect's smaller KATO is raised to it */
  min_kato?: number;
  /** RDMA: CQ entries per poll group and device when no_srq (4096) */
  num_cqe?: number;
  /** RDMA: receives of the shared receive queue of each poll group and device (4096) */
  max_srq_depth?: number;
  /** RDMA: one receive queue per queue pair instead of the shared one */
  no_srq?: boolean;
  /** RDMA: connect requests the CM may hold before the acceptor takes them (100) */
  acceptor_backlog?: number;
  /** RDMA: post each work request at once instead of one batch per poll */
  no_wr_batching?: boolean;
}

/** Per-realm transport poll group: owns the connections placed on one poll group thread. */
export interface TransportPollGroup {
  /** adopt an accepted socket (possibly just transferred from another realm); `secureChannel`:
   * it came through a listener that requires TLS, so the transport does the handshake first */
  addSocket(socket: Socket, listenAddr: TransportAddress, secureChannel?: boolean): void;
  /** adopt a connection a listener of this transport handed over (transports without
   * sockets: what `listen`'s onConnection got, structured-cloned to this realm) */
  addConnection?(conn: unknown, listenAddr: TransportAddress): void;
  /** one poll: process received data, flush queued PDUs (one corked burst per qpair). Returns busy. */
  poll(): boolean;
  /** number of live qpairs, for nvmf_get_stats */
  readonly qpairCount: number;
  /** requests handed to the core and not completed yet, for nvmf_get_stats (leak check) */
  readonly outstandingRequests?: number;
  destroy(): void;
}

export interface TransportListener {
  close(): Promise<void>;
}

/** A transport plug-in. The nvmf framework subsystem registers TCP (src/nvmf/tcp) in every
 * realm; registration is explicit (no import side effects). */
export interface TransportPlugin {
  /** upper case, e.g. 'TCP' */
  readonly name: string;
  /** the options nvmf_create_transport fills in when not given (SPDK's defaults) */
  defaults(): TransportOptions;
  /** why the transport cannot be created in this process (a sentence naming what is missing),
   * or null; nvmf_create_transport answers with it */
  unavailable?(): string | null;
  createPollGroup(opts: TransportOptions, events: QpairEvents): TransportPollGroup;
  /** app thread: a secure-channel listener may be added (TLS 1.3 with PSKs works in this
   * process); rejects with the reason when it cannot. Absent: the transport has no TLS. */
  checkSecureChannel?(): Promise<void>;
  /** app thread: listen on `addr`; each accepted (paused) socket goes to onSocket, each accepted
   * connection of a transport without sockets (structured-cloneable data) to onConnection; the
   * core hands either to a poll group (TransportPollGroup.addSocket / addConnection) */
  listen(
    addr: TransportAddress,
    opts: TransportOptions,
    onSocket: (s: Socket) => void,
    onConnection: (conn: unknown) => void,
  ): Promise<TransportListener>;
}

const plugins = new Map<string, TransportPlugin>();

export function registerTransport(p: TransportPlugin): void {
  plugins.set(p.name.toUpperCase(), p);
}

export function getTransport(name: string): TransportPlugin | undefined {
  return plugins.get(name.toUpperCase());
}

export function transportNames(): string[] {
  return [...plugins.keys()];
}
