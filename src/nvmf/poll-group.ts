// The nvmf poll group: the target io_device's channel on one poll-group
// thread. It owns that thread's transport poll groups, its view of every
// subsystem (namespaces opened in this realm), the controllers whose admin
// queue sits here, and dispatches every command the transports hand it.
import type { Socket } from 'node:net';
import { BdevIoType, bdevClose, bdevGetIoChannel, bdevOpen, bdevPutIoChannel } from '../bdev/index.ts';
import {
  currentThread,
  defineChannelIter,
  defineHandler,
  getIoChannel,
  nowUs,
  type Poller,
  PollerStatus,
  putIoChannel,
  registerPoller,
  type SpdkThread,
  sendMsg,
  type ThreadRef,
} from '../thread/index.ts';
import { logger } from '../util/log.ts';
import { type RealmMemory, realmMemory } from '../util/memory.ts';
import {
  DISCOVERY_NQN,
  type DiscoveryEntry,
  EFLAGS_DUPRETINFO,
  EFLAGS_EPCSD,
  SubType,
} from '../wire/discovery.ts';
import {
  CONNECT_CATTR_DISABLE_SQFLOW,
  ConnectData,
  ConnectRsp,
  FabricsSqe,
  NQN_MAX_LEN,
  readCString,
} from '../wire/fabrics.ts';
import {
  CommandSpecificStatus,
  FABRICS_OPCODE,
  FabricsCommandType,
  FabricsStatus,
  GenericStatus,
  PathStatus,
  Sqe,
  StatusCodeType,
  setStatus,
} from '../wire/nvme.ts';
import { dropFused, executeIo, type IoQueueState } from './ctrlr-bdev.ts';
import { type PgNamespace, PgSubsystem } from './poll-group-subsystem.ts';
import { SubsystemState, SubsystemType, type SubsystemView } from './subsystem.ts';
// target.ts and this file import each other; both only use the other's bindings inside functions
import {
  tgtAbort,
  tgtAdminConnect,
  tgtBdevRemoved,
  tgtCtrlrDisabled,
  tgtCtrlrEnabled,
  tgtCtrlrGone,
  tgtIoConnect,
  tgtIoQueueGone,
  tgtReply,
} from './target.ts';
import { AsyncEvent, type CtrlrHost, NvmfCtrlr, requestData } from './target-controller.ts';
import type {
  NvmfQpair,
  NvmfRequest,
  QpairEvents,
  TransportAddress,
  TransportOptions,
  TransportPollGroup,
} from './transport.ts';
import { getTransport } from './transport.ts';

export const NVMF_TGT_DEVICE = 'nvmf_tgt';
const log = logger('nvmf');

/** What the target sends every poll group (structured-cloneable). */
export interface TargetSnapshot {
  version: number;
  views: SubsystemView[];
  genctr: number;
  referrals: DiscoveryEntry[];
  /** SPDK discovery_filter: 'match_any' or a combination of transport/address/svcid */
  discoveryFilter: string;
}

/** One poll group in nvmf_get_stats: SPDK's fields, then the leak counters nvmf-ts adds. */
export interface PgStats {
  name: string;
  admin_qpairs: number;
  io_qpairs: number;
  current_admin_qpairs: number;
  current_io_qpairs: number;
  pending_bdev_io: number;
  completed_nvme_io: number;
  transports: { trtype: string; qpairs: number }[];
  /** controllers whose admin queue is on this poll group */
  controllers: number;
  /** connections the transports hold (before and after Connect) */
  current_qpairs: number;
  /** commands handed to the core and not completed (bdev I/O, AERs, paused) */
  outstanding_requests: number;
  /** I/O commands parked on paused subsystems */
  queued_requests: number;
  memory: RealmMemory;
  /** libuv handles and requests alive in this realm (process.getActiveResourcesInfo) */
  handles: number;
}

/** The queue context of an admin queue: its controller. */
export class AdminQueue {
  readonly ctrlr: NvmfCtrlr;
  constructor(ctrlr: NvmfCtrlr) {
    this.ctrlr = ctrlr;
  }
}

/** The queue context of an I/O queue (possibly on another poll group than its controller). */
export class IoQueue implements IoQueueState {
  readonly pg: NvmfPollGroup;
  readonly cntlid: number;
  readonly subnqn: string;
  readonly hostnqn: string;
  readonly owner: ThreadRef;
  sub: PgSubsystem;
  fusedFirst: NvmfRequest | null = null;
  outstanding = 0;
  anaPathStatus = 0;
  readonly listenAddr: TransportAddress;
  constructor(
    pg: NvmfPollGroup,
    cntlid: number,
    sub: PgSubsystem,
    hostnqn: string,
    owner: ThreadRef,
    listenAddr: TransportAddress,
  ) {
    this.pg = pg;
    this.cntlid = cntlid;
    this.sub = sub;
    this.subnqn = sub.view.nqn;
    this.hostnqn = hostnqn;
    this.owner = owner;
    this.listenAddr = listenAddr;
    this.updateAna();
  }
  /** Recompute the path status from the ANA state of the listener this queue came through. */
  updateAna(): void {
    const v = this.sub.view;
    if (!v.anaReporting) {
      this.anaPathStatus = 0;
      return;
    }
    const a = this.listenAddr;
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
    const raw = req.rsp.readUInt16LE(14);
    const status = (((raw >> 9) & 0x7) << 8) | ((raw >> 1) & 0xff);
    sendMsg(this.owner, pgRecordError, {
      cntlid: this.cntlid,
      sqid: req.qpair.qid,
      cid: req.cmd.readUInt16LE(Sqe.CID),
      status,
      lba,
      nsid: req.cmd.readUInt32LE(Sqe.NSID),
    });
  }
  onComplete(_req: NvmfRequest): void {
    this.pg.stats.completed_nvme_io++;
  }
}

