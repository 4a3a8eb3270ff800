// Raw NVMe/TCP for bad-input tests: PDU builders (valid by default, so a test
// breaks exactly one field), a raw connection that records everything the
// target sends and when it closes, and a TermReq decoder.

import net from 'node:net';
import { crc32c } from '@node-rs/crc32';
import { DEFAULT_HOSTNQN, type NvmeController } from '../../src/nvme/index.ts';
import { FABRICS_OPCODE, FabricsCommandType } from '../../src/wire/nvme.ts';
import { IcReq, PduFlags, PduType, writeCommonHeader } from '../../src/wire/tcp.ts';

export interface IcReqFields {
  pfv?: number;
  hpda?: number;
  dgst?: number;
  maxr2t?: number;
}

export function icReq(f: IcReqFields = {}): Buffer {
  const b = Buffer.alloc(128);
  writeCommonHeader(b, PduType.IC_REQ, 0, 128, 0, 128);
  b.writeUInt16LE(f.pfv ?? 0, IcReq.PFV);
  b[IcReq.HPDA] = f.hpda ?? 0;
  b[IcReq.DGST] = f.dgst ?? 0;
  b.writeUInt32LE(f.maxr2t ?? 0, IcReq.MAXR2T);
  return b;
}

export interface DigestOptions {
  hdgst?: boolean;
  ddgst?: boolean;
}

/** CapsuleCmd with optional in-capsule data (pdo = header end), digests as negotiated. */
export function capsuleCmd(sqe: Buffer, data: Buffer | null = null, d: DigestOptions = {}): Buffer {
  const hd = d.hdgst ? 4 : 0;
  const dd = d.ddgst && data !== null && data.length > 0 ? 4 : 0;
  const dataLen = data?.length ?? 0;
  const pdo = dataLen > 0 ? 72 + hd : 0;
  const b = Buffer.alloc(72 + hd + dataLen + dd);
  let flags = 0;
  if (hd) flags |= PduFlags.HDGST;
  if (dd) flags |= PduFlags.DDGST;
  writeCommonHeader(b, PduType.CAPSULE_CMD, flags, 72, pdo, b.length);
  sqe.copy(b, 8, 0, 64);
  if (hd) b.writeUInt32LE(crc32c(b.subarray(0, 72)), 72);
  if (data !== null && dataLen > 0) {
    data.copy(b, 72 + hd);
    if (dd) b.writeUInt32LE(crc32c(data), 72 + hd + dataLen);
  }
  return b;
}

export interface H2CDataFields {
  cccid: number;
  ttag: number;
  datao: number;
  /** DATAL field; defaults to data.length */
  datal?: number;
  last?: boolean;
}

export function h2cData(f: H2CDataFields, data: Buffer, d: DigestOptions = {}): Buffer {
  const hd = d.hdgst ? 4 : 0;
  const dd = d.ddgst ? 4 : 0;
  const pdo = 24 + hd;
  const b = Buffer.alloc(pdo + data.length + dd);
  let flags = f.last === false ? 0 : PduFlags.DATA_LAST;
  if (hd) flags |= PduFlags.HDGST;
  if (dd) flags |= PduFlags.DDGST;
  writeCommonHeader(b, PduType.H2C_DATA, flags, 24, pdo, b.length);
  b.writeUInt16LE(f.cccid, 8);
  b.writeUInt16LE(f.ttag, 10);
  b.writeUInt32LE(f.datao, 12);
  b.writeUInt32LE(f.datal ?? data.length, 16);
  if (hd) b.writeUInt32LE(crc32c(b.subarray(0, 24)), 24);
  data.copy(b, pdo);
  if (dd) b.writeUInt32LE(crc32c(data), pdo + data.length);
  return b;
}

/** 64-byte SQE of an NVM I/O command with a transport SGL (or in-capsule SGL when inCapsule). */
export function ioSqe(
  opcode: number,
  cid: number,
  nsid: number,
  lba: number,
  blocks: number,
  length: number,
  inCapsule = false,
): Buffer {
  const sqe = Buffer.alloc(64);
  sqe[0] = opcode;
  sqe[1] = 0x40; // PSDT: SGL
  sqe.writeUInt16LE(cid, 2);
  sqe.writeUInt32LE(nsid, 4);
  sqe.writeUInt32LE(0, 24);
  sqe.writeUInt32LE(0, 28);
  sqe.writeUInt32LE(length, 32);
  sqe[39] = inCapsule ? 0x01 : 0x5a; // data block / offset, or transport data block / transport
  sqe.writeUInt32LE(lba >>> 0, 40);
  sqe.writeUInt32LE(Math.floor(lba / 0x100000000), 44);
  sqe.writeUInt16LE(blocks - 1, 48);
  return sqe;
}

/** Fabrics Connect SQE + its 1024-byte data (in-capsule) for a queue of TEST_NQN-like subsystems. */
export function connectCmd(
  cid: number,
  qid: number,
  sqsize: number,
  cntlid: number,
  subnqn: string,
  hostnqn = DEFAULT_HOSTNQN,
  hostid: Buffer = Buffer.alloc(16, 0x5a),
): { sqe: Buffer; data: Buffer } {
  const sqe = Buffer.alloc(64);
  sqe[0] = FABRICS_OPCODE;
  sqe[1] = 0x40;
  sqe.writeUInt16LE(cid, 2);
  sqe[4] = FabricsCommandType.CONNECT;
  sqe.writeUInt32LE(1024, 32);
  sqe[39] = 0x01;
  sqe.writeUInt16LE(0, 40); // recfmt
  sqe.writeUInt16LE(qid, 42);
  sqe.writeUInt16LE(sqsize - 1, 44);
  sqe.writeUInt32LE(0, 48); // kato 0: no keep-alive expiry during the test
  const data = Buffer.alloc(1024);
  hostid.copy(data, 0, 0, 16);
  data.writeUInt16LE(cntlid, 16);
  data.write(subnqn, 256, 'latin1');
  data.write(hostnqn, 512, 'latin1');
  return { sqe, data };
}

