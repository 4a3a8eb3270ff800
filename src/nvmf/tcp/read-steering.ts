// Where a plain connection's next read lands: a pooled receive buffer, or straight into the
// buffer of a write command whose large H2CData payload is arriving (the parse then copies
// only the part that came with the PDU's header). The steering follows every read: the
// framer (wire/tcp-framer.ts) spots such a payload in a read not parsed yet, the receiver
// names the one it is filling after each parse.

import { type PayloadPlacer, PduFramer } from '../../wire/tcp-framer.ts';
import { HEADERS_READ_SIZE, type PduReceiver, PLACED_READ_MIN } from '../../wire/tcp-receiver.ts';
import type { ReadSteering } from './socket.ts';

export class PayloadSteering implements ReadSteering {
  private readonly framer = new PduFramer();
  private readonly placer: PayloadPlacer;
  /** the payload's destination the next reads fill (null: none), and how much was read */
  private payload: Buffer | null = null;
  private payloadRead = 0;
  /** the next pooled read's length limit (0: none) */
  private limit = 0;

  constructor(placer: PayloadPlacer) {
    this.placer = placer;
  }

  nextReadTarget(): Buffer | null {
    const p = this.payload;
    if (p === null) return null;
    return this.payloadRead === 0 ? p : p.subarray(this.payloadRead);
  }

  nextReadLimit(): number {
    return this.limit;
  }

  pooledRead(buf: Buffer, n: number): void {
    this.limit = 0;
    // a pooled read's bytes may still be payload (the parse copies them)
    if (this.payload !== null) this.advance(n);
    const rest = this.framer.scan(buf, n, this.placer, PLACED_READ_MIN);
    if (rest !== null && this.payload === null) {
      this.payload = rest;
      this.payloadRead = 0;
    }
  }

  placedRead(n: number): void {
    this.framer.placed(n);
    this.advance(n);
    if (this.payload === null) {
      const toEnd = this.framer.bytesToPduEnd;
      this.limit = toEnd < 0 ? 0 : toEnd + HEADERS_READ_SIZE;
    }
  }

  /** After a parse of every byte read: follow the receiver. */
  resync(receiver: PduReceiver): void {
    this.payload = receiver.placementWindow(PLACED_READ_MIN);
    this.payloadRead = 0;
    this.limit = 0;
    this.framer.resync(receiver.bytesToPduEnd(), receiver.dataTagInProgress());
  }

  /** The connection is ending: reads go to pooled buffers from now on. */
  stop(): void {
    this.payload = null;
    this.limit = 0;
    this.framer.stop();
  }

  private advance(n: number): void {
    const p = this.payload as Buffer;
    this.payloadRead += n;
    if (p.length - this.payloadRead < PLACED_READ_MIN) this.payload = null;
  }
}
