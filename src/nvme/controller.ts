// NVMe-oF host over NVMe/TCP, the admin side: connect a controller (admin
// queue, Fabrics Connect, property get/set, CC.EN=1 → CSTS.RDY within CAP.TO,
// Identify controller and namespaces, Set Features Number of Queues), keep
// alive at KATO/2, Async Event Requests kept outstanding, the discovery log,
// I/O queues (io-qpair.ts) and reconnect. docs/host-library.md describes the
// API and its error model.

import {
  DISCOVERY_LOG_ENTRY_SIZE,
  DISCOVERY_LOG_HEADER_SIZE,
  DISCOVERY_NQN,
  type DiscoveryLogRecord,
  decodeDiscoveryEntry,
  decodeDiscoveryLogHeader,
} from '../wire/discovery.ts';
import { propertyValue, writePropertyGet, writePropertySet } from '../wire/fabrics.ts';
import {
  Cns,
  CntrlType,
  decodeNsidList,
  IDENTIFY_SIZE,
  IdCtrl,
  ioInCapsuleDataSize,
  writeIdentifyCommand,
} from '../wire/identify.ts';
import {
  AsyncEventType,
  CHANGED_NS_LOG_SIZE,
  decodeAsyncEvent,
  LogPage,
  NoticeInfo,
  writeGetLogPage,
} from '../wire/log.ts';
import {
  AdminOpcode,
  CcBits,
  ControllerRegister,
  Cqe,
  CstsBits,
  decodeCap,
  decodeNumberOfQueues,
  FeatureId,
  initSqe,
  isSuccess,
  numberOfQueuesValue,
  SQE_SIZE,
  Sqe,
} from '../wire/nvme.ts';
import {
  type AuthOutcome,
  authenticateQueue,
  type DhchapHostConfig,
  type DhchapHostOptions,
  dhchapHostConfig,
} from './auth.ts';
import { type Completion, execute } from './command.ts';
import { connectAdminQueue, connectIoQueue, type IoQpairConnectParams } from './connect.ts';
import { NvmeAuthError, NvmeControllerError } from './errors.ts';
import { connectIoQpair, type NvmeIoQpair } from './io-qpair.ts';
import { isInactiveNamespace, type NamespaceInfo, parseNamespace } from './namespace.ts';
import type { CommandCallback, NvmeQpair } from './qpair.ts';
import { hostIdBytes, resolveTransportId, type TransportId } from './transport-id.ts';

export interface ControllerOptions extends DhchapHostOptions {
  /** admin queue entries (default 32) */
  adminQueueSize?: number;
  /** keep alive timeout in ms sent in Connect (default 10000; 0 disables keep alive) */
  kato?: number;
  /** do not enable the controller / identify (discovery uses the same path) */
  skipIdentify?: boolean;
  /** ask the controller to disable SQ flow control (Connect CATTR bit 2) */
  disableSqFlowControl?: boolean;
  connectTimeoutMs?: number;
  /** I/O queues asked for with Set Features Number of Queues at connect (default 64; 0: do not ask) */
  numIoQueues?: number;
  /** keep Async Event Requests outstanding and deliver events to onAsyncEvent (default true) */
  asyncEvents?: boolean;
  /** per-command timeout of the I/O queues this controller creates (ms, default 0 = none) */
  ioTimeoutMs?: number;
  /** host-side cap on one command's data transfer in bytes (default 1 MiB; Infinity for none) */
  maxTransferSize?: number;
}

/** Default host cap on one command's transfer (bytes), applied on top of MDTS. */
export const DEFAULT_HOST_MAX_TRANSFER = 1024 * 1024;

/** Changed Namespace List log page. */
export const CHANGED_NS_LIST_LOG = LogPage.CHANGED_NS_LIST;

/** One asynchronous event, delivered to NvmeController.onAsyncEvent. */
export interface AsyncEvent {
  /** AsyncEventType */
  type: number;
  /** event information (NoticeInfo for notices) */
  info: number;
  /** log page to read to clear the event (the library already read 0x04) */
  logPage: number;
  /** completion DW0 as received */
  raw: number;
  /** for a namespace attribute notice: the nsids of the Changed Namespace List (0xffffffff = more than 1024) */
  changedNamespaces?: number[];
}

