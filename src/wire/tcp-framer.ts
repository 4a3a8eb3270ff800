// Where PDUs begin and end in bytes read but not yet parsed: enough for a socket's read
// callback to see that a large H2CData PDU's payload goes on past the read just made, so the
// rest can be read straight into the command's buffer instead of a receive buffer the parse
// would copy it out of. The framer follows the receiver (resynchronised after every parse)
// and checks what it relies on; at anything unusual it stops until the next resync.

import { crc32c } from '@node-rs/crc32';
import { Ch, DataPdu, DIGEST_SIZE, expectedHlen, PduType } from './tcp.ts';
import { DIRECT_PLACEMENT_MIN } from './tcp-receiver.ts';

/** Who knows where a data PDU's payload belongs (the TCP qpair: PduSink.placeData). */
export interface PayloadPlacer {
  readonly headerDigest: boolean;
  readonly dataDigest: boolean;
  placeData(header: Buffer, dataLength: number): Buffer | null;
}

export class PduFramer {
  /** bytes until the end of the current PDU (0: at a boundary), -1: not framing */
  private toEnd = 0;
  /** the transfer tags of the H2CData PDUs begun since the last parse */
  private readonly seenTags: number[] = [];

  /**
   * After a parse (every byte read so far is parsed): the receiver's bytesToPduEnd and
   * dataTagInProgress. The tag of a data PDU still arriving counts as seen: its data moves
   * that command on when the parse gets it. An unknown one (-2) stops the framer.
   */
  resync(bytesToPduEnd: number, dataTagInProgress = -1): void {
    // pops stay inline and keep the array's room (length = 0 is a runtime call that drops it)
    const seen = this.seenTags;
    while (seen.length > 0) seen.pop();
    if (dataTagInProgress === -2) {
      this.toEnd = -1;
      return;
    }
    this.toEnd = bytesToPduEnd;
    if (dataTagInProgress >= 0) this.seenTags.push(dataTagInProgress);
  }

  stop(): void {
    this.toEnd = -1;
  }

  /** Bytes until the end of the current PDU (0: at a boundary), -1 when not framing. */
  get bytesToPduEnd(): number {
    return this.toEnd;
  }

  /** `n` bytes were read straight into a payload: they end no PDU before that payload does. */
  placed(n: number): void {
    this.toEnd = this.toEnd < n ? -1 : this.toEnd - n;
  }

  /**
   * Frame bytes [0, n) of a read. Returns the rest of a payload's destination when a large
   * H2CData PDU begins in them and its payload goes on past them (at least `minRest` bytes),
   * else null. Only the first H2CData PDU of its transfer tag since the last parse qualifies:
   * an earlier one of the same tag changes what the parse will find (that command's progress);
   * nothing else does.
   */
  scan(chunk: Buffer, n: number, placer: PayloadPlacer, minRest: number): Buffer | null {
    let pos = 0;
    while (pos < n) {
      const toEnd = this.toEnd;
      if (toEnd < 0) return null;
      if (toEnd > 0) {
        const skip = Math.min(toEnd, n - pos);
        this.toEnd = toEnd - skip;
        pos += skip;
        continue;
      }
      if (n - pos < Ch.SIZE) {
        // a common header split across reads: left to the parse
        this.toEnd = -1;
        return null;
      }
      const plen = chunk.readUInt32LE(pos + Ch.PLEN);
      if (plen < Ch.SIZE) {
        this.toEnd = -1;
        return null;
      }
      this.toEnd = plen;
      if (chunk[pos + Ch.TYPE] !== PduType.H2C_DATA) continue;
      if (n - pos < DataPdu.TTAG + 2) {
        this.toEnd = -1;
        return null;
      }
      const ttag = chunk.readUInt16LE(pos + DataPdu.TTAG);
      const first = !this.seenTags.includes(ttag);
      if (first) this.seenTags.push(ttag);
      if (!first || plen < DIRECT_PLACEMENT_MIN || plen <= n - pos) continue;
      const rest = restOfPayload(chunk, pos, n, plen, placer, minRest);
      if (rest !== null) {
        this.toEnd = plen - (n - pos);
        return rest;
      }
    }
    return null;
  }
}

/** The H2CData PDU at `at` straddles the read's end: the rest of its payload's destination. */
function restOfPayload(
  chunk: Buffer,
  at: number,
  n: number,
  plen: number,
  placer: PayloadPlacer,
  minRest: number,
): Buffer | null {
  const hlen = chunk[at + Ch.HLEN];
  const pdo = chunk[at + Ch.PDO];
  const hd = placer.headerDigest ? DIGEST_SIZE : 0;
  const dd = placer.dataDigest ? DIGEST_SIZE : 0;
  // a header the parse would refuse, or one not whole in this read, is left to the parse
  if (hlen !== expectedHlen(PduType.H2C_DATA) || pdo < hlen + hd || pdo > n - at || pdo + dd >= plen) {
    return null;
  }
  if (hd !== 0 && crc32c(chunk.subarray(at, at + hlen)) !== chunk.readUInt32LE(at + hlen)) return null;
  const dataLength = plen - pdo - dd;
  const inRead = n - at - pdo;
  if (dataLength - inRead < minRest) return null;
  const dest = placer.placeData(chunk.subarray(at, at + pdo), dataLength);
  if (dest === null || dest.length !== dataLength) return null;
  return dest.subarray(inRead);
}
