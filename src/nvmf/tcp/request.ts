// NVMe/TCP target transport, the request slot: what one command holds while
// its qpair serves it (the SQE, the response and data PDU headers it is sent
// with, its data buffers), its states, and the pool of data buffers a poll
// group lends to transport-SGL transfers. Slots are allocated once per
// qpair and reused; nothing here is allocated per command.

import type { BdevIo, LentData } from '../../bdev/index.ts';
import { AlignedSlab } from '../../util/aligned-memory.ts';
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

/**
 * Room before a slot's in-capsule buffer for a C2HData header (with its digest and the padding
 * the host's HPDA asks for, a PDO of at most 128 bytes) and after it for a data digest and a
 * CapsuleResp with its header digest: a read served from that buffer leaves as one frame, one
 * part of the burst's writev instead of three.
 */
export const FRAME_HEAD = 128;
export const FRAME_TAIL = DIGEST_SIZE + CapsuleResp.HDR_SIZE + DIGEST_SIZE;
/** A slot's frame length for an in-capsule buffer of `inCapsuleSize` bytes. */
export function frameLength(inCapsuleSize: number): number {
  return FRAME_HEAD + inCapsuleSize + FRAME_TAIL;
}
/** TcpRequest.frameShape of a frame whose C2HData header must be written whole. */
export const NO_FRAME_SHAPE = 0;

/** What a slot completes into: its qpair (TcpQpair in qpair.ts, which owns the slot table). */
export interface TcpRequestQueue extends NvmfQpair {
  completeRequest(req: TcpRequest): void;
}

/** One command slot of a qpair: its SQE, its response and data PDU headers, its data. */
export class TcpRequest implements NvmfRequest, LentData {
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
  /** in-capsule data buffer, sized for the queue type; a view of `frame` at FRAME_HEAD */
  readonly inCapsule: Buffer;
  /** FRAME_HEAD bytes, the in-capsule buffer, FRAME_TAIL bytes */
  readonly frame: Buffer;
  /** the last frame view sent, [frameViewStart, frameViewEnd) of `frame` */
  private frameView: Buffer | null = null;
  private frameViewStart = 0;
  private frameViewEnd = 0;
  /** the header part of the frame, for a PDO of frameHeaderPdo bytes */
  private frameHeaderView: Buffer | null = null;
  private frameHeaderPdo = 0;
  /**
   * The shape of the C2HData header in the frame (its data length, negative with SUCCESS), so a
   * read of the same shape writes only its CCCID; NO_FRAME_SHAPE: write it whole.
   */
  frameShape = NO_FRAME_SHAPE;
  /** the CapsuleResp PDU without room for a digest (what is sent when there is none) */
  readonly respPduNoDigest: Buffer;
  /**
   * Views and iov arrays kept from the slot's last command and reused while the next one has
   * the same length (and buffer): no view or array allocated per command in a steady workload.
   * Each array holds one view, set again at every use.
   */
  readonly inCapsuleIov: Buffer[] = [];
  readonly poolIov: Buffer[] = [];
  private inCapsuleView: Buffer | null = null;
  private poolView: Buffer | null = null;
  /** the pool buffer poolView is a view of (compared as objects: no look at its ArrayBuffer) */
  private poolViewOf: Buffer | null = null;
  private dataHdrView: Buffer | null = null;
  /** the iov the transport gave a read (its own memory, `length` bytes), until the core replaces it */
  readIov: Buffer[] | null = null;
  state: TcpReqState = TcpReqState.FREE;
  xferDir: XferDir = XferDir.NONE;
  length = 0;
  iov: Buffer[] = EMPTY_IOV;
  /** pooled buffer for transport-SGL data, returned on free */
  poolBuf: Buffer | null = null;
  /** a read larger than the in-capsule buffer: the core may lend it the bdev's memory */
  zcopy = false;
  /** the lend behind `iov` (ctrlr-bdev.ts), ended when the slot is freed */
  zcopyIo: BdevIo | null = null;
  cid = 0;
  h2cReceived = 0;
  /** a data digest mismatch was found on this command's data */
  digestError = false;
  /** set by the core when it traces the command (trace.ts); 0 otherwise */
  traceStart = 0;
  startUs = 0;
  /** fused ordering (fused.ts) */
  fusedPartner: NvmfRequest | null = null;
  fusedReady = false;
  fusedFailed = false;
  /** this slot, while its iov is in-capsule data lent from the receive buffer (lendData) */
  lentData: LentData | null = null;
  private lentView: Buffer | null = null;