/** One discovery log entry, numeric codes as on the wire (trtype 3 = TCP, adrfam 1 = IPv4, subtype 1 = referral, 2 = NVM, 3 = current discovery). */
export type DiscoveredEntry = DiscoveryLogRecord;

export interface DiscoveryLog {
  genctr: bigint;
  recfmt: number;
  entries: DiscoveredEntry[];
}

export interface DiscoveryLogOptions {
  /** bytes per Get Log Page for the entries (rounded down to whole entries, default 4096) */
  chunkSize?: number;
  /** re-reads when GENCTR changes during a read (default 8) */
  maxRetries?: number;
  /** refuse logs with more entries than this (default 4096) */
  maxEntries?: number;
}

const CC_ENABLE = CcBits.EN | (6 << CcBits.IOSQES_SHIFT) | (4 << CcBits.IOCQES_SHIFT);
/** AEC bits: SMART critical warnings 7:0 plus the notices a controller may announce in OAES */
const AEC_SMART_ALL = 0xff;
const OAES_NOTICE_MASK = 0x8000_7f00;
const MAX_AERS = 4;
const MAX_NS_LIST_PAGES = 64;
/** NSID meaning every namespace (the controller as a whole) */
const NSID_ALL = 0xffffffff;

function newCmd(opcode: number, nsid = 0): Buffer {
  return initSqe(Buffer.alloc(SQE_SIZE), opcode, nsid);
}

export class NvmeController {
  /** the transport ID with hostnqn/hostid resolved */
  readonly trid: TransportId;
  /** the admin queue; replaced by reconnect() */
  admin: NvmeQpair;
  /** controller ID from the admin Connect; changes on reconnect() */
  cntlid: number;
  readonly hostid: Buffer;
  /** Identify Controller data (4096 bytes), null with skipIdentify */
  cdata: Buffer | null = null;
  cap = 0n;
  /** active namespaces by nsid (empty for discovery controllers and with skipIdentify) */
  readonly namespaces = new Map<number, NamespaceInfo>();
  /** I/O queues granted by Set Features Number of Queues at connect (0 when not asked) */
  ioQueuesGranted = 0;
  /** called for each asynchronous event, after the library handled it (namespace refresh) */
  onAsyncEvent: ((ev: AsyncEvent) => void) | null = null;
  /** called once when the admin connection ends without disconnect() (I/O is then failed; see reconnect) */
  onConnectionLost: ((reason: string) => void) | null = null;
  /** DH-HMAC-CHAP of the admin queue at its last connect (null: the controller asked for none) */
  auth: AuthOutcome | null = null;
  private readonly opts: ControllerOptions;
  /** the secrets this controller authenticates with (setDhchapSecrets replaces them) */
  private dhchap: DhchapHostConfig | null;
  /** transaction ids of this controller's authentications, one per transaction (as Linux counts) */
  private nextTid = 0;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private readonly ioQpairs = new Set<NvmeIoQpair>();
  private nextQid = 1;
  private disconnecting = false;
  private reconnecting: Promise<void> | null = null;
  private readonly onAerComplete: CommandCallback;
  private aerQpair: NvmeQpair | null = null;

  private constructor(
    trid: TransportId,
    admin: NvmeQpair,
    cntlid: number,
    hostid: Buffer,
    opts: ControllerOptions,
  ) {
    this.trid = trid;
    this.admin = admin;
    this.cntlid = cntlid;
    this.hostid = hostid;
    this.opts = opts;
    this.dhchap = dhchapHostConfig(opts);
    this.onAerComplete = (cpl) => this.aerCompleted(cpl);
  }

  /**
   * Connect the admin queue, enable the controller, identify it and its
   * namespaces, ask for I/O queues, start keep alive and AERs. `trid` may be
   * the string form ("trtype:tcp traddr:… trsvcid:… subnqn:…").
   */
  static async connect(trid: TransportId | string, opts: ControllerOptions = {}): Promise<NvmeController> {
    const t = resolveTransportId(trid);
    const hostid = hostIdBytes(t.hostid ?? '');
    const dhchap = dhchapHostConfig(opts);
    const { admin, cntlid, auth } = await NvmeController.connectAdmin(t, hostid, opts, dhchap, 0);
    const ctrlr = new NvmeController(t, admin, cntlid, hostid, opts);
    ctrlr.auth = auth;
    ctrlr.nextTid = 1;
    try {
      await ctrlr.initialize();
    } catch (err) {
      ctrlr.stopTimers();
      admin.close();
      throw err;
    }
    return ctrlr;
  }

