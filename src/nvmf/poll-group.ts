// The nvmf poll group (the poll-group half of SPDK's nvmf.c): the target
// io_device's channel on one poll-group thread. It owns that thread's
// transport poll groups, its view of every subsystem (namespaces opened in
// this realm, kept up to date from the target's snapshots), the controllers
// whose admin queue sits here and the I/O queues it serves. Every command a
// transport hands it goes to the queue's context (its controller, or an
// IoQueue), Fabrics commands aside: those are handled here, Connect in
// connect.ts. The target reaches it only by the messages of messages.ts.

import { randomInt } from 'node:crypto';
import { BdevIoType, bdevClose, bdevGetIoChannel, bdevOpen, bdevPutIoChannel } from '../bdev/index.ts';
import {
  currentThread,
  defineHandler,
  forEachChannel,
  nowUs,
  type Poller,
  PollerStatus,
  registerPoller,
  type SpdkThread,
  sendMsg,
} from '../thread/index.ts';
import { NotRegisteredError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { realmMemory } from '../util/memory.ts';
import { traceChannels } from '../util/trace.ts';
import type { DiscoveryEntry } from '../wire/discovery.ts';
import { FabricsSqe } from '../wire/fabrics.ts';
import {
  FABRICS_OPCODE,
  FabricsCommandType,
  FabricsStatus,
  GenericStatus,
  NvmOpcode,
  Sqe,
  StatusCodeType,
  setStatus,
} from '../wire/nvme.ts';
import { RegisterData, ReleaseData, type ResvNotifyType } from '../wire/reservation.ts';
import { type AuthHost, type DhchapKeys, QpairAuth } from './auth.ts';
import { ConnectHandler, type ConnectHost } from './connect.ts';
import { completeNvm, dropFused, PreemptWait, waitForPreempted } from './ctrlr-bdev.ts';
import { discoveryLogEntries } from './discovery-log.ts';
import type { IoQueue } from './io-queue.ts';
import {
  addQueueIoTotals,
  HostCounters,
  type HostSnapshot,
  NsIoCounters,
  type NsIoSnapshot,
  type PgIoSnapshot,
  type QueueIoTotals,
  type QueueSnapshot,
  type RecentError,
} from './io-stats.ts';
import {
  type AbortReply,
  type AbortRequest,
  type AddConnection,
  type AddSocket,
  type AdminConnectReply,
  type ControllerId,
  type DhchapKeysReply,
  type ErrorLogRecord,
  type IoConnectReply,
  NVMF_TGT_DEVICE,
  overPollGroups,
  type PollGroupInbox,
  type PreemptAbortWalk,
  type ResvNotice,
  type ResvReply,
  setPollGroupInbox,
  type TargetSnapshot,
  targetThread,
  toTarget,
} from './messages.ts';
import { nsVisibleTo, type PgNamespace, PgSubsystem, visibleHostsOf } from './poll-group-subsystem.ts';
import { newPgStats, type PgStats, type QpairInfo } from './stats.ts';
import { SubsystemState, SubsystemType, type SubsystemView } from './subsystem.ts';
import {
  AsyncEvent,
  type CtrlrHost,
  copyToRequest,
  type NvmfCtrlr,
  requestData,
} from './target-controller.ts';
import { isCommandTraced, traceCommandStart, traceController, traceQpair } from './trace.ts';
import {
  getTransport,
  type NvmfQpair,
  type NvmfRequest,
  type QpairEvents,
  type TlsPskMatch,
  type TransportAddress,
  type TransportOptions,
  type TransportPollGroup,
} from './transport.ts';

const log = logger('nvmf');
const EMPTY_DATA = new Uint8Array(0);

function peerOf(q: NvmfQpair): string {
  return `${q.peerAddr.traddr}:${q.peerAddr.trsvcid}`;
}
/** failed I/O commands a poll group keeps for the dashboard */
const RECENT_ERRORS = 20;

/** Close a queue after the response to its Disconnect command went out. */
const disconnectLater = defineHandler<NvmfQpair>('nvmf.pg.disconnectQpair', (q) =>
  q.disconnect('Disconnect command'),
);

/** Complete a command the core parked and will not run (its queue or subsystem is going away). */
function abortRequest(req: NvmfRequest): void {
  setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.ABORTED_SQ_DELETION, false);
  req.complete();
}

function sameListener(l: TransportAddress, a: TransportAddress): boolean {
  return (
    l.traddr === a.traddr && l.trsvcid === a.trsvcid && l.trtype.toUpperCase() === a.trtype.toUpperCase()
  );
}

/** Whether a command is one of the authentication transaction (Fabrics Authentication Send / Receive). */
function isAuthCommand(cmd: Buffer): boolean {
  if (cmd[Sqe.OPCODE] !== FABRICS_OPCODE) return false;
  const t = cmd[FabricsSqe.FCTYPE];
  return t === FabricsCommandType.AUTHENTICATION_SEND || t === FabricsCommandType.AUTHENTICATION_RECV;
}