let realmAppThread: ThreadRef | null = null;
const realmGroups: NvmfPollGroup[] = [];

/** The poll groups of this realm (for tests and stats). */
export function localPollGroups(): readonly NvmfPollGroup[] {
  return realmGroups;
}

function appThread(): ThreadRef {
  if (realmAppThread === null) throw new Error('nvmf: poll group used before the target created it');
  return realmAppThread;
}

interface PendingConnect {
  req: NvmfRequest;
  sub: PgSubsystem;
  hostnqn: string;
  hostid: Buffer;
  kato: number;
}

export class NvmfPollGroup implements QpairEvents {
  readonly thread: SpdkThread;
  readonly tgroups = new Map<string, TransportPollGroup>();
  readonly transportOpts = new Map<string, TransportOptions>();
  readonly subsystems = new Map<string, PgSubsystem>();
  readonly ctrlrs = new Map<number, NvmfCtrlr>();
  readonly qpairs = new Set<NvmfQpair>();
  readonly stats: PgStats;
  private readonly pending = new Map<number, PendingConnect>();
  private readonly pendingAborts = new Map<number, (aborted: boolean) => void>();
  private nextToken = 1;
  private poller: Poller | null;
  private kaPoller: Poller | null;
  private snapshotVersion = -1;
  genctr = 0;
  referrals: DiscoveryEntry[] = [];
  discoveryFilter = 'match_any';

  constructor() {
    this.thread = currentThread();
    this.stats = {
      name: this.thread.name,
      admin_qpairs: 0,
      io_qpairs: 0,
      current_admin_qpairs: 0,
      current_io_qpairs: 0,
      pending_bdev_io: 0,
      completed_nvme_io: 0,
      transports: [],
      controllers: 0,
      current_qpairs: 0,
      outstanding_requests: 0,
      queued_requests: 0,
      memory: { heap_used: 0, heap_total: 0, external: 0, array_buffers: 0, rss: 0 },
      handles: 0,
    };
    this.poller = registerPoller(() => this.poll(), 0, 'nvmf_poll_group_poll');
    this.kaPoller = registerPoller(() => this.checkKeepAlive(), 1_000_000, 'nvmf_ctrlr_keep_alive_poll');
    realmGroups.push(this);
  }

  private poll(): number {
    let busy = false;
    for (const g of this.tgroups.values()) if (g.poll()) busy = true;
    return busy ? PollerStatus.BUSY : PollerStatus.IDLE;
  }

  private checkKeepAlive(): number {
    const now = nowUs();
    for (const c of this.ctrlrs.values()) {
      if (c.keepAliveExpired(now)) {
        log.error(
          `ctrlr ${c.cntlid} (${c.host.sub.view.nqn}, host ${c.hostnqn}): keep alive timeout (${c.kato} ms), disconnecting`,
        );
        c.kato = 0;
        c.adminQpair.disconnect('keep alive timeout');
      }
    }
    return PollerStatus.IDLE;
  }

  addTransport(opts: TransportOptions): void {
    const key = opts.trtype.toUpperCase();
    if (this.tgroups.has(key)) return;
    const plugin = getTransport(key);
    if (plugin === undefined) throw new Error(`transport ${opts.trtype} is not registered in this realm`);
    this.transportOpts.set(key, opts);
    this.tgroups.set(key, plugin.createPollGroup(opts, this));
  }

  addSocket(socket: Socket, listenAddr: TransportAddress): void {
    const g = this.tgroups.get(listenAddr.trtype.toUpperCase());
    if (g === undefined) {
      socket.destroy();
      return;
    }
    g.addSocket(socket, listenAddr);
  }

  transportOptions(trtype: string): TransportOptions {
    const o = this.transportOpts.get(trtype.toUpperCase());
    if (o === undefined) throw new Error(`no ${trtype} transport in poll group ${this.thread.name}`);
    return o;
  }

  // ------------------------------------------------------------ subsystem views

  applySnapshot(s: TargetSnapshot): void {
    if (s.version <= this.snapshotVersion) return;
    this.snapshotVersion = s.version;
    const genChanged = s.genctr !== this.genctr;
    this.genctr = s.genctr;
    this.referrals = s.referrals;
    this.discoveryFilter = s.discoveryFilter;
    const seen = new Set<string>();
    for (const v of s.views) {
      seen.add(v.nqn);
      let sub = this.subsystems.get(v.nqn);
      if (sub === undefined) {
        sub = new PgSubsystem(v);
        this.subsystems.set(v.nqn, sub);
      }
      this.updateSubsystem(sub, v);
    }
    for (const [nqn, sub] of this.subsystems) {
      if (seen.has(nqn)) continue;
      this.updateSubsystem(sub, { ...sub.view, state: SubsystemState.INACTIVE, namespaces: [] });
      this.subsystems.delete(nqn);
    }
    if (genChanged) {
      for (const c of this.ctrlrs.values()) if (c.isDiscovery) c.raiseEvent(AsyncEvent.DISCOVERY_LOG_CHANGED);
    }
  }

