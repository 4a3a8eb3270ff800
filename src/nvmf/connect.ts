// Fabrics Connect, both halves. On the poll group the queue arrived on
// (ConnectHandler): the command and its data are checked in SPDK's order
// (lib/nvmf/ctrlr.c nvmf_ctrlr_cmd_connect / _nvmf_ctrlr_connect), then the app
// thread is asked. On the app thread (admitAdminConnect, admitIoConnect): an
// admin queue gets a free controller ID; an I/O queue is admitted to its
// controller, which may live on another poll group. The answer comes back to
// the poll group, which attaches the queue context (the controller, or an
// IoQueue) and completes the Connect.
import { type SpdkThread, sendMsg, type ThreadRef } from '../thread/index.ts';
import { logger } from '../util/log.ts';
import { traceChannels } from '../util/trace.ts';
import { ConnectAuthReq, setConnectAuthReq } from '../wire/auth.ts';
import {
  CONNECT_CATTR_DISABLE_SQFLOW,
  ConnectData,
  connectNqnTerminated,
  FabricsSqe,
  readConnectCommand,
  readConnectData,
  setConnectInvalidParameter,
  setConnectResponseCntlid,
} from '../wire/fabrics.ts';
import { FabricsStatus, GenericStatus, StatusCodeType, setStatus } from '../wire/nvme.ts';
import { IoQueue, type ReservationPort } from './io-queue.ts';
import {
  type AdminConnectReply,
  type AdminConnectRequest,
  type IoConnectReply,
  type IoConnectRequest,
  targetThread,
  toTarget,
} from './messages.ts';
import type { PgSubsystem } from './poll-group-subsystem.ts';
import type { PgStats } from './stats.ts';
import { SubsystemState, SubsystemType } from './subsystem.ts';
import { type CtrlrHost, NvmfCtrlr, requestData } from './target-controller.ts';
import { traceController, traceQpair } from './trace.ts';
import type { NvmfQpair, NvmfRequest, TransportAddress, TransportOptions } from './transport.ts';

const log = logger('nvmf');

// ------------------------------------------------------------ poll-group side

let discoveryOnAnyListenerWarned = false;

/** SPDK warns that this will go (its deprecation); once per reactor here, not per Connect. */
function warnDiscoveryOnAnyListener(a: TransportAddress): void {
  if (discoveryOnAnyListenerWarned) return;
  discoveryOnAnyListenerWarned = true;
  log.warn(
    `allowing a connection to the discovery subsystem on ${a.trtype}/${a.traddr}/${a.trsvcid}, a listener ` +
      'not added to it; SPDK deprecates this (add the listener to the discovery subsystem to keep it)',
  );
}

/** What Connect handling needs of the poll group it runs on (NvmfPollGroup). */
export interface ConnectHost {
  readonly thread: SpdkThread;
  readonly subsystems: ReadonlyMap<string, PgSubsystem>;
  readonly stats: PgStats;
  transportOptions(trtype: string): TransportOptions;
  /** false once the queue has closed (it may, while the app thread answers) */
  hasQpair(q: NvmfQpair): boolean;
  /** what a controller created here calls back (discovery log, enable/disable, abort) */
  controllerHost(sub: PgSubsystem): CtrlrHost;
  /** a Connect made a controller (its admin queue is here) */
  addController(ctrlr: NvmfCtrlr): void;
  /** a Connect made an I/O queue here */
  addIoQueue(q: IoQueue): void;
  /** where its I/O queues send reservation commands */
  reservationCommand: ReservationPort['reservationCommand'];
  /** DH-HMAC-CHAP: true when the host must authenticate this queue (auth.ts then runs on it) */
  startAuth(q: NvmfQpair, sub: PgSubsystem, hostnqn: string, katoMs: number): boolean;
}

interface PendingConnect {
  req: NvmfRequest;
  sub: PgSubsystem;
  hostnqn: string;
  hostid: Buffer;
  kato: number;
}

/** Fail a Connect; Invalid Parameters carries IATTR/IPO (the field at fault), `iattr` -1: none. */
function connectFail(req: NvmfRequest, sct: number, sc: number, iattr = -1, ipo = 0): void {
  setStatus(req.rsp, sct, sc, true);
  if (iattr >= 0) setConnectInvalidParameter(req.rsp, iattr, ipo);
  req.complete();
}

