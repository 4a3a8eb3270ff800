// NVMe/TCP target transport, the qpair: one connection's receive state
// machine (ICReq, then CapsuleCmd and H2CData PDUs from the shared PduReceiver;
// R2T for transport-SGL writes, direct placement of H2CData into the slot's
// buffer) and its send side (CapsuleResp and C2HData queued per completion,
// flushed as one corked burst when its poll group polls), the fatal-error
// TermReq, and the close that hands back what the core still holds.

import { AlignedSlab } from '../../util/aligned-memory.ts';
import { logger } from '../../util/log.ts';
import {
  Cqe,
  clearCqe,
  FABRICS_OPCODE,
  GenericStatus,
  getStatusCode,
  getStatusCodeType,
  NvmOpcode,
  SglDescriptor,
  Sqe,
  SqeFlags,
  StatusCodeType,
  setCqeIds,
  setStatus,
  u16le,
  u32le,
} from '../../wire/nvme.ts';
import {
  CapsuleCmd,
  CapsuleResp,
  Ch,
  DataPdu,
  DIGEST_SIZE,
  dataDigest,
  dataPduPdo,
  IcDigest,
  IcReq,
  IcResp,
  MAX_HPDA,
  newDataPduHeader,
  PduFlags,
  PduType,
  PFV_1_0,
  readCapsuleCmdSqe,
  readDataPduHeader,
  readIcReq,
  setDataPduCccid,
  TermReq,
  TermReqFes,
  termReqErrorDataLength,
  termReqFei,
  writeC2HData,
  writeCapsuleResp,
  writeCapsuleRespAt,
  writeIcResp,
  writeR2t,
  writeTermReq,
} from '../../wire/tcp.ts';
import { PduReceiver, type PduSink, TARGET_ACCEPTS } from '../../wire/tcp-receiver.ts';
import { endZcopy } from '../ctrlr-bdev.ts';
import { FusedOrder } from '../fused.ts';
import { traceCommandComplete } from '../trace.ts';
import {
  type QpairEvents,
  type QueueContext,
  type SecurePeer,
  type TransportAddress,
  type TransportOptions,
  XferDir,
} from '../transport.ts';
import { PayloadSteering } from './read-steering.ts';
import {
  ADMIN_IN_CAPSULE_SIZE,
  type BufferPool,
  EMPTY_IOV,
  FRAME_HEAD,
  frameLength,
  NO_FRAME_SHAPE,
  TcpReqState,
  TcpRequest,
  type TcpRequestQueue,
} from './request.ts';
import { PLACED_DATA, type QpairSocket, type RxBufferPool } from './socket.ts';

const log = logger('nvmf_tcp');

/** A completed write of this many bytes or more is flushed at once (completeRequest). */
const FLUSH_AT_COMPLETION_BYTES = 64 * 1024;

/**
 * Qpair (connection) states: AWAIT_IC_REQ → RUNNING once the ICReq is answered;
 * either → TERMINATING on a fatal protocol error (C2HTermReq sent) or a close
 * asked by the core or the host's H2CTermReq; any → CLOSED when the socket's
 * 'close' is processed.
 */
export const TcpQpairState = {
  /** connected; the first PDU must be an ICReq */
  AWAIT_IC_REQ: 0,
  /** ICResp sent; commands flow */
  RUNNING: 1,
  /** a fatal error was found: TermReq queued, socket ending */
  TERMINATING: 2,
  /** socket gone; waiting for the core to hand back requests */
  CLOSED: 3,
} as const;
export type TcpQpairState = (typeof TcpQpairState)[keyof typeof TcpQpairState];

/** What a qpair needs of the poll group that owns it (TcpPollGroup in poll-group.ts). */
export interface TcpQpairGroup {
  readonly opts: TransportOptions;
  /** the core: told of connected and closed queues and of each received command */
  readonly events: QpairEvents;
  /** data buffers for transport-SGL transfers */
  readonly buffers: BufferPool;
  /** receive buffers of plain connections, returned once parsed */
  readonly rxBuffers: RxBufferPool;
  /** value sent in ICResp */
  readonly maxH2CData: number;
  /** the qpair has PDUs queued: flush it at the next poll */
  markTx(qpair: TcpQpair): void;
  /** the qpair is gone (reported disconnected) */
  removeQpair(qpair: TcpQpair): void;
}

