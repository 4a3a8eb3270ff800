// NVMe-oF host over NVMe/TCP: connect a controller (admin queue, Fabrics
// Connect, property get/set, CC.EN=1 → CSTS.RDY within CAP.TO, Identify
// controller and namespaces, Set Features Number of Queues), keep alive at
// KATO/2, Async Event Requests kept outstanding, I/O queues with NVM commands
// by callback (hot path) or promise, transfers split to respect MDTS, and
// reconnect. docs/host-library.md describes the API and its error model.

import {
  DISCOVERY_LOG_ENTRY_SIZE,
  DISCOVERY_LOG_HEADER_SIZE,
  DiscLogEntry,
  DiscLogHdr,
} from '../wire/discovery.ts';
import { IdCtrl } from '../wire/identify.ts';
import {
  AdminOpcode,
  CcBits,
  ControllerRegister,
  CQE_SIZE,
  Cqe,
  CstsBits,
  Dsm,
  FABRICS_OPCODE,
  FabricsCommandType,
  FeatureId,
  isSuccess,
  NvmOpcode,
  RwFlags,
  SQE_SIZE,
  Sqe,
  setSlba,
  statusOf,
  statusToString,
} from '../wire/nvme.ts';
import { defaultHostIdentity } from './host-identity.ts';
import { isInactiveNamespace, type NamespaceInfo, parseNamespace } from './namespace.ts';
import { type CommandCallback, NvmeTcpQpair } from './tcp-qpair.ts';
import { DISCOVERY_NQN, parseTransportId } from './trid.ts';

export interface TransportId {
  traddr: string;
  trsvcid: string;
  subnqn: string;
  hostnqn?: string;
  /** 16-byte host identifier as a UUID string */
  hostid?: string;
  hdgst?: boolean;
  ddgst?: boolean;
}

export interface ControllerOptions {
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

/** A command completed with an error status. */
export class NvmeStatusError extends Error {
  readonly sct: number;
  readonly sc: number;
  readonly dnr: boolean;
  /** (sct << 8) | sc */
  readonly status: number;
  readonly dw0: number;
  constructor(cpl: Buffer, what: string) {
    const status = statusOf(cpl);
    super(`${what} failed: ${statusToString(status >> 8, status & 0xff)}`);
    this.name = 'NvmeStatusError';
    this.status = status;
    this.sct = status >> 8;
    this.sc = status & 0xff;
    this.dnr = (cpl.readUInt16LE(Cqe.STATUS) & 0x8000) !== 0;
    this.dw0 = cpl.readUInt32LE(Cqe.DW0);
  }
}

/** A command could not be submitted: the queue is full, closed, or the transfer needs more commands than it holds. */
export class NvmeQueueError extends Error {
  /** 'full' | 'closed' | 'too-large' */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'NvmeQueueError';
    this.code = code;
  }
}

export interface Completion {
  dw0: number;
  dw1: number;
  /** (sct << 8) | sc */
  status: number;
}

/** Asynchronous event types (completion DW0 bits 2:0). */
export const AsyncEventType = {
  ERROR: 0,
  SMART_HEALTH: 1,
  NOTICE: 2,
  IMMEDIATE: 3,
  ONE_SHOT: 4,
  IO_COMMAND_SET: 6,
  VENDOR: 7,
} as const;

/** Notice event information (DW0 bits 15:8 when the type is NOTICE). */
export const NoticeInfo = {
  NAMESPACE_ATTRIBUTE_CHANGED: 0x00,
  FIRMWARE_ACTIVATION_STARTING: 0x01,
  TELEMETRY_LOG_CHANGED: 0x02,
  ANA_CHANGE: 0x03,
  DISCOVERY_LOG_CHANGE: 0xf0,
} as const;

/** Changed Namespace List log page. */
export const CHANGED_NS_LIST_LOG = 0x04;

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

function newCmd(opcode: number, nsid = 0): Buffer {
  const cmd = Buffer.alloc(SQE_SIZE);
  cmd[Sqe.OPCODE] = opcode;
  cmd.writeUInt32LE(nsid >>> 0, Sqe.NSID);
  return cmd;
}

