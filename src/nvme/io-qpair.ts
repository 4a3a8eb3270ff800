// One I/O queue of the host library: NVM commands by callback (the hot path:
// a pooled request slot per command, the SQE built in one scratch buffer, no
// closure or promise per I/O) and their promise forms; the reservation
// commands as promises. Reads, writes and
// compares larger than the controller's MDTS, or than the 16-bit block count,
// are split into parts that complete as one.

import {
  CQE_SIZE,
  Dsm,
  initSqe,
  NvmOpcode,
  RwFlags,
  SQE_SIZE,
  Sqe,
  writeDsmRange,
  writeRwCommand,
} from '../wire/nvme.ts';
import {
  AcquireAction,
  encodeResvCdw10,
  encodeResvKey,
  encodeResvKeys,
  REPORT_EDS,
  RegisterAction,
  ReleaseAction,
  ResvStatus,
  type ResvStatusData,
  readResvReport,
  reportNumd,
  writeReservationCommand,
} from '../wire/reservation.ts';
import { execute } from './command.ts';
import { connectIoQueue, type IoQpairConnectParams } from './connect.ts';
import { NvmeQueueError, NvmeStatusError, queueRefusal } from './errors.ts';
import type { CommandCallback, IoCallback, NvmeQpair } from './qpair.ts';

export interface ReservationRegisterOptions {
  /** RegisterAction (default register) */
  action?: number;
  /** current key (unregister, replace) */
  crkey?: bigint;
  /** new key (register, replace) */
  nrkey?: bigint;
  /** ignore the current key */
  iekey?: boolean;
  /** Cptpl: change Persist Through Power Loss (default no change) */
  cptpl?: number;
}

export interface ReservationAcquireOptions {
  /** AcquireAction (default acquire) */
  action?: number;
  /** ResvType */
  rtype: number;
  crkey: bigint;
  /** the key to preempt */
  prkey?: bigint;
  iekey?: boolean;
}

export interface ReservationReleaseOptions {
  /** ReleaseAction (default release) */
  action?: number;
  /** ResvType of the reservation released (0 for clear) */
  rtype: number;
  crkey: bigint;
  iekey?: boolean;
}

export type { IoCallback } from './qpair.ts';

/** NLB is 16 bits (0-based): one command moves at most 65536 blocks. */
const MAX_BLOCKS_PER_COMMAND = 0x1_0000;

/**
 * One read/write/compare split into several commands (MDTS or the 16-bit
 * block count). Pooled per queue; its part callback is made once, not per I/O.
 */
class SplitIo {
  private readonly owner: NvmeIoQpair;
  cb: IoCallback | null = null;
  remaining = 0;
  status = 0;
  readonly cpl = Buffer.alloc(CQE_SIZE);
  readonly onPart: IoCallback;
  constructor(owner: NvmeIoQpair) {
    this.owner = owner;
    this.onPart = (status, cpl) => this.partDone(status, cpl);
  }

  private partDone(status: number, cpl: Buffer): void {
    // the first error wins; on success the last part's completion is reported
    if (status !== 0 && this.status === 0) {
      this.status = status;
      cpl.copy(this.cpl, 0, 0, CQE_SIZE);
    }
    if (--this.remaining > 0) return;
    if (this.status === 0) cpl.copy(this.cpl, 0, 0, CQE_SIZE);
    const cb = this.cb;
    const st = this.status;
    this.cb = null;
    this.status = 0;
    this.owner.releaseSplit(this);
    cb?.(st, this.cpl);
  }
}

/**
 * One I/O queue: NVM commands with callbacks (hot path) and promise wrappers.
 * Submit methods return false when the command cannot be queued now (queue
 * full or closed, or a split transfer needs more free slots than there are);
 * nothing was sent and the callback will not be called.
 */
