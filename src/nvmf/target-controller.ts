// An NVMe-oF controller as the target exposes it (NVM or discovery):
// properties, admin commands, features, AER, keep alive, error log; the
// Identify data and log pages come from admin-pages.ts. Owned by the
// poll-group thread of its admin queue, whose context (QueueContext) it is;
// every method runs on that thread.

import { nowUs } from '../thread/index.ts';
import { buildDiscoveryLog, type DiscoveryEntry, SubType } from '../wire/discovery.ts';
import { PropertySize, readPropertyCommand, setPropertyValue } from '../wire/fabrics.ts';
import { IDENTIFY_SIZE } from '../wire/identify.ts';
import {
  AsyncEventConfig,
  AsyncEventType,
  asyncEventDw0,
  decodeGetLog,
  type ErrorLogEntry,
  LogPage,
  NO_PARAM_LOC,
  NoticeInfo,
  paramLoc,
} from '../wire/log.ts';
import {
  AdminOpcode,
  CapHiBits,
  CcBits,
  CcCss,
  CommandSpecificStatus,
  ControllerRegister,
  Cqe,
  CstsBits,
  crtoValue,
  FABRICS_OPCODE,
  FabricsCommandType,
  FabricsStatus,
  FeatureId,
  GenericStatus,
  numberOfQueuesValue,
  packStatus,
  Sqe,
  SqeFlags,
  StatusCodeType,
  setStatus,
} from '../wire/nvme.ts';
import {
  RESV_NOTIFY_MASK_ALL,
  RESV_PERSIST_PTPL,
  ResvNotifyLog,
  type ResvNotifyType,
  writeResvNotificationLog,
} from '../wire/reservation.ts';
import { ERROR_LOG_ENTRIES, identifyData, NVMF_VERSION, nvmLogPage } from './admin-pages.ts';
import { newQueueIoTotals, type QueueIoTotals } from './io-stats.ts';
import type { PgSubsystem } from './poll-group-subsystem.ts';
import { SubsystemType } from './subsystem.ts';
import type { NvmfQpair, NvmfRequest, QueueContext, TransportOptions } from './transport.ts';

const MAX_AER = 4;
/** Admin opcodes with controller scope: a non-zero NSID is an invalid field. */
const CONTROLLER_SCOPED_ADMIN = new Set<number>([
  AdminOpcode.DELETE_IO_SQ,
  AdminOpcode.CREATE_IO_SQ,
  AdminOpcode.DELETE_IO_CQ,
  AdminOpcode.CREATE_IO_CQ,
  AdminOpcode.ABORT,
  AdminOpcode.ASYNC_EVENT_REQUEST,
  AdminOpcode.FIRMWARE_COMMIT,
  AdminOpcode.FIRMWARE_IMAGE_DOWNLOAD,
  AdminOpcode.KEEP_ALIVE,
  AdminOpcode.VIRTUALIZATION_MANAGEMENT,
  AdminOpcode.NVME_MI_SEND,
  AdminOpcode.NVME_MI_RECEIVE,
  AdminOpcode.DOORBELL_BUFFER_CONFIG,
  AdminOpcode.SANITIZE,
]);
/** Log pages with controller or NVM subsystem scope: NSID must be 0 or 0xffffffff. */
const CONTROLLER_SCOPED_LOGS = new Set<number>([
  LogPage.SUPPORTED_LOG_PAGES,
  LogPage.ERROR,
  LogPage.FIRMWARE_SLOT,
  LogPage.CHANGED_NS_LIST,
  LogPage.COMMAND_EFFECTS,
  LogPage.ANA,
]);
/** CAP.TO in 500 ms units: 15 s like SPDK */
const CAP_TO = 30;
/** NSID meaning every namespace */
const NSID_ALL = 0xffffffff;
/** Reservation Notification log entries a controller keeps (as Linux's nvmet); later ones are
 * lost, which the host sees as a gap in the log page counts */
export const RESV_LOG_ENTRIES = 64;

/** One entry of a controller's Reservation Notification log queue. */
interface ResvLogEntry {
  count: bigint;
  type: ResvNotifyType;
  nsid: number;
}