export class NvmfPollGroup implements QpairEvents, PollGroupInbox, ConnectHost, AuthHost {
  readonly thread: SpdkThread;
  readonly tgroups = new Map<string, TransportPollGroup>();
  readonly transportOpts = new Map<string, TransportOptions>();
  readonly subsystems = new Map<string, PgSubsystem>();
  /** controllers whose admin queue is here, by cntlid */
  readonly ctrlrs = new Map<number, NvmfCtrlr>();
  /** every queue the transports handed us, before and after Connect */
  readonly qpairs = new Set<NvmfQpair>();
  /** the admin queues here and their controllers */
  private readonly adminQueues = new Map<NvmfQpair, NvmfCtrlr>();
  /** the I/O queues served here (their controllers may be elsewhere) */
  private readonly ioQueues = new Map<NvmfQpair, IoQueue>();
  /**
   * What the closed I/O queues here did, per controller, until the controller is gone: kept
   * where the queue lived, so a SMART / Health gather never sees them in flight between threads.
   */
  private readonly retiredIo = new Map<number, QueueIoTotals>();
  readonly stats: PgStats;
  private readonly connects: ConnectHandler;
  private readonly pendingAborts = new Map<number, (aborted: boolean) => void>();
  private nextAbortToken = 1;
  private poller: Poller | null;
  private kaPoller: Poller | null;
  private snapshotVersion = -1;
  genctr = 0;
  referrals: DiscoveryEntry[] = [];
  discoveryFilter = 'match_any';
  /** events per host of each subsystem (io-stats.ts), by `nqn host` */
  private readonly hosts = new Map<string, HostCounters>();
  /** the last failed I/O commands of the queues here, oldest first */
  private readonly recentErrors: RecentError[] = [];
  capCssIocs = false;
  /** reservation commands at the app thread, by token */
  private readonly pendingResv = new Map<number, { io: IoQueue; req: NvmfRequest }>();
  private nextResvToken = 1;
  /** Preempt-and-Abort waits: the preempted commands still at the bdevs, by walk token */
  private readonly preemptWaits = new Map<number, PreemptWait>();
  // DH-HMAC-CHAP (auth.ts): the queues with an authentication, those not yet allowed other commands
  private readonly auths = new Map<NvmfQpair, QpairAuth>();
  private readonly authenticating = new Set<NvmfQpair>();
  private readonly keyRequests = new Map<number, (keys: DhchapKeys) => void>();
  private dhchapDigests: number[] = [1, 2, 3];
  private dhchapDhgroups: number[] = [0, 1, 2, 3, 4, 5];
  private seqnum = 0;
  /** the hosts' TLS PSKs by the identity they offer (from the snapshot) */
  private tlsPsks = new Map<string, TlsPskMatch>();

  constructor() {
    this.thread = currentThread();
    this.stats = newPgStats(this.thread.name);
    this.connects = new ConnectHandler(this);
    this.poller = registerPoller(() => this.poll(), 0, 'nvmf_poll_group_poll');
    this.kaPoller = registerPoller(() => this.checkKeepAlive(), 1_000_000, 'nvmf_ctrlr_keep_alive_poll');
    setPollGroupInbox(this.thread, this);
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
        traceController(traceChannels.keepAliveExpired, c, c.host.sub.view.nqn, this.thread.name);
        this.hostCounters(c.host.sub.view.nqn, c.hostnqn).keepAliveExpirations++;
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
    if (plugin === undefined)
      throw new NotRegisteredError(`transport ${opts.trtype} is not registered in this realm`);
    this.transportOpts.set(key, opts);
    this.tgroups.set(key, plugin.createPollGroup(opts, this));
  }

  addSocket(m: AddSocket): void {
    const g = this.tgroups.get(m.listenAddr.trtype.toUpperCase());
    if (g === undefined) {
      m.socket.destroy();
      return;
    }
    g.addSocket(m.socket, m.listenAddr, m.secureChannel);
  }

  addConnection(m: AddConnection): void {
    const g = this.tgroups.get(m.listenAddr.trtype.toUpperCase());
    if (g?.addConnection === undefined) {
      log.error(`poll group ${this.thread.name}: no ${m.listenAddr.trtype} transport takes connections here`);
      return;
    }
    g.addConnection(m.conn, m.listenAddr);
  }

  transportOptions(trtype: string): TransportOptions {
    const o = this.transportOpts.get(trtype.toUpperCase());
    if (o === undefined)
      throw new NotRegisteredError(`no ${trtype} transport in poll group ${this.thread.name}`);
    return o;
  }

  /** The subsystem a connected queue belongs to; null before its Connect completed. */
  private subsystemOf(q: NvmfQpair): PgSubsystem | null {
    return this.ioQueues.get(q)?.sub ?? this.adminQueues.get(q)?.host.sub ?? null;
  }

  /** The host NQN of a connected queue; null before its Connect completed. */
  private hostOf(q: NvmfQpair): string | null {
    return this.ioQueues.get(q)?.hostnqn ?? this.adminQueues.get(q)?.hostnqn ?? null;
  }

  // ------------------------------------------------------------ subsystem views