/** One NVMe/TCP connection: its receive and send state machines and its request slots. */
export class TcpQpair implements TcpRequestQueue, PduSink {
  qid = 0;
  sqSize = 0;
  context: QueueContext | null = null;
  sqFlowControlDisabled = false;
  readonly trtype = 'TCP';
  readonly listenAddr: TransportAddress;
  readonly peerAddr: TransportAddress;
  state: TcpQpairState = TcpQpairState.AWAIT_IC_REQ;
  /** host's data alignment for PDUs we send (bytes) */
  hostDataAlign = 4;
  headerDigest = false;
  dataDigest = false;
  /** where a C2HData PDU's data starts (header, digest, the host's alignment) */
  c2hDataPdo = dataPduPdo(false, 4);
  /** commands received so far; SQHD is this modulo the SQ size */
  commandsReceived = 0;
  /** requests the core holds (onRequest called, complete() not yet) */
  outstanding = 0;
  /** plain TCP or TLS (socket.ts): the qpair only reads chunks and writes bursts */
  readonly socket: QpairSocket;
  readonly receiver: PduReceiver;
  private readonly group: TcpQpairGroup;
  private readonly slots: TcpRequest[] = [];
  private readonly freeSlots: TcpRequest[] = [];
  private readonly maxSlots: number;
  /** every slot's in-capsule buffer size */
  private readonly inCapsuleSize: number;
  /** where the slots' frames are carved from */
  private readonly frames: AlignedSlab;
  /** chunks received but not yet parsed (parsed in poll): bytes [0, rxLengths[i]) of each */
  rxChunks: Buffer[] = [];
  rxLengths: number[] = [];
  /** the chunks that are the poll group's receive buffers, put back after parsing */
  rxPooled: Buffer[] = [];
  /** the arrays processRx parses from, swapped with the three above (no allocation per poll) */
  private rxChunksParsing: Buffer[] = [];
  private rxLengthsParsing: number[] = [];
  private rxPooledParsing: Buffer[] = [];
  rxQueued = false;
  /** PDUs (and data buffers) to write at the next flush */
  private txQueue: Buffer[] = [];
  /** the array flush() writes from, swapped with txQueue (the socket does not keep it) */
  private txWriting: Buffer[] = [];
  /** the slots whose PDUs are in txQueue: freed once the burst's write completes */
  private txBurst = new SentBurst(this);
  /** bursts whose write completed, reused with their callback (no closure per flush) */
  private readonly freeBursts: SentBurst[] = [];
  txQueued = false;
  socketClosed = false;
  private connectedReported = false;
  private disconnectReported = false;
  /** fields of the H2CData header being handled (refilled per PDU) */
  private readonly h2c = newDataPduHeader();
  /** closes the connection if no Fabrics Connect completes in time (cleared on close) */
  connectTimer: NodeJS.Timeout | null = null;
  /** keeps fused pairs together in arrival order (an R2T write's data may come between them) */
  private readonly fused: FusedOrder;
  /** reads of a large write's payload go straight into its buffer (plain sockets) */
  private readonly steering: PayloadSteering;

  constructor(group: TcpQpairGroup, socket: QpairSocket, listenAddr: TransportAddress) {
    this.group = group;
    this.socket = socket;
    this.listenAddr = listenAddr;
    const family = socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4';
    this.peerAddr = {
      trtype: 'TCP',
      adrfam: family,
      traddr: socket.remoteAddress,
      trsvcid: String(socket.remotePort),
    };
    const o = group.opts;
    // A slot stays SENDING until its write callback, which can come after the host already
    // read the response and reused the command slot: keep a margin of a full queue for that.
    this.maxSlots = 2 * Math.max(o.max_queue_depth, o.max_aq_depth);
    this.inCapsuleSize = Math.max(o.in_capsule_data_size, ADMIN_IN_CAPSULE_SIZE);
    // 64-aligned frames: a read's copy from malloc memory into them runs at full speed
    this.frames = new AlignedSlab(frameLength(this.inCapsuleSize), this.maxSlots, 64);
    // before ICResp only the 128-byte ICReq is acceptable
    this.receiver = new PduReceiver(this, TARGET_ACCEPTS, IcReq.SIZE);
    this.receiver.expectType = PduType.IC_REQ;
    this.fused = new FusedOrder((req) => this.execute(req as TcpRequest));
    this.steering = new PayloadSteering(this);
    socket.steerReads?.(this.steering);
  }

  /** host address -> listener, for log lines */
  private peerName(): string {
    const p = this.peerAddr;
    const l = this.listenAddr;
    return `${p.traddr}:${p.trsvcid} -> ${l.traddr}:${l.trsvcid}`;
  }

  // ---- NvmfQpair

  get securePeer(): SecurePeer | null {
    return this.socket.securePeer;
  }

