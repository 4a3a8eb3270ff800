// Property-based fuzzing of the NVMe/TCP PDU receiver (src/wire/tcp-receiver.ts),
// shared by the CI test (fixed seed, few runs) and `npm run fuzz` (long runs).
// Streams are valid PDU sequences, mutated ones, or arbitrary bytes, cut into
// arbitrary chunks. Properties: push() never throws; at most one error and
// nothing delivered after it; every delivered PDU is well formed; and the
// outcome does not depend on how the stream was chunked (nor on whether data
// is placed directly into the sink's buffers).

import fc from 'fast-check';
import {
  Ch,
  DataPdu,
  DIGEST_SIZE,
  dataDigest,
  expectedHlen,
  PduFlags,
  PduType,
  writeCommonHeader,
  writeHeaderDigest,
} from '../../src/wire/tcp.ts';
import { HOST_ACCEPTS, PduReceiver, type PduSink, TARGET_ACCEPTS } from '../../src/wire/tcp-receiver.ts';

export interface ReceiverOutcome {
  /** delivered PDUs as "type:hex of data:digest ok" */
  pdus: string[];
  /** errors reported: "fes/fei" */
  errors: string[];
  /** a PDU delivered after an error, or a malformed delivery (names the problem) */
  violations: string[];
}

interface Digests {
  hd: boolean;
  dd: boolean;
}

/** Feed `chunks` to a fresh receiver and record what it reports. */
export function runReceiver(
  chunks: Buffer[],
  side: 'target' | 'host',
  dg: Digests,
  maxPlen: number,
  direct: boolean,
  /** as the target's queue before ICResp: only an ICReq may come first */
  icReqFirst = false,
): ReceiverOutcome {
  const accepts = side === 'target' ? TARGET_ACCEPTS : HOST_ACCEPTS;
  const out: ReceiverOutcome = { pdus: [], errors: [], violations: [] };
  const check = (pdu: Buffer, what: string) => {
    if (out.errors.length > 0) out.violations.push(`${what} delivered after an error`);
    const type = pdu[Ch.TYPE];
    if (!accepts.includes(type)) out.violations.push(`${what}: type ${type} not accepted by the ${side}`);
    if (pdu[Ch.HLEN] !== expectedHlen(type)) out.violations.push(`${what}: hlen ${pdu[Ch.HLEN]}`);
  };
  const placed = new Map<Buffer, Buffer>();
  const sink: PduSink = {
    onPdu(pdu, off, len, ok) {
      check(pdu, 'PDU');
      if (pdu[Ch.TYPE] === PduType.IC_REQ) rx.expectType = -1;
      if (pdu.length !== pdu.readUInt32LE(Ch.PLEN)) out.violations.push('PDU length differs from plen');
      if (off < 0 || len < 0 || off + len > pdu.length) out.violations.push(`data [${off}, +${len}) outside`);
      out.pdus.push(`${pdu[Ch.TYPE]}:${pdu.toString('hex', off, off + len)}:${ok}`);
    },
    onPduError(fes, fei) {
      if (out.errors.length > 0) out.violations.push('a second error');
      out.errors.push(`${fes}/${fei}`);
    },
  };
  if (direct) {
    sink.placeData = (header, dataLength) => {
      const b = Buffer.alloc(dataLength);
      placed.set(header, b);
      return b;
    };
    sink.onDataPlaced = (header, ok) => {
      check(header, 'placed PDU');
      // report it the same way as a whole PDU so that outcomes compare
      const data = [...placed.values()].pop() ?? Buffer.alloc(0);
      placed.clear();
      out.pdus.push(`${header[Ch.TYPE]}:${data.toString('hex')}:${ok}`);
    };
  }
  const rx = new PduReceiver(sink, accepts, maxPlen);
  if (icReqFirst) rx.expectType = PduType.IC_REQ;
  rx.headerDigest = dg.hd;
  rx.dataDigest = dg.dd;
  for (const c of chunks) {
    try {
      rx.push(c);
    } catch (e) {
      out.violations.push(`push threw: ${(e as Error)?.stack ?? e}`);
      break;
    }
  }
  return out;
}