  private static connectAdmin(
    trid: TransportId,
    hostid: Buffer,
    opts: ControllerOptions,
    dhchap: DhchapHostConfig | null,
    authTid: number,
  ): Promise<{ admin: NvmeQpair; cntlid: number; auth: AuthOutcome | null }> {
    return connectAdminQueue({
      trid,
      hostid,
      dhchap,
      authTid,
      queueSize: opts.adminQueueSize ?? 32,
      kato: opts.kato ?? 10000,
      disableSqFlowControl: opts.disableSqFlowControl,
      connectTimeoutMs: opts.connectTimeoutMs,
    });
  }

  /** Everything after the admin Connect (also run by reconnect on the new admin queue). */
  private async initialize(): Promise<void> {
    const opts = this.opts;
    const admin = this.admin;
    admin.onClose = (reason) => {
      if (admin !== this.admin || this.disconnecting) return;
      this.stopTimers();
      this.onConnectionLost?.(reason);
    };
    if (!opts.skipIdentify) {
      await this.enable();
      if (!this.isDiscovery) {
        const wanted = opts.numIoQueues ?? 64;
        if (wanted > 0) {
          const granted = await this.setNumQueues(Math.min(wanted, 0xfffe));
          this.ioQueuesGranted = Math.min(granted.sq, granted.cq);
        }
        await this.refreshNamespaces();
        if (opts.asyncEvents !== false) await this.startAsyncEvents();
      }
    }
    const kato = opts.kato ?? 10000;
    if (kato > 0) this.startKeepAlive(kato);
  }