  private updateSubsystem(sub: PgSubsystem, v: SubsystemView): void {
    const changed: number[] = [];
    const wanted = new Map(v.namespaces.map((n) => [n.nsid, n]));
    for (const [nsid, ns] of sub.ns) {
      const w = wanted.get(nsid);
      if (w === undefined || w.bdevName !== ns.config.bdevName) {
        this.closeNamespace(sub, ns);
        changed.push(nsid);
      } else ns.config = w;
    }
    for (const n of v.namespaces) {
      if (sub.ns.has(n.nsid)) continue;
      try {
        const desc = bdevOpen(n.bdevName, true, (ev) => this.onBdevEvent(sub, n.nsid, ev));
        const ch = bdevGetIoChannel(desc);
        const bdev = desc.bdev;
        sub.ns.set(n.nsid, {
          nsid: n.nsid,
          config: n,
          desc,
          ch,
          unmapSupported: bdev.supportsIo(BdevIoType.UNMAP),
          writeCache: bdev.writeCache,
          flushSupported: bdev.supportsIo(BdevIoType.FLUSH),
        });
        changed.push(n.nsid);
      } catch (e) {
        log.error(
          `poll group ${this.thread.name}: cannot open bdev ${n.bdevName} for ${v.nqn} nsid ${n.nsid}: ${(e as Error).message}`,
        );
      }
    }
    const anaChanged = sub.view.anaChangeCount !== v.anaChangeCount;
    sub.view = v;
    if (anaChanged) {
      for (const c of this.ctrlrs.values()) if (c.host.sub === sub) c.raiseEvent(AsyncEvent.ANA_CHANGE);
      for (const q of this.qpairs) if (q.ctrlr instanceof IoQueue && q.ctrlr.sub === sub) q.ctrlr.updateAna();
    }
    // keep I/O queues pointing at the live view
    if (changed.length > 0) {
      for (const c of this.ctrlrs.values()) {
        if (c.host.sub === sub) for (const nsid of changed) c.namespaceChanged(nsid);
      }
    }
    if (v.state !== SubsystemState.PAUSED && sub.queued.length > 0) {
      const queued = sub.queued;
      sub.queued = [];
      if (v.state === SubsystemState.ACTIVE) {
        // resumed: run what waited, in arrival order
        for (const req of queued) this.onRequest(req);
      } else for (const req of queued) abortRequest(req);
    }
    if (v.state === SubsystemState.INACTIVE) {
      for (const q of this.qpairs) {
        const ctx = q.ctrlr;
        if (
          (ctx instanceof AdminQueue && ctx.ctrlr.host.sub === sub) ||
          (ctx instanceof IoQueue && ctx.sub === sub)
        ) {
          q.disconnect('subsystem stopped');
        }
      }
    } else {
      // as SPDK: removing a listener disconnects the queues that came through it
      for (const q of this.qpairs) {
        const ctx = q.ctrlr;
        const qsub = ctx instanceof AdminQueue ? ctx.ctrlr.host.sub : ctx instanceof IoQueue ? ctx.sub : null;
        if (qsub !== sub) continue;
        const a = q.listenAddr;
        const listed = v.listeners.some(
          (l) =>
            l.traddr === a.traddr &&
            l.trsvcid === a.trsvcid &&
            l.trtype.toUpperCase() === a.trtype.toUpperCase(),
        );
        if (!listed) q.disconnect('listener removed');
      }
      // disconnect hosts no longer allowed
      if (!v.allowAnyHost && v.subtype !== SubsystemType.DISCOVERY) {
        for (const q of this.qpairs) {
          const ctx = q.ctrlr;
          const host =
            ctx instanceof AdminQueue ? ctx.ctrlr.hostnqn : ctx instanceof IoQueue ? ctx.hostnqn : null;
          const qsub =
            ctx instanceof AdminQueue ? ctx.ctrlr.host.sub : ctx instanceof IoQueue ? ctx.sub : null;
          if (qsub === sub && host !== null && !v.hosts.includes(host)) q.disconnect('host removed');
        }
      }
    }
  }

  private closeNamespace(sub: PgSubsystem, ns: PgNamespace): void {
    sub.ns.delete(ns.nsid);
    try {
      bdevPutIoChannel(ns.ch);
      bdevClose(ns.desc);
    } catch (e) {
      log.warn(`closing namespace ${ns.nsid} of ${sub.view.nqn}: ${(e as Error).message}`);
    }
  }