function refusal(qpair: NvmeTcpQpair, what: string): NvmeQueueError {
  if (qpair.closed)
    return new NvmeQueueError(
      'closed',
      `${what}: queue closed${qpair.closeReason ? ` (${qpair.closeReason})` : ''}`,
    );
  return new NvmeQueueError(
    'full',
    `${what}: queue full (${qpair.outstanding} of ${qpair.queueSize} commands outstanding)`,
  );
}

/** Run one command as a promise; rejects with NvmeStatusError on a non-success status. */
function execute(
  qpair: NvmeTcpQpair,
  cmd: Buffer,
  data: Buffer | null,
  isRead: boolean,
  what: string,
): Promise<Completion> {
  return new Promise((resolve, reject) => {
    const ok = qpair.submit(cmd, data, isRead, (cpl) => {
      if (isSuccess(cpl))
        resolve({ dw0: cpl.readUInt32LE(Cqe.DW0), dw1: cpl.readUInt32LE(Cqe.DW1), status: 0 });
      else reject(new NvmeStatusError(cpl, what));
    });
    if (!ok) reject(refusal(qpair, what));
  });
}

function buildConnect(
  qid: number,
  sqsize: number,
  kato: number,
  cattr: number,
  cntlid: number,
  trid: TransportId,
  hostid: Buffer,
) {
  const cmd = newCmd(FABRICS_OPCODE);
  cmd[Sqe.FCTYPE] = FabricsCommandType.CONNECT;
  cmd.writeUInt16LE(0, 40); // RECFMT
  cmd.writeUInt16LE(qid, 42);
  cmd.writeUInt16LE(sqsize - 1, 44);
  cmd[46] = cattr;
  cmd.writeUInt32LE(kato, 48);
  const data = Buffer.alloc(1024);
  hostid.copy(data, 0, 0, 16);
  data.writeUInt16LE(cntlid, 16);
  data.write(trid.subnqn, 256, 255, 'utf8');
  data.write(trid.hostnqn ?? defaultHostIdentity().hostnqn, 512, 255, 'utf8');
  return { cmd, data };
}

/** One discovery log entry, numeric codes as on the wire (trtype 3 = TCP, adrfam 1 = IPv4, subtype 1 = referral, 2 = NVM, 3 = current discovery). */
export interface DiscoveredEntry {
  trtype: number;
  adrfam: number;
  subtype: number;
  treq: number;
  portid: number;
  cntlid: number;
  asqsz: number;
  eflags: number;
  trsvcid: string;
  subnqn: string;
  traddr: string;
}

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

const DISCOVERY_LOG_PAGE = 0x70;

/** An ASCII field padded with spaces or NULs. */
function asciiField(buf: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && buf[end] !== 0) end++;
  return buf.toString('latin1', off, end).trimEnd();
}

function parseDiscoveryEntry(page: Buffer, off: number): DiscoveredEntry {
  return {
    trtype: page[off + DiscLogEntry.TRTYPE],
    adrfam: page[off + DiscLogEntry.ADRFAM],
    subtype: page[off + DiscLogEntry.SUBTYPE],
    treq: page[off + DiscLogEntry.TREQ],
    portid: page.readUInt16LE(off + DiscLogEntry.PORTID),
    cntlid: page.readUInt16LE(off + DiscLogEntry.CNTLID),
    asqsz: page.readUInt16LE(off + DiscLogEntry.ASQSZ),
    eflags: page.readUInt16LE(off + DiscLogEntry.EFLAGS),
    trsvcid: asciiField(page, off + DiscLogEntry.TRSVCID, 32),
    subnqn: asciiField(page, off + DiscLogEntry.SUBNQN, 256),
    traddr: asciiField(page, off + DiscLogEntry.TRADDR, 256),
  };
}

/** Kept for compatibility; the default host NQN now comes from defaultHostIdentity(). */
export const DEFAULT_HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000';