export interface TermReqInfo {
  type: number;
  fes: number;
  fei: number;
  plen: number;
  /** the copied header of the offending PDU */
  errorData: Buffer;
}

/** Decode the PDU at `offset` of `reply` as a C2HTermReq, or null when it is not one. */
export function termReqAt(reply: Buffer, offset: number): TermReqInfo | null {
  if (reply.length < offset + 24 || reply[offset] !== PduType.C2H_TERM_REQ) return null;
  const plen = reply.readUInt32LE(offset + 4);
  return {
    type: reply[offset],
    fes: reply.readUInt16LE(offset + 8),
    fei: reply.readUInt32LE(offset + 10),
    plen,
    errorData: reply.subarray(offset + 24, offset + Math.min(plen, reply.length - offset)),
  };
}

/** Walk the PDUs of a reply (by plen); returns [offset, type] pairs. Stops on a truncated PDU. */
export function pduOffsets(reply: Buffer): Array<{ offset: number; type: number; plen: number }> {
  const out: Array<{ offset: number; type: number; plen: number }> = [];
  let off = 0;
  while (off + 8 <= reply.length) {
    const plen = reply.readUInt32LE(off + 4);
    if (plen < 8 || off + plen > reply.length) break;
    out.push({ offset: off, type: reply[off], plen });
    off += plen;
  }
  return out;
}

/** The last PDU of a reply if it is a C2HTermReq (the target's last word before closing). */
export function finalTermReq(reply: Buffer): TermReqInfo | null {
  const pdus = pduOffsets(reply);
  const last = pdus[pdus.length - 1];
  return last === undefined ? null : termReqAt(reply, last.offset);
}

/** A raw TCP connection that records everything received and whether the target closed it. */
export class RawConnection {
  readonly socket: net.Socket;
  private readonly chunks: Buffer[] = [];
  received = 0;
  closed = false;
  private readonly closedPromise: Promise<void>;
  private waiters: Array<() => void> = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.received += c.length;
      this.notify();
    });
    socket.on('error', () => {});
    this.closedPromise = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        this.notify();
        resolve();
      }),
    );
  }

  static connect(port: string | number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: Number(port) });
      s.once('connect', () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  write(b: Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) {
        resolve();
        return;
      }
      this.socket.write(b, () => resolve());
    });
  }

  /** Wait until at least `n` bytes arrived or the connection closed (bounded by timeoutMs). */
  async waitBytes(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.received < n && !this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.data;
  }

  /** Wait for the target to close the connection; false on timeout. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    if (this.closed) return true;
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), timeoutMs);
    });
    const ok = await Promise.race([this.closedPromise.then(() => true), t]);
    clearTimeout(timer);
    return ok;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Connect, send `writes` (each one socket write), collect until the target closes
 * (or timeoutMs). Returns what the target sent and whether it closed.
 */
export async function exchange(
  port: string | number,
  writes: Buffer[],
  timeoutMs = 5000,
): Promise<{ reply: Buffer; closed: boolean }> {
  const c = await RawConnection.connect(port);
  for (const w of writes) await c.write(w);
  const closed = await c.waitClosed(timeoutMs);
  c.destroy();
  return { reply: c.data, closed };
}

/**
 * ICReq then a Connect: an admin queue (qid 0, new controller) or, given the enabled
 * controller of a host-library NvmeController, an I/O queue of it. Returns the open raw
 * connection once the Connect answer arrived, and the offset where the next PDU will start.
 */
export async function rawQueue(
  port: string | number,
  subnqn: string,
  d: DigestOptions = {},
  io: { ctrlr: NvmeController; qid: number; sqsize?: number } | null = null,
): Promise<{ conn: RawConnection; cntlid: number; offset: number }> {
  const conn = await RawConnection.connect(port);
  await conn.write(icReq({ dgst: (d.hdgst ? 1 : 0) | (d.ddgst ? 2 : 0) }));
  const { sqe, data } =
    io === null
      ? connectCmd(1, 0, 32, 0xffff, subnqn)
      : connectCmd(
          1,
          io.qid,
          io.sqsize ?? 32,
          io.ctrlr.cntlid,
          subnqn,
          io.ctrlr.trid.hostnqn ?? DEFAULT_HOSTNQN,
          io.ctrlr.hostid,
        );
  await conn.write(capsuleCmd(sqe, data, d));
  const respLen = 24 + (d.hdgst ? 4 : 0);
  const got = await conn.waitBytes(128 + respLen);
  if (got.length < 128 + respLen || got[128] !== PduType.CAPSULE_RESP) {
    conn.destroy();
    throw new Error(`admin Connect failed: ${got.subarray(0, 160).toString('hex')}`);
  }
  const status = got.readUInt16LE(128 + 8 + 14) >> 1;
  if (status !== 0) {
    conn.destroy();
    throw new Error(`admin Connect status 0x${status.toString(16)}`);
  }
  return { conn, cntlid: got.readUInt16LE(128 + 8), offset: 128 + respLen };
}