  private onBdevEvent(sub: PgSubsystem, nsid: number, ev: string): void {
    const ns = sub.ns.get(nsid);
    if (ns === undefined) return;
    if (ev === 'remove') {
      this.closeNamespace(sub, ns);
      for (const c of this.ctrlrs.values()) if (c.host.sub === sub) c.namespaceChanged(nsid);
      sendMsg(appThread(), tgtBdevRemoved, { nqn: sub.view.nqn, nsid, bdevName: ns.config.bdevName });
    } else if (ev === 'resize') {
      for (const c of this.ctrlrs.values()) if (c.host.sub === sub) c.namespaceChanged(nsid);
    }
  }

  // ------------------------------------------------------------ discovery

  discoveryEntries(ctrlr: NvmfCtrlr): DiscoveryEntry[] {
    const via = ctrlr.adminQpair.listenAddr;
    const out: DiscoveryEntry[] = [];
    const asqsz = this.transportOpts.get(via.trtype.toUpperCase())?.max_aq_depth ?? 128;
    for (const sub of this.subsystems.values()) {
      const v = sub.view;
      if (v.state === SubsystemState.INACTIVE) continue;
      const isDisc = v.subtype === SubsystemType.DISCOVERY;
      if (!isDisc && !(v.allowAnyHost || v.hosts.includes(ctrlr.hostnqn))) continue;
      v.listeners.forEach((l, i) => {
        if (isDisc) {
          // only the discovery listener the host came through describes "this" discovery controller
          if (
            !(
              l.traddr === via.traddr &&
              l.trsvcid === via.trsvcid &&
              l.trtype.toUpperCase() === via.trtype.toUpperCase()
            )
          )
            return;
        } else if (!this.filterMatches(l, via)) return;
        out.push({
          trtype: l.trtype,
          adrfam: l.adrfam,
          subtype: isDisc ? SubType.DISCOVERY_CURRENT : SubType.NVME,
          portid: i,
          cntlid: 0xffff,
          asqsz,
          eflags: isDisc ? EFLAGS_DUPRETINFO | EFLAGS_EPCSD : 0,
          trsvcid: l.trsvcid,
          subnqn: isDisc ? DISCOVERY_NQN : v.nqn,
          traddr: l.traddr,
        });
      });
    }
    for (const r of this.referrals) out.push(r);
    return out;
  }

  private filterMatches(l: TransportAddress, via: TransportAddress): boolean {
    const f = this.discoveryFilter;
    if (f === 'match_any' || f === '') return true;
    if (f.includes('transport') && l.trtype.toUpperCase() !== via.trtype.toUpperCase()) return false;
    if (f.includes('address') && l.traddr !== via.traddr) return false;
    if (f.includes('svcid') && l.trsvcid !== via.trsvcid) return false;
    return true;
  }

  // ------------------------------------------------------------ QpairEvents

  onQpairConnected(qpair: NvmfQpair): void {
    this.qpairs.add(qpair);
  }

  onQpairClosing(qpair: NvmfQpair): void {
    const ctx = qpair.ctrlr;
    // outstanding AERs complete, aborted
    if (ctx instanceof AdminQueue) ctx.ctrlr.destroy();
    // a fused first half waiting for its second
    if (ctx instanceof IoQueue) dropFused(ctx);
    // I/O and Connect parked on a paused subsystem
    for (const sub of this.subsystems.values()) {
      if (sub.queued.length === 0 || !sub.queued.some((r) => r.qpair === qpair)) continue;
      const keep: NvmfRequest[] = [];
      for (const req of sub.queued) {
        if (req.qpair === qpair) abortRequest(req);
        else keep.push(req);
      }
      sub.queued = keep;
    }
  }

  onQpairDisconnected(qpair: NvmfQpair): void {
    this.qpairs.delete(qpair);
    const ctx = qpair.ctrlr;
    if (ctx instanceof AdminQueue) {
      this.stats.current_admin_qpairs--;
      const c = ctx.ctrlr;
      c.destroy();
      this.ctrlrs.delete(c.cntlid);
      log.info(`ctrlr ${c.cntlid} of ${c.host.sub.view.nqn} (host ${c.hostnqn}) destroyed`);
      sendMsg(appThread(), tgtCtrlrGone, { cntlid: c.cntlid });
    } else if (ctx instanceof IoQueue) {
      this.stats.current_io_qpairs--;
      dropFused(ctx);
      sendMsg(appThread(), tgtIoQueueGone, { cntlid: ctx.cntlid, qid: qpair.qid });
    }
    qpair.ctrlr = null;
  }

  onRequest(req: NvmfRequest): void {
    try {
      this.dispatch(req);
    } catch (e) {
      // a bug must not take the reactor down: drop this connection, keep serving
      log.error(
        `poll group ${this.thread.name}: command failed with an exception, disconnecting: ${(e as Error).stack ?? e}`,
      );
      req.qpair.disconnect('internal error');
    }
  }