  /** A new state of every subsystem from the target (versioned: an older one is ignored). */
  applySnapshot(s: TargetSnapshot): void {
    if (s.version <= this.snapshotVersion) return;
    this.snapshotVersion = s.version;
    const genChanged = s.genctr !== this.genctr;
    this.genctr = s.genctr;
    this.referrals = s.referrals;
    this.discoveryFilter = s.discoveryFilter;
    this.capCssIocs = s.capCssIocs;
    this.dhchapDigests = s.dhchapDigests;
    this.dhchapDhgroups = s.dhchapDhgroups;
    const psks = new Map<string, TlsPskMatch>();
    for (const e of s.tlsPsks) {
      psks.set(e.identity, {
        psk: Buffer.from(e.psk.buffer, e.psk.byteOffset, e.psk.byteLength),
        peer: { hostnqn: e.hostnqn, subnqn: e.subnqn },
      });
    }
    this.tlsPsks = psks;
    const seen = new Set<string>();
    // discovery is served on every listener of the target (connect.ts): its queues stay while
    // any subsystem still listens where they came in
    const everyListener: TransportAddress[] = [];
    for (const v of s.views) for (const l of v.listeners) everyListener.push(l);
    for (const v of s.views) {
      seen.add(v.nqn);
      let sub = this.subsystems.get(v.nqn);
      if (sub === undefined) {
        sub = new PgSubsystem(v);
        this.subsystems.set(v.nqn, sub);
      }
      this.updateSubsystem(sub, v, v.subtype === SubsystemType.DISCOVERY ? everyListener : v.listeners);
    }
    for (const [nqn, sub] of this.subsystems) {
      if (seen.has(nqn)) continue;
      this.updateSubsystem(sub, { ...sub.view, state: SubsystemState.INACTIVE, namespaces: [] }, []);
      this.subsystems.delete(nqn);
    }
    if (genChanged) {
      for (const c of this.ctrlrs.values()) if (c.isDiscovery) c.raiseEvent(AsyncEvent.DISCOVERY_LOG_CHANGED);
    }
  }