/** The events a controller raises, as the AER completion's DW0 carries them. */
export const AsyncEvent = {
  NS_ATTR_CHANGED: asyncEventDw0(
    AsyncEventType.NOTICE,
    NoticeInfo.NAMESPACE_ATTRIBUTE_CHANGED,
    LogPage.CHANGED_NS_LIST,
  ),
  ANA_CHANGE: asyncEventDw0(AsyncEventType.NOTICE, NoticeInfo.ANA_CHANGE, LogPage.ANA),
  DISCOVERY_LOG_CHANGED: asyncEventDw0(
    AsyncEventType.NOTICE,
    NoticeInfo.DISCOVERY_LOG_CHANGE,
    LogPage.DISCOVERY,
  ),
  /** I/O command set specific, information 0: Reservation Log Page Available */
  RESERVATION_LOG: asyncEventDw0(AsyncEventType.IO_COMMAND_SET, 0, LogPage.RESERVATION_NOTIFICATION),
} as const;

/** Get Features SEL 011b (supported capabilities) bits. */
const FeatureCapability = { SAVEABLE: 0x1, NAMESPACE_SPECIFIC: 0x2, CHANGEABLE: 0x4 } as const;

/** A zero-filled scratch buffer per realm for identify/log data. */
const scratch = Buffer.alloc(IDENTIFY_SIZE);

/** Copy `src` into the request's data buffers (allocating one if the transport gave none), zero-filling the rest. */
export function copyToRequest(req: NvmfRequest, src: Buffer, srcOffset = 0): void {
  const total = req.length;
  if (req.iov.length === 0 && total > 0) req.iov = [Buffer.alloc(total)];
  let pos = srcOffset;
  let left = total;
  for (const b of req.iov) {
    if (left <= 0) break;
    const n = Math.min(b.length, left);
    const avail = Math.max(0, Math.min(n, src.length - pos));
    if (avail > 0) src.copy(b, 0, pos, pos + avail);
    if (avail < n) b.fill(0, avail, n);
    pos += n;
    left -= n;
  }
}

/** Gather the request's data into one buffer (for small admin payloads). */
export function requestData(req: NvmfRequest): Buffer {
  if (req.iov.length === 1) return req.iov[0].subarray(0, req.length);
  return Buffer.concat(req.iov).subarray(0, req.length);
}

export interface CtrlrHost {
  /** the controller's subsystem view in this poll group */
  readonly sub: PgSubsystem;
  /** the discovery entries the host may see through `listenAddr` */
  discoveryEntries(ctrlr: NvmfCtrlr): DiscoveryEntry[];
  discoveryGenctr(): number;
  /** transport options for the admin queue's transport */
  transportOptions(trtype: string): TransportOptions;
  onCtrlrEnabled(ctrlr: NvmfCtrlr): void;
  /** CC.EN 1 → 0: a controller reset; its I/O queues go away */
  onCtrlrDisabled?(ctrlr: NvmfCtrlr): void;
  /** Abort: cancel command `cid` of queue `sqid` if it still waits in the target; done(true) if it did */
  abortCommand?(ctrlr: NvmfCtrlr, sqid: number, cid: number, done: (aborted: boolean) => void): void;
  /** add what the live I/O queues of `ctrlr` did on every poll group (SMART / Health log) */
  gatherIoTotals?(ctrlr: NvmfCtrlr, into: QueueIoTotals, done: () => void): void;
  /** CAP.CSS bit 6 (I/O command sets) is advertised: the target's cap_css_iocs option */
  advertiseIocs?(): boolean;
}

/** A controller; it is its admin queue's context (QueueContext): the core hands it the queue's commands. */
export class NvmfCtrlr implements QueueContext {
  readonly cntlid: number;
  readonly hostnqn: string;
  readonly hostid: Buffer;
  readonly host: CtrlrHost;
  readonly adminQpair: NvmfQpair;
  readonly isDiscovery: boolean;
  readonly opts: TransportOptions;
  cc = 0;
  csts = 0;
  /** keep-alive timeout in ms (0 = none) */
  kato: number;
  lastKeepAliveUs: number;
  asyncEventConfig = 0;
  numIoQueuesSet = false;
  ioQueueCount = 0;
  readonly aerReqs: NvmfRequest[] = [];
  readonly pendingEvents: number[] = [];
  readonly changedNs = new Set<number>();
  /** notices already reported and not yet cleared by reading their log page */
  nsNoticeMasked = false;
  discNoticeMasked = false;
  anaNoticeMasked = false;
  readonly errorLog: ErrorLogEntry[] = [];
  errorCount = 0;
  /** the totals of the SMART / Health page being built (gathered from the poll groups) */
  ioTotals: QueueIoTotals = newQueueIoTotals();
  /** Reservation Notification log: the oldest first, at most RESV_LOG_ENTRIES */
  private readonly resvLog: ResvLogEntry[] = [];
  /** the count of the last notice (kept or lost); wraps to 1, never 0 */
  private resvLogCount = 0n;
  resvNoticeMasked = false;
  /** Reservation Notification Mask (feature 82h) per NSID, and the value for the others */
  private readonly resvMasks = new Map<number, number>();
  private resvMaskDefault = 0;