/** A poll group's Connects: checks, the question to the app thread, and its answer. */
export class ConnectHandler {
  private readonly pg: ConnectHost;
  /** Connects waiting for the app thread, by token */
  private readonly pending = new Map<number, PendingConnect>();
  private nextToken = 1;

  constructor(pg: ConnectHost) {
    this.pg = pg;
  }

  /** A Connect on a queue with no context yet. */
  connect(req: NvmfRequest): void {
    const q = req.qpair;
    if (req.length < ConnectData.SIZE) {
      connectFail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD);
      return;
    }
    const { recfmt, qid, sqsize, cattr, kato: requestedKato } = readConnectCommand(req.cmd);
    if (recfmt !== 0) {
      connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INCOMPATIBLE_FORMAT);
      return;
    }
    let kato = requestedKato;
    const data = requestData(req);
    // an NQN is at most 223 bytes and NUL-terminated inside its 256-byte field
    for (const field of [ConnectData.SUBNQN, ConnectData.HOSTNQN]) {
      if (!connectNqnTerminated(data, field)) {
        const name = field === ConnectData.SUBNQN ? 'SUBNQN' : 'HOSTNQN';
        log.error(`Connect: ${name} is not NUL-terminated within 224 bytes`);
        connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_PARAM, 1, field);
        return;
      }
    }
    const { hostid, cntlid, subnqn, hostnqn } = readConnectData(data);
    const sub = this.pg.subsystems.get(subnqn);
    if (sub === undefined) {
      log.error(`Connect: subsystem '${subnqn}' not found (host ${hostnqn})`);
      connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_PARAM, 1, ConnectData.SUBNQN);
      return;
    }
    if (sub.view.state === SubsystemState.PAUSED) {
      // as SPDK: a Connect to a paused subsystem waits for the resume
      sub.queued.push(req);
      return;
    }
    if (sub.view.state !== SubsystemState.ACTIVE) {
      connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.CONTROLLER_BUSY);
      return;
    }
    const isDisc = sub.view.subtype === SubsystemType.DISCOVERY;
    if (!isDisc && !(sub.view.allowAnyHost || sub.view.hosts.includes(hostnqn))) {
      log.error(`Connect: host '${hostnqn}' is not allowed to connect to '${subnqn}'`);
      // Invalid Host carries no IATTR/IPO (those belong to Invalid Parameters)
      connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_HOST);
      return;
    }
    // a TLS connection stands for the host and subsystem its PSK identity names, nobody else
    const peer = q.securePeer ?? null;
    if (peer !== null && (peer.hostnqn !== hostnqn || peer.subnqn !== subnqn)) {
      log.error(
        `Connect: host '${hostnqn}' to '${subnqn}' over a TLS connection authenticated as '${peer.hostnqn}' for '${peer.subnqn}'`,
      );
      connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_HOST);
      return;
    }
    const listenerOk = sub.view.listeners.some(
      (l) =>
        l.trtype.toUpperCase() === q.listenAddr.trtype.toUpperCase() &&
        l.traddr === q.listenAddr.traddr &&
        l.trsvcid === q.listenAddr.trsvcid,
    );
    if (!listenerOk && isDisc) {
      // as SPDK (spdk_nvmf_subsystem_listener_allowed) and Linux's nvmet: discovery is served on
      // every listener of the target, a listener added to the discovery subsystem or not
      warnDiscoveryOnAnyListener(q.listenAddr);
    } else if (!listenerOk) {
      log.error(`Connect: '${subnqn}' does not listen on ${q.listenAddr.traddr}:${q.listenAddr.trsvcid}`);
      connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_PARAM, 1, ConnectData.SUBNQN);
      return;
    }
    const opts = this.pg.transportOptions(q.trtype);
    const maxDepth = qid === 0 ? opts.max_aq_depth : opts.max_queue_depth;
    if (sqsize === 0 || sqsize + 1 > maxDepth) {
      log.error(`Connect: invalid SQSIZE ${sqsize} for qid ${qid} (max ${maxDepth})`);
      connectFail(
        req,
        StatusCodeType.COMMAND_SPECIFIC,
        FabricsStatus.INVALID_PARAM,
        0,
        FabricsSqe.CONNECT_SQSIZE,
      );
      return;
    }
    q.sqFlowControlDisabled = (cattr & CONNECT_CATTR_DISABLE_SQFLOW) !== 0;
    const token = this.nextToken++;
    if (qid === 0) {
      if (cntlid !== 0xffff) {
        connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_PARAM, 1, ConnectData.CNTLID);
        return;
      }
      // SPDK raises a small keep-alive timeout to the transport's min_kato (10 s by default)
      const minKato = opts.min_kato ?? 10_000;
      if (kato > 0 && kato < minKato) kato = minKato;
      q.qid = 0;
      q.sqSize = sqsize + 1;
      this.pending.set(token, { req, sub, hostnqn, hostid, kato });
      sendMsg(targetThread(), toTarget.adminConnect, {
        token,
        pg: this.pg.thread.ref,
        subnqn,
        hostnqn,
        hostid: hostid.toString('hex'),
        kato,
      });
      return;
    }
    if (isDisc || qid > opts.max_io_qpairs_per_ctrlr) {
      connectFail(
        req,
        StatusCodeType.COMMAND_SPECIFIC,
        FabricsStatus.INVALID_PARAM,
        0,
        FabricsSqe.CONNECT_QID,
      );
      return;
    }
    q.qid = qid;
    q.sqSize = sqsize + 1;
    this.pending.set(token, { req, sub, hostnqn, hostid, kato });
    sendMsg(targetThread(), toTarget.ioConnect, {
      token,
      pg: this.pg.thread.ref,
      cntlid,
      subnqn,
      hostnqn,
      qid,
    });
  }

  /** The app thread's answer to an admin Connect: create the controller here. */
  adminConnectDone(r: AdminConnectReply): void {
    const p = this.pending.get(r.token);
    if (p === undefined) return;
    this.pending.delete(r.token);
    const req = p.req;
    const q = req.qpair;
    if (r.cntlid < 0) {
      connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.CONTROLLER_BUSY);
      return;
    }
    if (!this.pg.hasQpair(q)) {
      // the queue died while we waited: release the ID
      sendMsg(targetThread(), toTarget.ctrlrGone, { cntlid: r.cntlid });
      return;
    }
    const ctrlr = new NvmfCtrlr({
      cntlid: r.cntlid,
      hostnqn: p.hostnqn,
      hostid: p.hostid,
      host: this.pg.controllerHost(p.sub),
      adminQpair: q,
      kato: p.kato,
    });
    q.context = ctrlr;
    this.pg.addController(ctrlr);
    log.info(`ctrlr ${r.cntlid} created for ${p.sub.view.nqn}, host ${p.hostnqn} on ${this.pg.thread.name}`);
    const thread = this.pg.thread.name;
    traceController(traceChannels.controllerCreated, ctrlr, p.sub.view.nqn, thread);
    traceQpair(traceChannels.qpairConnected, q, r.cntlid, p.sub.view.nqn, p.hostnqn, thread);
    setConnectResponseCntlid(req.rsp, r.cntlid);
    if (this.pg.startAuth(q, p.sub, p.hostnqn, p.kato)) setConnectAuthReq(req.rsp, ConnectAuthReq.ATR);
    req.complete();
  }

  /** The app thread's answer to an I/O Connect: the queue serves I/O here. */
  ioConnectDone(r: IoConnectReply): void {
    const p = this.pending.get(r.token);
    if (p === undefined) return;
    this.pending.delete(r.token);
    const req = p.req;
    const q = req.qpair;
    if (r.sc !== 0 || r.owner === null) {
      connectFail(req, r.sct, r.sc, r.iattr, r.ipo);
      return;
    }
    if (!this.pg.hasQpair(q)) {
      sendMsg(targetThread(), toTarget.ioQueueGone, { cntlid: r.cntlid, qid: q.qid });
      return;
    }
    const ioq = new IoQueue({
      qpair: q,
      cntlid: r.cntlid,
      sub: p.sub,
      hostnqn: p.hostnqn,
      hostId: r.hostid,
      owner: r.owner,
      reservations: this.pg,
      maxTransferBytes: this.pg.transportOptions(q.trtype).max_io_size, // MDTS
      stats: this.pg.stats,
    });
    q.context = ioq;
    this.pg.addIoQueue(ioq);
    traceQpair(traceChannels.qpairConnected, q, r.cntlid, p.sub.view.nqn, p.hostnqn, this.pg.thread.name);
    setConnectResponseCntlid(req.rsp, r.cntlid);
    if (this.pg.startAuth(q, p.sub, p.hostnqn, r.kato)) setConnectAuthReq(req.rsp, ConnectAuthReq.ATR);
    req.complete();
  }
}

