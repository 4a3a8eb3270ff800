// Host side of one NVMe/TCP queue pair: ICReq/ICResp, command capsules with
// in-capsule data, R2T → H2CData, C2HData (incl. SUCCESS), CapsuleResp,
// digests. Commands complete through callbacks; a slot per CID is pooled.

import net from 'node:net';
import tls from 'node:tls';
import { BurstWriter } from '../util/handle-writev.ts';
import { CQE_SIZE, Cqe, Sqe, setSqeSgl } from '../wire/nvme.ts';
import {
  CapsuleCmd,
  Ch,
  capsuleRespCid,
  DataPdu,
  DIGEST_SIZE,
  dataDigest,
  IcReq,
  icDigestBits,
  newDataPduHeader,
  newR2tFields,
  PduFlags,
  PduType,
  PFV_1_0,
  readCapsuleRespCqe,
  readDataPduHeader,
  readIcResp,
  readR2t,
  readTermReq,
  TermReq,
  writeCapsuleCmd,
  writeH2CData,
  writeIcReq,
  writeTermReq,
} from '../wire/tcp.ts';
import {
  HEADERS_READ_SIZE,
  HOST_ACCEPTS,
  PduReceiver,
  type PduSink,
  PLACED_READ_MIN,
} from '../wire/tcp-receiver.ts';
import { TcpTransportError } from './errors.ts';

import { QpairCore, QpairSlot } from './qpair.ts';

export type { CommandCallback } from './qpair.ts';

/** One socket read fills at most this (libuv's own suggestion for a stream read). */
const RX_BUFFER_SIZE = 65536;

export interface QpairConnectOptions {
  traddr: string;
  trsvcid: string;
  hdgst?: boolean;
  ddgst?: boolean;
  /** entries in the submission queue (commands in flight at most) */
  queueSize: number;
  /** in-capsule data limit in bytes for host-to-controller data */
  inCapsuleDataSize: number;
  /** ms to wait for the TCP connection (and TLS handshake) and ICResp */
  connectTimeoutMs?: number;
  /** TLS 1.3 first, with this external PSK (secure channel; tls-psk.ts derives both) */
  tls?: QpairTlsOptions;
}

/** The PSK a queue offers in its TLS 1.3 ClientHello. */
export interface QpairTlsOptions {
  identity: string;
  psk: Buffer;
  /** OpenSSL's name of the TLS 1.3 cipher suite to offer */
  cipherSuite: string;
}

/**
 * TCP, or TLS 1.3 over TCP; `ready` is the event after which the ICReq may go. Received bytes go
 * to the receiver. Over plain TCP every read lands in one buffer the connection reuses (no
 * ArrayBuffer per read; the receiver is done with it when push returns), or, while the receiver
 * places a large C2HData payload, straight into the rest of the command's buffer (no copy).
 */
function openSocket(
  opts: QpairConnectOptions,
  to: { receiver: PduReceiver | null },
): { socket: net.Socket; ready: 'connect' | 'secureConnect' } {
  const port = Number.parseInt(opts.trsvcid, 10);
  const t = opts.tls;
  if (t === undefined) {
    const rx = Buffer.allocUnsafeSlow(RX_BUFFER_SIZE);
    const rxHeaders = rx.subarray(0, HEADERS_READ_SIZE);
    let placed = false;
    const socket = net.connect({
      host: opts.traddr,
      port,
      noDelay: true,
      onread: {
        // asked before every read (the first time maybe before the receiver exists)
        buffer: (): Uint8Array => to.receiver?.placementWindow(PLACED_READ_MIN) ?? (placed ? rxHeaders : rx),
        callback: (nread: number, buf: Uint8Array): boolean => {
          placed = buf !== rx && buf !== rxHeaders;
          if (placed) to.receiver?.pushPlaced(nread);
          else to.receiver?.push(rx, nread);
          return true;
        },
      },
    });
    return { socket, ready: 'connect' };
  }
  const socket = tls.connect({
    host: opts.traddr,
    port,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: t.cipherSuite,
    // a PSK authenticates both ends: there is no certificate to check
    checkServerIdentity: () => undefined,
    pskCallback: () => ({ psk: t.psk, identity: t.identity }),
  });
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => to.receiver?.push(chunk, chunk.length));
  return { socket, ready: 'secureConnect' };
}

