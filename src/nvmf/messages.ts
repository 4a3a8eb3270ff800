// The messages between the target on the app thread (target.ts) and the poll
// groups (poll-group.ts), declared once: each message's name, payload type
// and receiver. A handler here only hands its payload to the receiving side,
// through the interface that side implements (TargetInbox, PollGroupInbox),
// so target.ts and poll-group.ts never import each other.
//
// Handler names resolve in every realm (each realm loads this module), and
// payloads cross realms as structured clones: plain data and ThreadRefs only,
// except the socket of addSocket, which travels in the transfer list.

import type { Socket } from 'node:net';
import {
  currentThread,
  defineChannelIter,
  defineHandler,
  getIoChannel,
  type IoChannel,
  putIoChannel,
  type SpdkThread,
  sendMsg,
  type ThreadRef,
} from '../thread/index.ts';
import { InvalidStateError, NotRegisteredError } from '../util/errors.ts';
import type { DiscoveryEntry } from '../wire/discovery.ts';
import { GenericStatus } from '../wire/nvme.ts';
import type { DhchapKeys } from './auth.ts';
import type { IoWalk, PgIoSnapshot, QueueIoTotals } from './io-stats.ts';
import type { PgStats, QpairInfo } from './stats.ts';
import type { SubsystemView } from './subsystem.ts';
import type { TransportAddress, TransportOptions } from './transport.ts';

/** The target's io_device: every poll-group thread holds a channel on it (the NvmfPollGroup). */
export const NVMF_TGT_DEVICE = 'nvmf_tgt';

// ------------------------------------------------------------ payloads

/** The answer to a request sent with NvmfTarget.call. */
export interface TargetReply {
  token: number;
  value: unknown;
}

/** What the target sends every poll group on each change (a full, versioned state). */
export interface TargetSnapshot {
  version: number;
  views: SubsystemView[];
  genctr: number;
  referrals: DiscoveryEntry[];
  /** SPDK discovery_filter: 'match_any' or a combination of transport/address/svcid */
  discoveryFilter: string;
  /** controllers advertise CAP.CSS bit 6, I/O command sets (nvmf_set_config cap_css_iocs) */
  capCssIocs: boolean;
  /** every host's TLS PSKs (secure-channel handshakes look the offered identity up here) */
  tlsPsks: TlsPskEntry[];
  /** DH-HMAC-CHAP: the hash ids and DH group ids the target allows (nvmf_set_config) */
  dhchapDigests: number[];
  dhchapDhgroups: number[];
}

/** A PSK identity a host may offer for a subsystem, and the TLS PSK it stands for. */
export interface TlsPskEntry {
  identity: string;
  hostnqn: string;
  subnqn: string;
  /** a Uint8Array once cloned into another realm */
  psk: Uint8Array;
}

export interface PollGroupCreate {
  token: number;
  appThread: ThreadRef;
  transports: TransportOptions[];
  snapshot: TargetSnapshot | null;
}

export interface PollGroupDestroy {
  token: number;
  appThread: ThreadRef;
}

/** An accepted connection, moved to the poll group that will serve it. */
export interface AddSocket {
  socket: Socket;
  listenAddr: TransportAddress;
  /** the listener requires TLS: the poll group does the handshake before ICReq */
  secureChannel: boolean;
}

/** A connection a transport without sockets accepted (RDMA: a connect request to claim). */
export interface AddConnection {
  conn: unknown;
  listenAddr: TransportAddress;
}

/** A poll group asks for a controller ID for an admin queue's Connect. */
export interface AdminConnectRequest {
  token: number;
  pg: ThreadRef;
  subnqn: string;
  hostnqn: string;
  /** 32 hex digits */
  hostid: string;
  /** the controller's keep-alive timeout in ms (its I/O queues' authentication timeout) */
  kato: number;
}

export interface AdminConnectReply {
  token: number;
  /** -1 when no controller ID is free */
  cntlid: number;
}