  /** `frame`: FRAME_HEAD + inCapsuleSize + FRAME_TAIL bytes to use (64-aligned from the
   * qpair's slab), or null to allocate them */
  constructor(qpair: TcpRequestQueue, index: number, inCapsuleSize: number, frame: Buffer | null) {
    this.qpair = qpair;
    this.index = index;
    this.rsp = capsuleRespCqe(this.respPdu);
    // the largest PDO is 128 (hpda 31), past the 24-byte header and its digest
    this.dataHdr = Buffer.alloc(DataPdu.HDR_SIZE + DIGEST_SIZE + 128);
    this.frame = frame ?? Buffer.alloc(frameLength(inCapsuleSize));
    this.inCapsule = this.frame.subarray(FRAME_HEAD, FRAME_HEAD + inCapsuleSize);
    this.respPduNoDigest = this.respPdu.subarray(0, CapsuleResp.HDR_SIZE);
  }

  /** The first `length` bytes of the in-capsule buffer as the command's iov (in-capsule data, or
   * a read that fits: a read leaves the buffer unused). */
  inCapsuleData(length: number): Buffer[] {
    let v = this.inCapsuleView;
    if (v === null || v.length !== length) {
      v = this.inCapsule.subarray(0, length);
      this.inCapsuleView = v;
    }
    return oneView(this.inCapsuleIov, v);
  }

  /**
   * In-capsule data left where it was received, buf[start, start + length), as the command's
   * iov: lent for the call that hands the command to the core (NvmfRequest.lentData), after
   * which the qpair calls keep() unless the bdev layer said consumed().
   */
  lendData(buf: Buffer, start: number, length: number): Buffer[] {
    const view = buf.subarray(start, start + length);
    this.lentView = view;
    this.lentData = this;
    const iov = this.inCapsuleIov;
    iov[0] = view;
    iov.length = 1;
    return iov;
  }

  /** LentData: the data becomes the slot's own (its in-capsule buffer), in the same iov array. */
  keep(): Buffer[] {
    const view = this.lentView;
    if (this.lentData !== null && view !== null) {
      view.copy(this.inCapsule, 0, 0, view.length);
      this.iov = this.inCapsuleData(view.length);
    }
    this.lentData = null;
    this.lentView = null;
    return this.iov;
  }

  /** LentData: a module took the data during the submit call. */
  consumed(): void {
    this.lentData = null;
    this.lentView = null;
  }

  /** The first `length` bytes of the pool buffer `buf` as the command's iov. */
  poolData(buf: Buffer, length: number): Buffer[] {
    let v = this.poolView;
    if (v === null || this.poolViewOf !== buf || v.length !== length) {
      v = buf.subarray(0, length);
      this.poolView = v;
      this.poolViewOf = buf;
    }
    return oneView(this.poolIov, v);
  }

  /** The `pdo` bytes of the frame before the in-capsule buffer: where a C2HData header goes. */
  frameHeader(pdo: number): Buffer {
    const v = this.frameHeaderView;
    if (v !== null && this.frameHeaderPdo === pdo) return v;
    const fresh = this.frame.subarray(FRAME_HEAD - pdo, FRAME_HEAD);
    this.frameHeaderView = fresh;
    this.frameHeaderPdo = pdo;
    this.frameShape = NO_FRAME_SHAPE;
    return fresh;
  }

  /** frame[start, end) (the same view while a queue's reads keep their length). */
  frameBytes(start: number, end: number): Buffer {
    const v = this.frameView;
    if (v !== null && this.frameViewStart === start && this.frameViewEnd === end) return v;
    const fresh = this.frame.subarray(start, end);
    this.frameView = fresh;
    this.frameViewStart = start;
    this.frameViewEnd = end;
    return fresh;
  }

  /** The first `length` bytes of the data PDU header buffer. */
  dataHeader(length: number): Buffer {
    const v = this.dataHdrView;
    if (v !== null && v.length === length) return v;
    const fresh = this.dataHdr.subarray(0, length);
    this.dataHdrView = fresh;
    return fresh;
  }

  /** The core is done with the command (NvmfRequest): its queue sends the response. */
  complete(): void {
    this.qpair.completeRequest(this);
  }
}

/** `iov` as [view]. */
function oneView(iov: Buffer[], view: Buffer): Buffer[] {
  iov[0] = view;
  if (iov.length !== 1) iov.length = 1;
  return iov;
}

/**
 * Data buffers for transport-SGL transfers, shared by a poll group's qpairs. The first `keep` are
 * carved at page multiples from one page-aligned memory (util/aligned-memory.ts), so the copies
 * between them and a malloc bdev's memory, itself page-aligned, and the kernel's copies run at
 * full speed whatever the process's heap looks like; buffers beyond those are ordinary ones.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly size: number;
  private readonly keep: number;
  private readonly slab: AlignedSlab;

  constructor(size: number, keep: number) {
    this.size = size;
    this.keep = keep;
    this.slab = new AlignedSlab(size, keep, 4096);
  }

  get(): Buffer {
    return this.free.pop() ?? this.slab.take() ?? Buffer.allocUnsafe(this.size);
  }

  put(buf: Buffer): void {
    // a carved buffer is always kept (there are at most `keep`): dropped, it would be lost
    if (this.free.length < this.keep || this.slab.owns(buf)) this.free.push(buf);
  }
}
