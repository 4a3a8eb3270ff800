// NVMe/TCP PDU receiver shared by the target transport and the host library:
// an explicit state machine over incoming socket chunks. A PDU that lies
// inside one chunk is handed out in place (its offset in the chunk, or a view
// for a sink that takes views); only a PDU that straddles chunks is copied
// (into a buffer of exactly its length).

import { crc32c } from '@node-rs/crc32';
import {
  Ch,
  DataPdu,
  DIGEST_SIZE,
  expectedHlen,
  PduType,
  pduHasHeaderDigest,
  TermReq,
  TermReqFes,
} from './tcp.ts';

export const RecvState = {
  /** waiting for the 8-byte common header */
  AWAIT_CH: 0,
  /** common header known and valid; waiting for the rest of the PDU header (+ header digest) */
  AWAIT_PSH: 1,
  /** header valid; waiting for data (+ pad + data digest) */
  AWAIT_PAYLOAD: 2,
  /** a fatal error was reported; everything after it is ignored */
  ERROR: 3,
} as const;
export type RecvState = (typeof RecvState)[keyof typeof RecvState];

export interface PduSink {
  /**
   * One complete PDU. `pdu` holds exactly plen bytes and is only valid during the call.
   * Data (if any) is pdu[dataOffset, dataOffset + dataLength). `dataDigestOk` is false when
   * the data digest did not match (the caller decides: SPDK fails the command, not the link).
   */
  onPdu(pdu: Buffer, dataOffset: number, dataLength: number, dataDigestOk: boolean): void;
  /**
   * Optional, used instead of onPdu when present: the same PDU in place, with no view made
   * for it: it is buf[at, at + plen), its data buf[at + dataOffset, at + dataOffset +
   * dataLength). `buf` is the chunk given to push (or the reassembly buffer, at 0) and is
   * only valid during the call.
   */
  onPduAt?(
    buf: Buffer,
    at: number,
    plen: number,
    dataOffset: number,
    dataLength: number,
    dataDigestOk: boolean,
  ): void;
  /** A fatal framing error: the caller sends a TermReq with this FES/FEI and closes. */
  onPduError(fes: number, fei: number, header: Buffer | null): void;
  /**
   * Optional direct data placement for a large H2CData/C2HData PDU that straddles
   * chunks: given its header (up to PDO, valid during the call) return the buffer
   * of exactly `dataLength` bytes its data belongs in, or null to receive the PDU
   * whole through onPdu (which then validates it). When a buffer is returned the
   * data is copied there once, and onDataPlaced reports the end.
   */
  placeData?(header: Buffer, dataLength: number): Buffer | null;
  onDataPlaced?(header: Buffer, dataDigestOk: boolean): void;
}

/** Data PDUs at least this long that straddle chunks go straight to their destination. */
export const DIRECT_PLACEMENT_MIN = 1024;

/**
 * A socket reads a payload straight into its destination (placementWindow) only when at least
 * this much of it is still to come: for less, a read of its own costs more than the copy saved.
 */
export const PLACED_READ_MIN = 16 * 1024;

/**
 * After a read straight into a payload the next read takes at most this much past that PDU's
 * end: the headers that follow, not the next payload, which can then be placed as well
 * instead of arriving in a receive buffer to be copied.
 */
export const HEADERS_READ_SIZE = 128;

/** Which PDU types a side may receive. */
export const TARGET_ACCEPTS: readonly number[] = [
  PduType.IC_REQ,
  PduType.H2C_TERM_REQ,
  PduType.CAPSULE_CMD,
  PduType.H2C_DATA,
];
export const HOST_ACCEPTS: readonly number[] = [
  PduType.IC_RESP,
  PduType.C2H_TERM_REQ,
  PduType.CAPSULE_RESP,
  PduType.C2H_DATA,
  PduType.R2T,
];

export class PduReceiver {
  state: RecvState = RecvState.AWAIT_CH;
  /** negotiated in ICReq/ICResp; the IC PDUs themselves never carry digests */
  headerDigest = false;
  dataDigest = false;
  /** largest plen accepted; a larger one is a data transfer limit error */
  maxPlen: number;
  /**
   * The only PDU type acceptable next (the target's ICReq), or -1 for any accepted type.
   * Another type is a PDU sequence error, whatever it is (SPDK checks the state first).
   */
  expectType = -1;
  /** 1 at the index of each PDU type this side may receive (a lookup, not a search, per PDU) */
  private readonly accepts = new Uint8Array(256);
  private readonly sink: PduSink;
  /** reassembly buffer for a PDU that straddles chunks (null when not reassembling) */
  private partial: Buffer | null = null;
  private partialFill = 0;
  /** common header bytes gathered so far when even the 8-byte header straddles chunks */
  private readonly chBuf = Buffer.alloc(Ch.SIZE);
  private chFill = 0;
  private plen = 0;
  /** header-first reception of a data PDU: header (+pad) goes to hdrBuf until `headerTarget` */
  private headerFirst = false;
  private headerTarget = 0;
  private readonly hdrBuf = Buffer.alloc(256);
  /** AWAIT_PAYLOAD into the sink's buffer */
  private direct: Buffer | null = null;
  private directFill = 0;
  private readonly ddgstBuf = Buffer.alloc(DIGEST_SIZE);
  private ddgstLen = 0;
  private ddgstFill = 0;