  /** Move one subsystem's view to `v`: namespaces opened/closed (with their AENs), ANA, paused
   * I/O run or failed, queues of a stopped subsystem, a removed listener or host disconnected. */
  private updateSubsystem(sub: PgSubsystem, v: SubsystemView, servedOn: readonly TransportAddress[]): void {
    const changed: number[] = [];
    // what each controller here sees now: it hears of every namespace that appears to it,
    // disappears from it or changes under it (Namespace Attribute Changed, as SPDK's
    // nvmf_ns_visible and namespace add/remove notify the controllers that see it)
    const ctrlrs = this.controllersOf(sub);
    const seenBefore = ctrlrs.map((c) => new Set(sub.activeNsids(c.hostnqn)));
    const wanted = new Map(v.namespaces.map((n) => [n.nsid, n]));
    for (const [nsid, ns] of sub.ns) {
      const w = wanted.get(nsid);
      if (w === undefined || w.bdevName !== ns.config.bdevName) {
        this.closeNamespace(sub, ns);
        changed.push(nsid);
      } else {
        ns.config = w;
        ns.visibleHosts = visibleHostsOf(w);
      }
    }
    for (const n of v.namespaces) {
      if (sub.ns.has(n.nsid)) continue;
      try {
        const desc = bdevOpen(n.bdevName, true, (ev) => this.onBdevEvent(sub, n.nsid, ev));
        const ch = bdevGetIoChannel(desc);
        const bdev = desc.bdev;
        sub.io.set(n.nsid, new NsIoCounters());
        sub.ns.set(n.nsid, {
          nsid: n.nsid,
          config: n,
          visibleHosts: visibleHostsOf(n),
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
      for (const q of this.ioQueues.values()) if (q.sub === sub) q.updateAna();
    }
    for (let i = 0; i < ctrlrs.length; i++) {
      const c = ctrlrs[i];
      const before = seenBefore[i];
      const now = new Set(sub.activeNsids(c.hostnqn));
      const tell = new Set<number>();
      for (const nsid of changed) if (before.has(nsid) || now.has(nsid)) tell.add(nsid);
      for (const nsid of before) if (!now.has(nsid)) tell.add(nsid);
      for (const nsid of now) if (!before.has(nsid)) tell.add(nsid);
      for (const nsid of tell) c.namespaceChanged(nsid);
    }
    if (v.state !== SubsystemState.PAUSED && sub.queued.length > 0) {
      const queued = sub.queued;
      sub.queued = [];
      if (v.state === SubsystemState.ACTIVE) {
        // resumed: run what waited, in arrival order
        for (const req of queued) this.runCommand(req);
      } else for (const req of queued) abortRequest(req);
    }
    if (v.state === SubsystemState.INACTIVE) {
      for (const q of this.qpairs) if (this.subsystemOf(q) === sub) q.disconnect('subsystem stopped');
      return;
    }
    // as SPDK: removing a listener disconnects the queues that came through it
    for (const q of this.qpairs) {
      if (this.subsystemOf(q) !== sub) continue;
      if (!servedOn.some((l) => sameListener(l, q.listenAddr))) q.disconnect('listener removed');
    }
    // disconnect hosts no longer allowed
    if (!v.allowAnyHost && v.subtype !== SubsystemType.DISCOVERY) {
      for (const q of this.qpairs) {
        const host = this.hostOf(q);
        if (this.subsystemOf(q) === sub && host !== null && !v.hosts.includes(host))
          q.disconnect('host removed');
      }
    }
  }

  private closeNamespace(sub: PgSubsystem, ns: PgNamespace): void {
    sub.ns.delete(ns.nsid);
    sub.io.delete(ns.nsid);
    try {
      bdevPutIoChannel(ns.ch);
      bdevClose(ns.desc);
    } catch (e) {
      log.warn(`closing namespace ${ns.nsid} of ${sub.view.nqn}: ${(e as Error).message}`);
    }
  }

  /** The NVM controllers here of subsystem `sub`. */
  private controllersOf(sub: PgSubsystem): NvmfCtrlr[] {
    const out: NvmfCtrlr[] = [];
    for (const c of this.ctrlrs.values()) if (c.host.sub === sub) out.push(c);
    return out;
  }

  private onBdevEvent(sub: PgSubsystem, nsid: number, ev: string): void {
    const ns = sub.ns.get(nsid);
    if (ns === undefined) return;
    // only the controllers that see the namespace hear of it
    const seeing = this.controllersOf(sub).filter((c) => nsVisibleTo(ns, c.hostnqn));
    if (ev === 'remove') {
      this.closeNamespace(sub, ns);
      for (const c of seeing) c.namespaceChanged(nsid);
      sendMsg(targetThread(), toTarget.bdevRemoved, {
        nqn: sub.view.nqn,
        nsid,
        bdevName: ns.config.bdevName,
      });
    } else if (ev === 'resize') {
      for (const c of seeing) c.namespaceChanged(nsid);
    }
  }

  // ------------------------------------------------------------ QpairEvents (from the transports)

  onQpairConnected(qpair: NvmfQpair): void {
    this.qpairs.add(qpair);
  }

  tlsPsk(identity: string): TlsPskMatch | null {
    return this.tlsPsks.get(identity) ?? null;
  }

  onQpairClosing(qpair: NvmfQpair): void {
    // an authentication command waiting for its DH work or keys
    this.auths.get(qpair)?.close();
    // outstanding AERs complete, aborted
    this.adminQueues.get(qpair)?.destroy();
    // a fused first half waiting for its second
    const io = this.ioQueues.get(qpair);
    if (io !== undefined) dropFused(io);
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
    this.auths.get(qpair)?.close();
    this.auths.delete(qpair);
    this.authenticating.delete(qpair);
    const c = this.adminQueues.get(qpair);
    const io = this.ioQueues.get(qpair);
    if (traceChannels.qpairDisconnected.hasSubscribers) {
      traceQpair(
        traceChannels.qpairDisconnected,
        qpair,
        c?.cntlid ?? io?.cntlid ?? -1,
        this.subsystemOf(qpair)?.view.nqn ?? null,
        this.hostOf(qpair),
        this.thread.name,
      );
    }
    if (c !== undefined) {
      this.adminQueues.delete(qpair);
      this.stats.current_admin_qpairs--;
      this.hostCounters(c.host.sub.view.nqn, c.hostnqn).disconnects++;
      log.notice(
        `host ${c.hostnqn} disconnected from ${c.host.sub.view.nqn}: ctrlr ${c.cntlid} admin queue from ${peerOf(qpair)} on reactor ${this.thread.ref.reactor} (${this.thread.name})`,
      );
      c.destroy();
      this.ctrlrs.delete(c.cntlid);
      log.info(`ctrlr ${c.cntlid} of ${c.host.sub.view.nqn} (host ${c.hostnqn}) destroyed`);
      traceController(traceChannels.controllerDestroyed, c, c.host.sub.view.nqn, this.thread.name);
      sendMsg(targetThread(), toTarget.ctrlrGone, { cntlid: c.cntlid });
    } else if (io !== undefined) {
      this.ioQueues.delete(qpair);
      this.stats.current_io_qpairs--;
      dropFused(io);
      log.notice(
        `host ${io.hostnqn} disconnected from ${io.subnqn}: ctrlr ${io.cntlid} I/O queue ${qpair.qid} from ${peerOf(qpair)} on reactor ${this.thread.ref.reactor} (${this.thread.name})`,
      );
      // the controller's SMART log keeps counting what this queue did
      if (io.countForController) {
        const retired = this.retiredIo.get(io.cntlid);
        if (retired === undefined) this.retiredIo.set(io.cntlid, io.totals);
        else addQueueIoTotals(retired, io.totals);
      }
      sendMsg(targetThread(), toTarget.ioQueueGone, { cntlid: io.cntlid, qid: qpair.qid });
    }
    qpair.context = null;
  }

  /** A command from a transport (QpairEvents): traced once here, at its arrival. */
  onRequest(req: NvmfRequest): void {
    if (isCommandTraced()) traceCommandStart(req);
    this.runCommand(req);
  }

  /** A large write before its data (QpairEvents.landWrite): an authenticated I/O queue's may
   * land in the bdev's memory. */
  landWrite(req: NvmfRequest): boolean {
    if (this.authenticating.size !== 0 && this.authenticating.has(req.qpair)) return false;
    return this.ioQueues.get(req.qpair)?.landWrite(req) === true;
  }

  /** Run a command that arrived now or waited for a resume. */
  private runCommand(req: NvmfRequest): void {
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
    if (this.authenticating.size !== 0 && this.authenticating.has(req.qpair) && !isAuthCommand(req.cmd)) {
      // SPDK: anything but the authentication transaction, before it succeeded
      log.error(`qid ${req.qpair.qid}: command 0x${req.cmd[Sqe.OPCODE].toString(16)} before authentication`);
      setStatus(req.rsp, StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.AUTH_REQUIRED, false);
      req.complete();
      return;
    }
    if (req.cmd[Sqe.OPCODE] === FABRICS_OPCODE) {
      this.fabrics(req);
      return;
    }
    const ctx = req.qpair.context;
    if (ctx === null) {
      // nothing but Connect before Connect
      setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.COMMAND_SEQUENCE_ERROR, true);
      req.complete();
      return;
    }
    ctx.execute(req);
  }

  private fabrics(req: NvmfRequest): void {
    const fctype = req.cmd[FabricsSqe.FCTYPE];
    const q = req.qpair;
    switch (fctype) {
      case FabricsCommandType.CONNECT:
        if (q.context !== null) {
          // a second Connect on a connected queue: SPDK nvmf_ctrlr_process_fabrics_cmd
          setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
          req.complete();
          return;
        }
        this.connects.connect(req);
        return;
      case FabricsCommandType.PROPERTY_GET:
      case FabricsCommandType.PROPERTY_SET: {
        const ctrlr = this.adminQueues.get(q);
        if (log.debugEnabled()) {
          log.debug(
            `ctrlr ${ctrlr?.cntlid ?? '-'}: Property ${fctype === FabricsCommandType.PROPERTY_GET ? 'Get' : 'Set'} offset 0x${req.cmd.readUInt32LE(FabricsSqe.PROP_OFFSET).toString(16)}`,
          );
        }
        if (ctrlr === undefined) {
          // an I/O queue has no properties; a queue before Connect has no controller yet
          setStatus(
            req.rsp,
            StatusCodeType.GENERIC,
            q.context !== null ? GenericStatus.INVALID_OPCODE : GenericStatus.COMMAND_SEQUENCE_ERROR,
            true,
          );
          req.complete();
          return;
        }
        if (fctype === FabricsCommandType.PROPERTY_GET) ctrlr.propertyGet(req);
        else ctrlr.propertySet(req);
        return;
      }
      case FabricsCommandType.AUTHENTICATION_SEND:
      case FabricsCommandType.AUTHENTICATION_RECV:
        this.authCommand(req);
        return;
      case FabricsCommandType.DISCONNECT:
        req.complete();
        // after the response went out
        sendMsg(this.thread, disconnectLater, q);
        return;
      default:
        setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
        req.complete();
    }
  }

  // ------------------------------------------------------------ DH-HMAC-CHAP (auth.ts)

  /** Connect: the host must authenticate this queue when the subsystem holds a key for it. */
  startAuth(q: NvmfQpair, sub: PgSubsystem, hostnqn: string, katoMs: number): boolean {
    if (!sub.view.authHosts.includes(hostnqn)) return false;
    this.auths.set(q, new QpairAuth({ qpair: q, subnqn: sub.view.nqn, hostnqn, katoMs, host: this }));
    this.authenticating.add(q);
    return true;
  }

  /** Authentication Send / Receive: the queue's transaction, or a re-authentication of an enabled queue. */
  private authCommand(req: NvmfRequest): void {
    const q = req.qpair;
    if (q.context === null) {
      // nothing but Connect before Connect
      setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.COMMAND_SEQUENCE_ERROR, false);
      req.complete();
      return;
    }
    let auth = this.auths.get(q);
    if (auth === undefined) {
      // a host re-authenticating where the target asked for none: SPDK lets it try (and fail without a key)
      const sub = this.subsystemOf(q);
      const hostnqn = this.hostOf(q);
      if (sub === null || hostnqn === null) {
        setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.COMMAND_SEQUENCE_ERROR, false);
        req.complete();
        return;
      }
      auth = new QpairAuth({ qpair: q, subnqn: sub.view.nqn, hostnqn, katoMs: this.katoOf(q), host: this });
      auth.reauth = true;
      this.auths.set(q, auth);
    } else if (auth.idle && !this.authenticating.has(q)) auth.restart();
    auth.execute(req);
  }