  private dispatch(req: NvmfRequest): void {
    const cmd = req.cmd;
    const ctx = req.qpair.ctrlr;
    if (cmd[Sqe.OPCODE] === FABRICS_OPCODE) {
      this.fabrics(req);
      return;
    }
    if (ctx instanceof IoQueue) {
      // SPDK's pause: new I/O waits (queued, not failed) until resume; admin goes on
      if (ctx.sub.view.state === SubsystemState.PAUSED) {
        ctx.sub.queued.push(req);
        return;
      }
      executeIo(req);
      return;
    }
    if (ctx instanceof AdminQueue) {
      ctx.ctrlr.admin(req);
      return;
    }
    setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.COMMAND_SEQUENCE_ERROR, true);
    req.complete();
  }

  private fabrics(req: NvmfRequest): void {
    const fctype = req.cmd[FabricsSqe.FCTYPE];
    const ctx = req.qpair.ctrlr;
    switch (fctype) {
      case FabricsCommandType.CONNECT:
        if (ctx !== null && ctx !== undefined) {
          // a second Connect on a connected queue: SPDK nvmf_ctrlr_process_fabrics_cmd
          setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
          req.complete();
          return;
        }
        this.connect(req);
        return;
      case FabricsCommandType.PROPERTY_GET:
      case FabricsCommandType.PROPERTY_SET:
        if (!(ctx instanceof AdminQueue)) {
          setStatus(
            req.rsp,
            StatusCodeType.GENERIC,
            ctx instanceof IoQueue ? GenericStatus.INVALID_OPCODE : GenericStatus.COMMAND_SEQUENCE_ERROR,
            true,
          );
          req.complete();
          return;
        }
        if (fctype === FabricsCommandType.PROPERTY_GET) ctx.ctrlr.propertyGet(req);
        else ctx.ctrlr.propertySet(req);
        return;
      case FabricsCommandType.DISCONNECT: {
        const q = req.qpair;
        req.complete();
        // after the response went out
        sendMsg(this.thread, disconnectLater, q);
        return;
      }
      default:
        setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
        req.complete();
    }
  }

  private connectFail(req: NvmfRequest, sct: number, sc: number, iattr = -1, ipo = 0): void {
    setStatus(req.rsp, sct, sc, true);
    if (iattr >= 0) {
      req.rsp[ConnectRsp.IATTR] = iattr;
      req.rsp.writeUInt16LE(ipo, ConnectRsp.IPO);
    }
    req.complete();
  }

  private connect(req: NvmfRequest): void {
    const cmd = req.cmd;
    const q = req.qpair;
    // checks and their order follow SPDK lib/nvmf/ctrlr.c nvmf_ctrlr_cmd_connect / _nvmf_ctrlr_connect
    if (req.length < ConnectData.SIZE) {
      this.connectFail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD);
      return;
    }
    const recfmt = cmd.readUInt16LE(FabricsSqe.CONNECT_RECFMT);
    if (recfmt !== 0) {
      this.connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INCOMPATIBLE_FORMAT);
      return;
    }
    const qid = cmd.readUInt16LE(FabricsSqe.CONNECT_QID);
    const sqsize = cmd.readUInt16LE(FabricsSqe.CONNECT_SQSIZE);
    const cattr = cmd[FabricsSqe.CONNECT_CATTR];
    let kato = cmd.readUInt32LE(FabricsSqe.CONNECT_KATO);
    const data = requestData(req);
    const hostid = Buffer.from(data.subarray(ConnectData.HOSTID, ConnectData.HOSTID + 16));
    const cntlid = data.readUInt16LE(ConnectData.CNTLID);
    // an NQN is at most 223 bytes and NUL-terminated inside its 256-byte field
    for (const field of [ConnectData.SUBNQN, ConnectData.HOSTNQN]) {
      if (!nqnTerminated(data, field)) {
        const name = field === ConnectData.SUBNQN ? 'SUBNQN' : 'HOSTNQN';
        log.error(`Connect: ${name} is not NUL-terminated within 224 bytes`);
        this.connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_PARAM, 1, field);
        return;
      }
    }
    const subnqn = readCString(data, ConnectData.SUBNQN, ConnectData.NQN_LEN);
    const hostnqn = readCString(data, ConnectData.HOSTNQN, ConnectData.NQN_LEN);
    const sub = this.subsystems.get(subnqn);
    if (sub === undefined) {
      log.error(`Connect: subsystem '${subnqn}' not found (host ${hostnqn})`);
      this.connectFail(
        req,
        StatusCodeType.COMMAND_SPECIFIC,
        FabricsStatus.INVALID_PARAM,
        1,
        ConnectData.SUBNQN,
      );
      return;
    }
    if (sub.view.state === SubsystemState.PAUSED) {
      // as SPDK: a Connect to a paused subsystem waits for the resume
      sub.queued.push(req);
      return;
    }
    if (sub.view.state !== SubsystemState.ACTIVE) {
      this.connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.CONTROLLER_BUSY);
      return;
    }
    const isDisc = sub.view.subtype === SubsystemType.DISCOVERY;
    if (!isDisc && !(sub.view.allowAnyHost || sub.view.hosts.includes(hostnqn))) {
      log.error(`Connect: host '${hostnqn}' is not allowed to connect to '${subnqn}'`);
      // Invalid Host carries no IATTR/IPO (those belong to Invalid Parameters)
      this.connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_HOST);
      return;
    }
    const listenerOk = sub.view.listeners.some(
      (l) =>
        l.trtype.toUpperCase() === q.listenAddr.trtype.toUpperCase() &&
        l.traddr === q.listenAddr.traddr &&
        l.trsvcid === q.listenAddr.trsvcid,
    );
    if (!listenerOk) {
      log.error(`Connect: '${subnqn}' does not listen on ${q.listenAddr.traddr}:${q.listenAddr.trsvcid}`);
      this.connectFail(
        req,
        StatusCodeType.COMMAND_SPECIFIC,
        FabricsStatus.INVALID_PARAM,
        1,
        ConnectData.SUBNQN,
      );
      return;
    }
    const opts = this.transportOptions(q.trtype);
    const maxDepth = qid === 0 ? opts.max_aq_depth : opts.max_queue_depth;
    if (sqsize === 0 || sqsize + 1 > maxDepth) {
      log.error(`Connect: invalid SQSIZE ${sqsize} for qid ${qid} (max ${maxDepth})`);
      this.connectFail(
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
        this.connectFail(
          req,
          StatusCodeType.COMMAND_SPECIFIC,
          FabricsStatus.INVALID_PARAM,
          1,
          ConnectData.CNTLID,
        );
        return;
      }
      // SPDK raises a small keep-alive timeout to the transport's min_kato (10 s by default)
      const minKato = Number((opts as unknown as Record<string, unknown>).min_kato ?? 10_000);
      if (kato > 0 && kato < minKato) kato = minKato;
      q.qid = 0;
      q.sqSize = sqsize + 1;
      this.pending.set(token, { req, sub, hostnqn, hostid, kato });
      sendMsg(appThread(), tgtAdminConnect, {
        token,
        pg: this.thread.ref,
        subnqn,
        hostnqn,
        hostid: hostid.toString('hex'),
      });
      return;
    }
    if (isDisc) {
      this.connectFail(
        req,
        StatusCodeType.COMMAND_SPECIFIC,
        FabricsStatus.INVALID_PARAM,
        0,
        FabricsSqe.CONNECT_QID,
      );
      return;
    }
    if (qid > opts.max_io_qpairs_per_ctrlr) {
      this.connectFail(
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
    sendMsg(appThread(), tgtIoConnect, { token, pg: this.thread.ref, cntlid, subnqn, hostnqn, qid });
  }

  adminConnectDone(r: AdminConnectReply): void {
    const p = this.pending.get(r.token);
    if (p === undefined) return;
    this.pending.delete(r.token);
    const req = p.req;
    const q = req.qpair;
    if (r.cntlid < 0) {
      this.connectFail(req, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.CONTROLLER_BUSY);
      return;
    }
    if (!this.qpairs.has(q)) {
      // the queue died while we waited: release the ID
      sendMsg(appThread(), tgtCtrlrGone, { cntlid: r.cntlid });
      return;
    }
    const host: CtrlrHost = {
      sub: p.sub,
      discoveryEntries: (c) => this.discoveryEntries(c),
      discoveryGenctr: () => this.genctr,
      transportOptions: (t) => this.transportOptions(t),
      onCtrlrEnabled: (c) => sendMsg(appThread(), tgtCtrlrEnabled, { cntlid: c.cntlid }),
      onCtrlrDisabled: (c) => sendMsg(appThread(), tgtCtrlrDisabled, { cntlid: c.cntlid }),
      abortCommand: (c, sqid, cid, done) => this.abortCommand(c.cntlid, sqid, cid, done),
    };
    const ctrlr = new NvmfCtrlr({
      cntlid: r.cntlid,
      hostnqn: p.hostnqn,
      hostid: p.hostid,
      host,
      adminQpair: q,
      kato: p.kato,
    });
    this.ctrlrs.set(r.cntlid, ctrlr);
    q.ctrlr = new AdminQueue(ctrlr);
    this.stats.admin_qpairs++;
    this.stats.current_admin_qpairs++;
    log.info(`ctrlr ${r.cntlid} created for ${p.sub.view.nqn}, host ${p.hostnqn} on ${this.thread.name}`);
    req.rsp.writeUInt16LE(r.cntlid, ConnectRsp.CNTLID);
    req.complete();
  }

  ioConnectDone(r: IoConnectReply): void {
    const p = this.pending.get(r.token);
    if (p === undefined) return;
    this.pending.delete(r.token);
    const req = p.req;
    const q = req.qpair;
    if (r.sc !== 0 || r.owner === null) {
      this.connectFail(req, r.sct, r.sc, r.iattr, r.ipo);
      return;
    }
    if (!this.qpairs.has(q)) {
      sendMsg(appThread(), tgtIoQueueGone, { cntlid: r.cntlid, qid: q.qid });
      return;
    }
    const ioq: IoQueueState = new IoQueue(this, r.cntlid, p.sub, p.hostnqn, r.owner, q.listenAddr);
    ioq.maxTransferBytes = this.transportOptions(q.trtype).max_io_size; // MDTS
    q.ctrlr = ioq;
    this.stats.io_qpairs++;
    this.stats.current_io_qpairs++;
    req.rsp.writeUInt16LE(r.cntlid, ConnectRsp.CNTLID);
    req.complete();
  }

  /** Abort from controller `cntlid`: the app thread knows which poll group serves `sqid`. */
  abortCommand(cntlid: number, sqid: number, cid: number, done: (aborted: boolean) => void): void {
    if (sqid === 0) {
      done(false);
      return;
    }
    const token = this.nextToken++;
    this.pendingAborts.set(token, done);
    sendMsg(appThread(), tgtAbort, { token, pg: this.thread.ref, cntlid, sqid, cid });
  }

  abortDone(token: number, aborted: boolean): void {
    const done = this.pendingAborts.get(token);
    if (done === undefined) return;
    this.pendingAborts.delete(token);
    done(aborted);
  }

  /** Abort a command of this poll group's queue if it still waits here (paused subsystem). */
  abortQueued(cntlid: number, sqid: number, cid: number): boolean {
    for (const sub of this.subsystems.values()) {
      const i = sub.queued.findIndex((r) => {
        const ctx = r.qpair.ctrlr;
        return (
          ctx instanceof IoQueue &&
          ctx.cntlid === cntlid &&
          r.qpair.qid === sqid &&
          r.cmd.readUInt16LE(Sqe.CID) === cid
        );
      });
      if (i < 0) continue;
      const [req] = sub.queued.splice(i, 1);
      setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.ABORTED_BY_REQUEST, false);
      (req.qpair.ctrlr as IoQueue).onError(req, 0);
      req.complete();
      return true;
    }
    return false;
  }

  /** The controller went away: its I/O queues here go too. */
  ctrlrGone(cntlid: number): void {
    for (const q of this.qpairs) {
      const ctx = q.ctrlr;
      if (ctx instanceof IoQueue && ctx.cntlid === cntlid) q.disconnect('controller destroyed');
    }
  }

  collectStats(): PgStats {
    let pending = 0;
    for (const q of this.qpairs) if (q.ctrlr instanceof IoQueue) pending += q.ctrlr.outstanding;
    const st = this.stats;
    st.pending_bdev_io = pending;
    st.transports = [...this.tgroups].map(([trtype, g]) => ({ trtype, qpairs: g.qpairCount }));
    st.controllers = this.ctrlrs.size;
    st.current_qpairs = 0;
    st.outstanding_requests = 0;
    for (const g of this.tgroups.values()) {
      st.current_qpairs += g.qpairCount;
      st.outstanding_requests += g.outstandingRequests ?? 0;
    }
    st.queued_requests = 0;
    for (const sub of this.subsystems.values()) st.queued_requests += sub.queued.length;
    const m = realmMemory();
    st.memory = m.memory;
    st.handles = m.handles;
    return { ...st, transports: st.transports.map((t) => ({ ...t })), memory: { ...st.memory } };
  }

  /** bdev I/O in flight on the queues of subsystem `nqn` (a pause completes when it is 0 everywhere) */
  subsystemOutstanding(nqn: string): number {
    let n = 0;
    for (const q of this.qpairs)
      if (q.ctrlr instanceof IoQueue && q.ctrlr.subnqn === nqn) n += q.ctrlr.outstanding;
    return n;
  }

  qpairInfo(nqn: string): QpairInfo[] {
    const out: QpairInfo[] = [];
    for (const q of this.qpairs) {
      const ctx = q.ctrlr;
      let cntlid: number;
      let hostnqn: string;
      if (ctx instanceof AdminQueue && ctx.ctrlr.host.sub.view.nqn === nqn) {
        cntlid = ctx.ctrlr.cntlid;
        hostnqn = ctx.ctrlr.hostnqn;
      } else if (ctx instanceof IoQueue && ctx.subnqn === nqn) {
        cntlid = ctx.cntlid;
        hostnqn = ctx.hostnqn;
      } else continue;
      out.push({
        cntlid,
        qid: q.qid,
        state: 'enabled', // SPDK's name for a connected queue
        thread: this.thread.name,
        hostnqn,
        listen_address: { ...q.listenAddr },
        peer_address: { ...q.peerAddr },
      });
    }
    return out;
  }

  destroy(): void {
    this.poller?.unregister();
    this.kaPoller?.unregister();
    this.poller = null;
    this.kaPoller = null;
    for (const g of this.tgroups.values()) g.destroy();
    this.tgroups.clear();
    for (const sub of this.subsystems.values())
      for (const ns of [...sub.ns.values()]) this.closeNamespace(sub, ns);
    this.subsystems.clear();
    const i = realmGroups.indexOf(this);
    if (i >= 0) realmGroups.splice(i, 1);
  }
}