  constructor(o: {
    cntlid: number;
    hostnqn: string;
    hostid: Buffer;
    host: CtrlrHost;
    adminQpair: NvmfQpair;
    kato: number;
  }) {
    this.cntlid = o.cntlid;
    this.hostnqn = o.hostnqn;
    this.hostid = Buffer.from(o.hostid);
    this.host = o.host;
    this.adminQpair = o.adminQpair;
    this.isDiscovery = o.host.sub.view.subtype === SubsystemType.DISCOVERY;
    this.opts = o.host.transportOptions(o.adminQpair.trtype);
    this.kato = o.kato;
    this.lastKeepAliveUs = nowUs();
  }

  get enabled(): boolean {
    return (this.cc & CcBits.EN) !== 0 && (this.csts & CstsBits.RDY) !== 0;
  }

  /** CAP: MQES, CQR, TO; CSS NVM (bit 37), and I/O command sets (bit 43) when the target
   * advertises them; CRMS.CRWMS (bit 59, NVMe 2.0: CRTO is there), as SPDK. Low half, high half. */
  capLo(): number {
    const mqes = (this.isDiscovery ? this.opts.max_aq_depth : this.opts.max_queue_depth) - 1;
    return ((mqes & 0xffff) | (1 << 16) | (CAP_TO << 24)) >>> 0;
  }
  capHi(): number {
    const iocs = this.host.advertiseIocs?.() === true ? CapHiBits.CSS_IOCS : 0;
    return (CapHiBits.CSS_NVM | iocs | CapHiBits.CRWMS) >>> 0;
  }

  // ------------------------------------------------------------ properties

  // Property Get/Set answer as SPDK's nvmf_property_get/set (lib/nvmf/ctrlr.c): a bad size,
  // an unknown or read-only offset, or a CC value we cannot honour is Invalid Parameter
  // (SCT 1 / 0x82) and changes nothing. (Linux answers Invalid Field and, for a bad CC,
  // sets CSTS.CFS instead.)

  propertyGet(req: NvmfRequest): void {
    const { sizeCode, offset: ofst } = readPropertyCommand(req.cmd);
    let lo: number;
    let hi = 0;
    switch (ofst) {
      case ControllerRegister.CAP:
        lo = this.capLo();
        hi = this.capHi();
        break;
      case ControllerRegister.VS:
        lo = NVMF_VERSION;
        break;
      case ControllerRegister.CC:
        lo = this.cc;
        break;
      case ControllerRegister.CSTS:
        lo = this.csts;
        break;
      case ControllerRegister.CRTO:
        // ready with media as fast as CAP.TO says (SPDK's value); CRIMS is not supported
        lo = crtoValue(CAP_TO, 0);
        break;
      default:
        setStatus(req.rsp, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_PARAM, true);
        req.complete();
        return;
    }
    // 4 bytes, or 8 (CAP only); other size codes are reserved
    const eightBytes = sizeCode === PropertySize.EIGHT_BYTES;
    if (sizeCode > PropertySize.EIGHT_BYTES || eightBytes !== (ofst === ControllerRegister.CAP)) {
      setStatus(req.rsp, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_PARAM, true);
      req.complete();
      return;
    }
    setPropertyValue(req.rsp, lo, hi);
    req.complete();
  }

  propertySet(req: NvmfRequest): void {
    const prop = readPropertyCommand(req.cmd);
    const ofst = prop.offset;
    // a 4-byte property's value is the low 32 bits
    const value = Number(BigInt.asUintN(32, prop.value));
    // only CC (4 bytes) is writable
    if (
      ofst !== ControllerRegister.CC ||
      prop.sizeCode !== PropertySize.FOUR_BYTES ||
      !this.ccValueValid(value)
    ) {
      setStatus(req.rsp, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_PARAM, true);
      req.complete();
      return;
    }
    const oldEn = (this.cc & CcBits.EN) !== 0;
    const newEn = (value & CcBits.EN) !== 0;
    if (!oldEn && newEn) {
      this.cc = value;
      this.csts = (this.csts | CstsBits.RDY) >>> 0;
      this.host.onCtrlrEnabled(this);
    } else if (oldEn && !newEn) {
      this.cc = value;
      this.csts = 0;
      this.ioQueueCount = 0;
      this.host.onCtrlrDisabled?.(this);
    } else {
      this.cc = value;
    }
    if ((value & CcBits.SHN_MASK) !== 0) {
      // shutdown: nothing is cached, so it is complete at once
      this.csts = ((this.csts & ~CstsBits.SHST_MASK) | CstsBits.SHST_COMPLETE) >>> 0;
    }
    req.complete();
  }