  /** The keep-alive timeout of the queue's controller when it lives here (else 0: the default). */
  private katoOf(q: NvmfQpair): number {
    const c = this.adminQueues.get(q) ?? this.ctrlrs.get(this.ioQueues.get(q)?.cntlid ?? -1);
    return c?.kato ?? 0;
  }

  allowedDigests(): readonly number[] {
    return this.dhchapDigests;
  }

  allowedDhGroups(): readonly number[] {
    return this.dhchapDhgroups;
  }

  fetchKeys(subnqn: string, hostnqn: string, done: (keys: DhchapKeys) => void): void {
    const token = this.nextAbortToken++;
    this.keyRequests.set(token, done);
    sendMsg(targetThread(), toTarget.dhchapKeys, { token, pg: this.thread.ref, subnqn, hostnqn });
  }

  dhchapKeysDone(m: DhchapKeysReply): void {
    const done = this.keyRequests.get(m.token);
    if (done === undefined) return;
    this.keyRequests.delete(m.token);
    // the key bytes arrive as Uint8Arrays (structured clone)
    const asBuffer = (k: DhchapKeysReply['key']) =>
      k === null ? null : { hash: k.hash, key: Buffer.from(k.key) };
    done({ key: asBuffer(m.key), ctrlrKey: asBuffer(m.ctrlrKey) });
  }

