// Raw NVMe/TCP for bad-input tests: PDU builders (valid by default, so a test
// breaks exactly one field), a raw connection that records everything the
// target sends and when it closes, and a TermReq decoder.

import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { DEFAULT_HOSTNQN, type NvmeController } from '../../src/nvme/index.ts';
import { ConnectData, writeConnectCommand, writeConnectData } from '../../src/wire/fabrics.ts';
import { Cqe, CqeStatus, initSqe, SQE_SIZE, Sqe, setSqeSgl, writeRwCommand } from '../../src/wire/nvme.ts';
import {
  CapsuleCmd,
  CapsuleResp,
  Ch,
  capsuleRespCqe,
  DataPdu,
  DIGEST_SIZE,
  dataDigest,
  IcReq,
  IcResp,
  icDigestBits,
  joinPdu,
  PduFlags,
  PduType,
  R2t,
  readTermReq,
  TermReq,
  writeCapsuleCmd,
  writeH2CData,
  writeHeaderDigest,
  writeIcReq,
} from '../../src/wire/tcp.ts';

export interface IcReqFields {
  pfv?: number;
  hpda?: number;
  dgst?: number;
  maxr2t?: number;
}

export function icReq(f: IcReqFields = {}): Buffer {
  const b = Buffer.alloc(IcReq.SIZE);
  writeIcReq(b, { pfv: f.pfv ?? 0, hpda: f.hpda ?? 0, dgst: f.dgst ?? 0, maxr2t: f.maxr2t ?? 0 });
  return b;
}

export interface DigestOptions {
  hdgst?: boolean;
  ddgst?: boolean;
}

/** The IcDigest bits of ICReq for these digests. */
export function icDigests(d: DigestOptions = {}): number {
  return icDigestBits(d.hdgst === true, d.ddgst === true);
}

/** CapsuleCmd with optional in-capsule data (pdo = header end), digests as negotiated. */
export function capsuleCmd(sqe: Buffer, data: Buffer | null = null, d: DigestOptions = {}): Buffer {
  const hdr = Buffer.alloc(CapsuleCmd.HDR_SIZE + DIGEST_SIZE);
  const len = writeCapsuleCmd(hdr, sqe, data?.length ?? 0, d.hdgst === true, d.ddgst === true);
  return joinPdu(hdr, len, data, d.ddgst === true);
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
  const hdgst = d.hdgst === true;
  const hdr = Buffer.alloc(DataPdu.HDR_SIZE + DIGEST_SIZE);
  const flags = f.last === false ? 0 : PduFlags.DATA_LAST;
  const pdo = writeH2CData(hdr, f.cccid, f.ttag, f.datao, data.length, flags, hdgst, d.ddgst === true);
  if (f.datal !== undefined) {
    // a DATAL that does not match the data (the PDU length still does)
    hdr.writeUInt32LE(f.datal, DataPdu.DATAL);
    if (hdgst) writeHeaderDigest(hdr, DataPdu.HDR_SIZE);
  }
  return joinPdu(hdr, pdo, data, d.ddgst === true);
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
  const sqe = Buffer.alloc(SQE_SIZE);
  writeRwCommand(sqe, opcode, nsid, lba, blocks, 0);
  sqe.writeUInt16LE(cid, Sqe.CID);
  setSqeSgl(sqe, length, inCapsule);
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
  const sqe = Buffer.alloc(SQE_SIZE);
  // kato 0: no keep-alive expiry during the test
  writeConnectCommand(sqe, { recfmt: 0, qid, sqsize: sqsize - 1, cattr: 0, kato: 0 });
  sqe.writeUInt16LE(cid, Sqe.CID);
  setSqeSgl(sqe, ConnectData.SIZE, true);
  const data = Buffer.alloc(ConnectData.SIZE);
  writeConnectData(data, { hostid, cntlid, subnqn, hostnqn });
  return { sqe, data };
}

/** A zeroed SQE with opcode and NSID (for raw commands a test sends itself). */
export function rawSqe(opcode: number, nsid = 0): Buffer {
  return initSqe(Buffer.alloc(SQE_SIZE), opcode, nsid);
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
  if (reply.length < offset + TermReq.HDR_SIZE || reply[offset + Ch.TYPE] !== PduType.C2H_TERM_REQ)
    return null;
  const pdu = reply.subarray(offset);
  const { fes, fei, errorData } = readTermReq(pdu);
  return { type: pdu[Ch.TYPE], fes, fei, plen: pdu.readUInt32LE(Ch.PLEN), errorData };
}

/** Walk the PDUs of a reply (by plen); returns [offset, type] pairs. Stops on a truncated PDU. */
export function pduOffsets(reply: Buffer): Array<{ offset: number; type: number; plen: number }> {
  const out: Array<{ offset: number; type: number; plen: number }> = [];
  let off = 0;
  while (off + Ch.SIZE <= reply.length) {
    const plen = reply.readUInt32LE(off + Ch.PLEN);
    if (plen < Ch.SIZE || off + plen > reply.length) break;
    out.push({ offset: off, type: reply[off + Ch.TYPE], plen });
    off += plen;
  }
  return out;
}

/** The CQE of the CapsuleResp at `offset` of `reply` (a view). */
export function cqeAt(reply: Buffer, offset: number): Buffer {
  return capsuleRespCqe(reply.subarray(offset));
}