function uuidToBuffer(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`hostid is not a UUID: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

/** The transport ID with hostnqn and hostid filled in from the defaults. */
function resolveTrid(trid: TransportId | string): TransportId {
  const t = typeof trid === 'string' ? parseTransportId(trid) : { ...trid };
  if (t.hostnqn === undefined || t.hostid === undefined) {
    const id = defaultHostIdentity();
    t.hostnqn ??= id.hostnqn;
    t.hostid ??= id.hostid;
  }
  return t;
}

const CC_ENABLE = CcBits.EN | (6 << CcBits.IOSQES_SHIFT) | (4 << CcBits.IOCQES_SHIFT);
/** AEC bits: SMART critical warnings 7:0 plus the notices a controller may announce in OAES */
const AEC_SMART_ALL = 0xff;
const OAES_NOTICE_MASK = 0x8000_7f00;
const MAX_AERS = 4;
const MAX_NS_LIST_PAGES = 64;

export class NvmeController {
  /** the transport ID with hostnqn/hostid resolved */
  readonly trid: TransportId;
  /** the admin queue; replaced by reconnect() */
  admin: NvmeTcpQpair;
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
  private readonly opts: ControllerOptions;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private readonly ioQpairs = new Set<NvmeIoQpair>();
  private nextQid = 1;
  private disconnecting = false;
  private reconnecting: Promise<void> | null = null;
  private readonly onAerComplete: CommandCallback;
  private aerQpair: NvmeTcpQpair | null = null;

  private constructor(
    trid: TransportId,
    admin: NvmeTcpQpair,
    cntlid: number,
    hostid: Buffer,
    opts: ControllerOptions,
  ) {
    this.trid = trid;
    this.admin = admin;
    this.cntlid = cntlid;
    this.hostid = hostid;
    this.opts = opts;
    this.onAerComplete = (cpl) => this.aerCompleted(cpl);
  }

  /**
   * Connect the admin queue, enable the controller, identify it and its
   * namespaces, ask for I/O queues, start keep alive and AERs. `trid` may be
   * the string form ("trtype:tcp traddr:… trsvcid:… subnqn:…").
   */
  static async connect(trid: TransportId | string, opts: ControllerOptions = {}): Promise<NvmeController> {
    const t = resolveTrid(trid);
    const hostid = uuidToBuffer(t.hostid ?? '');
    const { admin, cntlid } = await NvmeController.connectAdmin(t, hostid, opts);
    const ctrlr = new NvmeController(t, admin, cntlid, hostid, opts);
    try {
      await ctrlr.initialize();
    } catch (err) {
      ctrlr.stopTimers();
      admin.close();
      throw err;
    }
    return ctrlr;
  }

  private static async connectAdmin(
    trid: TransportId,
    hostid: Buffer,
    opts: ControllerOptions,
  ): Promise<{ admin: NvmeTcpQpair; cntlid: number }> {
    const queueSize = opts.adminQueueSize ?? 32;
    const admin = await NvmeTcpQpair.connect({
      traddr: trid.traddr,
      trsvcid: trid.trsvcid,
      hdgst: trid.hdgst,
      ddgst: trid.ddgst,
      queueSize,
      inCapsuleDataSize: 4096,
      connectTimeoutMs: opts.connectTimeoutMs,
    });
    try {
      const { cmd, data } = buildConnect(
        0,
        queueSize,
        opts.kato ?? 10000,
        opts.disableSqFlowControl ? 0x4 : 0,
        0xffff,
        trid,
        hostid,
      );
      const c = await execute(admin, cmd, data, false, 'Connect');
      return { admin, cntlid: c.dw0 & 0xffff };
    } catch (err) {
      admin.close();
      throw err;
    }
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
    const timeoutMs = Math.max(1, Number((this.cap >> 24n) & 0xffn)) * 500;
    await this.propertySet(ControllerRegister.CC, CC_ENABLE, 4);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const csts = Number(await this.propertyGet(ControllerRegister.CSTS, 4));
      if (csts & CstsBits.RDY) break;
      if (csts & CstsBits.CFS) throw new Error('controller fatal status while enabling');
      if (Date.now() > deadline) throw new Error(`timed out waiting for CSTS.RDY (CAP.TO ${timeoutMs} ms)`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const cdata = Buffer.alloc(4096);
    await this.identify(1, 0, cdata);
    this.cdata = cdata;
  }

  /** True for a discovery controller (CNTRLTYPE 2, or the well-known discovery NQN). */
  get isDiscovery(): boolean {
    if (this.trid.subnqn === DISCOVERY_NQN) return true;
    return this.cdata !== null && this.cdata[IdCtrl.CNTRLTYPE] === 2;
  }

  /** I/O queue capsule size from Identify (IOCCSZ, bytes 1792..1795, in 16-byte units). */
  get ioInCapsuleDataSize(): number {
    if (!this.cdata) return 0;
    const ioccsz = this.cdata.readUInt32LE(1792);
    return Math.max(0, ioccsz * 16 - 64);
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
    const mpsmin = Number((this.cap >> 48n) & 0xfn);
    return Math.min(hostLimit, 2 ** (mdts + 12 + mpsmin));
  }

  /** Largest I/O queue size the controller allows (CAP.MQES + 1). */
  get maxQueueSize(): number {
    const mqes = Number(this.cap & 0xffffn);
    return mqes === 0 ? 65536 : mqes + 1;
  }

  /** Re-read the active namespace list and Identify each namespace. */
  async refreshNamespaces(): Promise<Map<number, NamespaceInfo>> {
    const active: number[] = [];
    let start = 0;
    for (let page = 0; page < MAX_NS_LIST_PAGES; page++) {
      const list = await this.identify(2, start);
      let last = 0;
      for (let off = 0; off < 4096; off += 4) {
        const nsid = list.readUInt32LE(off);
        if (nsid === 0 || nsid <= last) break;
        active.push(nsid);
        last = nsid;
      }
      // a full page (1024 ids) may continue after its last id
      if (last === 0 || list.readUInt32LE(4092) === 0 || last >= 0xfffffffe) break;
      start = last;
    }
    const found = new Map<number, NamespaceInfo>();
    for (const nsid of active) {
      const idns = await this.identify(0, nsid);
      if (isInactiveNamespace(idns)) continue;
      let descriptors: Buffer | null = null;
      try {
        descriptors = await this.identify(3, nsid);
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
    const ev: AsyncEvent = {
      type: dw0 & 0x7,
      info: (dw0 >> 8) & 0xff,
      logPage: (dw0 >> 16) & 0xff,
      raw: dw0,
    };
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
      const log = await this.getLogPage(CHANGED_NS_LIST_LOG, Buffer.alloc(4096), 0, 0xffffffff);
      const changed: number[] = [];
      for (let off = 0; off < 4096; off += 4) {
        const nsid = log.readUInt32LE(off);
        if (nsid === 0) break;
        changed.push(nsid);
      }
      ev.changedNamespaces = changed;
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
    const cmd = newCmd(FABRICS_OPCODE);
    cmd[Sqe.FCTYPE] = FabricsCommandType.PROPERTY_GET;
    cmd[40] = size === 8 ? 1 : 0;
    cmd.writeUInt32LE(offset, 44);
    const c = await execute(this.admin, cmd, null, false, 'Property Get');
    return (BigInt(c.dw1 >>> 0) << 32n) | BigInt(c.dw0 >>> 0);
  }

  async propertySet(offset: number, value: number, size: 4 | 8 = 4): Promise<void> {
    const cmd = newCmd(FABRICS_OPCODE);
    cmd[Sqe.FCTYPE] = FabricsCommandType.PROPERTY_SET;
    cmd[40] = size === 8 ? 1 : 0;
    cmd.writeUInt32LE(offset, 44);
    cmd.writeUInt32LE(value >>> 0, 48);
    await execute(this.admin, cmd, null, false, 'Property Set');
  }

  /** Identify into `buf` (4096 bytes). cns 0 namespace, 1 controller, 2 active ns list, 3 ns descriptors. */
  async identify(cns: number, nsid: number, buf: Buffer = Buffer.alloc(4096)): Promise<Buffer> {
    const cmd = newCmd(AdminOpcode.IDENTIFY, nsid);
    cmd.writeUInt32LE(cns, Sqe.CDW10);
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
    const n = count - 1;
    const c = await this.setFeatures(FeatureId.NUMBER_OF_QUEUES, (n << 16) | n);
    return { sq: (c.dw0 & 0xffff) + 1, cq: (c.dw0 >>> 16) + 1 };
  }

  /** Get Log Page (NUMD from buf length, dword multiple), with a byte offset. */
  async getLogPage(lid: number, buf: Buffer, offset = 0, nsid = 0xffffffff): Promise<Buffer> {
    const cmd = newCmd(AdminOpcode.GET_LOG_PAGE, nsid);
    const numd = buf.length / 4 - 1;
    cmd.writeUInt32LE(((numd & 0xffff) << 16) | lid, Sqe.CDW10);
    cmd.writeUInt32LE(numd >>> 16, Sqe.CDW11);
    cmd.writeUInt32LE(offset >>> 0, Sqe.CDW12);
    cmd.writeUInt32LE(Math.floor(offset / 0x1_0000_0000), Sqe.CDW13);
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
    for (let attempt = 0; attempt <= maxRetries; attempt++) {
      const hdr = await this.getLogPage(DISCOVERY_LOG_PAGE, Buffer.alloc(DISCOVERY_LOG_HEADER_SIZE), 0, 0);
      const genctr = hdr.readBigUInt64LE(DiscLogHdr.GENCTR);
      const numrec64 = hdr.readBigUInt64LE(DiscLogHdr.NUMREC);
      if (numrec64 > BigInt(maxEntries))
        throw new Error(`discovery log has ${numrec64} entries, more than the limit of ${maxEntries}`);
      const numrec = Number(numrec64);
      const body = Buffer.alloc(numrec * DISCOVERY_LOG_ENTRY_SIZE);
      for (let off = 0; off < body.length; off += chunk) {
        const part = body.subarray(off, Math.min(body.length, off + chunk));
        await this.getLogPage(DISCOVERY_LOG_PAGE, part, DISCOVERY_LOG_HEADER_SIZE + off, 0);
      }
      const again = await this.getLogPage(DISCOVERY_LOG_PAGE, Buffer.alloc(DISCOVERY_LOG_HEADER_SIZE), 0, 0);
      if (
        again.readBigUInt64LE(DiscLogHdr.GENCTR) !== genctr ||
        again.readBigUInt64LE(DiscLogHdr.NUMREC) !== numrec64
      )
        continue;
      const entries: DiscoveredEntry[] = [];
      for (let i = 0; i < numrec; i++) entries.push(parseDiscoveryEntry(body, i * DISCOVERY_LOG_ENTRY_SIZE));
      return { genctr, recfmt: hdr.readUInt16LE(DiscLogHdr.RECFMT), entries };
    }
    throw new Error(`discovery log kept changing (GENCTR) over ${maxRetries + 1} reads`);
  }

  /** Any admin command: `cmd` is a 64-byte SQE (CID/SGL filled in). */
  adminCommand(cmd: Buffer, data: Buffer | null, isRead: boolean): Promise<Completion> {
    return execute(this.admin, cmd, data, isRead, `admin opcode 0x${cmd[0].toString(16)}`);
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
    };
  }

  /**
   * Connect one more I/O queue (TCP connection) to this controller. The size
   * is capped at CAP.MQES + 1; at most `queueSize` commands are outstanding.
   */
  async createIoQpair(queueSize = 128): Promise<NvmeIoQpair> {
    if (this.ioQueuesGranted > 0 && this.nextQid > this.ioQueuesGranted)
      throw new Error(`I/O queue ${this.nextQid}: the controller granted ${this.ioQueuesGranted} I/O queues`);
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
    if (this.disconnecting) throw new Error('reconnect: the controller was disconnected');
    this.stopTimers();
    const oldAdmin = this.admin;
    this.aerQpair = null;
    oldAdmin.onClose = null;
    oldAdmin.close();
    const queues = this.ioQueues.sort((a, b) => a.qid - b.qid);
    for (const q of this.ioQpairs) q.qpair.close();
    const { admin, cntlid } = await NvmeController.connectAdmin(this.trid, this.hostid, this.opts);
    if (this.disconnecting) {
      admin.close();
      throw new Error('reconnect: the controller was disconnected meanwhile');
    }
    this.admin = admin;
    this.cntlid = cntlid;
    this.cdata = null;
    for (const q of this.ioQpairs) if (q.closedByOwner) this.ioQpairs.delete(q);
    try {
      await this.initialize();
      for (const io of queues) {
        const fresh = await connectTcpIoQueue(this.ioParams(io.qid, io.queueSize));
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

export interface IoQpairConnectParams {
  trid: TransportId;
  /** the controller this queue joins (from its admin Connect) */
  cntlid: number;
  /** 16-byte host identifier, the same as the admin queue's */
  hostid: Buffer;
  qid: number;
  queueSize: number;
  /** IOCCSZ-derived in-capsule data limit in bytes (see NvmeController.ioInCapsuleDataSize) */
  inCapsuleDataSize: number;
  disableSqFlowControl?: boolean;
  connectTimeoutMs?: number;
  /** largest transfer of one command in bytes (NvmeController.maxTransferSize); default unlimited */
  maxTransferSize?: number;
  /** per-command timeout in ms (default 0 = none); see NvmeTcpQpair.ioTimeoutMs */
  ioTimeoutMs?: number;
}

/** TCP connection + ICReq + Fabrics Connect of one I/O queue. */
async function connectTcpIoQueue(p: IoQpairConnectParams): Promise<NvmeTcpQpair> {
  const q = await NvmeTcpQpair.connect({
    traddr: p.trid.traddr,
    trsvcid: p.trid.trsvcid,
    hdgst: p.trid.hdgst,
    ddgst: p.trid.ddgst,
    queueSize: p.queueSize,
    inCapsuleDataSize: p.inCapsuleDataSize,
    connectTimeoutMs: p.connectTimeoutMs,
  });
  try {
    const cattr = p.disableSqFlowControl ? 0x4 : 0;
    const { cmd, data } = buildConnect(p.qid, p.queueSize, 0, cattr, p.cntlid, p.trid, p.hostid);
    // Connect data (1 KiB) always goes in the capsule
    const saved = q.inCapsuleDataSize;
    q.inCapsuleDataSize = Math.max(saved, 1024);
    await execute(q, cmd, data, false, `Connect qid ${p.qid}`);
    q.inCapsuleDataSize = saved;
  } catch (err) {
    q.close();
    throw err;
  }
  q.qid = p.qid;
  if (p.ioTimeoutMs) q.ioTimeoutMs = p.ioTimeoutMs;
  return q;
}

/**
 * Connect an I/O queue of an existing controller over a new TCP connection.
 * Usable without the NvmeController object (a worker thread that only knows
 * the controller's cntlid and host ID, as bdev_nvme's per-reactor queues do).
 */
export async function connectIoQpair(p: IoQpairConnectParams): Promise<NvmeIoQpair> {
  const q = await connectTcpIoQueue(p);
  const io = new NvmeIoQpair(q, p.qid);
  if (p.maxTransferSize !== undefined) io.maxTransferSize = p.maxTransferSize;
  return io;
}

/** Completion callback of I/O commands: status 0 on success, else (sct << 8) | sc. */
export type IoCallback = (status: number, cpl: Buffer) => void;

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
  qpair: NvmeTcpQpair;
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

  constructor(qpair: NvmeTcpQpair, qid: number) {
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
  attach(qpair: NvmeTcpQpair, maxTransferSize: number): void {
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
    const cmd = this.sqe;
    cmd.fill(0);
    cmd[Sqe.OPCODE] = opcode;
    cmd.writeUInt32LE(nsid >>> 0, Sqe.NSID);
    setSlba(cmd, lba);
    cmd.writeUInt32LE((((blocks - 1) & 0xffff) | cdw12Flags) >>> 0, Sqe.CDW12);
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
    const cmd = this.sqe;
    cmd.fill(0);
    cmd[Sqe.OPCODE] = NvmOpcode.FLUSH;
    cmd.writeUInt32LE(nsid >>> 0, Sqe.NSID);
    return this.qpair.submitIo(cmd, null, false, cb);
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
      const off = i * Dsm.RANGE_SIZE;
      data.writeUInt32LE(blocks >>> 0, off + Dsm.RANGE_LENGTH);
      data.writeUInt32LE(lba >>> 0, off + Dsm.RANGE_SLBA_LO);
      data.writeUInt32LE(Math.floor(lba / 0x1_0000_0000), off + Dsm.RANGE_SLBA_HI);
    });
    const cmd = this.sqe;
    cmd.fill(0);
    cmd[Sqe.OPCODE] = NvmOpcode.DATASET_MANAGEMENT;
    cmd.writeUInt32LE(nsid >>> 0, Sqe.NSID);
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
    return refusal(this.qpair, what);
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

  /** Close this queue for good (outstanding commands complete with ABORTED_SQ_DELETION). */
  close(): void {
    this.closedByOwner = true;
    this.qpair.close();
  }
}
