// NVM command set over bdevs: decodes the SQE in place, submits one bdev_io,
// completes the request from a module-level callback (no per-I/O closures:
// a pooled BdevCommand naming the queue and the request is the callback
// argument).
import {
  type BdevIo,
  BdevIoType,
  bdevCompare,
  bdevCompareAndWrite,
  bdevFlush,
  bdevFreeIo,
  bdevIoGetNvmeStatus,
  bdevRead,
  bdevReadZcopy,
  bdevUnmap,
  bdevWrite,
  bdevWriteZeroes,
  bdevZcopyEnd,
  bdevZcopyStartWrite,
  sliceIov,
} from '../bdev/index.ts';
import {
  Dsm,
  GenericStatus,
  getNumBlocks,
  getSlba,
  NvmOpcode,
  RwFlags,
  Sqe,
  SqeFlags,
  StatusCodeType,
  setStatus,
  u32le,
} from '../wire/nvme.ts';
import { ResvType } from '../wire/reservation.ts';
import type { PgNamespace, PgSubsystem } from './poll-group-subsystem.ts';
import { reservationAccess } from './reservation.ts';
import type { NvmfRequest } from './transport.ts';

/** Per-I/O-queue state the NVM command path needs. */
export interface IoQueueState {
  readonly sub: PgSubsystem;
  /** the controller's host: the namespaces it sees (masking) */
  readonly hostnqn: string;
  /** the controller's 128-bit host ID, 32 hex digits: who it is to a reservation */
  readonly hostId: string;
  /** the commands this queue has at the bdevs (preempt-and-abort waits for some of them) */
  readonly inFlight: InFlight;
  /** a fused compare waiting for its write */
  fusedFirst: NvmfRequest | null;
  /** 0, or the path status (SCT 3) an ANA state other than (non-)optimized gives every I/O */
  anaPathStatus: number;
  /** commands handed to a bdev and not yet completed */
  outstanding: number;
  /** largest data transfer of one command in bytes (the transport's max_io_size = MDTS); unset: no limit */
  maxTransferBytes?: number;
  /** called when a command fails, for the controller's error log */
  onError(req: NvmfRequest, lba: number): void;
  /** called for each completed command, for stats */
  onComplete(req: NvmfRequest): void;
  /** a Reservation Register / Report / Acquire / Release for the namespace's owner (the app
   * thread); it completes the command later with completeNvm */
  reservationCommand(req: NvmfRequest, ns: PgNamespace): void;
}

/** Complete an NVM command of queue `st` with a status (SCT 0 / SC 0: success). */
export function completeNvm(st: IoQueueState, req: NvmfRequest, sct: number, sc: number, dnr: boolean): void {
  finish(st, req, sct, sc, dnr);
}

function finish(st: IoQueueState, req: NvmfRequest, sct: number, sc: number, dnr: boolean): void {
  if (sct !== 0 || sc !== 0) {
    setStatus(req.rsp, sct, sc, dnr);
    st.onError(req, getSlba(req.cmd));
  }
  st.onComplete(req);
  req.complete();
}

/**
 * One command handed to a bdev: the argument of the bdev callback, so the completion finds
 * its queue without a closure per I/O. Pooled per realm; a fused compare-and-write is one
 * (its compare in `req`, its write in `second`).
 */
class BdevCommand {
  queue: IoQueueState | null = null;
  req: NvmfRequest | null = null;
  second: NvmfRequest | null = null;
  /** a preempt-and-abort waiting for this command to end, counted in it */
  waiter: PreemptWait | null = null;
  /** the queue's in-flight list, threaded through the commands (no allocation per I/O) */
  prev: BdevCommand | null = null;
  next: BdevCommand | null = null;
}

/** The commands one queue has at the bdevs. */
export class InFlight {
  head: BdevCommand | null = null;
}

/** What a Preempt and Abort waits for on one poll group: the preempted hosts' commands that
 * were at the bdevs when it ran; each one's completion counts down. */