  constructor(sink: PduSink, accepts: readonly number[], maxPlen: number) {
    this.sink = sink;
    for (const type of accepts) this.accepts[type] = 1;
    this.maxPlen = maxPlen;
  }

  /**
   * Feed one chunk: its first `length` bytes (all of it by default; a socket reading into a
   * reused buffer passes what the read filled). Nothing of it is kept after the call: whole
   * PDUs are views during onPdu, partial ones are copied. Never throws for bad input; errors go
   * to sink.onPduError.
   */
  push(chunk: Buffer, length = chunk.length): void {
    let pos = 0;
    const n = length;
    while (pos < n && this.state !== RecvState.ERROR) {
      if (this.direct !== null) {
        // AWAIT_PAYLOAD straight into the destination, then the data digest
        const dest = this.direct;
        if (this.directFill < dest.length) {
          const take = Math.min(dest.length - this.directFill, n - pos);
          chunk.copy(dest, this.directFill, pos, pos + take);
          this.directFill += take;
          pos += take;
        } else {
          const take = Math.min(this.ddgstLen - this.ddgstFill, n - pos);
          chunk.copy(this.ddgstBuf, this.ddgstFill, pos, pos + take);
          this.ddgstFill += take;
          pos += take;
        }
        if (this.directFill === dest.length && this.ddgstFill === this.ddgstLen) this.finishDirect();
        continue;
      }
      if (this.partial === null) {
        // AWAIT_CH
        if (this.chFill === 0 && n - pos >= Ch.SIZE) {
          const plen = this.checkCommonHeader(chunk, pos);
          if (plen < 0) return;
          if (n - pos >= plen) {
            // whole PDU in this chunk: no copy
            this.deliver(chunk, pos, plen);
            pos += plen;
            continue;
          }
          this.startPartial(chunk.subarray(pos, pos + Ch.SIZE), plen);
          pos += Ch.SIZE;
          continue;
        }
        // the common header itself straddles chunks
        const take = Math.min(Ch.SIZE - this.chFill, n - pos);
        chunk.copy(this.chBuf, this.chFill, pos, pos + take);
        this.chFill += take;
        pos += take;
        if (this.chFill < Ch.SIZE) return;
        this.chFill = 0;
        const plen = this.checkCommonHeader(this.chBuf, 0);
        if (plen < 0) return;
        this.startPartial(this.chBuf, plen);
        continue;
      }
      // AWAIT_PSH / AWAIT_PAYLOAD: fill the reassembly buffer
      const buf = this.partial;
      const limit = this.headerFirst ? this.headerTarget : this.plen;
      const take = Math.min(limit - this.partialFill, n - pos);
      chunk.copy(buf, this.partialFill, pos, pos + take);
      this.partialFill += take;
      pos += take;
      if (this.state === RecvState.AWAIT_PSH && this.partialFill >= this.pshEnd(buf)) {
        if (!this.checkHeader(buf, 0)) return;
        this.state = RecvState.AWAIT_PAYLOAD;
        // checkCommonHeader made sure pshEnd <= pdo <= plen for a PDU with data
        if (this.headerFirst) this.headerTarget = buf[Ch.PDO];
      }
      if (
        this.headerFirst &&
        this.state === RecvState.AWAIT_PAYLOAD &&
        this.partialFill === this.headerTarget
      ) {
        this.choosePlacement(buf);
        continue;
      }
      if (!this.headerFirst && this.partialFill === this.plen) {
        this.partial = null;
        this.partialFill = 0;
        this.deliver(buf, 0, this.plen);
      }
    }
  }

  /**
   * Where the next socket read may land straight away: the unfilled rest of the data being
   * placed directly (a view of the sink's buffer, exactly as long as what is missing), or null
   * when the next bytes belong in the connection's own buffer. A socket that reads into it
   * reports the bytes with pushPlaced, so they are never copied again. `minLength`: no window
   * for less (a read of its own for a short rest costs more than the copy it saves).
   */
  placementWindow(minLength = 1): Buffer | null {
    const dest = this.direct;
    if (dest === null || this.state === RecvState.ERROR || dest.length - this.directFill < minLength)
      return null;
    return dest.subarray(this.directFill);
  }