/** A poll group asks whether an I/O queue may join controller `cntlid`. */
export interface IoConnectRequest {
  token: number;
  pg: ThreadRef;
  cntlid: number;
  subnqn: string;
  hostnqn: string;
  qid: number;
}

/** Yes (`owner` is the controller's poll group, sc 0) or the Connect status to answer. */
export interface IoConnectReply {
  token: number;
  cntlid: number;
  /** the controller's host ID (32 hex digits): the queue's identity to reservations */
  hostid: string;
  owner: ThreadRef | null;
  sct: number;
  sc: number;
  /** -1: no IATTR/IPO in the response */
  iattr: number;
  ipo: number;
  /** the controller's keep-alive timeout in ms */
  kato: number;
}

/** Abort command `cid` of queue `sqid` of controller `cntlid`: sent to the target, which
 * forwards it to the poll group serving that queue; the answer goes to `replyTo`. */
export interface AbortRequest {
  token: number;
  replyTo: ThreadRef;
  cntlid: number;
  sqid: number;
  cid: number;
}

export interface AbortReply {
  token: number;
  aborted: boolean;
}

export interface ControllerId {
  cntlid: number;
}

export interface IoQueueId {
  cntlid: number;
  qid: number;
}

/** A failed I/O command, for the error log of its controller (on another poll group maybe). */
export interface ErrorLogRecord {
  cntlid: number;
  sqid: number;
  cid: number;
  /** SCT << 8 | SC */
  status: number;
  lba: number;
  nsid: number;
}

/** A namespace's bdev was hot-removed: the target drops the namespace. */
export interface BdevRemoved {
  nqn: string;
  nsid: number;
  bdevName: string;
}

/** A reservation command of an I/O queue, for the owner of the namespace's reservation (the
 * app thread, as SPDK's subsystem thread), which runs them one at a time per namespace. */
export interface ResvCommand {
  token: number;
  pg: ThreadRef;
  subnqn: string;
  nsid: number;
  /** the controller's host ID, 32 hex digits */
  hostId: string;
  opcode: number;
  cdw10: number;
  cdw11: number;
  /** Register / Acquire / Release: the keys the host sent (a copy); Report: empty */
  data: Uint8Array;
  /** Report: the bytes the host asked for (NUMD and the data length, the smaller) */
  reportLength: number;
}

/** The answer: a generic status code (SCT 0) and, for Report, the data. */
export interface ResvReply {
  token: number;
  sc: number;
  report: Uint8Array | null;
}

/** A reservation notice for controller `cntlid` (its poll group's), on namespace `nsid`. */
export interface ResvNotice {
  cntlid: number;
  nsid: number;
  /** ResvNotifyType */
  type: number;
}

/** DH-HMAC-CHAP: a poll group asks for a host's keys at the start of an authentication. */
export interface DhchapKeysRequest {
  token: number;
  pg: ThreadRef;
  subnqn: string;
  hostnqn: string;
}

/** The keys read from the keyring (null when none is configured or it cannot be read). */
export interface DhchapKeysReply extends DhchapKeys {
  token: number;
}

/** Contexts of the walks over every poll group (forEachChannel); they travel between realms. */
export interface AddTransportWalk {
  opts: TransportOptions;
  error: string | null;
}
export interface StatsWalk {
  groups: PgStats[];
}
export interface OutstandingWalk {
  nqn: string;
  outstanding: number;
}
export interface QpairsWalk {
  nqn: string;
  qpairs: QpairInfo[];
}
export interface CtrlrIoWalk {
  cntlid: number;
  totals: QueueIoTotals;
}
/** Preempt and Abort: the preempted hosts' commands on a namespace of `nqn` that wait in the
 * target end now (counted in `aborted`); those at the bdevs are counted in `waiting` and kept
 * under `token` until they complete. */
export interface PreemptAbortWalk {
  token: number;
  nqn: string;
  nsid: number;
  hostIds: string[];
  aborted: number;
  waiting: number;
}
/** The commands a Preempt and Abort still waits for (`done`: forget them). */
export interface PreemptWaitWalk {
  token: number;
  done: boolean;
  waiting: number;
}

