// What the host library needs of one queue, whatever carries it: NvmeTcpQpair
// (tcp-qpair.ts) or NvmeRdmaQpair (rdma-qpair.ts). The controller, the I/O queue
// wrapper and the command helper use only this. Both transports build on QpairCore:
// the pooled slot per CID, submission bookkeeping, the per-command timeout, completing
// a command and failing the outstanding ones when the queue ends; each adds its wire.

import {
  CQE_SIZE,
  Cqe,
  GenericStatus,
  PathStatus,
  StatusCodeType,
  setStatus,
  statusOf,
} from '../wire/nvme.ts';

/** Completion callback: `cpl` is the 16-byte CQE, valid only during the call. */
export type CommandCallback = (cpl: Buffer) => void;

/** Completion callback of I/O commands: status 0 on success, else (sct << 8) | sc. */
export type IoCallback = (status: number, cpl: Buffer) => void;

export interface NvmeQpair {
  readonly queueSize: number;
  /** in-capsule data limit in bytes for host-to-controller data */
  inCapsuleDataSize: number;
  /** set by the owner after Fabrics Connect */
  qid: number;
  closed: boolean;
  /** why the queue ended */
  closeReason: string | null;
  onClose: ((reason: string) => void) | null;
  readonly outstanding: number;
  /** commands that can be submitted now (0 when full or closed) */
  readonly available: number;
  /** per-command timeout in ms (0 = none); a command over it ends the queue */
  ioTimeoutMs: number;
  /**
   * Submit a 64-byte SQE (CID and data pointer are filled here). `data`: bytes to send
   * (`isRead` false) or the buffer to fill. False when the queue is full or closed.
   */
  submit(cmd: Buffer, data: Buffer | null, isRead: boolean, cb: CommandCallback): boolean;
  /** Like submit; the callback gets (status, cpl) with status = (sct << 8) | sc. */
  submitIo(cmd: Buffer, data: Buffer | null, isRead: boolean, cb: IoCallback): boolean;
  /** End the queue; outstanding commands complete with an abort status. */
  fatal(reason: string): void;
  close(): void;
}

/** The slot of one CID, reused command after command; a transport adds its own state. */
export class QpairSlot {
  readonly cid: number;
  /** submitted, not completed yet */
  busy = false;
  cb: CommandCallback | null = null;
  /** I/O-style callback (status, cpl): lets I/O paths avoid a closure per command */
  ioCb: IoCallback | null = null;
  /** data to send (write-like) or to fill (read-like) */
  data: Buffer | null = null;
  isRead = false;
  /** ms timestamp of submission, kept only while a command timeout is set */
  submittedAt = 0;
  /** true when the command timeout ended it: completes with PATH / ABORTED_BY_HOST */
  timedOut = false;
  constructor(cid: number) {
    this.cid = cid;
  }
}

/**
 * What a queue of either transport does alike. A transport puts a claimed slot's command
 * on the wire (`send`), hands each completion to `complete`, frees what it holds for a
 * command in `release` and closes its connection in `shutDown`; `fatal` ends the queue.
 */
export abstract class QpairCore<S extends QpairSlot> implements NvmeQpair {
  readonly queueSize: number;
  inCapsuleDataSize: number;
  qid: number;
  closed = false;
  /** why the queue ended (TermReq, socket error, CM event…) */
  closeReason: string | null = null;
  onClose: ((reason: string) => void) | null = null;
  protected readonly slots: S[] = [];
  protected readonly freeSlots: S[] = [];
  /** the completions `fatal` makes up for the commands it ends */
  private readonly abortCpl = Buffer.alloc(CQE_SIZE);
  private ioTimeoutMsValue = 0;
  private timeoutTimer: NodeJS.Timeout | null = null;

  protected constructor(
    queueSize: number,
    inCapsuleDataSize: number,
    qid: number,
    newSlot: (cid: number) => S,
  ) {
    this.queueSize = queueSize;
    this.inCapsuleDataSize = inCapsuleDataSize;
    this.qid = qid;
    for (let cid = queueSize - 1; cid >= 0; cid--) {
      const slot = newSlot(cid);
      this.slots[cid] = slot;
      this.freeSlots.push(slot);
    }
  }

  get outstanding(): number {
    return this.queueSize - this.freeSlots.length;
  }

  /** Commands that can be submitted now (0 when full or closed). */
  get available(): number {
    return this.closed ? 0 : this.freeSlots.length;
  }

  /**
   * Per-command timeout in ms (0 = none). Neither transport can cancel one command, so
   * a command outstanding longer than this ends the queue: it completes with PATH /
   * ABORTED_BY_HOST (0x371), every other outstanding one with ABORTED_SQ_DELETION.
   * Meant for I/O queues (AERs wait for ever by design).
   */
  get ioTimeoutMs(): number {
    return this.ioTimeoutMsValue;
  }