export class NvmeIoQpair {
  /** the TCP queue underneath; replaced when the controller reconnects */
  qpair: NvmeQpair;
  readonly qid: number;
  /** largest transfer of one command in bytes; larger reads/writes/compares are split */
  maxTransferSize = Number.POSITIVE_INFINITY;
  /** close() was called: the controller will not reconnect this queue */
  closedByOwner = false;
  /** SQE scratch: submit copies it into the capsule before returning */
  private readonly sqe = Buffer.alloc(SQE_SIZE);
  private readonly splitPool: SplitIo[] = [];
  /** commands the last refused split transfer needed (for the error message) */
  private lastPartsNeeded = 0;

  constructor(qpair: NvmeQpair, qid: number) {
    this.qpair = qpair;
    this.qid = qid;
  }

  get closed(): boolean {
    return this.qpair.closed;
  }

  /** Entries of this queue: the most commands outstanding at once. */
  get queueSize(): number {
    return this.qpair.queueSize;
  }

  /** Commands outstanding now (each part of a split transfer counts). */
  get outstanding(): number {
    return this.qpair.outstanding;
  }

  /** Per-command timeout in ms (0 = none); see NvmeTcpQpair.ioTimeoutMs. */
  get ioTimeoutMs(): number {
    return this.qpair.ioTimeoutMs;
  }

  set ioTimeoutMs(ms: number) {
    this.qpair.ioTimeoutMs = ms;
  }

  /** Swap in a freshly connected queue (controller reconnect). */
  attach(qpair: NvmeQpair, maxTransferSize: number): void {
    const timeout = this.qpair.ioTimeoutMs;
    if (!this.qpair.closed) this.qpair.close();
    this.qpair = qpair;
    this.maxTransferSize = maxTransferSize;
    if (timeout > 0 && qpair.ioTimeoutMs === 0) qpair.ioTimeoutMs = timeout;
  }

  /** @internal a finished split goes back to the pool */
  releaseSplit(s: SplitIo): void {
    this.splitPool.push(s);
  }

  private rw(
    opcode: number,
    nsid: number,
    lba: number,
    blocks: number,
    buf: Buffer | null,
    isRead: boolean,
    cdw12Flags: number,
    cb: IoCallback,
  ): boolean {
    if (blocks > MAX_BLOCKS_PER_COMMAND || (buf !== null && buf.length > this.maxTransferSize)) {
      const blockBytes = buf !== null && blocks > 0 ? buf.length / blocks : 0;
      let perCommand = MAX_BLOCKS_PER_COMMAND;
      if (blockBytes > 0 && Number.isInteger(blockBytes))
        perCommand = Math.min(perCommand, Math.floor(this.maxTransferSize / blockBytes));
      if (perCommand >= 1 && (buf === null || Number.isInteger(blockBytes)))
        return this.rwSplit(opcode, nsid, lba, blocks, buf, isRead, cdw12Flags, cb, perCommand, blockBytes);
    }
    this.fillRw(opcode, nsid, lba, blocks, cdw12Flags);
    return this.qpair.submitIo(this.sqe, buf, isRead, cb);
  }

  private fillRw(opcode: number, nsid: number, lba: number, blocks: number, cdw12Flags: number): void {
    writeRwCommand(this.sqe, opcode, nsid, lba, blocks, cdw12Flags);
  }

  private rwSplit(
    opcode: number,
    nsid: number,
    lba: number,
    blocks: number,
    buf: Buffer | null,
    isRead: boolean,
    cdw12Flags: number,
    cb: IoCallback,
    perCommand: number,
    blockBytes: number,
  ): boolean {
    const parts = Math.ceil(blocks / perCommand);
    // all parts or none: a half-submitted transfer could not be reported as one
    if (parts > this.qpair.available) {
      this.lastPartsNeeded = parts;
      return false;
    }
    const split = this.splitPool.pop() ?? new SplitIo(this);
    split.cb = cb;
    split.remaining = parts;
    split.status = 0;
    for (let done = 0; done < blocks; done += perCommand) {
      const n = Math.min(perCommand, blocks - done);
      const part = buf === null ? null : buf.subarray(done * blockBytes, (done + n) * blockBytes);
      this.fillRw(opcode, nsid, lba + done, n, cdw12Flags);
      this.qpair.submitIo(this.sqe, part, isRead, split.onPart);
    }
    return true;
  }