// ------------------------------------------------------------ receivers

/** What the target on the app thread does with the messages poll groups send it. */
export interface TargetInbox {
  reply(m: TargetReply): void;
  adminConnect(m: AdminConnectRequest): void;
  ioConnect(m: IoConnectRequest): void;
  ctrlrEnabled(m: ControllerId): void;
  /** CC.EN 1 → 0: a controller reset, its I/O queues end */
  ctrlrDisabled(m: ControllerId): void;
  abort(m: AbortRequest): void;
  ctrlrGone(m: ControllerId): void;
  ioQueueGone(m: IoQueueId): void;
  bdevRemoved(m: BdevRemoved): void;
  /** answers with toPollGroup.reservationDone once the command took effect everywhere */
  reservation(m: ResvCommand): void;
  /** DH-HMAC-CHAP: read a host's keys and answer with toPollGroup.dhchapKeysDone */
  dhchapKeys(m: DhchapKeysRequest): void;
}

/** What a poll group does with the messages and walks that reach its thread. */
export interface PollGroupInbox {
  addSocket(m: AddSocket): void;
  addConnection(m: AddConnection): void;
  adminConnectDone(m: AdminConnectReply): void;
  ioConnectDone(m: IoConnectReply): void;
  /** abort the command if it still waits here; true if it did */
  abortQueued(m: AbortRequest): boolean;
  abortDone(m: AbortReply): void;
  /** the controller is gone or reset: its I/O queues here go */
  /** the controller was reset: its I/O queues here end (what they did stays counted) */
  ctrlrReset(m: ControllerId): void;
  /** the controller is gone: its I/O queues here end and what they did is forgotten */
  ctrlrGone(m: ControllerId): void;
  recordError(m: ErrorLogRecord): void;
  /** DH-HMAC-CHAP: the keys asked for with toTarget.dhchapKeys */
  dhchapKeysDone(m: DhchapKeysReply): void;
  /** throws when the transport cannot start here */
  addTransport(opts: TransportOptions): void;
  applySnapshot(s: TargetSnapshot): void;
  collectStats(): PgStats;
  /** bdev I/O in flight on the queues of subsystem `nqn` */
  subsystemOutstanding(nqn: string): number;
  qpairInfo(nqn: string): QpairInfo[];
  collectIo(): PgIoSnapshot;
  /** add what the live I/O queues of controller `cntlid` here did */
  ctrlrIoTotals(cntlid: number, into: QueueIoTotals): void;
  reservationDone(m: ResvReply): void;
  reservationNotice(m: ResvNotice): void;
  /** Preempt and Abort here: fills `aborted` and `waiting` of the walk */
  preemptAbort(w: PreemptAbortWalk): void;
  /** the preempted commands still at the bdevs for walk `token`; `done` forgets them */
  preemptWaiting(token: number, done: boolean): number;
  destroy(): void;
}

let target: TargetInbox | null = null;
/** this realm's poll groups, by thread id */
const pollGroups = new Map<number, PollGroupInbox>();
let appThread: ThreadRef | null = null;

/** The target that receives the poll groups' messages (app thread), or null when none runs:
 * then admin Connects are refused, aborts answer "not aborted", the rest is dropped. */
export function setTargetInbox(t: TargetInbox | null): void {
  target = t;
}

/** A poll group starts (or stops) receiving on its thread. */
export function setPollGroupInbox(thread: SpdkThread, pg: PollGroupInbox | null): void {
  if (pg === null) pollGroups.delete(thread.id);
  else pollGroups.set(thread.id, pg);
}

function pollGroupOn(thread: SpdkThread): PollGroupInbox {
  const pg = pollGroups.get(thread.id);
  if (pg === undefined) throw new NotRegisteredError(`thread ${thread.name} has no nvmf poll group`);
  return pg;
}

/** The app thread, where a poll group of this realm sends what is for the target. */
export function targetThread(): ThreadRef {
  if (appThread === null) throw new InvalidStateError('nvmf: poll group used before the target created it');
  return appThread;
}

