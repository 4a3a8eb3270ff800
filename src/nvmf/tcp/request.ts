// NVMe/TCP target transport, the request slot: what one command holds while
// its qpair serves it (the SQE, the response and data PDU headers it is sent
// with, its data buffers), its states, and the pool of data buffers a poll
// group lends to transport-SGL transfers. Slots are allocated once per
// qpair and reused; nothing here is allocated per command.

import { SQE_SIZE } from '../../wire/nvme.ts';
import { CapsuleResp, capsuleRespCqe, DataPdu, DIGEST_SIZE } from '../../wire/tcp.ts';
import { type NvmfQpair, type NvmfRequest, XferDir } from '../transport.ts';

/**
 * Request slot states (one comment per state, as SPDK's tcp.c does). A slot goes
 * FREE → EXECUTING → SENDING → FREE, with AWAIT_H2C_DATA between FREE and
 * EXECUTING for a write whose data follows an R2T, and AWAIT_FUSED before
 * EXECUTING for a fused half waiting for its partner. Only TcpQpair (qpair.ts)
 * moves a slot from one state to the next.
 */
export const TcpReqState = {
  /** in the free list */
  FREE: 0,
  /** R2T sent; waiting for H2CData PDUs to fill the buffer */
  AWAIT_H2C_DATA: 1,
  /** its data is in, held for the other half of its fused pair (fused.ts), not yet the core's */
  AWAIT_FUSED: 4,
  /** handed to the core (onRequest); waiting for complete() */
  EXECUTING: 2,
  /** response (and C2H data) queued or being written; freed when the write finishes */
  SENDING: 3,
} as const;
export type TcpReqState = (typeof TcpReqState)[keyof typeof TcpReqState];

/** Fabrics commands may carry up to 8 KiB in the admin capsule (Linux host's admin CCSZ). */
export const ADMIN_IN_CAPSULE_SIZE = 8192;

/** The iov of a slot that carries no data (shared: never written to). */
export const EMPTY_IOV: Buffer[] = [];

/** What a slot completes into: its qpair (TcpQpair in qpair.ts, which owns the slot table). */
export interface TcpRequestQueue extends NvmfQpair {
  completeRequest(req: TcpRequest): void;
}

/** One command slot of a qpair: its SQE, its response and data PDU headers, its data. */
export class TcpRequest implements NvmfRequest {
  readonly qpair: TcpRequestQueue;
  /** index in the qpair's slot table; also the R2T transfer tag */
  readonly index: number;
  readonly cmd = Buffer.alloc(SQE_SIZE);
  /** CapsuleResp PDU (header + CQE + room for a header digest); rsp is a view of its CQE */
  readonly respPdu = Buffer.alloc(CapsuleResp.HDR_SIZE + DIGEST_SIZE);
  readonly rsp: Buffer;
  /** C2HData / R2T header (+ digest + alignment pad for the host's hpda) */
  readonly dataHdr: Buffer;
  readonly ddgst = Buffer.alloc(DIGEST_SIZE);
  /** in-capsule data buffer, sized for the queue type */
  inCapsule: Buffer;
  state: TcpReqState = TcpReqState.FREE;
  xferDir: XferDir = XferDir.NONE;
  length = 0;
  iov: Buffer[] = EMPTY_IOV;
  /** pooled buffer for transport-SGL data, returned on free */
  poolBuf: Buffer | null = null;
  cid = 0;
  h2cReceived = 0;
  /** a data digest mismatch was found on this command's data */
  digestError = false;
  /** set by the core when it traces the command (trace.ts); 0 otherwise */
  traceStart = 0;
  /** fused ordering (fused.ts) */
  fusedPartner: NvmfRequest | null = null;
  fusedReady = false;
  fusedFailed = false;

  constructor(qpair: TcpRequestQueue, index: number, inCapsuleSize: number) {
    this.qpair = qpair;
    this.index = index;
    this.rsp = capsuleRespCqe(this.respPdu);
    // the largest PDO is 128 (hpda 31), past the 24-byte header and its digest
    this.dataHdr = Buffer.alloc(DataPdu.HDR_SIZE + DIGEST_SIZE + 128);
    this.inCapsule = Buffer.alloc(inCapsuleSize);
  }

  /** The core is done with the command (NvmfRequest): its queue sends the response. */
  complete(): void {
    this.qpair.completeRequest(this);
  }
}

/** Data buffers for transport-SGL transfers, shared by a poll group's qpairs. */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly size: number;
  private readonly keep: number;

  constructor(size: number, keep: number) {
    this.size = size;
    this.keep = keep;
  }

  get(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(this.size);
  }

  put(buf: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buf);
  }
}