export class PreemptWait {
  remaining = 0;
}

const freeCommands: BdevCommand[] = [];

function takeCommand(st: IoQueueState, req: NvmfRequest, second: NvmfRequest | null): BdevCommand {
  const c = freeCommands.pop() ?? new BdevCommand();
  c.queue = st;
  c.req = req;
  c.second = second;
  const list = st.inFlight;
  c.prev = null;
  c.next = list.head;
  if (list.head !== null) list.head.prev = c;
  list.head = c;
  st.outstanding++;
  return c;
}

function releaseCommand(c: BdevCommand): void {
  const list = c.queue?.inFlight;
  if (list !== undefined) {
    if (c.prev !== null) c.prev.next = c.next;
    else if (list.head === c) list.head = c.next;
    if (c.next !== null) c.next.prev = c.prev;
  }
  c.prev = null;
  c.next = null;
  if (c.waiter !== null) {
    c.waiter.remaining--;
    c.waiter = null;
  }
  c.queue = null;
  c.req = null;
  c.second = null;
  freeCommands.push(c);
}

/**
 * Preempt and Abort on this queue: its commands on namespace `nsid` now at the bdevs are
 * counted in `wait` (each one's completion counts down). The bdevs cannot take a command back,
 * so the preempting Acquire waits for them, as SPDK's target does.
 */
export function waitForPreempted(st: IoQueueState, nsid: number, wait: PreemptWait): void {
  for (let c = st.inFlight.head; c !== null; c = c.next) {
    const req = c.req;
    if (req === null || c.waiter !== null || req.cmd.readUInt32LE(Sqe.NSID) !== nsid) continue;
    c.waiter = wait;
    wait.remaining++;
  }
}

/**
 * A bdev I/O of one command completed. A read the bdev answered with its own memory
 * (bdevReadZcopy lent it: io.zcopy) hands the view to the request and keeps the io until the
 * transport calls endZcopy; every other io is freed here (a landed write's too: its
 * bdevZcopyEnd cleared io.zcopy).
 */
function bdevDone(io: BdevIo, success: boolean, cbArg: unknown): void {
  const c = cbArg as BdevCommand;
  const st = c.queue;
  const req = c.req;
  if (st === null || req === null) throw new Error('nvmf: a bdev completed one command twice');
  releaseCommand(c);
  st.outstanding--;
  if (success) {
    if (io.zcopy) {
      req.iov = io.iov;
      req.zcopyIo = io;
    } else bdevFreeIo(io);
    finish(st, req, 0, 0, false);
    return;
  }
  const s = bdevIoGetNvmeStatus(io);
  bdevFreeIo(io);
  finish(st, req, s.sct, s.sc, false);
}

/**
 * The transport is done with a request's zero-copy io: it sent a read's lent data (or dropped
 * it), so the bdev may change those blocks again; or a write's data never came in (the
 * connection ended after its R2T), so the write leaves the bdev and the queue's count without
 * a completion.
 */
export function endZcopy(req: NvmfRequest): void {
  const io = req.zcopyIo;
  if (io === undefined || io === null) return;
  req.zcopyIo = null;
  if (io.zcopy && io.type === BdevIoType.WRITE) {
    const c = io.cbArg as BdevCommand;
    const st = c.queue;
    releaseCommand(c);
    if (st !== null) st.outstanding--;
  }
  bdevZcopyEnd(io);
}

/**
 * Before a large write's data arrives (the transport is about to send its R2T): when every
 * check executeIo makes lets the write through, the bdev lends the blocks' own memory for the
 * data to land in (bdevZcopyStartWrite, a malloc bdev) and `req.iov` becomes that view. The
 * write is then at the bdev, in flight for a pause or a preempt-and-abort to wait for, and
 * executeIo commits it once the data is in (the checks are not made again: the write took
 * effect as of now, as SPDK's zcopy start). False, nothing changed: the write goes the copy
 * way, where anything refused is answered.
 */