  nextSeqnum(): number {
    // SPDK starts from a random value and never hands out 0
    if (this.seqnum === 0) this.seqnum = randomInt(1, 0xffff_ffff);
    this.seqnum = (this.seqnum + 1) >>> 0;
    if (this.seqnum === 0) this.seqnum = 1;
    return this.seqnum;
  }

  onAuthenticated(auth: QpairAuth): void {
    this.authenticating.delete(auth.qpair);
    this.stats.dhchap_authentications++;
  }

  onAuthFailed(_auth: QpairAuth): void {
    this.stats.dhchap_failures++;
  }

  closeQueue(auth: QpairAuth, reason: string): void {
    auth.qpair.disconnect(reason);
  }

  // ------------------------------------------------------------ Connect (connect.ts)

  hasQpair(q: NvmfQpair): boolean {
    return this.qpairs.has(q);
  }

  controllerHost(sub: PgSubsystem): CtrlrHost {
    return {
      sub,
      discoveryEntries: (c) => this.discoveryEntries(c),
      discoveryGenctr: () => this.genctr,
      transportOptions: (t) => this.transportOptions(t),
      onCtrlrEnabled: (c) => sendMsg(targetThread(), toTarget.ctrlrEnabled, { cntlid: c.cntlid }),
      onCtrlrDisabled: (c) => sendMsg(targetThread(), toTarget.ctrlrDisabled, { cntlid: c.cntlid }),
      abortCommand: (c, sqid, cid, done) => this.abortCommand(c.cntlid, sqid, cid, done),
      gatherIoTotals: (c, into, done) =>
        forEachChannel(
          NVMF_TGT_DEVICE,
          overPollGroups.ctrlrIoTotals,
          { cntlid: c.cntlid, totals: into },
          (r) => {
            Object.assign(into, r.ctx.totals);
            done();
          },
        ),
      advertiseIocs: () => this.capCssIocs,
    };
  }

  addController(ctrlr: NvmfCtrlr): void {
    log.notice(
      `host ${ctrlr.hostnqn} connected to ${ctrlr.host.sub.view.nqn}: ctrlr ${ctrlr.cntlid} admin queue from ${peerOf(ctrlr.adminQpair)} on reactor ${this.thread.ref.reactor} (${this.thread.name})`,
    );
    this.hostCounters(ctrlr.host.sub.view.nqn, ctrlr.hostnqn).connects++;
    this.ctrlrs.set(ctrlr.cntlid, ctrlr);
    this.adminQueues.set(ctrlr.adminQpair, ctrlr);
    this.stats.admin_qpairs++;
    this.stats.current_admin_qpairs++;
  }

  /** The counters of host `hostnqn` on subsystem `nqn` here (made on first use). */
  hostCounters(nqn: string, hostnqn: string): HostCounters {
    const key = `${nqn} ${hostnqn}`;
    let h = this.hosts.get(key);
    if (h === undefined) {
      h = new HostCounters();
      this.hosts.set(key, h);
    }
    return h;
  }

  private readonly keepError = (q: IoQueue, status: number): void => {
    this.recentErrors.push({
      timeMs: Date.now(),
      nqn: q.subnqn,
      hostnqn: q.hostnqn,
      cntlid: q.cntlid,
      qid: q.qpair.qid,
      status,
    });
    if (this.recentErrors.length > RECENT_ERRORS) this.recentErrors.shift();
  };

  addIoQueue(q: IoQueue): void {
    log.notice(
      `host ${q.hostnqn} connected to ${q.subnqn}: ctrlr ${q.cntlid} I/O queue ${q.qpair.qid} from ${peerOf(q.qpair)} on reactor ${this.thread.ref.reactor} (${this.thread.name})`,
    );
    q.onFailure = this.keepError;
    this.ioQueues.set(q.qpair, q);
    this.stats.io_qpairs++;
    this.stats.current_io_qpairs++;
  }

  adminConnectDone(m: AdminConnectReply): void {
    this.connects.adminConnectDone(m);
  }

  ioConnectDone(m: IoConnectReply): void {
    this.connects.ioConnectDone(m);
  }

  /** The discovery log entries a discovery controller of this poll group reports. */
  discoveryEntries(ctrlr: NvmfCtrlr): DiscoveryEntry[] {
    const via = ctrlr.adminQpair.listenAddr;
    return discoveryLogEntries({
      subsystems: this.subsystems.values(),
      hostnqn: ctrlr.hostnqn,
      via,
      asqsz: this.transportOpts.get(via.trtype.toUpperCase())?.max_aq_depth ?? 128,
      filter: this.discoveryFilter,
      referrals: this.referrals,
    });
  }