/** The last PDU of a reply if it is a C2HTermReq (the target's last word before closing). */
export function finalTermReq(reply: Buffer): TermReqInfo | null {
  const pdus = pduOffsets(reply);
  const last = pdus[pdus.length - 1];
  return last === undefined ? null : termReqAt(reply, last.offset);
}

/** What a TLS client offers: one PSK identity and its TLS PSK. */
export interface TlsClientPsk {
  identity: string;
  psk: Buffer;
  /** TLS 1.3 cipher suites to offer (default TLS_AES_128_GCM_SHA256) */
  ciphers?: string;
}

/** A raw TCP (or TLS) connection that records everything received and whether the target closed it. */
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

  /**
   * A TLS 1.3 connection offering one external PSK (NVMe/TCP secure channel); resolves once the
   * handshake completed, rejects with the TLS error (or the close) when it did not.
   */
  static connectTls(port: string | number, psk: TlsClientPsk): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port: Number(port),
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        ciphers: psk.ciphers ?? 'TLS_AES_128_GCM_SHA256',
        checkServerIdentity: () => undefined,
        pskCallback: () => ({ psk: psk.psk, identity: psk.identity }),
      });
      const fail = (e: Error) => reject(e);
      const closed = () => reject(new Error('closed during the TLS handshake'));
      s.once('error', fail);
      s.once('close', closed);
      s.once('secureConnect', () => {
        s.off('error', fail);
        s.off('close', closed);
        resolve(new RawConnection(s));
      });
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
  await conn.write(icReq({ dgst: icDigests(d) }));
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
  const respLen = CapsuleResp.HDR_SIZE + (d.hdgst ? DIGEST_SIZE : 0);
  const got = await conn.waitBytes(IcResp.SIZE + respLen);
  if (got.length < IcResp.SIZE + respLen || got[IcResp.SIZE + Ch.TYPE] !== PduType.CAPSULE_RESP) {
    conn.destroy();
    throw new Error(`admin Connect failed: ${got.subarray(0, 160).toString('hex')}`);
  }
  const cqe = cqeAt(got, IcResp.SIZE);
  const status = cqe.readUInt16LE(Cqe.STATUS) >> CqeStatus.SC_SHIFT;
  if (status !== 0) {
    conn.destroy();
    throw new Error(`admin Connect status 0x${status.toString(16)}`);
  }
  return { conn, cntlid: cqe.readUInt16LE(Cqe.DW0), offset: IcResp.SIZE + respLen };
}

/** What a target wrote, by CID (readTargetStream). */
export interface TargetReplies {
  /** the CQE status (SC, SCT, DNR; no phase) of each CapsuleResp; 0 for a C2HData with SUCCESS */
  status: Map<number, number>;
  dw0: Map<number, number>;
  /** the data of each command's C2HData (one per command) */
  data: Map<number, Buffer>;
  /** the commands a C2HData with SUCCESS completed (no CapsuleResp) */
  success: Set<number>;
  /** the transfer tag of each command's R2T */
  r2t: Map<number, number>;
}

/**
 * The PDUs of a target's byte stream (whole PDUs, no IC), by CID. Checks as it goes: each
 * C2HData's PLEN and data digest, one C2HData per command.
 */
export function readTargetStream(stream: Buffer): TargetReplies {
  const r: TargetReplies = {
    status: new Map(),
    dw0: new Map(),
    data: new Map(),
    success: new Set(),
    r2t: new Map(),
  };
  for (let off = 0; off < stream.length; ) {
    const plen = stream.readUInt32LE(off + Ch.PLEN);
    const type = stream[off + Ch.TYPE];
    if (type === PduType.CAPSULE_RESP) {
      const cqe = off + CapsuleResp.CQE;
      const cid = stream.readUInt16LE(cqe + Cqe.CID);
      r.status.set(cid, stream.readUInt16LE(cqe + Cqe.STATUS) >> 1);
      r.dw0.set(cid, stream.readUInt32LE(cqe + Cqe.DW0));
    } else if (type === PduType.C2H_DATA) {
      const flags = stream[off + Ch.FLAGS];
      const pdo = stream[off + Ch.PDO];
      const cid = stream.readUInt16LE(off + DataPdu.CCCID);
      const datal = stream.readUInt32LE(off + DataPdu.DATAL);
      const d = Buffer.from(stream.subarray(off + pdo, off + pdo + datal));
      if ((flags & PduFlags.DDGST) !== 0) {
        assert.equal(plen, pdo + datal + DIGEST_SIZE, `CID ${cid}: PLEN`);
        assert.equal(stream.readUInt32LE(off + pdo + datal), dataDigest(d), `CID ${cid}: data digest`);
      } else assert.equal(plen, pdo + datal, `CID ${cid}: PLEN`);
      assert.ok(!r.data.has(cid), `CID ${cid}: one C2HData`);
      r.data.set(cid, d);
      if ((flags & PduFlags.DATA_SUCCESS) !== 0) {
        r.status.set(cid, 0);
        r.success.add(cid);
      }
    } else if (type === PduType.R2T) {
      r.r2t.set(stream.readUInt16LE(off + R2t.CCCID), stream.readUInt16LE(off + R2t.TTAG));
    }
    off += plen;
  }
  return r;
}