export interface QpairInfo {
  cntlid: number;
  qid: number;
  state: string;
  thread: string;
  hostnqn: string;
  listen_address: TransportAddress;
  peer_address: TransportAddress;
}

export interface AdminConnectReply {
  token: number;
  /** -1 when no controller ID is free */
  cntlid: number;
}

export interface IoConnectReply {
  token: number;
  cntlid: number;
  owner: ThreadRef | null;
  sct: number;
  sc: number;
  iattr: number;
  ipo: number;
}

/** Complete a command the core parked and will not run (its queue or subsystem is going away). */
function abortRequest(req: NvmfRequest): void {
  setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.ABORTED_SQ_DELETION, false);
  req.complete();
}

// ------------------------------------------------------------ messages to the poll group

/** this thread's poll group (the target channel), created on first use */
function pg(): NvmfPollGroup {
  const t = currentThread();
  const ch = t.channels.get(NVMF_TGT_DEVICE);
  if (ch === undefined) throw new Error(`thread ${t.name} has no nvmf poll group`);
  return ch.ctx as NvmfPollGroup;
}

/** The Connect data field at `off` holds a NUL within the first 224 bytes (NQNs are ≤ 223 bytes). */
function nqnTerminated(data: Buffer, off: number): boolean {
  const end = Math.min(data.length, off + NQN_MAX_LEN + 1);
  for (let i = off; i < end; i++) if (data[i] === 0) return true;
  return false;
}