/** Cut `stream` at the given (sorted, deduplicated) positions. */
export function cut(stream: Buffer, cuts: number[]): Buffer[] {
  const pos = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of pos) {
    if (p > prev) out.push(stream.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  if (prev < stream.length) out.push(stream.subarray(prev));
  // chunks are copies, as a socket would hand them out
  return out.map((b) => Buffer.from(b));
}

/** One valid PDU a side may receive, with digests as negotiated. */
function buildPdu(type: number, data: Buffer, dg: Digests, hdrBytes: Buffer): Buffer {
  const hlen = expectedHlen(type);
  const isTerm = type === PduType.H2C_TERM_REQ || type === PduType.C2H_TERM_REQ;
  const isIc = type === PduType.IC_REQ || type === PduType.IC_RESP;
  const hd = dg.hd && !isTerm && !isIc ? DIGEST_SIZE : 0;
  const withData = !isIc && data.length > 0;
  const dd = dg.dd && withData && !isTerm ? DIGEST_SIZE : 0;
  const pdo = withData && !isTerm ? hlen + hd : 0;
  const plen = isIc ? hlen : hlen + hd + (withData ? data.length : 0) + dd;
  const b = Buffer.alloc(plen);
  hdrBytes.copy(b, Ch.SIZE, 0, Math.min(hdrBytes.length, hlen - Ch.SIZE));
  let flags = 0;
  if (hd) flags |= PduFlags.HDGST;
  if (dd) flags |= PduFlags.DDGST;
  writeCommonHeader(b, type, flags, hlen, pdo, plen);
  if (type === PduType.H2C_DATA || type === PduType.C2H_DATA) b.writeUInt32LE(data.length, DataPdu.DATAL);
  if (hd) writeHeaderDigest(b, hlen);
  if (withData) {
    data.copy(b, hlen + hd);
    if (dd) b.writeUInt32LE(dataDigest(data), hlen + hd + data.length);
  }
  return b;
}

const pduSpec = (side: 'target' | 'host') =>
  fc.record({
    type: fc.constantFrom(...(side === 'target' ? TARGET_ACCEPTS : HOST_ACCEPTS)),
    data: fc.oneof(
      fc.constant(Buffer.alloc(0)),
      fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
      fc.integer({ min: 1000, max: 9000 }).map((n) => Buffer.alloc(n, n & 0xff)),
    ),
    hdr: fc.uint8Array({ minLength: 120, maxLength: 120 }).map((a) => Buffer.from(a)),
  });

/** A stream: valid PDUs, optionally mutated (byte flips, truncation, inserted junk), or random bytes. */
export const streamArb = fc
  .record({
    side: fc.constantFrom<'target' | 'host'>('target', 'host'),
    dg: fc.record({ hd: fc.boolean(), dd: fc.boolean() }),
    kind: fc.constantFrom('valid', 'mutated', 'random'),
  })
  .chain(({ side, dg, kind }) =>
    fc.record({
      side: fc.constant(side),
      dg: fc.constant(dg),
      kind: fc.constant(kind),
      pdus: fc.array(pduSpec(side), { minLength: 1, maxLength: 6 }),
      random: fc.uint8Array({ maxLength: 600 }),
      flips: fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), {
        minLength: 1,
        maxLength: 4,
      }),
      truncate: fc.option(fc.nat(), { nil: undefined }),
      cuts: fc.array(fc.nat(), { maxLength: 40 }),
      oneByte: fc.boolean(),
      icReqFirst: fc.boolean(),
      maxPlen: fc.constantFrom(128, 1024, 16384, 1 << 20),
    }),
  )
  .map((s) => {
    let stream: Buffer;
    if (s.kind === 'random') stream = Buffer.from(s.random);
    else {
      stream = Buffer.concat(s.pdus.map((p) => buildPdu(p.type, p.data, s.dg, p.hdr)));
      if (s.kind === 'mutated') {
        stream = Buffer.from(stream);
        for (const f of s.flips) stream[f.at % stream.length] ^= f.xor;
        if (s.truncate !== undefined) stream = stream.subarray(0, s.truncate % (stream.length + 1));
      }
    }
    return { ...s, stream };
  });

type StreamCase = typeof streamArb extends fc.Arbitrary<infer T> ? T : never;

/** The receiver property over one generated stream; returns a reason on failure, null when it holds. */
export function receiverPropertyHolds(s: StreamCase): string | null {
  const first = s.icReqFirst && s.side === 'target';
  const whole = runReceiver([Buffer.from(s.stream)], s.side, s.dg, s.maxPlen, false, first);
  const chunks =
    s.oneByte && s.stream.length <= 4096
      ? cut(s.stream, [...Array(s.stream.length).keys()])
      : cut(s.stream, s.cuts);
  const chunked = runReceiver(chunks, s.side, s.dg, s.maxPlen, false, first);
  const direct = runReceiver(cut(s.stream, s.cuts), s.side, s.dg, s.maxPlen, true, first);
  for (const [name, o] of [
    ['whole', whole],
    ['chunked', chunked],
    ['direct placement', direct],
  ] as const) {
    if (o.violations.length > 0) return `${name}: ${o.violations.join('; ')}`;
  }
  const key = (o: ReceiverOutcome) => JSON.stringify([o.pdus, o.errors]);
  if (key(whole) !== key(chunked)) return `chunking changed the outcome: ${key(whole)} vs ${key(chunked)}`;
  if (key(whole) !== key(direct))
    return `direct placement changed the outcome: ${key(whole)} vs ${key(direct)}`;
  if (first && whole.pdus.length === 0 && whole.errors.length > 0 && s.stream.length >= 8) {
    if (s.stream[0] !== PduType.IC_REQ && whole.errors[0] !== '2/0') {
      return `a first PDU of type ${s.stream[0]} before the ICReq: error ${whole.errors[0]}, not 2/0`;
    }
  }
  if (s.kind === 'valid' && s.maxPlen >= 1 << 20) {
    // valid PDUs may still break a rule of the stream: TermReq data over 128 bytes (01h),
    // or, before the ICReq, any other PDU first (02h)
    const allowed = first ? /^(1\/|5\/|2\/0$)/ : /^(1|5)\//;
    if (whole.errors.length > 0 && !allowed.test(whole.errors[0]))
      return `valid stream: error ${whole.errors}`;
  }
  return null;
}

/** fast-check property for CI and the long fuzzer. */
export function receiverProperty() {
  return fc.property(streamArb, (s) => {
    const why = receiverPropertyHolds(s);
    if (why !== null) throw new Error(why);
  });
}