  disconnect(reason?: string): void {
    if (this.state === TcpQpairState.CLOSED) return;
    if (log.debugEnabled()) log.debug(`${this.peerName()}: disconnect (${reason ?? 'no reason given'})`);
    this.state = TcpQpairState.TERMINATING;
    this.receiver.fail();
    this.steering.stop();
    this.flush();
    this.socket.end();
    // the 'close' event finishes the job; destroy if the peer does not answer
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  // ---- receive side (runs inside poll)

  processRx(): void {
    const chunks = this.rxChunks;
    const lengths = this.rxLengths;
    const pooled = this.rxPooled;
    // what arrives while we parse goes to the other set of arrays
    this.rxChunks = this.rxChunksParsing;
    this.rxLengths = this.rxLengthsParsing;
    this.rxPooled = this.rxPooledParsing;
    this.rxChunksParsing = chunks;
    this.rxLengthsParsing = lengths;
    this.rxPooledParsing = pooled;
    this.rxQueued = false;
    for (let i = 0; i < chunks.length; i++) {
      if (this.state !== TcpQpairState.AWAIT_IC_REQ && this.state !== TcpQpairState.RUNNING) break;
      if (chunks[i] === PLACED_DATA) this.receiver.pushPlaced(lengths[i]);
      else this.receiver.push(chunks[i], lengths[i]);
    }
    // emptied by pops, which the JIT keeps inline and which keep the array's room; setting length
    // to 0 is a runtime call that drops it, and the next pushes grow it again (once per poll)
    while (chunks.length > 0) chunks.pop();
    while (lengths.length > 0) lengths.pop();
    releaseRx(pooled, this.group.rxBuffers);
    // every byte read is parsed now (a break above ends the connection)
    if (this.state === TcpQpairState.RUNNING) this.steering.resync(this.receiver);
    else this.steering.stop();
  }

  onPdu(pdu: Buffer, dataOffset: number, dataLength: number, dataDigestOk: boolean): void {
    this.onPduAt(pdu, 0, pdu.length, dataOffset, dataLength, dataDigestOk);
  }

  /**
   * One PDU, in place in the receive buffer (PduSink: the receiver makes no view per PDU):
   * buf[at, at + plen). Views of it are made only where one is kept or reported (ICReq,
   * TermReq, errors).
   */
  onPduAt(
    buf: Buffer,
    at: number,
    plen: number,
    dataOffset: number,
    dataLength: number,
    dataDigestOk: boolean,
  ): void {
    const type = buf[at + Ch.TYPE];
    if (this.state === TcpQpairState.AWAIT_IC_REQ) {
      if (type !== PduType.IC_REQ) {
        this.terminatePdu(TermReqFes.PDU_SEQUENCE_ERROR, 0, buf, at, plen);
        return;
      }
      this.handleIcReq(buf.subarray(at, at + plen));
      return;
    }
    if (this.state !== TcpQpairState.RUNNING) return;
    switch (type) {
      case PduType.CAPSULE_CMD:
        this.handleCapsuleCmd(buf, at, plen, dataOffset, dataLength, dataDigestOk);
        return;
      case PduType.H2C_DATA:
        this.handleH2CData(buf, at, plen, dataOffset, dataLength, dataDigestOk);
        return;
      case PduType.H2C_TERM_REQ:
        // as SPDK: a FES no TermReq defines is itself an invalid field
        if (buf.readUInt16LE(at + TermReq.FES) > TermReqFes.UNSUPPORTED_PARAMETER) {
          this.terminatePdu(TermReqFes.INVALID_HEADER_FIELD, TermReq.FES, buf, at, plen);
          return;
        }
        // the host gave up on us: nothing to answer
        this.receiver.fail();
        this.state = TcpQpairState.TERMINATING;
        this.socket.destroy();
        return;
      default:
        // a second ICReq
        this.terminatePdu(TermReqFes.PDU_SEQUENCE_ERROR, 0, buf, at, plen);
    }
  }

  onPduError(fes: number, fei: number, header: Buffer | null): void {
    this.terminate(fes, fei, header);
  }

  private handleIcReq(pdu: Buffer): void {
    const { pfv, hpda, dgst } = readIcReq(pdu);
    if (pfv !== PFV_1_0) {
      this.terminate(TermReqFes.INVALID_HEADER_FIELD, IcReq.PFV, pdu);
      return;
    }
    if (hpda > MAX_HPDA) {
      this.terminate(TermReqFes.INVALID_HEADER_FIELD, IcReq.HPDA, pdu);
      return;
    }
    this.hostDataAlign = (hpda + 1) * 4;
    this.headerDigest = (dgst & IcDigest.HDGST_ENABLE) !== 0;
    this.dataDigest = (dgst & IcDigest.DDGST_ENABLE) !== 0;
    this.c2hDataPdo = dataPduPdo(this.headerDigest, this.hostDataAlign);
    const resp = Buffer.alloc(IcResp.SIZE);
    writeIcResp(resp, {
      pfv: PFV_1_0,
      cpda: 0,
      dgst: dgst & (IcDigest.HDGST_ENABLE | IcDigest.DDGST_ENABLE),
      maxh2cdata: this.group.maxH2CData,
    });
    this.queueTx(resp);
    this.receiver.headerDigest = this.headerDigest;
    this.receiver.dataDigest = this.dataDigest;
    this.receiver.expectType = -1;
    const o = this.group.opts;
    // largest PDU: capsule with in-capsule data, or H2CData of maxh2cdata, plus digests and pad
    this.receiver.maxPlen =
      Math.max(
        CapsuleCmd.HDR_SIZE + Math.max(o.in_capsule_data_size, ADMIN_IN_CAPSULE_SIZE),
        DataPdu.HDR_SIZE + this.group.maxH2CData,
      ) +
      2 * DIGEST_SIZE +
      128;
    if (log.debugEnabled()) {
      log.debug(
        `${this.peerName()}: ICReq pfv ${pfv} hpda ${hpda} hdgst ${this.headerDigest} ddgst ${this.dataDigest} -> ICResp maxh2cdata ${this.group.maxH2CData}`,
      );
    }
    this.state = TcpQpairState.RUNNING;
    this.connectedReported = true;
    this.group.events.onQpairConnected(this);
  }

  private allocSlot(): TcpRequest | null {
    const slot = this.freeSlots.pop();
    if (slot) return slot;
    if (this.slots.length >= this.maxSlots) return null;
    const req = new TcpRequest(this, this.slots.length, this.inCapsuleSize, this.frames.take());
    this.slots.push(req);
    return req;
  }

  private inCapsuleLimit(): number {
    return this.qid === 0
      ? Math.max(this.group.opts.in_capsule_data_size, ADMIN_IN_CAPSULE_SIZE)
      : this.group.opts.in_capsule_data_size;
  }

  /** A CapsuleCmd, buf[at, at + plen). */
  private handleCapsuleCmd(
    buf: Buffer,
    at: number,
    plen: number,
    dataOffset: number,
    dataLength: number,
    dataDigestOk: boolean,
  ): void {
    const req = this.allocSlot();
    if (req === null) {
      // more commands than the queue holds: the host broke SQ flow control
      this.terminatePdu(TermReqFes.PDU_SEQUENCE_ERROR, 0, buf, at, plen);
      return;
    }
    this.commandsReceived++;
    const cmd = req.cmd;
    readCapsuleCmdSqe(buf, cmd, at);
    clearCqe(req.rsp);
    req.cid = u16le(cmd, Sqe.CID);
    req.iov = EMPTY_IOV;
    req.readIov = null;
    req.zcopy = false;
    req.length = 0;
    req.xferDir = XferDir.NONE;
    req.h2cReceived = 0;
    req.digestError = !dataDigestOk;
    this.fused.received(req);
    const opcode = cmd[Sqe.OPCODE];
    const dir = (opcode === FABRICS_OPCODE ? cmd[Sqe.FCTYPE] : opcode) & 0x3;
    const sglType = cmd[Sqe.SGL_TYPE];
    const sglLength = u32le(cmd, Sqe.SGL_LENGTH);

    if (dataLength > this.inCapsuleLimit()) {
      // more in-capsule data than this queue takes (SPDK: fatal, data transfer limit exceeded)
      this.freeSlot(req);
      this.terminatePdu(TermReqFes.DATA_TRANSFER_LIMIT_EXCEEDED, 0, buf, at, plen);
      return;
    }
    if (dir === 0 || sglLength === 0) {
      this.dispatch(req);
      return;
    }
    if (dir === 3) {
      this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD);
      return;
    }
    req.length = sglLength;
    req.xferDir = dir === 1 ? XferDir.HOST_TO_CONTROLLER : XferDir.CONTROLLER_TO_HOST;
    if (sglType === SglDescriptor.IN_CAPSULE) {
      const offset = cmd.readUInt32LE(Sqe.SGL_ADDRESS);
      const offsetHi = cmd.readUInt32LE(Sqe.SGL_ADDRESS + 4);
      if (dir !== 1) {
        this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.SGL_DESCRIPTOR_TYPE_INVALID);
        return;
      }
      // as SPDK, both fatal: NVMe/TCP places in-capsule data at offset 0, and the capsule
      // must carry exactly the data its SGL describes (the stream cannot be trusted otherwise)
      if (offset !== 0 || offsetHi !== 0) {
        this.freeSlot(req);
        this.terminatePdu(TermReqFes.UNSUPPORTED_PARAMETER, CapsuleCmd.SQE + Sqe.SGL_ADDRESS, buf, at, plen);
        return;
      }
      if (sglLength !== dataLength) {
        this.freeSlot(req);
        this.terminatePdu(TermReqFes.INVALID_HEADER_FIELD, Ch.PLEN, buf, at, plen);
        return;
      }
      if (
        this.qid !== 0 &&
        cmd[Sqe.OPCODE] === NvmOpcode.WRITE &&
        (cmd[Sqe.FLAGS] & SqeFlags.FUSE_MASK) === 0
      ) {
        // a plain write: its data stays in the receive buffer for the call (no copy when the
        // bdev consumes it in submit); whatever still holds it afterwards gets the slot's copy
        req.iov = req.lendData(buf, at + dataOffset, sglLength);
        this.dispatch(req);
        if (req.lentData !== null) req.keep();
        return;
      }
      buf.copy(req.inCapsule, 0, at + dataOffset, at + dataOffset + sglLength);
      req.iov = req.inCapsuleData(sglLength);
      this.dispatch(req);
      return;
    }
    if (sglType !== SglDescriptor.TRANSPORT) {
      this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.SGL_DESCRIPTOR_TYPE_INVALID);
      return;
    }
    if (sglLength > this.group.opts.max_io_size) {
      this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.DATA_SGL_LENGTH_INVALID);
      return;
    }
    if (dataLength !== 0) {
      // a transport SGL never comes with in-capsule data
      this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.DATA_SGL_LENGTH_INVALID);
      return;
    }
    if (req.xferDir === XferDir.CONTROLLER_TO_HOST) {
      // a read that fits the slot's in-capsule buffer (which a read leaves unused) is read into
      // it: no pool buffer to take and give back, and the same view every time
      if (sglLength <= req.inCapsule.length) req.iov = req.inCapsuleData(sglLength);
      else {
        req.poolBuf = this.group.buffers.get();
        req.iov = req.poolData(req.poolBuf, sglLength);
        // the burst writer takes lent memory (a malloc bdev's own): no copy into the pool buffer
        req.zcopy = true;
      }
      req.readIov = req.iov;
      this.dispatch(req);
      return;
    }
    // with the zcopy option, a write to a bdev that lends its memory (malloc) has its data land
    // there, unless a data digest must be checked first; otherwise it lands in a pool buffer and
    // is copied (docs/performance.md: on a bdev larger than the cache the kernel's copy into
    // cold memory costs what the two copies did)
    if (
      !this.group.opts.zcopy ||
      this.dataDigest ||
      this.qid === 0 ||
      this.group.events.landWrite?.(req) !== true
    ) {
      req.poolBuf = this.group.buffers.get();
      req.iov = req.poolData(req.poolBuf, sglLength);
    }
    // one R2T for the whole transfer (maxh2cdata = max_io_size ≥ length)
    req.state = TcpReqState.AWAIT_H2C_DATA;
    // the slot's data header is free until a C2H transfer, which a write never has
    const hdr = req.dataHdr;
    const len = writeR2t(hdr, req.cid, req.index, 0, sglLength, this.headerDigest);
    this.queueTx(req.dataHeader(len));
  }

  /** Direct placement of a large H2CData payload into the request's buffer (PduSink). */
  placeData(header: Buffer, dataLength: number): Buffer | null {
    if (this.state !== TcpQpairState.RUNNING || header[Ch.TYPE] !== PduType.H2C_DATA) return null;
    const { ttag, cccid, datao, datal } = readDataPduHeader(header, this.h2c);
    const req = this.slots[ttag];
    // anything unusual goes the slow way, where handleH2CData reports it
    if (
      req === undefined ||
      req.state !== TcpReqState.AWAIT_H2C_DATA ||
      req.cid !== cccid ||
      datal !== dataLength ||
      datal > this.group.maxH2CData ||
      datao !== req.h2cReceived ||
      datao + datal > req.length
    ) {
      return null;
    }
    return req.iov[0].subarray(datao, datao + datal);
  }

  onDataPlaced(header: Buffer, dataDigestOk: boolean): void {
    const { ttag, datal } = readDataPduHeader(header, this.h2c);
    const req = this.slots[ttag];
    req.h2cReceived += datal;
    if (!dataDigestOk) req.digestError = true;
    if (req.h2cReceived === req.length) this.dispatch(req);
  }

  /** An H2CData PDU, buf[at, at + plen), received whole. */
  private handleH2CData(
    buf: Buffer,
    at: number,
    plen: number,
    dataOffset: number,
    dataLength: number,
    dataDigestOk: boolean,
  ): void {
    const { ttag, cccid, datao, datal } = readDataPduHeader(buf, this.h2c, at);
    // as SPDK: a tag no slot can ever have is a sequence error, a known slot that is not
    // waiting for data an invalid field, data for another command a sequence error
    if (ttag >= this.maxSlots) {
      this.terminatePdu(TermReqFes.PDU_SEQUENCE_ERROR, DataPdu.TTAG, buf, at, plen);
      return;
    }
    const req = this.slots[ttag];
    if (req === undefined || req.state !== TcpReqState.AWAIT_H2C_DATA) {
      this.terminatePdu(TermReqFes.INVALID_HEADER_FIELD, DataPdu.TTAG, buf, at, plen);
      return;
    }
    if (req.cid !== cccid) {
      this.terminatePdu(TermReqFes.PDU_SEQUENCE_ERROR, DataPdu.CCCID, buf, at, plen);
      return;
    }
    if (datal !== dataLength || datal === 0) {
      this.terminatePdu(TermReqFes.INVALID_HEADER_FIELD, DataPdu.DATAL, buf, at, plen);
      return;
    }
    if (datal > this.group.maxH2CData) {
      this.terminatePdu(TermReqFes.DATA_TRANSFER_LIMIT_EXCEEDED, DataPdu.DATAL, buf, at, plen);
      return;
    }
    if (datao !== req.h2cReceived || datao + datal > req.length) {
      this.terminatePdu(TermReqFes.DATA_TRANSFER_OUT_OF_RANGE, DataPdu.DATAO, buf, at, plen);
      return;
    }
    buf.copy(req.iov[0], datao, at + dataOffset, at + dataOffset + datal);
    req.h2cReceived += datal;
    if (!dataDigestOk) req.digestError = true;
    if (req.h2cReceived === req.length) this.dispatch(req);
  }

  /** The command's data is in: to the core, unless it waits for the other half of a fused pair. */
  private dispatch(req: TcpRequest): void {
    if (req.digestError) {
      // SPDK fails the command, not the connection, on a data digest error
      this.failEarly(req, StatusCodeType.GENERIC, GenericStatus.COMMAND_TRANSIENT_TRANSPORT_ERROR);
      return;
    }
    req.state = TcpReqState.AWAIT_FUSED;
    this.fused.ready(req);
  }

  /** Commands whose data is in that wait for the other half of a fused pair (held by the
   * target, so counted in nvmf_get_stats outstanding_requests; a stats walk, not the I/O path). */
  get heldForFusedPartner(): number {
    let n = 0;
    for (const s of this.slots) if (s.state === TcpReqState.AWAIT_FUSED) n++;
    return n;
  }

  /** Hand the command to the core (FusedOrder calls it, a fused pair's halves one after the other). */
  private execute(req: TcpRequest): void {
    if (req.state !== TcpReqState.AWAIT_FUSED) return; // freed meanwhile (connection closed)
    req.state = TcpReqState.EXECUTING;
    this.outstanding++;
    this.group.events.onRequest(req);
  }

  /** Answer a command the core never sees (transport-level error). */
  private failEarly(req: TcpRequest, sct: number, sc: number): void {
    this.fused.dropped(req);
    setStatus(req.rsp, sct, sc, true);
    req.xferDir = XferDir.NONE;
    req.state = TcpReqState.EXECUTING;
    this.outstanding++;
    this.completeRequest(req);
  }

  // ---- completion side

  completeRequest(req: TcpRequest): void {
    if (req.state !== TcpReqState.EXECUTING) return; // double completion: ignore
    if (req.traceStart !== 0) traceCommandComplete(req);
    this.outstanding--;
    if (this.state === TcpQpairState.CLOSED || this.state === TcpQpairState.TERMINATING) {
      this.freeSlot(req);
      this.maybeReportDisconnect();
      return;
    }
    req.state = TcpReqState.SENDING;
    const rsp = req.rsp;
    const sqhd = this.sqFlowControlDisabled
      ? 0xffff
      : this.sqSize > 0
        ? this.commandsReceived % this.sqSize
        : this.commandsReceived & 0xffff;
    setCqeIds(rsp, sqhd, this.qid, req.cid);
    let sendResp = true;
    if (
      req.xferDir === XferDir.CONTROLLER_TO_HOST &&
      getStatusCode(rsp) === 0 &&
      getStatusCodeType(rsp) === 0
    ) {
      const success =
        this.group.opts.c2h_success &&
        this.sqFlowControlDisabled &&
        u32le(rsp, Cqe.DW0) === 0 &&
        u32le(rsp, Cqe.DW1) === 0;
      if (req.iov === req.readIov && req.poolBuf === null) {
        // read into the slot's in-capsule buffer: header, data and response as one frame
        this.queueC2HFrame(req, success);
        sendResp = false;
      } else {
        this.queueC2HData(req, success);
        sendResp = !success;
      }
    }
    if (sendResp) {
      // the CQE (req.rsp) is already in place
      const pdu = req.respPdu;
      const len = writeCapsuleResp(pdu, this.headerDigest);
      this.queueTx(
        len === pdu.length ? pdu : len === CapsuleResp.HDR_SIZE ? req.respPduNoDigest : pdu.subarray(0, len),
      );
    }
    this.txBurst.slots.push(req);
    // a large write's response is written at once, in a writev of its own, not with the other
    // completions of the poll (the bdev layer delivers them together, after the poll): 128 KiB
    // write QD16 +6 % IOPS, the host refilling its queue sooner; one writev per 64 KiB or more
    // written is little next to the copy. Not reads: their data goes out best in few large
    // writevs (one per 128 KiB read: 128 KiB read QD16 -43 %). Holding the rest of a poll's
    // chunks until the write's answer was out cost more than it gave (-10 %).
    if (req.xferDir === XferDir.HOST_TO_CONTROLLER && req.length >= FLUSH_AT_COMPLETION_BYTES) this.flush();
  }

  /**
   * A read whose data the core left in the slot's in-capsule buffer (its readIov, `req.length`
   * bytes): the C2HData header is written in front of it and the data digest and CapsuleResp
   * (unless `success` says none) behind it, and the three go out as one part of the burst.
   */
  private queueC2HFrame(req: TcpRequest, success: boolean): void {
    const length = req.length;
    const dd = this.dataDigest;
    const hd = this.headerDigest;
    const pdo = this.c2hDataPdo;
    const header = req.frameHeader(pdo);
    // without a header digest, a header of the same shape differs only in its CCCID
    const shape = success ? -length : length;
    if (!hd && req.frameShape === shape) setDataPduCccid(header, req.cid);
    else {
      const flags = success ? PduFlags.DATA_LAST | PduFlags.DATA_SUCCESS : PduFlags.DATA_LAST;
      writeC2HData(header, req.cid, 0, length, flags, hd, dd, this.hostDataAlign);
      req.frameShape = hd ? NO_FRAME_SHAPE : shape;
    }
    const frame = req.frame;
    let end = FRAME_HEAD + length;
    if (dd) {
      frame.writeUInt32LE(dataDigest(req.iov[0]), end);
      end += DIGEST_SIZE;
    }
    if (!success) end += writeCapsuleRespAt(frame, end, req.rsp, hd);
    this.queueTx(req.frameBytes(FRAME_HEAD - pdo, end));
  }

  private queueC2HData(req: TcpRequest, success: boolean): void {
    let total = 0;
    let shared = false;
    if (req.zcopyIo !== null) {
      // the bdev's own memory, lent until the burst is written (freeSlot ends the lend)
      total = req.length;
      if (req.poolBuf !== null) {
        this.group.buffers.put(req.poolBuf);
        req.poolBuf = null;
      }
    } else if (req.iov === req.readIov) {
      // the buffer the transport gave the read (length bytes of its own memory): no look at
      // each buffer's backing store, which costs V8 a runtime call
      total = req.length;
    } else {
      for (const b of req.iov) {
        total += b.length;
        if (b.buffer instanceof SharedArrayBuffer) shared = true;
      }
    }
    let length = Math.min(total, req.length);
    // NVMe has no short read: a core that filled less than asked gets the rest zero-filled
    const short = total < req.length;
    if ((shared || short) && req.length <= this.group.opts.max_io_size) {
      // views of shared memory (malloc bdevs) are slow to hand to the socket: one copy to a
      // private buffer is cheaper, and the host then sees a stable snapshot of the data
      const own = req.poolBuf ?? this.group.buffers.get();
      req.poolBuf = own;
      let off = 0;
      for (const b of req.iov) {
        if (off >= length) break;
        off += b.copy(own, off, 0, Math.min(b.length, length - off));
      }
      if (short) {
        own.fill(0, length, req.length);
        length = req.length;
      }
      req.iov = [own.subarray(0, length)];
    }
    const dd = this.dataDigest;
    const flags = success ? PduFlags.DATA_LAST | PduFlags.DATA_SUCCESS : PduFlags.DATA_LAST;
    const hdr = req.dataHdr;
    const pdo = writeC2HData(hdr, req.cid, 0, length, flags, this.headerDigest, dd, this.hostDataAlign);
    this.queueTx(req.dataHeader(pdo));
    let remaining = length;
    let crc = 0;
    for (const b of req.iov) {
      if (remaining === 0) break;
      const part = b.length <= remaining ? b : b.subarray(0, remaining);
      remaining -= part.length;
      if (dd) crc = dataDigest(part, crc);
      this.queueTx(part);
    }
    if (dd) {
      req.ddgst.writeUInt32LE(crc, 0);
      this.queueTx(req.ddgst);
    }
  }

  private queueTx(buf: Buffer): void {
    this.txQueue.push(buf);
    if (!this.txQueued) {
      this.txQueued = true;
      this.group.markTx(this);
    }
  }

  /** One corked burst; slots of this burst are freed when its last write completes. */
  flush(): void {
    this.txQueued = false;
    const queue = this.txQueue;
    if (queue.length === 0) return;
    const burst = this.txBurst;
    if (this.socketClosed || this.socket.destroyed) {
      while (queue.length > 0) queue.pop();
      this.freeBurstSlots(burst);
      return;
    }
    // what is queued while the burst is written (nothing, unless a write callback runs at once)
    // goes to the other array and the next burst
    this.txQueue = this.txWriting;
    this.txWriting = queue;
    if (burst.slots.length === 0) this.socket.writeBurst(queue, null);
    else {
      this.txBurst = this.freeBursts.pop() ?? new SentBurst(this);
      this.socket.writeBurst(queue, burst.done);
    }
    while (queue.length > 0) queue.pop();
  }

  /** A burst's write completed (its callback): its slots are free, the burst is reused. */
  burstSent(burst: SentBurst): void {
    this.freeBurstSlots(burst);
    this.freeBursts.push(burst);
  }

  private freeBurstSlots(burst: SentBurst): void {
    const slots = burst.slots;
    for (let i = 0; i < slots.length; i++)
      if (slots[i].state === TcpReqState.SENDING) this.freeSlot(slots[i]);
    while (slots.length > 0) slots.pop();
  }

  private freeSlot(req: TcpRequest): void {
    req.consumed(); // nothing is lent past the command's end
    if (req.zcopyIo !== null) endZcopy(req);
    if (req.poolBuf) {
      this.group.buffers.put(req.poolBuf);
      req.poolBuf = null;
    }
    req.iov = EMPTY_IOV;
    req.state = TcpReqState.FREE;
    this.freeSlots.push(req);
  }

  /** Fatal protocol error in the PDU buf[at, at + plen): its header goes back as error data. */
  private terminatePdu(fes: number, fei: number, buf: Buffer, at: number, plen: number): void {
    this.terminate(fes, fei, buf.subarray(at, at + plen));
  }

  /** Fatal protocol error: C2HTermReq with the FES, then close. */
  terminate(fes: number, fei: number, header: Buffer | null): void {
    if (this.state === TcpQpairState.TERMINATING || this.state === TcpQpairState.CLOSED) return;
    this.receiver.fail();
    this.steering.stop();
    // error data: the offending PDU's header, never its data
    const pdu = Buffer.alloc(TermReq.HDR_SIZE + termReqErrorDataLength(header));
    writeTermReq(pdu, PduType.C2H_TERM_REQ, fes, termReqFei(fes, fei), header);
    // PDUs already queued (ICResp, responses) go out first: they were valid when queued
    this.queueTx(pdu);
    this.state = TcpQpairState.TERMINATING;
    this.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** socket 'close' seen (processed in poll). */
  handleClosed(): void {
    this.state = TcpQpairState.CLOSED;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.receiver.fail();
    this.rxChunks.length = 0;
    this.rxLengths.length = 0;
    releaseRx(this.rxPooled, this.group.rxBuffers);
    this.txQueue.length = 0;
    this.freeBurstSlots(this.txBurst);
    // requests waiting for H2C data or for their fused partner were never given to the core
    this.fused.reset();
    for (const s of this.slots)
      if (
        s.state === TcpReqState.AWAIT_H2C_DATA ||
        s.state === TcpReqState.AWAIT_FUSED ||
        s.state === TcpReqState.SENDING
      )
        this.freeSlot(s);
    // let the core complete what it parks (AERs, paused I/O): the report below waits for them
    if (this.connectedReported && this.outstanding > 0) this.group.events.onQpairClosing?.(this);
    this.maybeReportDisconnect();
  }

  private maybeReportDisconnect(): void {
    if (this.state !== TcpQpairState.CLOSED || this.outstanding > 0 || this.disconnectReported) return;
    this.disconnectReported = true;
    this.group.removeQpair(this);
    if (this.connectedReported) this.group.events.onQpairDisconnected(this);
  }
}

/** The slots of one flush, freed by its write callback; pooled by the qpair with the callback. */
class SentBurst {
  readonly slots: TcpRequest[] = [];
  readonly done: () => void;

  constructor(qpair: TcpQpair) {
    this.done = () => qpair.burstSent(this);
  }
}

/** Receive buffers parsed (or dropped) go back to the pool: the receiver kept no view of them. */
function releaseRx(pooled: Buffer[], pool: RxBufferPool): void {
  while (pooled.length > 0) pool.put(pooled.pop() as Buffer);
}