/** A command's slot (busy: its capsule queued or sent, waiting for R2T, C2HData or CapsuleResp). */
class HostRequest extends QpairSlot {
  /**
   * CapsuleCmd header, without and with its digest (each of the length it is sent with, so no
   * view per command), and the in-capsule data's digest; reused because the slot is only
   * reused after its response
   */
  readonly capsule = Buffer.alloc(CapsuleCmd.HDR_SIZE);
  readonly capsuleWithDigest = Buffer.alloc(CapsuleCmd.HDR_SIZE + DIGEST_SIZE);
  readonly ddgst = Buffer.alloc(DIGEST_SIZE);
  /** C2HData bytes received so far */
  received = 0;
}

export class NvmeTcpQpair extends QpairCore<HostRequest> implements PduSink {
  readonly socket: net.Socket;
  headerDigest = false;
  dataDigest = false;
  maxH2CData = 0;
  private readonly receiver: PduReceiver;
  private readonly cpl = Buffer.alloc(CQE_SIZE);
  /** fields of the C2HData / R2T being handled (refilled per PDU) */
  private readonly c2h = newDataPduHeader();
  private readonly r2t = newR2tFields();
  private tx: Buffer[] = [];
  /** the array of the burst being written (swapped with tx: none allocated per flush) */
  private txWriting: Buffer[] = [];
  private flushScheduled = false;
  /** writes the bursts (made at the first one, after the connection is up) */
  private writer: BurstWriter | null = null;
  private icResolve: ((v: undefined) => void) | null = null;
  private icReject: ((e: Error) => void) | null = null;

  private constructor(socket: net.Socket, opts: QpairConnectOptions) {
    super(opts.queueSize, opts.inCapsuleDataSize, 0, (cid) => new HostRequest(cid));
    this.socket = socket;
    this.receiver = new PduReceiver(this, HOST_ACCEPTS, 64 * 1024 * 1024);
  }

  /** TCP connect + ICReq/ICResp. */
  static connect(opts: QpairConnectOptions): Promise<NvmeTcpQpair> {
    return new Promise((resolve, reject) => {
      const to: { receiver: PduReceiver | null } = { receiver: null };
      const { socket, ready } = openSocket(opts, to);
      const q = new NvmeTcpQpair(socket, opts);
      to.receiver = q.receiver;
      const timer = setTimeout(() => {
        q.fatal('connect timeout');
      }, opts.connectTimeoutMs ?? 10000);
      q.icResolve = () => {
        clearTimeout(timer);
        resolve(q);
      };
      q.icReject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      socket.on('error', (err) => q.fatal(`${opts.tls ? 'TLS' : 'socket'} error: ${err.message}`));
      socket.on('close', () => q.fatal('connection closed'));
      socket.once(ready, () => {
        const icreq = Buffer.alloc(IcReq.SIZE);
        // data unaligned (HPDA 0), one R2T outstanding per command (MAXR2T 0's based)
        writeIcReq(icreq, {
          pfv: PFV_1_0,
          hpda: 0,
          dgst: icDigestBits(!!opts.hdgst, !!opts.ddgst),
          maxr2t: 0,
        });
        socket.write(icreq);
      });
      q.wantDigests = { h: !!opts.hdgst, d: !!opts.ddgst };
    });
  }

  private wantDigests = { h: false, d: false };

  /** The capsule (in-capsule data when it fits), the rest on R2Ts; queued for this tick's flush. */
  protected override send(req: HostRequest, cmd: Buffer): boolean {
    const data = req.data;
    req.received = 0;
    cmd.writeUInt16LE(req.cid, Sqe.CID);
    const len = data ? data.length : 0;
    const inCapsule = len > 0 && !req.isRead && len <= this.inCapsuleDataSize;
    setSqeSgl(cmd, len, inCapsule);
    const capsule = this.headerDigest ? req.capsuleWithDigest : req.capsule;
    writeCapsuleCmd(capsule, cmd, inCapsule ? len : 0, this.headerDigest, this.dataDigest);
    this.queue(capsule);
    if (inCapsule && data) {
      this.queue(data);
      if (this.dataDigest) this.queue(digestInto(req.ddgst, data));
    }
    return true;
  }