export function startLandedWrite(st: IoQueueState, req: NvmfRequest): boolean {
  const cmd = req.cmd;
  if (
    cmd[Sqe.OPCODE] !== NvmOpcode.WRITE ||
    (cmd[Sqe.FLAGS] & SqeFlags.FUSE_MASK) !== 0 ||
    st.fusedFirst !== null
  ) {
    return false;
  }
  const ns = admitIo(st, cmd, NvmOpcode.WRITE);
  if (typeof ns === 'number') return false;
  const slba = getSlba(cmd);
  const nlb = getNumBlocks(cmd);
  if (rangeStatus(st, req, ns, slba, nlb, true) !== 0) return false;
  const io = bdevZcopyStartWrite(ns.desc, ns.ch.ctx, slba, nlb, bdevDone, null);
  if (io === null) return false;
  io.cbArg = takeCommand(st, req, null);
  req.iov = io.iov;
  req.zcopyIo = io;
  return true;
}

/** A fused compare-and-write completes both of its commands. */
function fusedDone(io: BdevIo, success: boolean, cbArg: unknown): void {
  const c = cbArg as BdevCommand;
  const st = c.queue;
  const first = c.req;
  const second = c.second;
  if (st === null || first === null || second === null) {
    throw new Error('nvmf: a bdev completed one command twice');
  }
  releaseCommand(c);
  st.outstanding--;
  if (success) {
    bdevFreeIo(io);
    finish(st, first, 0, 0, false);
    finish(st, second, 0, 0, false);
    return;
  }
  const s = bdevIoGetNvmeStatus(io);
  bdevFreeIo(io);
  finish(st, first, s.sct, s.sc, false);
  finish(st, second, StatusCodeType.GENERIC, GenericStatus.ABORTED_FAILED_FUSED, false);
}

/**
 * Checks shared by read, write and compare: MDTS, LBA range (SLBA + NLB in plain
 * number arithmetic never wraps at 2^64, so a huge SLBA cannot slip under the end),
 * and an SGL describing exactly NLB × block size (Identify SGLS bit 18 is clear:
 * no longer-than-needed SGLs; Linux nvmet_check_transfer_len is as strict).
 */
function checkRange(
  st: IoQueueState,
  req: NvmfRequest,
  ns: PgNamespace,
  slba: number,
  nlb: number,
  withData: boolean,
): boolean {
  const s = rangeStatus(st, req, ns, slba, nlb, withData);
  if (s === 0) return true;
  failWith(st, req, s);
  return false;
}

/** checkRange's answer without answering: 0, or the status (statusWord). */
function rangeStatus(
  st: IoQueueState,
  req: NvmfRequest,
  ns: PgNamespace,
  slba: number,
  nlb: number,
  withData: boolean,
): number {
  const bdev = ns.desc.bdev;
  const bytes = nlb * bdev.blockSize;
  const max = st.maxTransferBytes;
  // over MDTS: Invalid Field in Command (NVMe base spec, Identify Controller MDTS)
  if (withData && max !== undefined && bytes > max) return statusWord(GenericStatus.INVALID_FIELD);
  if (slba + nlb > bdev.numBlocks) return statusWord(GenericStatus.LBA_OUT_OF_RANGE);
  if (withData && bytes !== req.length) return statusWord(GenericStatus.DATA_SGL_LENGTH_INVALID);
  return 0;
}

/** DNR in a statusWord. */
const STATUS_DNR = 0x10000;

/** An NVMe status as one number (no allocation): SC, SCT << 8, and STATUS_DNR; 0 is success. */
function statusWord(sc: number, sct: number = StatusCodeType.GENERIC, dnr = true): number {
  return sc | (sct << 8) | (dnr ? STATUS_DNR : 0);
}