  /**
   * A CC value this controller can take: AMS round robin and MPS 4 KiB only (CAP.AMS /
   * CAP.MPSMAX are 0), CSS the NVM command set (000b) or all supported I/O command sets
   * (110b: what NVMe 2.0 hosts write, which SPDK takes whatever CAP.CSS says; the reserved
   * values and 111b, admin only, are refused), SHN not the reserved 11b, IOSQES/IOCQES unset
   * or 64/16-byte entries, and both set when an NVM controller is enabled (the discovery
   * controller has no I/O queues).
   */
  private ccValueValid(value: number): boolean {
    const field = (shift: number, mask: number) => (value >>> shift) & mask;
    const iosqes = field(CcBits.IOSQES_SHIFT, 0xf);
    const iocqes = field(CcBits.IOCQES_SHIFT, 0xf);
    if (field(CcBits.AMS_SHIFT, 0x7) !== 0 || field(CcBits.MPS_SHIFT, 0xf) !== 0) return false;
    const css = field(CcBits.CSS_SHIFT, 0x7);
    if (css !== CcCss.NVM && css !== CcCss.ALL_IOCS) return false;
    if ((value & CcBits.SHN_MASK) === CcBits.SHN_MASK) return false;
    if ((iosqes !== 0 && iosqes !== 6) || (iocqes !== 0 && iocqes !== 4)) return false;
    const enabling = (value & CcBits.EN) !== 0 && (this.cc & CcBits.EN) === 0;
    if (enabling && !this.isDiscovery && (iosqes !== 6 || iocqes !== 4)) return false;
    return true;
  }

  // ------------------------------------------------------------ admin commands

  /** A command of the admin queue (QueueContext): every one that is not a Fabrics command. */
  execute(req: NvmfRequest): void {
    this.admin(req);
  }