  private queue(buf: Buffer): void {
    this.tx.push(buf);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // one corked burst per tick: many submissions in one tick become one writev
      process.nextTick(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const bufs = this.tx;
    if (this.closed || bufs.length === 0) {
      bufs.length = 0;
      return;
    }
    this.tx = this.txWriting;
    this.txWriting = bufs;
    this.writer ??= new BurstWriter(this.socket);
    this.writer.write(bufs, null);
    // pops stay inline and keep the array's room (length = 0 is a runtime call that drops it)
    while (bufs.length > 0) bufs.pop();
  }

  // ---- PduSink

  onPdu(pdu: Buffer, dataOffset: number, dataLength: number, dataDigestOk: boolean): void {
    this.onPduAt(pdu, 0, pdu.length, dataOffset, dataLength, dataDigestOk);
  }

  /** One PDU in place, buf[at, at + plen) (PduSink: no view per PDU; data offsets are from `at`). */
  onPduAt(
    buf: Buffer,
    at: number,
    plen: number,
    dataOffset: number,
    dataLength: number,
    dataDigestOk: boolean,
  ): void {
    switch (buf[at + Ch.TYPE]) {
      case PduType.IC_RESP:
        this.handleIcResp(buf.subarray(at, at + plen));
        return;
      case PduType.CAPSULE_RESP:
        this.handleCapsuleResp(buf, at);
        return;
      case PduType.C2H_DATA:
        this.handleC2HData(buf, at, dataOffset, dataLength, dataDigestOk);
        return;
      case PduType.R2T:
        this.handleR2T(buf, at);
        return;
      case PduType.C2H_TERM_REQ: {
        const { fes, fei } = readTermReq(buf.subarray(at, at + plen));
        this.fatal(`C2HTermReq fes ${fes} fei ${fei}`);
        return;
      }
    }
  }

  onPduError(fes: number, fei: number): void {
    this.sendTermReq(fes, fei);
    this.fatal(`bad PDU from controller (fes ${fes}, fei ${fei})`);
  }

  private handleIcResp(pdu: Buffer): void {
    if (this.icResolve === null) {
      this.fatal('unexpected ICResp');
      return;
    }
    const { pfv, cpda, dgst, maxh2cdata: maxh2c } = readIcResp(pdu);
    const want = icDigestBits(this.wantDigests.h, this.wantDigests.d);
    // the same checks the Linux host makes
    if (pfv !== PFV_1_0 || cpda !== 0 || dgst !== want || maxh2c % 4 !== 0 || maxh2c < 4096) {
      this.fatal(`bad ICResp (pfv ${pfv}, cpda ${cpda}, dgst ${dgst}, maxh2cdata ${maxh2c})`);
      return;
    }
    this.headerDigest = this.wantDigests.h;
    this.dataDigest = this.wantDigests.d;
    this.receiver.headerDigest = this.headerDigest;
    this.receiver.dataDigest = this.dataDigest;
    this.maxH2CData = maxh2c;
    const resolve = this.icResolve;
    this.icResolve = null;
    this.icReject = null;
    resolve(undefined);
  }

  private slotFor(cid: number, what: string): HostRequest | null {
    const req = this.slots[cid];
    if (req === undefined || !req.busy) {
      this.fatal(`${what} for unknown command ${cid}`);
      return null;
    }
    return req;
  }

  private handleCapsuleResp(buf: Buffer, at: number): void {
    const req = this.slotFor(capsuleRespCid(buf, at), 'CapsuleResp');
    if (req === null) return;
    readCapsuleRespCqe(buf, this.cpl, at);
    this.complete(req, this.cpl);
  }

  private handleC2HData(
    pdu: Buffer,
    at: number,
    dataOffset: number,
    dataLength: number,
    dataDigestOk: boolean,
  ): void {
    const { cccid: cid, datao, datal, flags } = readDataPduHeader(pdu, this.c2h, at);
    const req = this.slotFor(cid, 'C2HData');
    if (req === null) return;
    const buf = req.data;
    if (
      !req.isRead ||
      buf === null ||
      datal !== dataLength ||
      datao !== req.received ||
      datao + datal > buf.length
    ) {
      this.fatal(`bad C2HData for command ${cid} (offset ${datao}, length ${datal})`);
      return;
    }
    if (!dataDigestOk) {
      this.fatal(`data digest error on C2HData for command ${cid}`);
      return;
    }
    pdu.copy(buf, datao, at + dataOffset, at + dataOffset + datal);
    req.received += datal;
    this.afterC2HData(req, flags);
  }

  /** Direct placement of a large C2HData payload into the read buffer (PduSink). */
  placeData(header: Buffer, dataLength: number): Buffer | null {
    if (header[Ch.TYPE] !== PduType.C2H_DATA) return null;
    const { cccid, datao, datal } = readDataPduHeader(header, this.c2h);
    const req = this.slots[cccid];
    const buf = req?.data;
    if (
      req === undefined ||
      !req.busy ||
      !req.isRead ||
      !buf ||
      datal !== dataLength ||
      datao !== req.received ||
      datao + datal > buf.length
    ) {
      return null; // handleC2HData reports it
    }
    return buf.subarray(datao, datao + datal);
  }

  onDataPlaced(header: Buffer, dataDigestOk: boolean): void {
    const { cccid: cid, datal, flags } = readDataPduHeader(header, this.c2h);
    const req = this.slots[cid];
    if (!dataDigestOk) {
      this.fatal(`data digest error on C2HData for command ${cid}`);
      return;
    }
    req.received += datal;
    this.afterC2HData(req, flags);
  }

  private afterC2HData(req: HostRequest, flags: number): void {
    if (flags & PduFlags.DATA_SUCCESS) {
      if (!(flags & PduFlags.DATA_LAST) || req.received !== req.data?.length) {
        this.fatal('C2HData SUCCESS without LAST or before all data');
        return;
      }
      // a success CQE made up: DW0/DW1 zero, SQHD unknown, status 0 (no fill: once per read)
      const cpl = this.cpl;
      cpl.writeUInt32LE(0, Cqe.DW0);
      cpl.writeUInt32LE(0, Cqe.DW1);
      cpl.writeUInt16LE(0xffff, Cqe.SQHD);
      cpl.writeUInt16LE(this.qid, Cqe.SQID);
      cpl.writeUInt16LE(req.cid, Cqe.CID);
      cpl.writeUInt16LE(0, Cqe.STATUS);
      this.complete(req, cpl);
    }
  }

  private handleR2T(pdu: Buffer, at: number): void {
    const { cccid: cid, ttag, r2to, r2tl } = readR2t(pdu, this.r2t, at);
    const req = this.slotFor(cid, 'R2T');
    if (req === null) return;
    const buf = req.data;
    if (req.isRead || buf === null || r2tl === 0 || r2to + r2tl > buf.length) {
      this.fatal(`bad R2T for command ${cid} (offset ${r2to}, length ${r2tl})`);
      return;
    }
    const hdgst = this.headerDigest;
    const ddgst = this.dataDigest;
    const end = r2to + r2tl;
    for (let off = r2to; off < end; ) {
      const len = Math.min(this.maxH2CData, end - off);
      // a header of its own: a second R2T for the command may come before this one is written
      const hdr = Buffer.alloc(DataPdu.HDR_SIZE + (hdgst ? DIGEST_SIZE : 0));
      writeH2CData(hdr, cid, ttag, off, len, off + len === end ? PduFlags.DATA_LAST : 0, hdgst, ddgst);
      const part = buf.subarray(off, off + len);
      this.queue(hdr);
      this.queue(part);
      if (ddgst) this.queue(digestInto(Buffer.allocUnsafe(DIGEST_SIZE), part));
      off += len;
    }
  }

  private sendTermReq(fes: number, fei: number): void {
    if (this.closed) return;
    const pdu = Buffer.alloc(TermReq.HDR_SIZE);
    writeTermReq(pdu, PduType.H2C_TERM_REQ, fes, fei, null);
    this.socket.write(pdu);
  }

  protected override shutDown(reason: string): void {
    this.receiver.fail();
    this.socket.end();
    this.socket.destroy();
    if (this.icReject) {
      const reject = this.icReject;
      this.icReject = null;
      this.icResolve = null;
      reject(new TcpTransportError('ECONNECT', reason));
    }
  }
}

/** The data digest of `data` written into `into` (4 bytes); returns `into`. */
function digestInto(into: Buffer, data: Buffer): Buffer {
  into.writeUInt32LE(dataDigest(data), 0);
  return into;
}