  /** Returns false when the queue is full or closed. */
  read(nsid: number, lba: number, blocks: number, buf: Buffer, cb: IoCallback): boolean {
    return this.rw(NvmOpcode.READ, nsid, lba, blocks, buf, true, 0, cb);
  }

  write(nsid: number, lba: number, blocks: number, buf: Buffer, cb: IoCallback, fua = false): boolean {
    return this.rw(NvmOpcode.WRITE, nsid, lba, blocks, buf, false, fua ? RwFlags.FUA : 0, cb);
  }

  compare(nsid: number, lba: number, blocks: number, buf: Buffer, cb: IoCallback): boolean {
    return this.rw(NvmOpcode.COMPARE, nsid, lba, blocks, buf, false, 0, cb);
  }

  writeZeroes(nsid: number, lba: number, blocks: number, cb: IoCallback): boolean {
    return this.rw(NvmOpcode.WRITE_ZEROES, nsid, lba, blocks, null, false, 0, cb);
  }

  flush(nsid: number, cb: IoCallback): boolean {
    return this.qpair.submitIo(initSqe(this.sqe, NvmOpcode.FLUSH, nsid), null, false, cb);
  }

  /** Dataset Management, deallocate by default. ranges: [lba, blocks] pairs. */
  dsm(
    nsid: number,
    ranges: Array<[number, number]>,
    cb: IoCallback,
    attributes: number = Dsm.ATTR_DEALLOCATE,
  ): boolean {
    const data = Buffer.alloc(ranges.length * Dsm.RANGE_SIZE);
    ranges.forEach(([lba, blocks], i) => {
      writeDsmRange(data, i, lba, blocks);
    });
    const cmd = initSqe(this.sqe, NvmOpcode.DATASET_MANAGEMENT, nsid);
    cmd.writeUInt32LE(ranges.length - 1, Sqe.CDW10);
    cmd.writeUInt32LE(attributes, Sqe.CDW11);
    return this.qpair.submitIo(cmd, data, false, cb);
  }

  /** Raw command on this queue (CID/SGL filled in). */
  submit(cmd: Buffer, data: Buffer | null, isRead: boolean, cb: CommandCallback): boolean {
    return this.qpair.submit(cmd, data, isRead, cb);
  }

  // ---- promise wrappers (control path, tests)

  /** Why the last submit was refused, as an error. */
  private refused(what: string): NvmeQueueError {
    if (!this.qpair.closed && this.lastPartsNeeded > 0) {
      const parts = this.lastPartsNeeded;
      this.lastPartsNeeded = 0;
      if (parts > this.qpair.queueSize)
        return new NvmeQueueError(
          'too-large',
          `${what}: the transfer needs ${parts} commands (MDTS ${this.maxTransferSize} bytes), more than the queue's ${this.qpair.queueSize} entries`,
        );
    }
    return queueRefusal(this.qpair, what);
  }