// ------------------------------------------------------------ to the target (app thread)

export const toTarget = {
  reply: defineHandler<TargetReply>('nvmf.tgt.reply', (m) => target?.reply(m)),
  adminConnect: defineHandler<AdminConnectRequest>('nvmf.tgt.adminConnect', (m) => {
    if (target === null) sendMsg(m.pg, adminConnectDone, { token: m.token, cntlid: -1 });
    else target.adminConnect(m);
  }),
  ioConnect: defineHandler<IoConnectRequest>('nvmf.tgt.ioConnect', (m) => target?.ioConnect(m)),
  ctrlrEnabled: defineHandler<ControllerId>('nvmf.tgt.ctrlrEnabled', (m) => target?.ctrlrEnabled(m)),
  ctrlrDisabled: defineHandler<ControllerId>('nvmf.tgt.ctrlrDisabled', (m) => target?.ctrlrDisabled(m)),
  abort: defineHandler<AbortRequest>('nvmf.tgt.abort', (m) => {
    if (target === null) sendMsg(m.replyTo, abortDone, { token: m.token, aborted: false });
    else target.abort(m);
  }),
  ctrlrGone: defineHandler<ControllerId>('nvmf.tgt.ctrlrGone', (m) => target?.ctrlrGone(m)),
  ioQueueGone: defineHandler<IoQueueId>('nvmf.tgt.ioQueueGone', (m) => target?.ioQueueGone(m)),
  bdevRemoved: defineHandler<BdevRemoved>('nvmf.tgt.bdevRemoved', (m) => target?.bdevRemoved(m)),
  reservation: defineHandler<ResvCommand>('nvmf.tgt.reservation', (m) => {
    // no target (shutting down): the command fails rather than hang its queue
    if (target === null)
      sendMsg(m.pg, reservationDone, { token: m.token, sc: GenericStatus.COMMAND_INTERRUPTED, report: null });
    else target.reservation(m);
  }),
  dhchapKeys: defineHandler<DhchapKeysRequest>('nvmf.tgt.dhchapKeys', (m) => {
    if (target === null) sendMsg(m.pg, dhchapKeysDone, { token: m.token, key: null, ctrlrKey: null });
    else target.dhchapKeys(m);
  }),
} as const;

// ------------------------------------------------------------ to a poll group thread

/** Create this thread's poll group (its channel of the target device) and report back. */
const create = defineHandler<PollGroupCreate>('nvmf.pg.create', (m) => {
  appThread = m.appThread;
  getIoChannel(NVMF_TGT_DEVICE);
  const pg = pollGroupOn(currentThread());
  for (const t of m.transports) pg.addTransport(t);
  if (m.snapshot !== null) pg.applySnapshot(m.snapshot);
  sendMsg(m.appThread, toTarget.reply, { token: m.token, value: null });
});

const destroy = defineHandler<PollGroupDestroy>('nvmf.pg.destroy', (m) => {
  const t = currentThread();
  const ch = t.channels.get(NVMF_TGT_DEVICE);
  if (ch !== undefined) {
    pollGroups.get(t.id)?.destroy();
    putIoChannel(ch);
  }
  sendMsg(m.appThread, toTarget.reply, { token: m.token, value: null });
});

const adminConnectDone = defineHandler<AdminConnectReply>('nvmf.pg.adminConnectDone', (m) =>
  pollGroupOn(currentThread()).adminConnectDone(m),
);

const abortDone = defineHandler<AbortReply>('nvmf.pg.abortDone', (m) =>
  pollGroupOn(currentThread()).abortDone(m),
);

const reservationDone = defineHandler<ResvReply>('nvmf.pg.reservationDone', (m) =>
  pollGroupOn(currentThread()).reservationDone(m),
);

const dhchapKeysDone = defineHandler<DhchapKeysReply>('nvmf.pg.dhchapKeysDone', (m) =>
  pollGroupOn(currentThread()).dhchapKeysDone(m),
);