  private async enable(): Promise<void> {
    this.cap = await this.propertyGet(ControllerRegister.CAP, 8);
    const timeoutMs = Math.max(1, decodeCap(this.cap).to) * 500;
    await this.propertySet(ControllerRegister.CC, CC_ENABLE, 4);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const csts = Number(await this.propertyGet(ControllerRegister.CSTS, 4));
      if (csts & CstsBits.RDY) break;
      if (csts & CstsBits.CFS)
        throw new NvmeControllerError('NVMF_ERR_CONTROLLER_FATAL', 'controller fatal status while enabling');
      if (Date.now() > deadline)
        throw new NvmeControllerError(
          'NVMF_ERR_CONTROLLER_NOT_READY',
          `timed out waiting for CSTS.RDY (CAP.TO ${timeoutMs} ms)`,
        );
      await new Promise((r) => setTimeout(r, 10));
    }
    const cdata = Buffer.alloc(IDENTIFY_SIZE);
    await this.identify(Cns.CONTROLLER, 0, cdata);
    this.cdata = cdata;
  }

  /** True for a discovery controller (CNTRLTYPE 2, or the well-known discovery NQN). */
  get isDiscovery(): boolean {
    if (this.trid.subnqn === DISCOVERY_NQN) return true;
    return this.cdata !== null && this.cdata[IdCtrl.CNTRLTYPE] === CntrlType.DISCOVERY;
  }

  /** I/O queue in-capsule data size in bytes, from Identify's IOCCSZ. */
  get ioInCapsuleDataSize(): number {
    return this.cdata ? ioInCapsuleDataSize(this.cdata) : 0;
  }

  /**
   * Largest data transfer of one command in bytes: MDTS × CAP.MPSMIN pages,
   * capped by the host's own limit (`maxTransferSize` option, default 1 MiB),
   * which also applies when MDTS is 0 ("no limit"): such targets still refuse
   * very large transfers (Linux's nvmet-tcp refuses over 4 MiB), so the host
   * bounds them the way the Linux host's max_hw_sectors does.
   */
  get maxTransferSize(): number {
    const hostLimit = this.opts.maxTransferSize ?? DEFAULT_HOST_MAX_TRANSFER;
    if (!this.cdata) return hostLimit;
    const mdts = this.cdata[IdCtrl.MDTS];
    if (mdts === 0) return hostLimit;
    const { mpsmin } = decodeCap(this.cap);
    return Math.min(hostLimit, 2 ** (mdts + 12 + mpsmin));
  }

  /** Largest I/O queue size the controller allows (CAP.MQES + 1). */
  get maxQueueSize(): number {
    const { mqes } = decodeCap(this.cap);
    return mqes === 0 ? 65536 : mqes + 1;
  }

  /** Re-read the active namespace list and Identify each namespace. */
  async refreshNamespaces(): Promise<Map<number, NamespaceInfo>> {
    const active: number[] = [];
    let start = 0;
    for (let n = 0; n < MAX_NS_LIST_PAGES; n++) {
      const page = await this.identify(Cns.ACTIVE_NS_LIST, start);
      let last = 0;
      for (const nsid of decodeNsidList(page)) {
        if (nsid <= last) break; // the list is ascending: anything else ends it
        active.push(nsid);
        last = nsid;
      }
      // a full page (its last id set) may continue after its last id
      if (last === 0 || page.readUInt32LE(IDENTIFY_SIZE - 4) === 0 || last >= 0xfffffffe) break;
      start = last;
    }
    const found = new Map<number, NamespaceInfo>();
    for (const nsid of active) {
      const idns = await this.identify(Cns.NAMESPACE, nsid);
      if (isInactiveNamespace(idns)) continue;
      let descriptors: Buffer | null = null;
      try {
        descriptors = await this.identify(Cns.NS_DESCRIPTOR_LIST, nsid);
      } catch {
        descriptors = null; // CNS 3 is optional before NVMe 1.3
      }
      found.set(nsid, parseNamespace(nsid, idns, descriptors));
    }
    this.namespaces.clear();
    for (const [nsid, info] of found) this.namespaces.set(nsid, info);
    return this.namespaces;
  }

  // ---- asynchronous events

  private async startAsyncEvents(): Promise<void> {
    const cdata = this.cdata;
    if (cdata === null) return;
    const oaes = cdata.readUInt32LE(IdCtrl.OAES);
    try {
      await this.setFeatures(
        FeatureId.ASYNC_EVENT_CONFIGURATION,
        (AEC_SMART_ALL | (oaes & OAES_NOTICE_MASK)) >>> 0,
      );
    } catch {
      // a controller that refuses the configuration still reports what it enables by default
    }
    this.aerQpair = this.admin;
    const count = Math.min(MAX_AERS, cdata[IdCtrl.AERL] + 1);
    for (let i = 0; i < count; i++) this.submitAer();
  }

  private submitAer(): void {
    const q = this.aerQpair;
    if (q === null || q.closed) return;
    q.submit(newCmd(AdminOpcode.ASYNC_EVENT_REQUEST), null, false, this.onAerComplete);
  }

  private aerCompleted(cpl: Buffer): void {
    // an error (ABORTED_SQ_DELETION at disconnect, AER limit exceeded…) ends that AER for good
    if (!isSuccess(cpl)) return;
    const dw0 = cpl.readUInt32LE(Cqe.DW0);
    const ev: AsyncEvent = { ...decodeAsyncEvent(dw0), raw: dw0 };
    this.handleAsyncEvent(ev).then(
      () => {
        this.submitAer();
        this.onAsyncEvent?.(ev);
      },
      () => {
        this.submitAer();
        this.onAsyncEvent?.(ev);
      },
    );
  }

  private async handleAsyncEvent(ev: AsyncEvent): Promise<void> {
    if (
      ev.type === AsyncEventType.NOTICE &&
      ev.info === NoticeInfo.NAMESPACE_ATTRIBUTE_CHANGED &&
      ev.logPage === CHANGED_NS_LIST_LOG
    ) {
      // reading the log clears the event; then the namespaces are read again
      const log = await this.getLogPage(CHANGED_NS_LIST_LOG, Buffer.alloc(CHANGED_NS_LOG_SIZE), 0, NSID_ALL);
      ev.changedNamespaces = decodeNsidList(log);
      await this.refreshNamespaces();
    }
  }

  // ---- keep alive

  /**
   * Keep Alive every KATO/2. One still unanswered after KATO ends the admin
   * connection (onConnectionLost): a target that hangs without closing the
   * socket must not hold the host, and its outstanding I/O, forever.
   */
  private startKeepAlive(kato: number): void {
    let sentAt = 0; // when the outstanding Keep Alive was sent; 0 when none is
    this.keepAliveTimer = setInterval(
      () => {
        if (sentAt !== 0) {
          if (Date.now() - sentAt > kato) this.admin.fatal(`keep alive not answered within ${kato} ms`);
          return;
        }
        sentAt = Date.now();
        this.keepAlive().then(
          () => {
            sentAt = 0;
          },
          () => {}, // a failed queue reports itself through onClose
        );
      },
      Math.max(100, Math.floor(kato / 2)),
    );
    this.keepAliveTimer.unref();
  }

  private stopTimers(): void {
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  keepAlive(): Promise<Completion> {
    return execute(this.admin, newCmd(AdminOpcode.KEEP_ALIVE), null, false, 'Keep Alive');
  }

  /** Property Get: size 4 or 8; resolves a bigint. */
  async propertyGet(offset: number, size: 4 | 8): Promise<bigint> {
    const cmd = Buffer.alloc(SQE_SIZE);
    writePropertyGet(cmd, offset, size);
    const c = await execute(this.admin, cmd, null, false, 'Property Get');
    return propertyValue(c.dw0, c.dw1);
  }

  async propertySet(offset: number, value: number, size: 4 | 8 = 4): Promise<void> {
    const cmd = Buffer.alloc(SQE_SIZE);
    writePropertySet(cmd, offset, value, size);
    await execute(this.admin, cmd, null, false, 'Property Set');
  }

  /** Identify into `buf` (4096 bytes). cns 0 namespace, 1 controller, 2 active ns list, 3 ns descriptors. */
  async identify(cns: number, nsid: number, buf: Buffer = Buffer.alloc(IDENTIFY_SIZE)): Promise<Buffer> {
    const cmd = Buffer.alloc(SQE_SIZE);
    writeIdentifyCommand(cmd, cns, nsid);
    await execute(this.admin, cmd, buf, true, `Identify CNS ${cns}`);
    return buf;
  }

  async getFeatures(fid: number, cdw11 = 0, nsid = 0): Promise<Completion> {
    const cmd = newCmd(AdminOpcode.GET_FEATURES, nsid);
    cmd.writeUInt32LE(fid, Sqe.CDW10);
    cmd.writeUInt32LE(cdw11 >>> 0, Sqe.CDW11);
    return execute(this.admin, cmd, null, false, `Get Features 0x${fid.toString(16)}`);
  }

  async setFeatures(fid: number, cdw11: number, nsid = 0): Promise<Completion> {
    const cmd = newCmd(AdminOpcode.SET_FEATURES, nsid);
    cmd.writeUInt32LE(fid, Sqe.CDW10);
    cmd.writeUInt32LE(cdw11 >>> 0, Sqe.CDW11);
    return execute(this.admin, cmd, null, false, `Set Features 0x${fid.toString(16)}`);
  }

  /** Set Features Number of Queues; resolves the numbers granted. */
  async setNumQueues(count: number): Promise<{ sq: number; cq: number }> {
    const c = await this.setFeatures(FeatureId.NUMBER_OF_QUEUES, numberOfQueuesValue(count, count));
    return decodeNumberOfQueues(c.dw0);
  }

  /** Get Log Page (NUMD from buf length, dword multiple), with a byte offset. */
  async getLogPage(lid: number, buf: Buffer, offset = 0, nsid = NSID_ALL): Promise<Buffer> {
    const cmd = Buffer.alloc(SQE_SIZE);
    writeGetLogPage(cmd, lid, nsid, buf.length, offset);
    await execute(this.admin, cmd, buf, true, `Get Log Page 0x${lid.toString(16)}`);
    return buf;
  }

  /**
   * The whole discovery log page (0x70) of a discovery controller: the header,
   * then the entries in chunks by offset, then the header again; read again
   * when GENCTR (or the record count) changed meanwhile.
   */
  async getDiscoveryLog(opts: DiscoveryLogOptions = {}): Promise<DiscoveryLog> {
    const chunk = Math.max(
      DISCOVERY_LOG_ENTRY_SIZE,
      Math.floor((opts.chunkSize ?? 4096) / DISCOVERY_LOG_ENTRY_SIZE) * DISCOVERY_LOG_ENTRY_SIZE,
    );
    const maxRetries = opts.maxRetries ?? 8;
    const maxEntries = opts.maxEntries ?? 4096;
    const readHeader = async () =>
      decodeDiscoveryLogHeader(
        await this.getLogPage(LogPage.DISCOVERY, Buffer.alloc(DISCOVERY_LOG_HEADER_SIZE), 0, 0),
      );
    for (let attempt = 0; attempt <= maxRetries; attempt++) {
      const hdr = await readHeader();
      if (hdr.numrec > BigInt(maxEntries))
        throw new NvmeControllerError(
          'NVMF_ERR_DISCOVERY_LOG_TOO_LARGE',
          `discovery log has ${hdr.numrec} entries, more than the limit of ${maxEntries}`,
        );
      const numrec = Number(hdr.numrec);
      const body = Buffer.alloc(numrec * DISCOVERY_LOG_ENTRY_SIZE);
      for (let off = 0; off < body.length; off += chunk) {
        const part = body.subarray(off, Math.min(body.length, off + chunk));
        await this.getLogPage(LogPage.DISCOVERY, part, DISCOVERY_LOG_HEADER_SIZE + off, 0);
      }
      const again = await readHeader();
      if (again.genctr !== hdr.genctr || again.numrec !== hdr.numrec) continue;
      const entries: DiscoveredEntry[] = [];
      for (let i = 0; i < numrec; i++) entries.push(decodeDiscoveryEntry(body, i * DISCOVERY_LOG_ENTRY_SIZE));
      return { genctr: hdr.genctr, recfmt: hdr.recfmt, entries };
    }
    throw new NvmeControllerError(
      'NVMF_ERR_DISCOVERY_LOG_UNSTABLE',
      `discovery log kept changing (GENCTR) over ${maxRetries + 1} reads`,
    );
  }

  /** Any admin command: `cmd` is a 64-byte SQE (CID/SGL filled in). */
  adminCommand(cmd: Buffer, data: Buffer | null, isRead: boolean): Promise<Completion> {
    return execute(this.admin, cmd, data, isRead, `admin opcode 0x${cmd[Sqe.OPCODE].toString(16)}`);
  }

  private ioParams(qid: number, queueSize: number): IoQpairConnectParams {
    return {
      trid: this.trid,
      cntlid: this.cntlid,
      hostid: this.hostid,
      qid,
      queueSize,
      inCapsuleDataSize: this.ioInCapsuleDataSize,
      disableSqFlowControl: this.opts.disableSqFlowControl,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      maxTransferSize: this.maxTransferSize,
      ioTimeoutMs: this.opts.ioTimeoutMs,
      dhchap: this.dhchap,
      authTid: this.takeTid(),
    };
  }

  private takeTid(): number {
    const tid = this.nextTid;
    this.nextTid = (this.nextTid + 1) & 0xffff;
    return tid;
  }

  /** The DH-HMAC-CHAP configuration the queues authenticate with (null: no secret). */
  get dhchapConfig(): DhchapHostConfig | null {
    return this.dhchap;
  }

  /**
   * New DH-HMAC-CHAP secrets (as after a key rotation at the target): used by the next
   * authentication, reauthenticate() included. Without a host secret the controller stops
   * authenticating.
   */
  setDhchapSecrets(o: DhchapHostOptions): void {
    this.dhchap = dhchapHostConfig({
      dhchapDigests: this.opts.dhchapDigests,
      dhchapDhgroups: this.opts.dhchapDhgroups,
      ...o,
    });
  }

  /**
   * Re-authenticate the admin queue, then every I/O queue, with the current secrets while
   * the queues stay in use (the Linux host does so when its secret changes). Resolves with
   * the admin queue's outcome; rejects with the first failure (the controller then closes
   * the queue that failed).
   */
  async reauthenticate(): Promise<AuthOutcome> {
    const config = this.dhchap;
    if (config === null) throw new NvmeAuthError(0, 'none', 0, 'reauthenticate: no DH-HMAC-CHAP secret');
    const hostnqn = this.trid.hostnqn ?? '';
    const run = (q: NvmeQpair, qid: number) =>
      authenticateQueue(q, { qid, hostnqn, subnqn: this.trid.subnqn, tid: this.takeTid(), config });
    const outcome = await run(this.admin, 0);
    this.auth = outcome;
    for (const io of this.ioQueues) await run(io.qpair, io.qid);
    return outcome;
  }

  /**
   * Connect one more I/O queue (TCP connection) to this controller. The size
   * is capped at CAP.MQES + 1; at most `queueSize` commands are outstanding.
   */
  async createIoQpair(queueSize = 128): Promise<NvmeIoQpair> {
    if (this.ioQueuesGranted > 0 && this.nextQid > this.ioQueuesGranted)
      throw new NvmeControllerError(
        'NVMF_ERR_NO_IO_QUEUE',
        `I/O queue ${this.nextQid}: the controller granted ${this.ioQueuesGranted} I/O queues`,
      );
    const size = Math.max(2, Math.min(queueSize, this.cap === 0n ? queueSize : this.maxQueueSize));
    const io = await connectIoQpair(this.ioParams(this.nextQid++, size));
    this.ioQpairs.add(io);
    return io;
  }

  /** Connect `count` I/O queues (one after another: each is a TCP connection and a Fabrics Connect). */
  async createIoQpairs(count: number, queueSize = 128): Promise<NvmeIoQpair[]> {
    const out: NvmeIoQpair[] = [];
    for (let i = 0; i < count; i++) out.push(await this.createIoQpair(queueSize));
    return out;
  }

  /** The I/O queues of this controller that were not closed by their owner. */
  get ioQueues(): NvmeIoQpair[] {
    return [...this.ioQpairs].filter((q) => !q.closedByOwner);
  }

  /** True when the admin connection is down (connection lost or disconnected). */
  get failed(): boolean {
    return this.admin.closed;
  }

  /**
   * Connect again after a connection loss (or at any time): every queue is
   * closed (outstanding commands complete with ABORTED_SQ_DELETION), a new
   * admin queue is connected with the same host NQN and host ID, the
   * controller is enabled and identified again, and each I/O queue is
   * connected again with its qid and size. The NvmeIoQpair objects stay the
   * same and become usable again. Concurrent calls share one attempt.
   */
  reconnect(): Promise<void> {
    this.reconnecting ??= this.doReconnect().finally(() => {
      this.reconnecting = null;
    });
    return this.reconnecting;
  }

  private async doReconnect(): Promise<void> {
    if (this.disconnecting)
      throw new NvmeControllerError(
        'NVMF_ERR_CONTROLLER_DISCONNECTED',
        'reconnect: the controller was disconnected',
      );
    this.stopTimers();
    const oldAdmin = this.admin;
    this.aerQpair = null;
    oldAdmin.onClose = null;
    oldAdmin.close();
    const queues = this.ioQueues.sort((a, b) => a.qid - b.qid);
    for (const q of this.ioQpairs) q.qpair.close();
    const { admin, cntlid, auth } = await NvmeController.connectAdmin(
      this.trid,
      this.hostid,
      this.opts,
      this.dhchap,
      this.takeTid(),
    );
    this.auth = auth;
    if (this.disconnecting) {
      admin.close();
      throw new NvmeControllerError(
        'NVMF_ERR_CONTROLLER_DISCONNECTED',
        'reconnect: the controller was disconnected meanwhile',
      );
    }
    this.admin = admin;
    this.cntlid = cntlid;
    this.cdata = null;
    for (const q of this.ioQpairs) if (q.closedByOwner) this.ioQpairs.delete(q);
    try {
      await this.initialize();
      for (const io of queues) {
        const fresh = await connectIoQueue(this.ioParams(io.qid, io.queueSize));
        io.attach(fresh, this.maxTransferSize);
      }
    } catch (err) {
      this.stopTimers();
      admin.close();
      throw err;
    }
  }

  /** Shut down (CC.SHN normal, best effort) and close every queue. */
  async disconnect(): Promise<void> {
    this.disconnecting = true;
    this.stopTimers();
    this.aerQpair = null;
    for (const io of this.ioQpairs) io.qpair.close();
    this.ioQpairs.clear();
    if (!this.admin.closed && this.cdata) {
      const cc = CC_ENABLE | CcBits.SHN_NORMAL;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.propertySet(ControllerRegister.CC, cc).catch(() => {}),
        new Promise((r) => {
          timer = setTimeout(r, 1000);
        }),
      ]);
      clearTimeout(timer);
    }
    this.admin.close();
  }
}