const disconnectLater = defineHandler<NvmfQpair>('nvmf.pg.disconnectQpair', (q) =>
  q.disconnect('Disconnect command'),
);

export interface PgCreateArg {
  token: number;
  appThread: ThreadRef;
  transports: TransportOptions[];
  snapshot: TargetSnapshot | null;
}

/** Create this thread's poll group (getIoChannel of the target device) and report back. */
export const pgCreate = defineHandler<PgCreateArg>('nvmf.pg.create', (a) => {
  realmAppThread = a.appThread;
  const ch = getIoChannel<NvmfPollGroup>(NVMF_TGT_DEVICE);
  for (const t of a.transports) ch.ctx.addTransport(t);
  if (a.snapshot !== null) ch.ctx.applySnapshot(a.snapshot);
  sendMsg(a.appThread, tgtReply, { token: a.token, value: null });
});

export const pgDestroy = defineHandler<{ token: number; appThread: ThreadRef }>('nvmf.pg.destroy', (a) => {
  const t = currentThread();
  const ch = t.channels.get(NVMF_TGT_DEVICE);
  if (ch !== undefined) {
    (ch.ctx as NvmfPollGroup).destroy();
    putIoChannel(ch);
  }
  sendMsg(a.appThread, tgtReply, { token: a.token, value: null });
});