  set ioTimeoutMs(ms: number) {
    this.ioTimeoutMsValue = Number.isFinite(ms) && ms > 0 ? ms : 0;
    if (this.timeoutTimer) clearInterval(this.timeoutTimer);
    this.timeoutTimer = null;
    if (this.ioTimeoutMsValue === 0 || this.closed) return;
    const now = Date.now();
    for (const slot of this.slots) if (slot.busy) slot.submittedAt = now;
    // one scan timer per queue, not a timer per command
    const period = Math.max(10, Math.min(1000, Math.floor(this.ioTimeoutMsValue / 4)));
    this.timeoutTimer = setInterval(() => this.checkTimeouts(), period);
    this.timeoutTimer.unref();
  }

  private checkTimeouts(): void {
    const limit = Date.now() - this.ioTimeoutMsValue;
    let first: S | null = null;
    for (const slot of this.slots) {
      if (this.awaitsResponse(slot) && slot.submittedAt < limit) {
        slot.timedOut = true;
        first ??= slot;
      }
    }
    if (first !== null) this.fatal(`command ${first.cid} timed out after ${this.ioTimeoutMsValue} ms`);
  }

  /** Whether the slot's command still waits for the controller's answer (the timeout may end it). */
  protected awaitsResponse(slot: S): boolean {
    return slot.busy;
  }

  /**
   * Submit a 64-byte SQE (the transport fills CID and data pointer). `data`: bytes to
   * send (write-like, `isRead` false) or the buffer to fill (read-like). Returns false
   * when the queue is full or closed (nothing was sent).
   */
  submit(cmd: Buffer, data: Buffer | null, isRead: boolean, cb: CommandCallback): boolean {
    return this.submitWith(cmd, data, isRead, cb, null);
  }

  /** Like submit, but the callback gets (status, cpl) with status = (sct << 8) | sc, 0 on success. */
  submitIo(cmd: Buffer, data: Buffer | null, isRead: boolean, cb: IoCallback): boolean {
    return this.submitWith(cmd, data, isRead, null, cb);
  }

  private submitWith(
    cmd: Buffer,
    data: Buffer | null,
    isRead: boolean,
    cb: CommandCallback | null,
    ioCb: IoCallback | null,
  ): boolean {
    if (this.closed) return false;
    const slot = this.freeSlots.pop();
    if (slot === undefined) return false;
    slot.busy = true;
    slot.cb = cb;
    slot.ioCb = ioCb;
    slot.data = data;
    slot.isRead = isRead;
    if (this.ioTimeoutMsValue > 0) slot.submittedAt = Date.now();
    return this.send(slot, cmd);
  }

  /**
   * Put the command of a claimed slot (its data and direction set) on the wire, with
   * its CID and data pointer; false, with the slot released, when it could not go.
   */
  protected abstract send(slot: S, cmd: Buffer): boolean;

  /** The slot's command is done: the slot is free again, then its callback gets `cpl`. */
  protected complete(slot: S, cpl: Buffer): void {
    const cb = slot.cb;
    const ioCb = slot.ioCb;
    this.release(slot);
    if (cb) cb(cpl);
    else if (ioCb) ioCb(statusOf(cpl), cpl);
  }

  /** Back to the free slots (a transport frees what it held for the command first). */
  protected release(slot: S): void {
    slot.cb = null;
    slot.ioCb = null;
    slot.data = null;
    slot.busy = false;
    slot.timedOut = false;
    this.freeSlots.push(slot);
  }

  /** Close the connection (the queue is already marked closed); fail a connect in progress. */
  protected abstract shutDown(reason: string): void;

  /**
   * End the queue and fail every outstanding command: ABORTED_SQ_DELETION, or PATH /
   * ABORTED_BY_HOST for the ones the command timeout ended.
   */
  fatal(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    if (this.timeoutTimer) clearInterval(this.timeoutTimer);
    this.timeoutTimer = null;
    this.shutDown(reason);
    const cpl = this.abortCpl;
    for (const slot of this.slots) {
      if (!slot.busy) continue;
      cpl.fill(0);
      cpl.writeUInt16LE(slot.cid, Cqe.CID);
      cpl.writeUInt16LE(this.qid, Cqe.SQID);
      if (slot.timedOut) setStatus(cpl, StatusCodeType.PATH, PathStatus.ABORTED_BY_HOST, true);
      else setStatus(cpl, StatusCodeType.GENERIC, GenericStatus.ABORTED_SQ_DELETION, true);
      this.complete(slot, cpl);
    }
    this.onClose?.(reason);
  }

  close(): void {
    this.fatal('closed by host');
  }
}