// ------------------------------------------------------------ app-thread side

/** The app thread's record of a controller (SPDK keeps it in the subsystem). */
export interface CtrlrRecord {
  cntlid: number;
  subnqn: string;
  hostnqn: string;
  hostid: string;
  owner: ThreadRef;
  enabled: boolean;
  /** keep-alive timeout in ms from the admin Connect */
  kato: number;
  /** qid → poll-group thread */
  ioQueues: Map<number, ThreadRef>;
}

/**
 * Admin Connect: the first free controller ID of the subsystem's range from `from` on
 * (wrapping), recorded as owned by the asking poll group. -1 when the subsystem is unknown
 * or its range is full.
 */
export function admitAdminConnect(
  ctrlrs: Map<number, CtrlrRecord>,
  sub: { minCntlid: number; maxCntlid: number } | undefined,
  from: number,
  m: AdminConnectRequest,
): number {
  let cntlid = -1;
  if (sub !== undefined) {
    const span = sub.maxCntlid - sub.minCntlid + 1;
    for (let i = 0; i < span; i++) {
      const c = sub.minCntlid + ((from - sub.minCntlid + i + span * 4) % span);
      if (!ctrlrs.has(c)) {
        cntlid = c;
        break;
      }
    }
  }
  if (cntlid > 0) {
    ctrlrs.set(cntlid, {
      cntlid,
      subnqn: m.subnqn,
      hostnqn: m.hostnqn,
      hostid: m.hostid,
      owner: m.pg,
      enabled: false,
      kato: m.kato,
      ioQueues: new Map(),
    });
  }
  return cntlid;
}