  // ------------------------------------------------------------ controllers, aborts, errors

  /** Abort from controller `cntlid`: the app thread knows which poll group serves `sqid`. */
  abortCommand(cntlid: number, sqid: number, cid: number, done: (aborted: boolean) => void): void {
    if (sqid === 0) {
      done(false);
      return;
    }
    const token = this.nextAbortToken++;
    this.pendingAborts.set(token, done);
    sendMsg(targetThread(), toTarget.abort, { token, replyTo: this.thread.ref, cntlid, sqid, cid });
  }

  abortDone(m: AbortReply): void {
    const done = this.pendingAborts.get(m.token);
    if (done === undefined) return;
    this.pendingAborts.delete(m.token);
    done(m.aborted);
  }

  /** Abort a command of an I/O queue here if it still waits (paused subsystem). */
  abortQueued(m: AbortRequest): boolean {
    for (const sub of this.subsystems.values()) {
      for (let i = 0; i < sub.queued.length; i++) {
        const req = sub.queued[i];
        const io = this.ioQueues.get(req.qpair);
        if (io === undefined || io.cntlid !== m.cntlid || req.qpair.qid !== m.sqid) continue;
        if (req.cmd.readUInt16LE(Sqe.CID) !== m.cid) continue;
        sub.queued.splice(i, 1);
        setStatus(req.rsp, StatusCodeType.GENERIC, GenericStatus.ABORTED_BY_REQUEST, false);
        io.onError(req, 0);
        req.complete();
        return true;
      }
    }
    return false;
  }

  /** The controller went away (or was reset): its I/O queues here go too. */
  ctrlrReset(m: ControllerId): void {
    for (const [q, io] of this.ioQueues) if (io.cntlid === m.cntlid) q.disconnect('controller reset');
  }

  ctrlrGone(m: ControllerId): void {
    for (const [q, io] of this.ioQueues) {
      if (io.cntlid !== m.cntlid) continue;
      io.countForController = false;
      q.disconnect('controller destroyed');
    }
    this.retiredIo.delete(m.cntlid);
  }

  /** A failed I/O command of a controller whose admin queue is here (sent by its I/O queues). */
  recordError(m: ErrorLogRecord): void {
    this.ctrlrs.get(m.cntlid)?.recordError(m.sqid, m.cid, m.status, m.lba, m.nsid);
  }

  // ------------------------------------------------------------ reservations

  /** A reservation command of I/O queue `io` (ReservationPort): the app thread owns the state. */
  reservationCommand(io: IoQueue, req: NvmfRequest, ns: PgNamespace): void {
    const cmd = req.cmd;
    const opcode = cmd[Sqe.OPCODE];
    const cdw10 = cmd.readUInt32LE(Sqe.CDW10);
    let data: Uint8Array = EMPTY_DATA;
    let reportLength = 0;
    if (opcode === NvmOpcode.RESERVATION_REPORT) {
      // NUMD (0's based dwords) and the data buffer: the smaller is what the host takes
      reportLength = Math.min(req.length, (cdw10 + 1) * 4);
    } else {
      // the keys, copied: the request's buffers stay the transport's
      const want = opcode === NvmOpcode.RESERVATION_RELEASE ? ReleaseData.SIZE : RegisterData.SIZE;
      data = Buffer.from(requestData(req).subarray(0, Math.min(req.length, want)));
    }
    const token = this.nextResvToken++;
    this.pendingResv.set(token, { io, req });
    io.outstanding++;
    sendMsg(targetThread(), toTarget.reservation, {
      token,
      pg: this.thread.ref,
      subnqn: io.subnqn,
      nsid: ns.nsid,
      hostId: io.hostId,
      opcode,
      cdw10,
      cdw11: cmd.readUInt32LE(Sqe.CDW11),
      data,
      reportLength,
    });
  }

  reservationDone(m: ResvReply): void {
    const p = this.pendingResv.get(m.token);
    if (p === undefined) return;
    this.pendingResv.delete(m.token);
    p.io.outstanding--;
    if (m.report !== null)
      copyToRequest(p.req, Buffer.from(m.report.buffer, m.report.byteOffset, m.report.length));
    // a conflict or a bad field stays so when retried; an interrupted command may be retried
    completeNvm(p.io, p.req, StatusCodeType.GENERIC, m.sc, m.sc !== GenericStatus.COMMAND_INTERRUPTED);
  }

  reservationNotice(m: ResvNotice): void {
    this.ctrlrs.get(m.cntlid)?.reservationNotice(m.nsid, m.type as ResvNotifyType);
  }