  /**
   * Bytes of the stream until the end of the PDU being received (0: at a PDU boundary), or
   * -1 when not known (in the middle of a common header, or stopped).
   */
  bytesToPduEnd(): number {
    if (this.state === RecvState.ERROR || this.chFill > 0) return -1;
    const dest = this.direct;
    if (dest !== null) return dest.length - this.directFill + this.ddgstLen - this.ddgstFill;
    return this.partial === null ? 0 : this.plen - this.partialFill;
  }

  /**
   * The transfer tag of the H2CData PDU being received (its data still arriving): -1 when none
   * is, -2 when one is but its tag has not arrived yet.
   */
  dataTagInProgress(): number {
    if (this.state === RecvState.ERROR || this.chFill > 0) return -2;
    const buf = this.direct !== null || this.headerFirst ? this.hdrBuf : this.partial;
    if (buf === null || buf[Ch.TYPE] !== PduType.H2C_DATA) return -1;
    const have = this.direct !== null ? this.headerTarget : this.partialFill;
    return have >= DataPdu.TTAG + 2 ? buf.readUInt16LE(DataPdu.TTAG) : -2;
  }

  /** `length` bytes were read straight into the window placementWindow gave. */
  pushPlaced(length: number): void {
    // the connection failed after the window was given: the bytes are ignored like any other
    if (this.state === RecvState.ERROR) return;
    const dest = this.direct;
    if (dest === null || length > dest.length - this.directFill) {
      // bytes placed where this receiver expected none: end the connection
      this.error(TermReqFes.PDU_SEQUENCE_ERROR, 0, null);
      return;
    }
    this.directFill += length;
    if (this.directFill === dest.length && this.ddgstFill === this.ddgstLen) this.finishDirect();
  }

  /** Stop parsing: used after the owner decided the connection is dead. */
  fail(): void {
    this.state = RecvState.ERROR;
    this.partial = null;
    this.direct = null;
  }

  private startPartial(ch: Buffer, plen: number): void {
    this.plen = plen;
    const type = ch[Ch.TYPE];
    this.headerFirst =
      this.sink.placeData !== undefined &&
      plen >= DIRECT_PLACEMENT_MIN &&
      (type === PduType.H2C_DATA || type === PduType.C2H_DATA);
    if (this.headerFirst) {
      this.partial = this.hdrBuf;
      this.headerTarget = ch[Ch.HLEN] + (this.headerDigest ? DIGEST_SIZE : 0);
    } else {
      this.partial = Buffer.allocUnsafe(plen);
    }
    ch.copy(this.partial, 0, 0, Ch.SIZE);
    this.partialFill = Ch.SIZE;
    this.state = RecvState.AWAIT_PSH;
  }

  /** Header (and pad) of a large data PDU are in: place its data directly or fall back to a whole copy. */
  private choosePlacement(hdr: Buffer): void {
    this.headerFirst = false;
    const pdo = this.headerTarget;
    const dd = this.dataDigest ? DIGEST_SIZE : 0;
    const dataLength = this.plen - pdo - dd;
    const dest = dataLength > 0 ? (this.sink.placeData?.(hdr.subarray(0, pdo), dataLength) ?? null) : null;
    if (dest !== null && dest.length === dataLength && this.state === RecvState.AWAIT_PAYLOAD) {
      this.partial = null;
      this.direct = dest;
      this.directFill = 0;
      this.ddgstLen = dd;
      this.ddgstFill = 0;
      return;
    }
    const full = Buffer.allocUnsafe(this.plen);
    hdr.copy(full, 0, 0, this.partialFill);
    this.partial = full;
    if (this.partialFill === this.plen) {
      this.partial = null;
      this.partialFill = 0;
      this.deliver(full, 0, this.plen);
    }
  }

  private finishDirect(): void {
    const dest = this.direct as Buffer;
    const ok = this.ddgstLen === 0 || crc32c(dest) === this.ddgstBuf.readUInt32LE(0);
    const header = this.hdrBuf.subarray(0, this.headerTarget);
    this.direct = null;
    this.partialFill = 0;
    this.state = RecvState.AWAIT_CH;
    this.sink.onDataPlaced?.(header, ok);
  }

  private pshEnd(buf: Buffer): number {
    const type = buf[Ch.TYPE];
    return buf[Ch.HLEN] + (this.headerDigest && pduHasHeaderDigest(type) ? DIGEST_SIZE : 0);
  }

