// Minimal NVMe-oF host: connect a controller over NVMe/TCP (admin queue,
// Fabrics Connect, property get/set, CC.EN=1 → CSTS.RDY, Identify, Set
// Features Number of Queues), create I/O queues, and run NVM commands with
// callbacks or promises. Keep alive runs on the admin queue at KATO/2.

import { randomUUID } from 'node:crypto';
import {
  DISCOVERY_LOG_ENTRY_SIZE,
  DISCOVERY_LOG_HEADER_SIZE,
  DiscLogEntry,
  DiscLogHdr,
} from '../spec/discovery.ts';
import {
  AdminOpcode,
  CcBits,
  ControllerRegister,
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
} from '../spec/nvme.ts';
import { type CommandCallback, NvmeTcpQpair } from './tcp-qpair.ts';

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
}

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

export interface Completion {
  dw0: number;
  dw1: number;
  /** (sct << 8) | sc */
  status: number;
}

function newCmd(opcode: number, nsid = 0): Buffer {
  const cmd = Buffer.alloc(SQE_SIZE);
  cmd[Sqe.OPCODE] = opcode;
  cmd.writeUInt32LE(nsid >>> 0, Sqe.NSID);
  return cmd;
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
    if (!ok)
      reject(new Error(`${what}: queue full or closed${qpair.closeReason ? ` (${qpair.closeReason})` : ''}`));
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
  data.write(trid.hostnqn ?? DEFAULT_HOSTNQN, 512, 255, 'utf8');
  return { cmd, data };
}

/** One discovery log entry, numeric codes as on the wire (trtype 3 = TCP, adrfam 1 = IPv4, subtype 2 = NVM, 3 = current discovery). */
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

const DISCOVERY_LOG_PAGE = 0x70;

/** An ASCII field padded with spaces or NULs. */
function asciiField(buf: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && buf[end] !== 0) end++;
  return buf.toString('latin1', off, end).trimEnd();
}

export const DEFAULT_HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000';