  admin(req: NvmfRequest): void {
    const cmd = req.cmd;
    const opc = cmd[Sqe.OPCODE];
    const psdt = cmd[Sqe.FLAGS] & SqeFlags.PSDT_MASK;
    // no fused admin commands; SGL only on fabrics (SPDK nvmf_ctrlr_process_admin_cmd,
    // Linux nvmet_req_init)
    if (
      (cmd[Sqe.FLAGS] & SqeFlags.FUSE_MASK) !== 0 ||
      psdt === SqeFlags.PSDT_PRP ||
      psdt === SqeFlags.PSDT_MASK
    ) {
      this.fail(
        req,
        StatusCodeType.GENERIC,
        GenericStatus.INVALID_FIELD,
        true,
        (cmd[Sqe.FLAGS] & SqeFlags.FUSE_MASK) !== 0 ? paramLoc(Sqe.FLAGS) : paramLoc(Sqe.FLAGS, 6),
      );
      return;
    }
    // commands with controller scope take no namespace (SPDK is_cmd_ctrlr_specific)
    if (cmd.readUInt32LE(Sqe.NSID) !== 0 && CONTROLLER_SCOPED_ADMIN.has(opc)) {
      this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.NSID));
      return;
    }
    if ((this.cc & CcBits.EN) === 0) {
      // before CC.EN = 1 (or after a reset) only Fabrics commands are accepted
      this.fail(req, StatusCodeType.GENERIC, GenericStatus.COMMAND_SEQUENCE_ERROR, true);
      return;
    }
    switch (opc) {
      case AdminOpcode.IDENTIFY:
        this.identify(req);
        return;
      case AdminOpcode.GET_LOG_PAGE:
        this.getLogPage(req);
        return;
      case AdminOpcode.GET_FEATURES:
        this.getFeatures(req);
        return;
      case AdminOpcode.SET_FEATURES:
        this.setFeatures(req);
        return;
      case AdminOpcode.ASYNC_EVENT_REQUEST:
        this.asyncEventRequest(req);
        return;
      case AdminOpcode.KEEP_ALIVE:
        this.lastKeepAliveUs = nowUs();
        req.complete();
        return;
      case AdminOpcode.ABORT: {
        if (this.isDiscovery) break;
        // DW0 bit 0 = 1: not aborted. Commands a bdev holds run to completion (as the Linux
        // target answers); one still waiting in the target (paused subsystem) is aborted.
        const answer = (aborted: boolean): void => {
          req.rsp.writeUInt32LE(aborted ? 0 : 1, Cqe.DW0);
          req.complete();
        };
        const sqid = req.cmd.readUInt16LE(Sqe.CDW10);
        const cid = req.cmd.readUInt16LE(Sqe.CDW10 + 2);
        if (this.host.abortCommand === undefined) answer(false);
        else this.host.abortCommand(this, sqid, cid, answer);
        return;
      }
    }
    this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true, paramLoc(Sqe.OPCODE));
  }

  /** Complete with an error status and log it; `loc` is the Parameter Error Location (see paramLoc). */
  fail(req: NvmfRequest, sct: number, sc: number, dnr = false, loc = NO_PARAM_LOC): void {
    setStatus(req.rsp, sct, sc, dnr);
    this.recordError(
      req.qpair.qid,
      req.cmd.readUInt16LE(Sqe.CID),
      packStatus(sct, sc),
      0,
      req.cmd.readUInt32LE(Sqe.NSID),
      loc,
    );
    req.complete();
  }

  recordError(
    sqid: number,
    cid: number,
    status: number,
    lba: number,
    nsid: number,
    paramLoc = NO_PARAM_LOC,
  ): void {
    this.errorCount++;
    this.errorLog.unshift({ errorCount: this.errorCount, sqid, cid, status, lba, nsid, paramLoc });
    if (this.errorLog.length > ERROR_LOG_ENTRIES) this.errorLog.length = ERROR_LOG_ENTRIES;
  }

  private identify(req: NvmfRequest): void {
    const refused = identifyData(this, this.host.sub, req.cmd, req.length, scratch);
    if (refused !== null) {
      this.fail(req, StatusCodeType.GENERIC, refused.sc, true, refused.loc);
      return;
    }
    copyToRequest(req, scratch);
    req.complete();
  }

  private getLogPage(req: NvmfRequest, gathered = false): void {
    const p = decodeGetLog(req.cmd);
    // the SMART / Health counters live with the I/O queues, on their poll groups: gather first
    if (
      p.lid === LogPage.HEALTH &&
      !gathered &&
      !this.isDiscovery &&
      this.host.gatherIoTotals !== undefined
    ) {
      const into = newQueueIoTotals();
      this.host.gatherIoTotals(this, into, () => {
        const idle = this.ioTotals;
        this.ioTotals = into;
        this.getLogPage(req, true);
        this.ioTotals = idle;
      });
      return;
    }
    // SPDK nvmf_ctrlr_get_log_page: dword-aligned offset, NUMD within the data buffer,
    // NSID 0 or all for pages of controller scope
    const nsid = req.cmd.readUInt32LE(Sqe.NSID);
    if (
      (p.offset & 3) !== 0 ||
      p.length > req.length ||
      (CONTROLLER_SCOPED_LOGS.has(p.lid) && nsid !== 0 && nsid !== 0xffffffff)
    ) {
      this.fail(
        req,
        StatusCodeType.GENERIC,
        GenericStatus.INVALID_FIELD,
        true,
        (p.offset & 3) !== 0
          ? paramLoc(Sqe.CDW12)
          : p.length > req.length
            ? paramLoc(Sqe.CDW10 + 2)
            : paramLoc(Sqe.NSID),
      );
      return;
    }
    let page: Buffer | null = null;
    if (this.isDiscovery) {
      if (p.lid === LogPage.DISCOVERY) {
        page = buildDiscoveryLog(this.host.discoveryGenctr(), this.host.discoveryEntries(this));
      }
    } else if (p.lid === LogPage.RESERVATION_NOTIFICATION) page = this.takeResvLogEntry();
    else page = nvmLogPage(this, this.host.sub, this.adminQpair.listenAddr, p, req.cmd);
    if (page === null) {
      this.fail(
        req,
        StatusCodeType.COMMAND_SPECIFIC,
        CommandSpecificStatus.INVALID_LOG_PAGE,
        true,
        paramLoc(Sqe.CDW10),
      );
      return;
    }
    // reading a page without RAE (retain asynchronous event) re-arms its notice
    if (!p.rae) this.logPageRead(p.lid);
    if (p.offset > page.length) {
      this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW12));
      return;
    }
    copyToRequest(req, page, p.offset);
    req.complete();
  }

  /** The host read log page `lid` without RAE: its notice may be reported again (and the
   * changed namespace list starts over). */
  private logPageRead(lid: number): void {
    if (lid === LogPage.DISCOVERY) this.discNoticeMasked = false;
    else if (lid === LogPage.CHANGED_NS_LIST) {
      this.changedNs.clear();
      this.nsNoticeMasked = false;
    } else if (lid === LogPage.ANA) this.anaNoticeMasked = false;
    else if (lid === LogPage.RESERVATION_NOTIFICATION) {
      this.resvNoticeMasked = false;
      // entries still queued: tell the host again
      if (this.resvLog.length > 0) this.raiseEvent(AsyncEvent.RESERVATION_LOG);
    }
  }

  // ------------------------------------------------------------ reservation notices

  /** The Reservation Notification Mask (feature 82h) of namespace `nsid`. */
  resvMask(nsid: number): number {
    return this.resvMasks.get(nsid) ?? this.resvMaskDefault;
  }

  /**
   * A reservation notice for this controller's host on namespace `nsid` (sent by the app
   * thread): unless masked for that namespace, it joins the log (or is counted as lost when
   * the log is full) and the host hears of it by an AEN.
   */
  reservationNotice(nsid: number, type: ResvNotifyType): void {
    if (this.isDiscovery || (this.resvMask(nsid) & (1 << type)) !== 0) return;
    this.resvLogCount = this.resvLogCount === 0xffff_ffff_ffff_ffffn ? 1n : this.resvLogCount + 1n;
    if (this.resvLog.length < RESV_LOG_ENTRIES) this.resvLog.push({ count: this.resvLogCount, type, nsid });
    this.raiseEvent(AsyncEvent.RESERVATION_LOG);
  }

  /** Log page 80h: the oldest notice, which reading removes; an empty entry when none is queued. */
  private takeResvLogEntry(): Buffer {
    const page = Buffer.alloc(ResvNotifyLog.SIZE);
    const e = this.resvLog.shift();
    if (e === undefined) writeResvNotificationLog(page, { count: 0n, type: 0, available: 0, nsid: 0 });
    else
      writeResvNotificationLog(page, {
        count: e.count,
        type: e.type,
        available: this.resvLog.length,
        nsid: e.nsid,
      });
    return page;
  }

  private getFeatures(req: NvmfRequest): void {
    const fid = req.cmd[Sqe.CDW10];
    const sel = (req.cmd.readUInt32LE(Sqe.CDW10) >>> 8) & 0x7;
    let dw0 = 0;
    if (sel > 3) {
      // SEL 100b..111b are reserved
      this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW10 + 1));
      return;
    }
    // SEL 3 (supported capabilities) of a known FID: 0 (nothing saveable, namespace-specific or
    // changeable) except for the features that say otherwise below
    const capabilities = sel === 3;
    if (this.isDiscovery) {
      if (fid === FeatureId.KEEP_ALIVE_TIMER) dw0 = this.kato;
      else if (fid === FeatureId.ASYNC_EVENT_CONFIGURATION) dw0 = this.asyncEventConfig;
      else {
        this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW10));
        return;
      }
      req.rsp.writeUInt32LE(capabilities ? 0 : dw0 >>> 0, Cqe.DW0);
      req.complete();
      return;
    }
    switch (fid) {
      case FeatureId.ARBITRATION:
      case FeatureId.POWER_MANAGEMENT:
      case FeatureId.ERROR_RECOVERY:
      case FeatureId.INTERRUPT_COALESCING:
      case FeatureId.WRITE_ATOMICITY:
        dw0 = 0;
        break;
      case FeatureId.TEMPERATURE_THRESHOLD:
        dw0 = 0x0157; // 343 K over-temperature threshold, like a default drive
        break;
      case FeatureId.VOLATILE_WRITE_CACHE:
        dw0 = this.host.sub.volatileWriteCache() ? 1 : 0;
        break;
      case FeatureId.NUMBER_OF_QUEUES: {
        const n = this.opts.max_io_qpairs_per_ctrlr;
        dw0 = numberOfQueuesValue(n, n);
        break;
      }
      case FeatureId.ASYNC_EVENT_CONFIGURATION:
        dw0 = this.asyncEventConfig;
        break;
      case FeatureId.KEEP_ALIVE_TIMER:
        dw0 = this.kato;
        break;
      case FeatureId.HOST_IDENTIFIER: {
        // NVMe-oF hosts have 128-bit IDs (CTRATT bit 0): the 64-bit form (EXHID 0) is an
        // invalid field, as SPDK and Linux's nvmet answer
        const exhid = req.cmd[Sqe.CDW11] & 1;
        if (exhid === 0) {
          this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW11));
          return;
        }
        copyToRequest(req, this.hostid);
        req.complete();
        return;
      }
      case FeatureId.IO_COMMAND_SET_PROFILE:
        dw0 = 0; // combination 0 of CNS 1Ch, the NVM command set, is the only one
        if (capabilities) dw0 = FeatureCapability.CHANGEABLE;
        break;
      case FeatureId.HOST_RESERVE_MASK:
      case FeatureId.HOST_RESERVE_PERSIST: {
        // one namespace the host sees; FFFFFFFFh (all) has no single value (as SPDK)
        const nsid = req.cmd.readUInt32LE(Sqe.NSID);
        const ns = nsid === NSID_ALL ? undefined : this.host.sub.visibleNs(nsid, this.hostnqn);
        if (ns === undefined) {
          this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.NSID));
          return;
        }
        if (fid === FeatureId.HOST_RESERVE_MASK) {
          dw0 = this.resvMask(nsid);
          if (capabilities) dw0 = FeatureCapability.NAMESPACE_SPECIFIC | FeatureCapability.CHANGEABLE;
        } else {
          dw0 = ns.config.resv.ptpl ? RESV_PERSIST_PTPL : 0;
          if (capabilities) dw0 = FeatureCapability.NAMESPACE_SPECIFIC;
        }
        req.rsp.writeUInt32LE(dw0 >>> 0, Cqe.DW0);
        req.complete();
        return;
      }
      default:
        this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW10));
        return;
    }
    req.rsp.writeUInt32LE(capabilities && fid !== FeatureId.IO_COMMAND_SET_PROFILE ? 0 : dw0 >>> 0, Cqe.DW0);
    req.complete();
  }

  private setFeatures(req: NvmfRequest): void {
    const cdw10 = req.cmd.readUInt32LE(Sqe.CDW10);
    const fid = cdw10 & 0xff;
    const cdw11 = req.cmd.readUInt32LE(Sqe.CDW11);
    if ((cdw10 & 0x80000000) !== 0) {
      this.fail(
        req,
        StatusCodeType.COMMAND_SPECIFIC,
        CommandSpecificStatus.FEATURE_ID_NOT_SAVEABLE,
        true,
        paramLoc(Sqe.CDW10 + 3, 7),
      );
      return;
    }
    switch (fid) {
      case FeatureId.KEEP_ALIVE_TIMER:
        this.kato = cdw11 === 0 ? 0 : Math.max(cdw11, 1);
        this.lastKeepAliveUs = nowUs();
        break;
      case FeatureId.ASYNC_EVENT_CONFIGURATION:
        this.asyncEventConfig = cdw11;
        break;
      case FeatureId.NUMBER_OF_QUEUES: {
        if (this.isDiscovery) {
          this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW10));
          return;
        }
        if (this.ioQueueCount > 0) {
          this.fail(req, StatusCodeType.GENERIC, GenericStatus.COMMAND_SEQUENCE_ERROR, true);
          return;
        }
        if ((cdw11 & 0xffff) === 0xffff || cdw11 >>> 16 === 0xffff) {
          this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW11));
          return;
        }
        this.numIoQueuesSet = true;
        const n = this.opts.max_io_qpairs_per_ctrlr;
        req.rsp.writeUInt32LE(numberOfQueuesValue(n, n), Cqe.DW0);
        break;
      }
      case FeatureId.ARBITRATION:
      case FeatureId.POWER_MANAGEMENT:
      case FeatureId.TEMPERATURE_THRESHOLD:
      case FeatureId.ERROR_RECOVERY:
      case FeatureId.INTERRUPT_COALESCING:
      case FeatureId.WRITE_ATOMICITY:
        if (this.isDiscovery) {
          this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW10));
          return;
        }
        break;
      case FeatureId.HOST_IDENTIFIER:
        // on fabrics the host ID is the one Connect gave (SPDK, Linux's nvmet)
        this.fail(req, StatusCodeType.GENERIC, GenericStatus.COMMAND_SEQUENCE_ERROR, true);
        return;
      case FeatureId.IO_COMMAND_SET_PROFILE:
        if (this.isDiscovery) {
          this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW10));
          return;
        }
        // CDW11 bits 8:0 index the CNS 1Ch list, which holds combination 0 only
        if ((cdw11 & 0x1ff) !== 0) {
          this.fail(
            req,
            StatusCodeType.COMMAND_SPECIFIC,
            CommandSpecificStatus.IOCS_COMBINATION_REJECTED,
            true,
            paramLoc(Sqe.CDW11),
          );
          return;
        }
        break;
      case FeatureId.HOST_RESERVE_MASK:
        if (!this.setResvMask(req, cdw11)) return;
        break;
      case FeatureId.HOST_RESERVE_PERSIST: {
        // PTPL changes only with Reservation Register CPTPL, where it is written to the file
        // before the command completes. SPDK answers a valid request Feature Identifier Not
        // Saveable (and flips its in-memory state without writing the file); we answer the
        // same status and change nothing.
        const nsid = req.cmd.readUInt32LE(Sqe.NSID);
        const ns = this.isDiscovery ? undefined : this.host.sub.visibleNs(nsid, this.hostnqn);
        if (nsid !== NSID_ALL && (ns === undefined || ns.config.ptplFile === null)) {
          this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.NSID));
          return;
        }
        this.fail(
          req,
          StatusCodeType.COMMAND_SPECIFIC,
          CommandSpecificStatus.FEATURE_ID_NOT_SAVEABLE,
          true,
          paramLoc(Sqe.CDW11),
        );
        return;
      }
      case FeatureId.VOLATILE_WRITE_CACHE:
        this.fail(
          req,
          StatusCodeType.COMMAND_SPECIFIC,
          CommandSpecificStatus.FEATURE_NOT_CHANGEABLE,
          true,
          paramLoc(Sqe.CDW10),
        );
        return;
      default:
        this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW10));
        return;
    }
    req.complete();
  }

  /** Set Features 82h: the notices to mask, for one namespace the host sees or (FFFFFFFFh) all. */
  private setResvMask(req: NvmfRequest, cdw11: number): boolean {
    const nsid = req.cmd.readUInt32LE(Sqe.NSID);
    // bits other than the three notice types are reserved (Linux's nvmet refuses them too)
    if (this.isDiscovery || (cdw11 & ~RESV_NOTIFY_MASK_ALL) !== 0) {
      this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.CDW11));
      return false;
    }
    if (nsid === NSID_ALL) {
      this.resvMasks.clear();
      this.resvMaskDefault = cdw11;
      return true;
    }
    if (this.host.sub.visibleNs(nsid, this.hostnqn) === undefined) {
      this.fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true, paramLoc(Sqe.NSID));
      return false;
    }
    this.resvMasks.set(nsid, cdw11);
    return true;
  }

  private asyncEventRequest(req: NvmfRequest): void {
    if (this.aerReqs.length >= MAX_AER) {
      this.fail(
        req,
        StatusCodeType.COMMAND_SPECIFIC,
        CommandSpecificStatus.ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED,
        true,
      );
      return;
    }
    this.aerReqs.push(req);
    this.deliverEvents();
  }

  /** Queue an asynchronous event (coalesced until the host reads the log page). */
  raiseEvent(ev: number): void {
    if (ev === AsyncEvent.NS_ATTR_CHANGED) {
      if (this.nsNoticeMasked || (this.asyncEventConfig & AsyncEventConfig.NS_ATTRIBUTE_NOTICES) === 0)
        return;
      this.nsNoticeMasked = true;
    } else if (ev === AsyncEvent.ANA_CHANGE) {
      if (this.anaNoticeMasked || (this.asyncEventConfig & AsyncEventConfig.ANA_CHANGE_NOTICES) === 0) return;
      this.anaNoticeMasked = true;
    } else if (ev === AsyncEvent.DISCOVERY_LOG_CHANGED) {
      if (
        this.discNoticeMasked ||
        (this.asyncEventConfig & AsyncEventConfig.DISCOVERY_LOG_CHANGE_NOTICES) === 0
      )
        return;
      this.discNoticeMasked = true;
    } else if (ev === AsyncEvent.RESERVATION_LOG) {
      // an I/O command set event: no AEC bit turns it off; one at a time until the log is read
      if (this.resvNoticeMasked) return;
      this.resvNoticeMasked = true;
    }
    this.pendingEvents.push(ev);
    this.deliverEvents();
  }

  private deliverEvents(): void {
    while (this.pendingEvents.length > 0 && this.aerReqs.length > 0) {
      const req = this.aerReqs.shift() as NvmfRequest;
      req.rsp.writeUInt32LE(this.pendingEvents.shift() as number, Cqe.DW0);
      req.complete();
    }
  }

  namespaceChanged(nsid: number): void {
    if (this.isDiscovery) return;
    this.changedNs.add(nsid);
    this.raiseEvent(AsyncEvent.NS_ATTR_CHANGED);
  }

  /** Drop outstanding AERs (their qpair is going away: the transport completes them). */
  destroy(): void {
    const reqs = this.aerReqs.splice(0);
    for (const r of reqs) {
      setStatus(r.rsp, StatusCodeType.GENERIC, GenericStatus.ABORTED_SQ_DELETION);
      r.complete();
    }
  }

  keepAliveExpired(now: number): boolean {
    return this.kato > 0 && now - this.lastKeepAliveUs > this.kato * 1000;
  }
}

export function isFabricsCommand(cmd: Buffer): boolean {
  return cmd[Sqe.OPCODE] === FABRICS_OPCODE;
}

export { FabricsCommandType, SubType };