export const pgAddSocket = defineHandler<{ socket: Socket; listenAddr: TransportAddress }>(
  'nvmf.pg.addSocket',
  (a) => pg().addSocket(a.socket, a.listenAddr),
);

export const pgAdminConnectDone = defineHandler<AdminConnectReply>('nvmf.pg.adminConnectDone', (r) =>
  pg().adminConnectDone(r),
);
export const pgIoConnectDone = defineHandler<IoConnectReply>('nvmf.pg.ioConnectDone', (r) =>
  pg().ioConnectDone(r),
);
export const pgAbortQueued = defineHandler<{
  token: number;
  replyTo: ThreadRef;
  cntlid: number;
  sqid: number;
  cid: number;
}>('nvmf.pg.abortQueued', (a) => {
  const aborted = pg().abortQueued(a.cntlid, a.sqid, a.cid);
  sendMsg(a.replyTo, pgAbortDone, { token: a.token, aborted });
});
export const pgAbortDone = defineHandler<{ token: number; aborted: boolean }>('nvmf.pg.abortDone', (a) =>
  pg().abortDone(a.token, a.aborted),
);
export const pgCtrlrGone = defineHandler<{ cntlid: number }>('nvmf.pg.ctrlrGone', (a) =>
  pg().ctrlrGone(a.cntlid),
);
export const pgRecordError = defineHandler<{
  cntlid: number;
  sqid: number;
  cid: number;
  status: number;
  lba: number;
  nsid: number;
}>('nvmf.pg.recordError', (e) => {
  const c = pg().ctrlrs.get(e.cntlid);
  c?.recordError(e.sqid, e.cid, e.status, e.lba, e.nsid);
});

export const pgAddTransportIter = defineChannelIter<{ opts: TransportOptions; error: string | null }>(
  'nvmf.pg.addTransport',
  (ch, ctx, next) => {
    try {
      (ch.ctx as NvmfPollGroup).addTransport(ctx.opts);
      next(0);
    } catch (e) {
      ctx.error = (e as Error).message;
      next(1);
    }
  },
);

export const pgSnapshotIter = defineChannelIter<TargetSnapshot>('nvmf.pg.snapshot', (ch, ctx, next) => {
  (ch.ctx as NvmfPollGroup).applySnapshot(ctx);
  next(0);
});

export const pgStatsIter = defineChannelIter<{ groups: PgStats[] }>('nvmf.pg.stats', (ch, ctx, next) => {
  ctx.groups.push((ch.ctx as NvmfPollGroup).collectStats());
  next(0);
});

export const pgSubsystemOutstandingIter = defineChannelIter<{ nqn: string; outstanding: number }>(
  'nvmf.pg.subsystemOutstanding',
  (ch, ctx, next) => {
    ctx.outstanding += (ch.ctx as NvmfPollGroup).subsystemOutstanding(ctx.nqn);
    next(0);
  },
);

export const pgQpairsIter = defineChannelIter<{ nqn: string; qpairs: QpairInfo[] }>(
  'nvmf.pg.qpairs',
  (ch, ctx, next) => {
    for (const q of (ch.ctx as NvmfPollGroup).qpairInfo(ctx.nqn)) ctx.qpairs.push(q);
    next(0);
  },
);

export { CommandSpecificStatus };