/** Answer `req` with a statusWord. */
function failWith(st: IoQueueState, req: NvmfRequest, s: number): void {
  finish(st, req, (s >> 8) & 0xff, s & 0xff, (s & STATUS_DNR) !== 0);
}

/**
 * The checks every NVM command passes before its opcode matters: the namespace it names, or
 * the status to answer it with (a statusWord). Used by executeIo and, before a write's data
 * has come, by startLandedWrite.
 */
function admitIo(st: IoQueueState, cmd: Buffer, opc: number): PgNamespace | number {
  // NVMe-oF carries data by SGL only: PSDT 00b (PRP) or 11b (reserved) is an invalid field
  // (Linux drivers/nvme/target/core.c nvmet_req_init)
  const psdt = cmd[Sqe.FLAGS] & SqeFlags.PSDT_MASK;
  if (psdt === SqeFlags.PSDT_PRP || psdt === SqeFlags.PSDT_MASK)
    return statusWord(GenericStatus.INVALID_FIELD);
  // NSID 0, 0xffffffff (no broadcast: Identify VWC says so), above NN, inactive, or not visible
  // to this host (masking: SPDK answers the same as for an inactive namespace)
  const ns = st.sub.visibleNs(u32le(cmd, Sqe.NSID), st.hostnqn);
  if (ns === undefined) return statusWord(GenericStatus.INVALID_NAMESPACE_OR_FORMAT);
  // paused/inactive subsystems do not take I/O; the host retries
  if (st.sub.view.state !== 'active')
    return statusWord(GenericStatus.NAMESPACE_NOT_READY, StatusCodeType.GENERIC, false);
  if (st.anaPathStatus !== 0) return statusWord(st.anaPathStatus, StatusCodeType.PATH, false);
  // the reservation's command-permission table (no reservation: nothing to look up)
  const resv = ns.config.resv;
  if (resv.rtype !== ResvType.NONE && reservationAccess(resv, st.hostId, opc) !== GenericStatus.SUCCESS) {
    return statusWord(GenericStatus.RESERVATION_CONFLICT);
  }
  return ns;
}

function ensureIov(req: NvmfRequest, bytes: number): Buffer[] {
  let total = 0;
  for (const b of req.iov) total += b.length;
  if (total < bytes) req.iov = [Buffer.allocUnsafe(req.length)];
  return bytes === req.length && req.iov.length === 1 && req.iov[0].length === bytes
    ? req.iov
    : sliceIov(req.iov, 0, bytes);
}