  private wrap(what: string, start: (cb: IoCallback) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.lastPartsNeeded = 0;
      const ok = start((status, cpl) => (status === 0 ? resolve() : reject(new NvmeStatusError(cpl, what))));
      if (!ok) reject(this.refused(what));
    });
  }

  readAsync(nsid: number, lba: number, blocks: number, buf: Buffer): Promise<void> {
    return this.wrap('Read', (cb) => this.read(nsid, lba, blocks, buf, cb));
  }

  writeAsync(nsid: number, lba: number, blocks: number, buf: Buffer, fua = false): Promise<void> {
    return this.wrap('Write', (cb) => this.write(nsid, lba, blocks, buf, cb, fua));
  }

  compareAsync(nsid: number, lba: number, blocks: number, buf: Buffer): Promise<void> {
    return this.wrap('Compare', (cb) => this.compare(nsid, lba, blocks, buf, cb));
  }

  writeZeroesAsync(nsid: number, lba: number, blocks: number): Promise<void> {
    return this.wrap('Write Zeroes', (cb) => this.writeZeroes(nsid, lba, blocks, cb));
  }

  flushAsync(nsid: number): Promise<void> {
    return this.wrap('Flush', (cb) => this.flush(nsid, cb));
  }

  dsmAsync(
    nsid: number,
    ranges: Array<[number, number]>,
    attributes: number = Dsm.ATTR_DEALLOCATE,
  ): Promise<void> {
    return this.wrap('Dataset Management', (cb) => this.dsm(nsid, ranges, cb, attributes));
  }

  // ---- reservations (control path: a promise each)

  /** Reservation Register: register `nrkey`, unregister, or replace `crkey` by `nrkey` (RegisterAction). */
  async reservationRegister(nsid: number, o: ReservationRegisterOptions): Promise<void> {
    const cdw10 = encodeResvCdw10({
      action: o.action ?? RegisterAction.REGISTER,
      iekey: o.iekey,
      cptpl: o.cptpl,
    });
    writeReservationCommand(this.sqe, NvmOpcode.RESERVATION_REGISTER, nsid, cdw10);
    await execute(
      this.qpair,
      this.sqe,
      encodeResvKeys(o.crkey ?? 0n, o.nrkey ?? 0n),
      false,
      'Reservation Register',
    );
  }

  /** Reservation Acquire: acquire, preempt or preempt-and-abort (AcquireAction) a reservation of `rtype`. */
  async reservationAcquire(nsid: number, o: ReservationAcquireOptions): Promise<void> {
    const cdw10 = encodeResvCdw10({
      action: o.action ?? AcquireAction.ACQUIRE,
      iekey: o.iekey,
      rtype: o.rtype,
    });
    writeReservationCommand(this.sqe, NvmOpcode.RESERVATION_ACQUIRE, nsid, cdw10);
    await execute(this.qpair, this.sqe, encodeResvKeys(o.crkey, o.prkey ?? 0n), false, 'Reservation Acquire');
  }

  /** Reservation Release: release the reservation of `rtype`, or clear every registration (ReleaseAction). */
  async reservationRelease(nsid: number, o: ReservationReleaseOptions): Promise<void> {
    const cdw10 = encodeResvCdw10({
      action: o.action ?? ReleaseAction.RELEASE,
      iekey: o.iekey,
      rtype: o.rtype,
    });
    writeReservationCommand(this.sqe, NvmOpcode.RESERVATION_RELEASE, nsid, cdw10);
    await execute(this.qpair, this.sqe, encodeResvKey(o.crkey), false, 'Reservation Release');
  }

  /**
   * Reservation Report: the status and the registrants, in the extended structure (128-bit host
   * IDs, what NVMe-oF controllers report) unless `extended` is false; `bytes` (default 4096)
   * bounds how many registrants come back (REGCTL always counts them all).
   */
  async reservationReport(
    nsid: number,
    o: { extended?: boolean; bytes?: number } = {},
  ): Promise<ResvStatusData & { raw: Buffer }> {
    const extended = o.extended !== false;
    const raw = Buffer.alloc(Math.max(ResvStatus.SIZE, Math.ceil((o.bytes ?? 4096) / 4) * 4));
    writeReservationCommand(
      this.sqe,
      NvmOpcode.RESERVATION_REPORT,
      nsid,
      reportNumd(raw.length),
      extended ? REPORT_EDS : 0,
    );
    await execute(this.qpair, this.sqe, raw, true, 'Reservation Report');
    return { ...readResvReport(raw, extended), raw };
  }

  /** Close this queue for good (outstanding commands complete with ABORTED_SQ_DELETION). */
  close(): void {
    this.closedByOwner = true;
    this.qpair.close();
  }
}

/**
 * Connect an I/O queue of an existing controller over a new TCP connection.
 * Usable without the NvmeController object (a worker thread that only knows
 * the controller's cntlid and host ID, as bdev_nvme's per-reactor queues do).
 */
export async function connectIoQpair(p: IoQpairConnectParams): Promise<NvmeIoQpair> {
  const q = await connectIoQueue(p);
  const io = new NvmeIoQpair(q, p.qid);
  if (p.maxTransferSize !== undefined) io.maxTransferSize = p.maxTransferSize;
  return io;
}