/** I/O Connect: may queue `m.qid` join controller `m.cntlid`? If so it is recorded there. */
export function admitIoConnect(
  ctrlrs: ReadonlyMap<number, CtrlrRecord>,
  m: IoConnectRequest,
): IoConnectReply {
  const reply: IoConnectReply = {
    token: m.token,
    cntlid: m.cntlid,
    hostid: '',
    owner: null,
    sct: 0,
    sc: 0,
    iattr: -1,
    ipo: 0,
    kato: 0,
  };
  const c = ctrlrs.get(m.cntlid);
  if (c === undefined || c.subnqn !== m.subnqn) {
    log.error(`I/O Connect: unknown cntlid ${m.cntlid} for ${m.subnqn}`);
    reply.sct = StatusCodeType.COMMAND_SPECIFIC;
    reply.sc = FabricsStatus.INVALID_PARAM;
    reply.iattr = 1;
    reply.ipo = ConnectData.CNTLID;
  } else if (c.hostnqn !== m.hostnqn) {
    log.error(`I/O Connect: host ${m.hostnqn} does not own cntlid ${m.cntlid}`);
    reply.sct = StatusCodeType.COMMAND_SPECIFIC;
    reply.sc = FabricsStatus.INVALID_PARAM;
    reply.iattr = 1;
    reply.ipo = ConnectData.HOSTNQN;
  } else if (!c.enabled || c.ioQueues.has(m.qid)) {
    // SPDK nvmf_ctrlr_add_io_qpair: both are Connect Invalid Parameters pointing at QID
    log.error(
      c.enabled
        ? `I/O Connect: cntlid ${m.cntlid} already has qid ${m.qid}`
        : `I/O Connect for cntlid ${m.cntlid} before the controller was enabled`,
    );
    reply.sct = StatusCodeType.COMMAND_SPECIFIC;
    reply.sc = FabricsStatus.INVALID_PARAM;
    reply.iattr = 0;
    reply.ipo = FabricsSqe.CONNECT_QID;
  } else {
    c.ioQueues.set(m.qid, m.pg);
    reply.owner = c.owner;
    reply.hostid = c.hostid;
    reply.kato = c.kato;
  }
  return reply;
}