export const toPollGroup = {
  create,
  destroy,
  addSocket: defineHandler<AddSocket>('nvmf.pg.addSocket', (m) => pollGroupOn(currentThread()).addSocket(m)),
  addConnection: defineHandler<AddConnection>('nvmf.pg.addConnection', (m) =>
    pollGroupOn(currentThread()).addConnection(m),
  ),
  adminConnectDone,
  ioConnectDone: defineHandler<IoConnectReply>('nvmf.pg.ioConnectDone', (m) =>
    pollGroupOn(currentThread()).ioConnectDone(m),
  ),
  abortQueued: defineHandler<AbortRequest>('nvmf.pg.abortQueued', (m) => {
    const aborted = pollGroupOn(currentThread()).abortQueued(m);
    sendMsg(m.replyTo, abortDone, { token: m.token, aborted });
  }),
  abortDone,
  ctrlrReset: defineHandler<ControllerId>('nvmf.pg.ctrlrReset', (m) =>
    pollGroupOn(currentThread()).ctrlrReset(m),
  ),
  ctrlrGone: defineHandler<ControllerId>('nvmf.pg.ctrlrGone', (m) =>
    pollGroupOn(currentThread()).ctrlrGone(m),
  ),
  recordError: defineHandler<ErrorLogRecord>('nvmf.pg.recordError', (m) =>
    pollGroupOn(currentThread()).recordError(m),
  ),
  reservationDone,
  reservationNotice: defineHandler<ResvNotice>('nvmf.pg.reservationNotice', (m) =>
    pollGroupOn(currentThread()).reservationNotice(m),
  ),
  dhchapKeysDone,
} as const;

// ------------------------------------------------------------ walks over every poll group

function channelPollGroup(ch: IoChannel<unknown>): PollGroupInbox {
  return pollGroupOn(ch.thread);
}

export const overPollGroups = {
  addTransport: defineChannelIter<AddTransportWalk>('nvmf.pg.addTransport', (ch, ctx, next) => {
    try {
      channelPollGroup(ch).addTransport(ctx.opts);
      next(0);
    } catch (e) {
      ctx.error = (e as Error).message;
      next(1);
    }
  }),
  snapshot: defineChannelIter<TargetSnapshot>('nvmf.pg.snapshot', (ch, ctx, next) => {
    channelPollGroup(ch).applySnapshot(ctx);
    next(0);
  }),
  stats: defineChannelIter<StatsWalk>('nvmf.pg.stats', (ch, ctx, next) => {
    ctx.groups.push(channelPollGroup(ch).collectStats());
    next(0);
  }),
  subsystemOutstanding: defineChannelIter<OutstandingWalk>(
    'nvmf.pg.subsystemOutstanding',
    (ch, ctx, next) => {
      ctx.outstanding += channelPollGroup(ch).subsystemOutstanding(ctx.nqn);
      next(0);
    },
  ),
  qpairs: defineChannelIter<QpairsWalk>('nvmf.pg.qpairs', (ch, ctx, next) => {
    for (const q of channelPollGroup(ch).qpairInfo(ctx.nqn)) ctx.qpairs.push(q);
    next(0);
  }),
  io: defineChannelIter<IoWalk>('nvmf.pg.io', (ch, ctx, next) => {
    ctx.groups.push(channelPollGroup(ch).collectIo());
    next(0);
  }),
  ctrlrIoTotals: defineChannelIter<CtrlrIoWalk>('nvmf.pg.ctrlrIoTotals', (ch, ctx, next) => {
    channelPollGroup(ch).ctrlrIoTotals(ctx.cntlid, ctx.totals);
    next(0);
  }),
  preemptAbort: defineChannelIter<PreemptAbortWalk>('nvmf.pg.preemptAbort', (ch, ctx, next) => {
    channelPollGroup(ch).preemptAbort(ctx);
    next(0);
  }),
  preemptWaiting: defineChannelIter<PreemptWaitWalk>('nvmf.pg.preemptWaiting', (ch, ctx, next) => {
    ctx.waiting += channelPollGroup(ch).preemptWaiting(ctx.token, ctx.done);
    next(0);
  }),
} as const;