function uuidToBuffer(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`hostid is not a UUID: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

export class NvmeController {
  readonly trid: TransportId;
  readonly admin: NvmeTcpQpair;
  readonly cntlid: number;
  readonly hostid: Buffer;
  /** Identify Controller data (4096 bytes), null with skipIdentify */
  cdata: Buffer | null = null;
  cap = 0n;
  private readonly opts: ControllerOptions;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private readonly ioQpairs = new Set<NvmeIoQpair>();
  private nextQid = 1;

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
  }

  /** Connect the admin queue, enable the controller and identify it. */
  static async connect(trid: TransportId, opts: ControllerOptions = {}): Promise<NvmeController> {
    const queueSize = opts.adminQueueSize ?? 32;
    const kato = opts.kato ?? 10000;
    const hostid = uuidToBuffer(trid.hostid ?? randomUUID());
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
        kato,
        opts.disableSqFlowControl ? 0x4 : 0,
        0xffff,
        trid,
        hostid,
      );
      const c = await execute(admin, cmd, data, false, 'Connect');
      const ctrlr = new NvmeController(trid, admin, c.dw0 & 0xffff, hostid, opts);
      if (!opts.skipIdentify) await ctrlr.enable();
      if (kato > 0) ctrlr.startKeepAlive(kato);
      return ctrlr;
    } catch (err) {
      admin.close();
      throw err;
    }
  }

  private async enable(): Promise<void> {
    this.cap = await this.propertyGet(ControllerRegister.CAP, 8);
    const timeoutMs = Math.max(1, Number((this.cap >> 24n) & 0xffn)) * 500;
    const cc = CcBits.EN | (6 << CcBits.IOSQES_SHIFT) | (4 << CcBits.IOCQES_SHIFT);
    await this.propertySet(ControllerRegister.CC, cc, 4);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const csts = Number(await this.propertyGet(ControllerRegister.CSTS, 4));
      if (csts & CstsBits.RDY) break;
      if (csts & CstsBits.CFS) throw new Error('controller fatal status while enabling');
      if (Date.now() > deadline) throw new Error('timed out waiting for CSTS.RDY');
      await new Promise((r) => setTimeout(r, 10));
    }
    const cdata = Buffer.alloc(4096);
    await this.identify(1, 0, cdata);
    this.cdata = cdata;
  }

  /** I/O queue capsule size from Identify (IOCCSZ, bytes 1792..1795, in 16-byte units). */
  get ioInCapsuleDataSize(): number {
    if (!this.cdata) return 0;
    const ioccsz = this.cdata.readUInt32LE(1792);
    return Math.max(0, ioccsz * 16 - 64);
  }

  private startKeepAlive(kato: number): void {
    this.keepAliveTimer = setInterval(
      () => {
        this.keepAlive().catch(() => {});
      },
      Math.max(100, Math.floor(kato / 2)),
    );
    this.keepAliveTimer.unref();
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

  /** Discovery log page (0x70) of a discovery controller: header, then every entry. */
  async getDiscoveryLog(): Promise<DiscoveryLog> {
    const hdr = await this.getLogPage(DISCOVERY_LOG_PAGE, Buffer.alloc(DISCOVERY_LOG_HEADER_SIZE), 0, 0);
    const numrec = Number(hdr.readBigUInt64LE(DiscLogHdr.NUMREC));
    const page = await this.getLogPage(
      DISCOVERY_LOG_PAGE,
      Buffer.alloc(DISCOVERY_LOG_HEADER_SIZE + numrec * DISCOVERY_LOG_ENTRY_SIZE),
      0,
      0,
    );
    const entries: DiscoveredEntry[] = [];
    const count = Math.min(numrec, Number(page.readBigUInt64LE(DiscLogHdr.NUMREC)));
    for (let i = 0; i < count; i++) {
      const off = DISCOVERY_LOG_HEADER_SIZE + i * DISCOVERY_LOG_ENTRY_SIZE;
      entries.push({
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
      });
    }
    return {
      genctr: page.readBigUInt64LE(DiscLogHdr.GENCTR),
      recfmt: page.readUInt16LE(DiscLogHdr.RECFMT),
      entries,
    };
  }

  /** Any admin command: `cmd` is a 64-byte SQE (CID/SGL filled in). */
  adminCommand(cmd: Buffer, data: Buffer | null, isRead: boolean): Promise<Completion> {
    return execute(this.admin, cmd, data, isRead, `admin opcode 0x${cmd[0].toString(16)}`);
  }

  /** Connect one more I/O queue (TCP connection) to this controller. */
  async createIoQpair(queueSize = 128): Promise<NvmeIoQpair> {
    const io = await connectIoQpair({
      trid: this.trid,
      cntlid: this.cntlid,
      hostid: this.hostid,
      qid: this.nextQid++,
      queueSize,
      inCapsuleDataSize: this.ioInCapsuleDataSize,
      disableSqFlowControl: this.opts.disableSqFlowControl,
      connectTimeoutMs: this.opts.connectTimeoutMs,
    });
    this.ioQpairs.add(io);
    return io;
  }

  /** Shut down (CC.SHN normal, best effort) and close every queue. */
  async disconnect(): Promise<void> {
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
    for (const io of this.ioQpairs) io.close();
    this.ioQpairs.clear();
    if (!this.admin.closed && this.cdata) {
      const cc = CcBits.EN | (6 << CcBits.IOSQES_SHIFT) | (4 << CcBits.IOCQES_SHIFT) | CcBits.SHN_NORMAL;
      await Promise.race([
        this.propertySet(ControllerRegister.CC, cc).catch(() => {}),
        new Promise((r) => setTimeout(r, 1000)),
      ]);
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
}

/**
 * Connect an I/O queue of an existing controller over a new TCP connection.
 * Usable without the NvmeController object (a worker thread that only knows
 * the controller's cntlid and host ID, as bdev_nvme's per-reactor queues do).
 */
export async function connectIoQpair(p: IoQpairConnectParams): Promise<NvmeIoQpair> {
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
  return new NvmeIoQpair(q, p.qid);
}

/** Completion callback of I/O commands: status 0 on success, else (sct << 8) | sc. */
export type IoCallback = (status: number, cpl: Buffer) => void;

/** One I/O queue: NVM commands with callbacks (hot path) and promise wrappers. */
export class NvmeIoQpair {
  readonly qpair: NvmeTcpQpair;
  readonly qid: number;
  /** SQE scratch: submit copies it into the capsule before returning */
  private readonly sqe = Buffer.alloc(SQE_SIZE);

  constructor(qpair: NvmeTcpQpair, qid: number) {
    this.qpair = qpair;
    this.qid = qid;
  }

  get closed(): boolean {
    return this.qpair.closed;
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
    const cmd = this.sqe;
    cmd.fill(0);
    cmd[Sqe.OPCODE] = opcode;
    cmd.writeUInt32LE(nsid >>> 0, Sqe.NSID);
    setSlba(cmd, lba);
    cmd.writeUInt32LE((((blocks - 1) & 0xffff) | cdw12Flags) >>> 0, Sqe.CDW12);
    return this.qpair.submitIo(cmd, buf, isRead, cb);
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

  private wrap(what: string, start: (cb: IoCallback) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const ok = start((status, cpl) => (status === 0 ? resolve() : reject(new NvmeStatusError(cpl, what))));
      if (!ok)
        reject(
          new Error(
            `${what}: queue full or closed${this.qpair.closeReason ? ` (${this.qpair.closeReason})` : ''}`,
          ),
        );
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

  close(): void {
    this.qpair.close();
  }
}