  /** Validates type/hlen/plen/pdo of a common header; returns plen, or -1 after reporting an error. */
  private checkCommonHeader(buf: Buffer, off: number): number {
    const type = buf[off + Ch.TYPE];
    const hlen = buf[off + Ch.HLEN];
    const pdo = buf[off + Ch.PDO];
    const plen = buf.readUInt32LE(off + Ch.PLEN);
    if (this.expectType >= 0 && type !== this.expectType) {
      return this.headerError(buf, off, TermReqFes.PDU_SEQUENCE_ERROR, 0);
    }
    if (this.accepts[type] !== 1) return this.headerError(buf, off, TermReqFes.INVALID_HEADER_FIELD, Ch.TYPE);
    if (hlen !== expectedHlen(type))
      return this.headerError(buf, off, TermReqFes.INVALID_HEADER_FIELD, Ch.HLEN);
    const hd = this.headerDigest && pduHasHeaderDigest(type) ? DIGEST_SIZE : 0;
    if (plen < hlen + hd) return this.headerError(buf, off, TermReqFes.INVALID_HEADER_FIELD, Ch.PLEN);
    // IC PDUs have one fixed length: any other is a bad field, not an oversized transfer
    if (type === PduType.IC_REQ || type === PduType.IC_RESP) {
      if (plen !== hlen) return this.headerError(buf, off, TermReqFes.INVALID_HEADER_FIELD, Ch.PLEN);
    }
    if (plen > this.maxPlen)
      return this.headerError(buf, off, TermReqFes.DATA_TRANSFER_LIMIT_EXCEEDED, Ch.PLEN);
    if ((type === PduType.H2C_TERM_REQ || type === PduType.C2H_TERM_REQ) && plen > TermReq.MAX_PLEN) {
      return this.headerError(buf, off, TermReqFes.INVALID_HEADER_FIELD, Ch.PLEN);
    }
    if (plen > hlen + hd && type !== PduType.H2C_TERM_REQ && type !== PduType.C2H_TERM_REQ) {
      // data present: pdo must point past the header (and digest) and inside the PDU
      if (pdo < hlen + hd || pdo > plen)
        return this.headerError(buf, off, TermReqFes.INVALID_HEADER_FIELD, Ch.PDO);
    }
    return plen;
  }

  /** A bad common header: the error names it (a view made only now, not for every valid header). */
  private headerError(buf: Buffer, off: number, fes: number, fei: number): -1 {
    return this.error(fes, fei, buf.subarray(off, off + Ch.SIZE));
  }

  /** Header digest check of the PDU at `at` of `buf`, once its header is complete. */
  private checkHeader(buf: Buffer, at: number): boolean {
    const type = buf[at + Ch.TYPE];
    if (this.headerDigest && pduHasHeaderDigest(type)) {
      const hlen = buf[at + Ch.HLEN];
      const want = buf.readUInt32LE(at + hlen);
      const header = buf.subarray(at, at + hlen);
      if (crc32c(header) !== want) {
        this.error(TermReqFes.HDGST_ERROR, 0, header);
        return false;
      }
    }
    return true;
  }

  /** The whole PDU buf[at, at + plen): checked, then to the sink in place (onPduAt) or as a view. */
  private deliver(buf: Buffer, at: number, plen: number): void {
    this.state = RecvState.AWAIT_CH;
    if (!this.checkHeader(buf, at)) return;
    const type = buf[at + Ch.TYPE];
    const hlen = buf[at + Ch.HLEN];
    const hd = this.headerDigest && pduHasHeaderDigest(type) ? DIGEST_SIZE : 0;
    let dataOffset = hlen + hd;
    let dataLength = 0;
    let ok = true;
    if (type === PduType.H2C_TERM_REQ || type === PduType.C2H_TERM_REQ) {
      dataLength = plen - hlen;
      dataOffset = hlen;
    } else if (plen > hlen + hd) {
      dataOffset = buf[at + Ch.PDO];
      const dd = this.dataDigest ? DIGEST_SIZE : 0;
      dataLength = plen - dataOffset - dd;
      if (dataLength < 0) {
        this.error(TermReqFes.INVALID_HEADER_FIELD, Ch.PLEN, buf.subarray(at, at + hlen));
        return;
      }
      if (dd !== 0) {
        const want = buf.readUInt32LE(at + plen - DIGEST_SIZE);
        ok = crc32c(buf.subarray(at + dataOffset, at + dataOffset + dataLength)) === want;
      }
    }
    const sink = this.sink;
    if (sink.onPduAt !== undefined) sink.onPduAt(buf, at, plen, dataOffset, dataLength, ok);
    else sink.onPdu(buf.subarray(at, at + plen), dataOffset, dataLength, ok);
  }

  private error(fes: number, fei: number, header: Buffer | null): -1 {
    this.state = RecvState.ERROR;
    this.partial = null;
    this.sink.onPduError(fes, fei, header);
    return -1;
  }
}
