// NVMe/RDMA target transport, the request slot and the receive buffer: what
// one command holds while its queue serves it (the receive its capsule arrived
// in, the 16-byte response it is SENT from, the data chunks, the host's keyed
// SGL), its states, and the work request ids that name it in completions.
// Slots are allocated once per queue pair and reused; nothing here is
// allocated per command.

import { type NvmfQpair, type NvmfRequest, XferDir } from '../transport.ts';
import type { DataChunk } from './buffers.ts';

/**
 * Request slot states (SPDK's rdma.c has the same life, in more steps). A slot goes
 * FREE → [NEED_BUFFER] → [READ_PENDING → READING] → EXECUTING → [WRITE_PENDING] →
 * COMPLETING → FREE: the bracketed states only when the command has to wait for data
 * buffers, moves data from the host (RDMA READ), or finds the send queue full. Only
 * RdmaQpair (qpair.ts) moves a slot from one state to the next.
 */
export const RdmaReqState = {
  /** in the free list */
  FREE: 0,
  /** its data needs chunks and the pool has none: waits in the poll group's list */
  NEED_BUFFER: 1,
  /** its RDMA READ waits for room (the queue's READ depth, or its send queue) */
  READ_PENDING: 2,
  /** RDMA READ posted: waiting for its completion */
  READING: 3,
  /** handed to the core (onRequest); waiting for complete() */
  EXECUTING: 4,
  /** done by the core; its RDMA WRITE and response SEND wait for room in the send queue */
  WRITE_PENDING: 5,
  /** response SENT (after the RDMA WRITE of read data): waiting for the SEND completion */
  COMPLETING: 6,
} as const;
export type RdmaReqState = (typeof RdmaReqState)[keyof typeof RdmaReqState];

/** What a work request id names (its low 3 bits). */
export const WrKind = {
  /** a receive of the poll group's pool (the id's upper bits: its index there) */
  RECV: 0,
  /** an RDMA READ of a command's data that is not the last (unsignaled) */
  READ: 1,
  /** the last (signaled) RDMA READ of a command: its completion retires them all */
  READ_LAST: 2,
  /** an RDMA WRITE of read data (unsignaled: retired by the SEND behind it) */
  WRITE: 3,
  /** the response SEND (signaled) */
  SEND: 4,
} as const;

const KIND_BITS = 8; // 3 bits used
const SLOT_BITS = 0x2_0000; // slots per queue pair < 2^17 (twice a 65536 queue)

/** The id of a work request for slot `slot` of the queue pair with serial `serial`. */
export function requestWrId(serial: number, slot: number, kind: number): number {
  return (serial * SLOT_BITS + slot) * KIND_BITS + kind;
}

export function wrKind(wrId: number): number {
  return wrId % KIND_BITS;
}

export function wrSlot(wrId: number): number {
  return Math.floor(wrId / KIND_BITS) % SLOT_BITS;
}

export function wrSerial(wrId: number): number {
  return Math.floor(wrId / KIND_BITS / SLOT_BITS);
}

/** The id of a receive: its index in the poll group's receive pool. */
export function recvWrId(index: number): number {
  return index * KIND_BITS + WrKind.RECV;
}

export function recvIndex(wrId: number): number {
  return Math.floor(wrId / KIND_BITS);
}

/** Where a receive is. */
export const RecvState = {
  /** in the pool's free list (no SRQ: not given to a queue pair yet) */
  FREE: 0,
  /** posted to the SRQ or to a queue pair's receive queue */
  POSTED: 1,
  /** holds a command: given back when the command's response is posted */
  HELD: 2,
} as const;

/** One receive buffer: the 64-byte SQE and the in-capsule data after it, in registered memory. */
export class RecvBuffer {
  readonly index: number;
  /** the whole buffer (SQE + in-capsule data) */
  readonly buf: Buffer;
  /** views of the buffer: the SQE, and the in-capsule data */
  readonly cmd: Buffer;
  readonly inCapsule: Buffer;
  readonly mrIndex: number;
  readonly offset: number;
  state: number = RecvState.FREE;
  /** the serial of the queue pair whose receive queue it is posted to (0 with an SRQ) */
  owner = 0;

  constructor(index: number, buf: Buffer, mrIndex: number, offset: number) {
    this.index = index;
    this.buf = buf;
    this.cmd = buf.subarray(0, 64);
    this.inCapsule = buf.subarray(64);
    this.mrIndex = mrIndex;
    this.offset = offset;
  }
}

/** The iov of a slot that carries no data (shared: never written to). */
export const EMPTY_IOV: Buffer[] = [];
const EMPTY_CMD = Buffer.alloc(64);

/** Most data chunks one command takes (SPDK's limit: max_io_size / io_unit_size ≤ 16). */
export const MAX_CHUNKS = 16;

/** What a slot completes into: its queue pair (RdmaQpair in qpair.ts, which owns the slots). */
export interface RdmaRequestQueue extends NvmfQpair {
  completeRequest(req: RdmaRequest): void;
}

/** One command slot of a queue pair. */
export class RdmaRequest implements NvmfRequest {
  readonly qpair: RdmaRequestQueue;
  /** index in the queue pair's slot table, as in its work request ids */
  readonly index: number;
  /** the SQE: a view of the receive it arrived in (valid until complete()) */
  cmd: Buffer = EMPTY_CMD;
  /** the CQE: 16 bytes of the queue pair's registered response memory, SENT as they are */
  readonly rsp: Buffer;
  /** where rsp lies in registered memory */
  readonly rspMrIndex: number;
  readonly rspOffset: number;
  state: RdmaReqState = RdmaReqState.FREE;
  xferDir: XferDir = XferDir.NONE;
  length = 0;
  iov: Buffer[] = EMPTY_IOV;
  traceStart = 0;
  cid = 0;
  /** the receive the capsule came in, held until the response is posted */
  recv: RecvBuffer | null = null;
  /** data chunks lent by the pool (the first `chunkCount` entries) */
  readonly chunks: DataChunk[] = [];
  chunkCount = 0;
  /** the iov made of the chunks (reused; its length is set per command) */
  readonly chunkIov: Buffer[] = [];
  /** the host's keyed SGL: address halves and key; whether it asked for the key's invalidation */
  remoteLo = 0;
  remoteHi = 0;
  rkey = 0;
  invalidate = false;
  /** send queue entries its posted work requests hold (released by the signaled completion) */
  sendWrs = 0;
  /** RDMA READ work requests it has in flight */
  readWrs = 0;
  /** an RDMA READ of its data failed */
  failed = false;

  constructor(qpair: RdmaRequestQueue, index: number, rsp: Buffer, rspMrIndex: number, rspOffset: number) {
    this.qpair = qpair;
    this.index = index;
    this.rsp = rsp;
    this.rspMrIndex = rspMrIndex;
    this.rspOffset = rspOffset;
  }

  /** The core is done with the command (NvmfRequest): its queue sends the response. */
  complete(): void {
    this.qpair.completeRequest(this);
  }
}