/** Execute one NVM I/O command. */
export function executeIo(st: IoQueueState, req: NvmfRequest): void {
  const cmd = req.cmd;
  const opc = cmd[Sqe.OPCODE];
  const fuse = cmd[Sqe.FLAGS] & SqeFlags.FUSE_MASK;

  // the transport's fused ordering (fused.ts) found no partner for this half
  if (req.fusedFailed === true) {
    finish(st, req, StatusCodeType.GENERIC, GenericStatus.ABORTED_MISSING_FUSED, false);
    return;
  }
  // a pending fused first command must be followed by its second (SPDK lib/nvmf/ctrlr.c
  // nvmf_ctrlr_process_io_cmd: the first is aborted, the new command goes on)
  if (st.fusedFirst !== null && fuse !== SqeFlags.FUSE_SECOND) {
    const first = st.fusedFirst;
    st.fusedFirst = null;
    finish(st, first, StatusCodeType.GENERIC, GenericStatus.ABORTED_MISSING_FUSED, false);
  }
  // a write whose data landed in the bdev's memory (startLandedWrite): done now
  const landed = req.zcopyIo;
  if (landed !== undefined && landed !== null) {
    req.zcopyIo = null;
    bdevZcopyEnd(landed, true);
    return;
  }
  const ns = admitIo(st, cmd, opc);
  if (typeof ns === 'number') {
    failWith(st, req, ns);
    return;
  }
  const nsid = ns.nsid;
  const desc = ns.desc;
  const ch = ns.ch.ctx;
  const bs = desc.bdev.blockSize;

  // fused operations as SPDK answers them (lib/nvmf/ctrlr.c nvmf_ctrlr_process_io_fused_cmd)
  if (fuse === SqeFlags.FUSE_MASK) {
    finish(st, req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true);
    return;
  }
  if (fuse === SqeFlags.FUSE_FIRST) {
    if (opc !== NvmOpcode.COMPARE) {
      finish(st, req, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
      return;
    }
    st.fusedFirst = req;
    return;
  }
  if (fuse === SqeFlags.FUSE_SECOND) {
    const first = st.fusedFirst;
    st.fusedFirst = null;
    if (first === null) {
      // a second command with no first
      finish(st, req, StatusCodeType.GENERIC, GenericStatus.ABORTED_MISSING_FUSED, false);
      return;
    }
    if (opc !== NvmOpcode.WRITE) {
      finish(st, first, StatusCodeType.GENERIC, GenericStatus.ABORTED_MISSING_FUSED, false);
      finish(st, req, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
      return;
    }
    const slba = getSlba(cmd);
    const nlb = getNumBlocks(cmd);
    if (
      getSlba(first.cmd) !== slba ||
      getNumBlocks(first.cmd) !== nlb ||
      first.cmd.readUInt32LE(Sqe.NSID) !== nsid
    ) {
      finish(st, first, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true);
      finish(st, req, StatusCodeType.GENERIC, GenericStatus.ABORTED_FAILED_FUSED, false);
      return;
    }
    if (slba + nlb > desc.bdev.numBlocks) {
      finish(st, first, StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE, true);
      finish(st, req, StatusCodeType.GENERIC, GenericStatus.ABORTED_FAILED_FUSED, false);
      return;
    }
    const max = st.maxTransferBytes;
    if (max !== undefined && nlb * bs > max) {
      finish(st, first, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true);
      finish(st, req, StatusCodeType.GENERIC, GenericStatus.ABORTED_FAILED_FUSED, false);
      return;
    }
    if (nlb * bs !== req.length || nlb * bs !== first.length) {
      finish(st, first, StatusCodeType.GENERIC, GenericStatus.DATA_SGL_LENGTH_INVALID, true);
      finish(st, req, StatusCodeType.GENERIC, GenericStatus.ABORTED_FAILED_FUSED, false);
      return;
    }
    const fua = (u32le(cmd, Sqe.CDW12) & RwFlags.FUA) !== 0;
    bdevCompareAndWrite(
      desc,
      ch,
      sliceIov(first.iov, 0, nlb * bs),
      sliceIov(req.iov, 0, nlb * bs),
      slba,
      nlb,
      fua,
      fusedDone,
      takeCommand(st, first, req),
    );
    return;
  }

  switch (opc) {
    case NvmOpcode.READ: {
      const slba = getSlba(cmd);
      const nlb = getNumBlocks(cmd);
      if (!checkRange(st, req, ns, slba, nlb, true)) return;
      // a transport that sends from lent memory gets the bdev's own where it can lend it
      if (req.zcopy === true && nlb * bs === req.length) {
        bdevReadZcopy(desc, ch, ensureIov(req, nlb * bs), slba, nlb, bdevDone, takeCommand(st, req, null));
        return;
      }
      bdevRead(desc, ch, ensureIov(req, nlb * bs), slba, nlb, bdevDone, takeCommand(st, req, null));
      return;
    }
    case NvmOpcode.WRITE: {
      const slba = getSlba(cmd);
      const nlb = getNumBlocks(cmd);
      if (!checkRange(st, req, ns, slba, nlb, true)) return;
      const fua = (u32le(cmd, Sqe.CDW12) & RwFlags.FUA) !== 0;
      // lent data goes down as the request's own iov (checkRange made the lengths equal)
      const lent = req.lentData ?? null;
      if (nlb * bs === req.length) {
        bdevWrite(desc, ch, req.iov, slba, nlb, fua, bdevDone, takeCommand(st, req, null), lent);
        return;
      }
      if (lent !== null) req.iov = lent.keep();
      bdevWrite(
        desc,
        ch,
        sliceIov(req.iov, 0, nlb * bs),
        slba,
        nlb,
        fua,
        bdevDone,
        takeCommand(st, req, null),
      );
      return;
    }
    case NvmOpcode.COMPARE: {
      const slba = getSlba(cmd);
      const nlb = getNumBlocks(cmd);
      if (!checkRange(st, req, ns, slba, nlb, true)) return;
      bdevCompare(desc, ch, sliceIov(req.iov, 0, nlb * bs), slba, nlb, bdevDone, takeCommand(st, req, null));
      return;
    }
    case NvmOpcode.FLUSH:
      if (!ns.flushSupported) {
        finish(st, req, 0, 0, false);
        return;
      }
      bdevFlush(desc, ch, 0, desc.bdev.numBlocks, bdevDone, takeCommand(st, req, null));
      return;
    case NvmOpcode.WRITE_ZEROES: {
      const slba = getSlba(cmd);
      const nlb = getNumBlocks(cmd);
      if (!checkRange(st, req, ns, slba, nlb, false)) return;
      bdevWriteZeroes(desc, ch, slba, nlb, bdevDone, takeCommand(st, req, null));
      return;
    }
    case NvmOpcode.DATASET_MANAGEMENT: {
      const nr = (cmd[Sqe.CDW10] & 0xff) + 1;
      const attrs = cmd.readUInt32LE(Sqe.CDW11);
      // NR + 1 ranges of 16 bytes must all be there (at most 256: NR is 8 bits)
      if (nr * Dsm.RANGE_SIZE > req.length) {
        finish(st, req, StatusCodeType.GENERIC, GenericStatus.DATA_SGL_LENGTH_INVALID, true);
        return;
      }
      if ((attrs & Dsm.ATTR_DEALLOCATE) === 0) {
        finish(st, req, 0, 0, false); // integral read/write hints only: nothing to do
        return;
      }
      if (!ns.unmapSupported) {
        finish(st, req, 0, 0, false);
        return;
      }
      const data = req.iov.length === 1 ? req.iov[0] : Buffer.concat(req.iov);
      const ranges: { offsetBlocks: number; numBlocks: number }[] = [];
      for (let i = 0; i < nr; i++) {
        const off = i * Dsm.RANGE_SIZE;
        const len = data.readUInt32LE(off + Dsm.RANGE_LENGTH);
        if (len === 0) continue;
        const slba =
          data.readUInt32LE(off + Dsm.RANGE_SLBA_HI) * 0x100000000 +
          data.readUInt32LE(off + Dsm.RANGE_SLBA_LO);
        if (slba + len > desc.bdev.numBlocks) {
          finish(st, req, StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE, true);
          return;
        }
        ranges.push({ offsetBlocks: slba, numBlocks: len });
      }
      if (ranges.length === 0) {
        finish(st, req, 0, 0, false);
        return;
      }
      bdevUnmap(desc, ch, ranges, bdevDone, takeCommand(st, req, null));
      return;
    }
    case NvmOpcode.RESERVATION_REGISTER:
    case NvmOpcode.RESERVATION_REPORT:
    case NvmOpcode.RESERVATION_ACQUIRE:
    case NvmOpcode.RESERVATION_RELEASE:
      st.reservationCommand(req, ns);
      return;
    default:
      finish(st, req, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
  }
}

/** Abort a fused first command still waiting (queue going away). */
export function dropFused(st: IoQueueState): void {
  const first = st.fusedFirst;
  if (first === null) return;
  st.fusedFirst = null;
  finish(st, first, StatusCodeType.GENERIC, GenericStatus.ABORTED_MISSING_FUSED, false);
}

export { BdevIoType };