  /**
   * Preempt and Abort on this poll group: the preempted hosts' commands on the namespace that
   * wait here (paused subsystem) complete Command Aborted due to Preempt and Abort; those at
   * the bdevs are counted and waited for under the walk's token.
   */
  preemptAbort(w: PreemptAbortWalk): void {
    const sub = this.subsystems.get(w.nqn);
    if (sub === undefined) return;
    const hosts = new Set(w.hostIds);
    const preempted = (req: NvmfRequest): boolean => {
      const io = this.ioQueues.get(req.qpair);
      return io !== undefined && hosts.has(io.hostId) && req.cmd.readUInt32LE(Sqe.NSID) === w.nsid;
    };
    if (sub.queued.some(preempted)) {
      const keep: NvmfRequest[] = [];
      for (const req of sub.queued) {
        const io = this.ioQueues.get(req.qpair);
        if (io !== undefined && preempted(req)) {
          completeNvm(io, req, StatusCodeType.GENERIC, GenericStatus.ABORTED_PREEMPT, false);
          w.aborted++;
        } else keep.push(req);
      }
      sub.queued = keep;
    }
    const wait = new PreemptWait();
    for (const io of this.ioQueues.values())
      if (io.sub === sub && hosts.has(io.hostId)) waitForPreempted(io, w.nsid, wait);
    if (wait.remaining > 0) {
      this.preemptWaits.set(w.token, wait);
      w.waiting += wait.remaining;
    }
  }

  preemptWaiting(token: number, done: boolean): number {
    const wait = this.preemptWaits.get(token);
    if (wait === undefined) return 0;
    if (done || wait.remaining <= 0) this.preemptWaits.delete(token);
    return done ? 0 : Math.max(0, wait.remaining);
  }

  // ------------------------------------------------------------ stats

  collectStats(): PgStats {
    let pending = 0;
    for (const io of this.ioQueues.values()) pending += io.outstanding;
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

  /** I/O counters, host events and queues here, as plain data (io-stats.ts). */
  collectIo(): PgIoSnapshot {
    const namespaces: NsIoSnapshot[] = [];
    for (const sub of this.subsystems.values()) {
      for (const [nsid, c] of sub.io) namespaces.push(c.snapshot(sub.view.nqn, nsid));
    }
    const hosts: HostSnapshot[] = [];
    for (const [key, h] of this.hosts) {
      const sp = key.indexOf(' ');
      hosts.push({
        nqn: key.slice(0, sp),
        hostnqn: key.slice(sp + 1),
        connects: h.connects,
        disconnects: h.disconnects,
        keepAliveExpirations: h.keepAliveExpirations,
        errors: [...h.errors].map(([status, count]) => ({ status, count })),
      });
    }
    const queues: QueueSnapshot[] = [];
    for (const [q, c] of this.adminQueues) {
      queues.push({
        nqn: c.host.sub.view.nqn,
        hostnqn: c.hostnqn,
        cntlid: c.cntlid,
        qid: 0,
        peer: `${q.peerAddr.traddr}:${q.peerAddr.trsvcid}`,
        outstanding: 0,
      });
    }
    for (const [q, io] of this.ioQueues) {
      queues.push({
        nqn: io.subnqn,
        hostnqn: io.hostnqn,
        cntlid: io.cntlid,
        qid: q.qid,
        peer: `${q.peerAddr.traddr}:${q.peerAddr.trsvcid}`,
        outstanding: io.outstanding,
      });
    }
    return {
      name: this.thread.name,
      reactor: this.thread.ref.reactor,
      namespaces,
      hosts,
      queues,
      recentErrors: this.recentErrors.map((e) => ({ ...e })),
    };
  }

  /** What the I/O queues of controller `cntlid` here did, live and closed (its SMART / Health log). */
  ctrlrIoTotals(cntlid: number, into: QueueIoTotals): void {
    for (const io of this.ioQueues.values()) if (io.cntlid === cntlid) addQueueIoTotals(into, io.totals);
    const retired = this.retiredIo.get(cntlid);
    if (retired !== undefined) addQueueIoTotals(into, retired);
  }

  /** bdev I/O in flight on the queues of subsystem `nqn` (a pause completes when it is 0 everywhere) */
  subsystemOutstanding(nqn: string): number {
    let n = 0;
    for (const io of this.ioQueues.values()) if (io.subnqn === nqn) n += io.outstanding;
    return n;
  }

  qpairInfo(nqn: string): QpairInfo[] {
    const out: QpairInfo[] = [];
    for (const q of this.qpairs) {
      const c = this.adminQueues.get(q);
      const io = this.ioQueues.get(q);
      let cntlid: number;
      let hostnqn: string;
      if (c !== undefined && c.host.sub.view.nqn === nqn) {
        cntlid = c.cntlid;
        hostnqn = c.hostnqn;
      } else if (io !== undefined && io.subnqn === nqn) {
        cntlid = io.cntlid;
        hostnqn = io.hostnqn;
      } else continue;
      out.push({
        cntlid,
        qid: q.qid,
        // SPDK's names for a connected queue, and one that must authenticate first
        state: this.authenticating.has(q) ? 'authenticating' : 'enabled',
        thread: this.thread.name,
        hostnqn,
        listen_address: { ...q.listenAddr },
        peer_address: { ...q.peerAddr },
        ...(this.auths.has(q) ? { auth: this.auths.get(q)?.info() } : {}),
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
    setPollGroupInbox(this.thread, null);
  }
}
