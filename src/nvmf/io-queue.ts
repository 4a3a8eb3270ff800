// The queue context of an I/O queue (transport.ts QueueContext): what the NVM
// command path needs of it (ctrlr-bdev.ts IoQueueState). Its controller may
// live on another poll group, so it keeps the controller's ID and thread and
// sends failures there for the error log; it serves I/O from the namespaces
// its own poll group opened.
import { sendMsg, type ThreadRef, turnUs } from '../thread/index.ts';
import { NvmOpcode, PathStatus, Sqe, statusOf, u32le } from '../wire/nvme.ts';
import { executeIo, InFlight, type IoQueueState, startLandedWrite } from './ctrlr-bdev.ts';
import { type HostCounters, IoKind, newQueueIoTotals, type QueueIoTotals } from './io-stats.ts';
import { toPollGroup } from './messages.ts';
import type { PgNamespace, PgSubsystem } from './poll-group-subsystem.ts';
import type { PgStats } from './stats.ts';
import { SubsystemState } from './subsystem.ts';
import type { NvmfQpair, NvmfRequest, QueueContext } from './transport.ts';

/** Where an I/O queue sends its reservation commands (its poll group, which asks the app thread). */
export interface ReservationPort {
  reservationCommand(q: IoQueue, req: NvmfRequest, ns: PgNamespace): void;
}

export class IoQueue implements QueueContext, IoQueueState {
  readonly qpair: NvmfQpair;
  readonly cntlid: number;
  readonly subnqn: string;
  readonly hostnqn: string;
  readonly hostId: string;
  readonly inFlight = new InFlight();
  /** the poll-group thread of the controller (its admin queue) */
  readonly owner: ThreadRef;
  readonly sub: PgSubsystem;
  fusedFirst: NvmfRequest | null = null;
  outstanding = 0;
  anaPathStatus = 0;
  readonly maxTransferBytes: number;
  private readonly stats: PgStats;
  /** what this queue did, for its controller's SMART / Health log */
  readonly totals: QueueIoTotals = newQueueIoTotals();
  /** false once its controller is gone: nothing left to count what it did for */
  countForController = true;
  /** this host's counters on this poll group */
  readonly hostCounters: HostCounters;
  /** commands between execute and onComplete, and since when that count is above 0 */
  private executing = 0;
  private busySinceUs = 0;
  private readonly reservations: ReservationPort;

  constructor(o: {
    qpair: NvmfQpair;
    cntlid: number;
    sub: PgSubsystem;
    hostnqn: string;
    /** the controller's host ID (32 hex digits), as its admin Connect gave it */
    hostId: string;
    owner: ThreadRef;
    reservations: ReservationPort;
    /** the transport's max_io_size (MDTS) */
    maxTransferBytes: number;
    /** the poll group's counters (completed_nvme_io) */
    stats: PgStats;
    hostCounters: HostCounters;
  }) {
    this.qpair = o.qpair;
    this.cntlid = o.cntlid;
    this.sub = o.sub;
    this.subnqn = o.sub.view.nqn;
    this.hostnqn = o.hostnqn;
    this.hostId = o.hostId;
    this.owner = o.owner;
    this.reservations = o.reservations;
    this.maxTransferBytes = o.maxTransferBytes;
    this.stats = o.stats;
    this.hostCounters = o.hostCounters;
    this.updateAna();
  }

  /** An NVM command of this queue (QueueContext). */
  execute(req: NvmfRequest): void {
    // SPDK's pause: new I/O waits (queued, not failed) until resume (then it comes back here);
    // a write whose data landed in the bdev is already in flight, and the pause waits for it
    const landed = req.zcopyIo !== undefined && req.zcopyIo !== null;
    if (!landed && this.sub.view.state === SubsystemState.PAUSED) {
      this.sub.queued.push(req);
      return;
    }
    // the reactor turn's time (no clock read per I/O): latencies are precise to one iteration
    const now = turnUs();
    req.startUs = now;
    if (this.executing++ === 0) this.busySinceUs = now;
    executeIo(this, req);
  }

  /** A large write about to get its R2T: its data may land in the bdev's memory (ctrlr-bdev.ts
   * startLandedWrite); false: the transport receives it into a buffer of its own. */
  landWrite(req: NvmfRequest): boolean {
    return startLandedWrite(this, req);
  }

  /** Recompute the path status from the ANA state of the listener this queue came through. */
  updateAna(): void {
    const v = this.sub.view;
    if (!v.anaReporting) {
      this.anaPathStatus = 0;
      return;
    }
    const a = this.qpair.listenAddr;
    const i = v.listeners.findIndex(
      (l) =>
        l.traddr === a.traddr && l.trsvcid === a.trsvcid && l.trtype.toUpperCase() === a.trtype.toUpperCase(),
    );
    const state = i >= 0 ? v.listenerAnaStates[i] : 'optimized';
    this.anaPathStatus =
      state === 'inaccessible'
        ? PathStatus.ASYMMETRIC_ACCESS_INACCESSIBLE
        : state === 'persistent_loss'
          ? PathStatus.ASYMMETRIC_ACCESS_PERSISTENT_LOSS
          : state === 'change'
            ? PathStatus.ASYMMETRIC_ACCESS_TRANSITION
            : 0;
  }

  onError(req: NvmfRequest, lba: number): void {
    const status = statusOf(req.rsp);
    this.hostCounters.countError(status);
    this.onFailure?.(this, status);
    sendMsg(this.owner, toPollGroup.recordError, {
      cntlid: this.cntlid,
      sqid: req.qpair.qid,
      cid: req.cmd.readUInt16LE(Sqe.CID),
      status,
      lba,
      nsid: req.cmd.readUInt32LE(Sqe.NSID),
    });
  }

  /** set by the poll group: keeps the recent failures for the dashboard */
  onFailure: ((q: IoQueue, status: number) => void) | null = null;

  /** Counted on this thread: the poll group, the namespace, the queue's totals (no message). */
  onComplete(req: NvmfRequest): void {
    const now = turnUs();
    this.stats.completed_nvme_io++;
    if (--this.executing === 0) this.totals.busyUs += now - this.busySinceUs;
    const cmd = req.cmd;
    const opc = cmd[Sqe.OPCODE];
    const ok = statusOf(req.rsp) === 0;
    const kind = opc === NvmOpcode.READ ? IoKind.READ : opc === NvmOpcode.WRITE ? IoKind.WRITE : IoKind.OTHER;
    const bytes = kind === IoKind.OTHER ? 0 : req.length;
    if (ok && kind === IoKind.READ) {
      this.totals.hostReads++;
      this.totals.bytesRead += bytes;
    } else if (ok && kind === IoKind.WRITE) {
      this.totals.hostWrites++;
      this.totals.bytesWritten += bytes;
    }
    this.sub.io.get(u32le(cmd, Sqe.NSID))?.record(kind, bytes, now - (req.startUs ?? now), ok);
  }

  reservationCommand(req: NvmfRequest, ns: PgNamespace): void {
    this.reservations.reservationCommand(this, req, ns);
  }
}
