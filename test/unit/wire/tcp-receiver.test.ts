import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SQE_SIZE, Sqe } from '../../../src/wire/nvme.ts';
import { CapsuleCmd, Ch, DIGEST_SIZE, IcDigest, PduType, TermReqFes } from '../../../src/wire/tcp.ts';
import { HOST_ACCEPTS, PduReceiver, RecvState, TARGET_ACCEPTS } from '../../../src/wire/tcp-receiver.ts';
import { capsuleCmd, h2cData as h2cPdu, icReq as icReqPdu } from '../../lib/raw-pdu.ts';

interface Got {
  type: number;
  data: string;
  ok: boolean;
}

function collector(accepts: readonly number[], hd = false, dd = false) {
  const pdus: Got[] = [];
  const errors: Array<[number, number]> = [];
  const rx = new PduReceiver(
    {
      onPdu(pdu, off, len, ok) {
        pdus.push({ type: pdu[Ch.TYPE], data: pdu.toString('hex', off, off + len), ok });
      },
      onPduError(fes, fei) {
        errors.push([fes, fei]);
      },
    },
    accepts,
    1 << 20,
  );
  rx.headerDigest = hd;
  rx.dataDigest = dd;
  return { rx, pdus, errors };
}

function icReq(): Buffer {
  return icReqPdu({ dgst: IcDigest.HDGST_ENABLE | IcDigest.DDGST_ENABLE });
}

/** CapsuleCmd (an SQE holding only `cid`) with optional in-capsule data and digests. */
function capsule(data: Buffer, hd: boolean, dd: boolean, cid: number): Buffer {
  const sqe = Buffer.alloc(SQE_SIZE);
  sqe.writeUInt16LE(cid, Sqe.CID);
  return capsuleCmd(sqe, data, { hdgst: hd, ddgst: dd });
}

/** The last H2CData of a transfer: tag 0, offset 0. */
function h2cData(data: Buffer, hd: boolean, dd: boolean): Buffer {
  return h2cPdu({ cccid: 0, ttag: 0, datao: 0 }, data, { hdgst: hd, ddgst: dd });
}

for (const [hd, dd] of [
  [false, false],
  [true, true],
] as const) {
  test(`every PDU split at every byte boundary is received the same (digests ${hd})`, () => {
    const stream = Buffer.concat([
      capsule(Buffer.alloc(0), hd, dd, 1),
      capsule(Buffer.from('hello in-capsule data'), hd, dd, 2),
      h2cData(Buffer.from('0123456789abcdef'), hd, dd),
    ]);
    const whole = collector(TARGET_ACCEPTS, hd, dd);
    whole.rx.push(stream);
    assert.equal(whole.pdus.length, 3);
    assert.equal(whole.errors.length, 0);
    assert.equal(whole.pdus[1].data, Buffer.from('hello in-capsule data').toString('hex'));
    for (let cut = 1; cut < stream.length; cut++) {
      const c = collector(TARGET_ACCEPTS, hd, dd);
      c.rx.push(stream.subarray(0, cut));
      c.rx.push(stream.subarray(cut));
      assert.deepEqual(c.pdus, whole.pdus, `cut at ${cut}`);
      assert.equal(c.rx.state, RecvState.AWAIT_CH);
    }
    // and one byte at a time
    const c = collector(TARGET_ACCEPTS, hd, dd);
    for (let i = 0; i < stream.length; i++) c.rx.push(stream.subarray(i, i + 1));
    assert.deepEqual(c.pdus, whole.pdus);
  });
}

test('random chunking never changes what is received (property)', () => {
  const stream = Buffer.concat([
    icReq(),
    capsule(Buffer.alloc(100, 7), false, false, 3),
    h2cData(Buffer.alloc(333, 9), false, false),
  ]);
  const whole = collector(TARGET_ACCEPTS);
  whole.rx.push(stream);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 20 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const c = collector(TARGET_ACCEPTS);
      let prev = 0;
      for (const p of [...points, stream.length]) {
        c.rx.push(stream.subarray(prev, p));
        prev = p;
      }
      assert.deepEqual(c.pdus, whole.pdus);
    }),
  );
});

test('header digest mismatch is FES 3; data digest mismatch is reported, not fatal', () => {
  const bad = capsule(Buffer.alloc(16, 1), true, true, 1);
  bad[CapsuleCmd.HDR_SIZE + DIGEST_SIZE + 4] ^= 0xff; // a data byte
  const c = collector(TARGET_ACCEPTS, true, true);
  c.rx.push(bad);
  assert.equal(c.pdus.length, 1);
  assert.equal(c.pdus[0].ok, false);
  const badHeader = capsule(Buffer.alloc(0), true, false, 1);
  badHeader[CapsuleCmd.SQE + 12] ^= 1; // a byte of the SQE: the header digest no longer matches
  const c2 = collector(TARGET_ACCEPTS, true, false);
  c2.rx.push(badHeader);
  assert.deepEqual(c2.errors, [[TermReqFes.HDGST_ERROR, 0]]);
  assert.equal(c2.rx.state, RecvState.ERROR);
});

test('bad common headers are rejected with the right FES and field offset', () => {
  const cases: Array<[Buffer, readonly number[], number, number]> = [];
  const wrongType = capsule(Buffer.alloc(0), false, false, 1);
  wrongType[Ch.TYPE] = PduType.CAPSULE_RESP; // host-bound PDU sent to a target
  cases.push([wrongType, TARGET_ACCEPTS, TermReqFes.INVALID_HEADER_FIELD, 0]);
  const unknown = capsule(Buffer.alloc(0), false, false, 1);
  unknown[Ch.TYPE] = 0x42;
  cases.push([unknown, TARGET_ACCEPTS, TermReqFes.INVALID_HEADER_FIELD, 0]);
  const badHlen = capsule(Buffer.alloc(0), false, false, 1);
  badHlen[Ch.HLEN] = 70;
  cases.push([badHlen, TARGET_ACCEPTS, TermReqFes.INVALID_HEADER_FIELD, 2]);
  const shortPlen = capsule(Buffer.alloc(0), false, false, 1);
  shortPlen.writeUInt32LE(60, Ch.PLEN);
  cases.push([shortPlen, TARGET_ACCEPTS, TermReqFes.INVALID_HEADER_FIELD, 4]);
  const hugePlen = capsule(Buffer.alloc(0), false, false, 1);
  hugePlen.writeUInt32LE(1 << 30, Ch.PLEN);
  cases.push([hugePlen, TARGET_ACCEPTS, TermReqFes.DATA_TRANSFER_LIMIT_EXCEEDED, 4]);
  const badPdo = capsule(Buffer.alloc(8), false, false, 1);
  badPdo[Ch.PDO] = 10;
  cases.push([badPdo, TARGET_ACCEPTS, TermReqFes.INVALID_HEADER_FIELD, 3]);
  const icWithData = Buffer.concat([icReq(), Buffer.alloc(4)]);
  icWithData.writeUInt32LE(132, Ch.PLEN);
  cases.push([icWithData, TARGET_ACCEPTS, TermReqFes.INVALID_HEADER_FIELD, 4]);
  cases.push([icReq(), HOST_ACCEPTS, TermReqFes.INVALID_HEADER_FIELD, 0]);
  for (const [pdu, accepts, fes, fei] of cases) {
    const c = collector(accepts);
    c.rx.push(pdu);
    assert.deepEqual(c.errors, [[fes, fei]], pdu.subarray(0, 8).toString('hex'));
    assert.equal(c.pdus.length, 0);
    // nothing after an error is parsed
    c.rx.push(capsule(Buffer.alloc(0), false, false, 1));
    assert.equal(c.pdus.length, 0);
  }
});

test('arbitrary bytes never throw (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, hd) => {
      const c = collector(TARGET_ACCEPTS, hd, hd);
      c.rx.push(Buffer.from(bytes));
      assert.ok(c.errors.length <= 1);
    }),
  );
});

test('large data PDUs split anywhere are placed directly in the sink buffer, with digests', () => {
  for (const dd of [false, true]) {
    const payload = Buffer.alloc(3000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    const one = h2cData(payload, dd, dd);
    const stream = Buffer.concat([one, capsule(Buffer.alloc(0), dd, dd, 9), one]);
    for (let cut = 1; cut < stream.length; cut += 7) {
      const dests: Buffer[] = [];
      const events: string[] = [];
      const rx = new PduReceiver(
        {
          onPdu: (pdu) => events.push(`pdu${pdu[0]}`),
          onPduError: (fes, fei) => events.push(`err${fes}/${fei}`),
          placeData: (header, len) => {
            assert.equal(header[0], PduType.H2C_DATA);
            const d = Buffer.alloc(len);
            dests.push(d);
            return d;
          },
          onDataPlaced: (_h, ok) => events.push(`placed${ok}`),
        },
        TARGET_ACCEPTS,
        1 << 20,
      );
      rx.headerDigest = dd;
      rx.dataDigest = dd;
      rx.push(stream.subarray(0, cut));
      rx.push(stream.subarray(cut));
      // a PDU wholly inside one chunk is delivered as a view instead (no copy needed)
      for (const e of events) assert.match(e, /^(pdu6|pdu4|placedtrue)$/, `cut ${cut}: ${events}`);
      assert.equal(events.length, 3, `cut ${cut}`);
      for (const d of dests) assert.ok(d.equals(payload), `cut ${cut}`);
    }
  }
});

test('a placement window takes reads straight into the sink buffer; the rest goes through push', () => {
  for (const dd of [false, true]) {
    const payload = Buffer.alloc(40000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const one = h2cData(payload, dd, dd);
    const stream = Buffer.concat([one, capsule(Buffer.alloc(0), dd, dd, 9)]);
    for (const cut of [30, 100, 20000]) {
      const events: string[] = [];
      let dest: Buffer | null = null;
      const rx = new PduReceiver(
        {
          onPdu: (pdu) => events.push(`pdu${pdu[0]}`),
          onPduError: (fes, fei) => events.push(`err${fes}/${fei}`),
          placeData: (_h, len) => {
            dest = Buffer.alloc(len);
            return dest;
          },
          onDataPlaced: (_h, ok) => events.push(`placed${ok}`),
        },
        TARGET_ACCEPTS,
        1 << 20,
      );
      rx.headerDigest = dd;
      rx.dataDigest = dd;
      assert.equal(rx.placementWindow(), null, 'nothing to place yet');
      rx.push(stream.subarray(0, cut));
      const pdo = one[Ch.PDO];
      const missing = payload.length - (cut - pdo);
      assert.equal(rx.placementWindow(missing + 1), null, 'no window shorter than asked');
      const win = rx.placementWindow(missing);
      assert.ok(win !== null && win.length === missing, `cut ${cut}`);
      // the socket reads straight into the window, in two reads
      const from = cut;
      stream.copy(win, 0, from, from + 1000);
      rx.pushPlaced(1000);
      const win2 = rx.placementWindow() as Buffer;
      assert.equal(win2.length, missing - 1000);
      stream.copy(win2, 0, from + 1000, from + missing);
      rx.pushPlaced(missing - 1000);
      assert.equal(rx.placementWindow(), null, 'all data placed');
      // digest (if any) and the next PDU come through the connection's own buffer
      rx.push(stream.subarray(from + missing));
      assert.deepEqual(events, ['placedtrue', 'pdu4'], `cut ${cut} dd ${dd}`);
      assert.ok((dest as Buffer | null)?.equals(payload), `cut ${cut}`);
    }
  }
});

test('a sink that declines placement gets the whole PDU', () => {
  const payload = Buffer.alloc(2048, 3);
  const one = h2cData(payload, false, false);
  const got: string[] = [];
  const rx = new PduReceiver(
    {
      onPdu: (pdu, off, len) => got.push(pdu.toString('hex', off, off + len)),
      onPduError: () => got.push('error'),
      placeData: () => null,
    },
    TARGET_ACCEPTS,
    1 << 20,
  );
  rx.push(one.subarray(0, 100));
  rx.push(one.subarray(100));
  assert.deepEqual(got, [payload.toString('hex')]);
});

test('a sink with onPduAt gets each PDU in place: the chunk and its offset, no view', () => {
  for (const [hd, dd] of [
    [false, false],
    [true, true],
  ] as const) {
    const pdus = [
      capsule(Buffer.alloc(0), hd, dd, 1),
      capsule(Buffer.from('in place'), hd, dd, 2),
      h2cData(Buffer.from('0123456789abcdef'), hd, dd),
    ];
    const stream = Buffer.concat(pdus);
    const viaViews = collector(TARGET_ACCEPTS, hd, dd);
    viaViews.rx.push(stream);
    for (let cut = 0; cut < stream.length; cut++) {
      const got: Got[] = [];
      const places: Array<{ inChunk: boolean; at: number; plen: number }> = [];
      const chunks = cut === 0 ? [stream] : [stream.subarray(0, cut), stream.subarray(cut)];
      let current: Buffer | null = null;
      const rx = new PduReceiver(
        {
          onPdu: () => assert.fail('onPdu called although onPduAt is there'),
          onPduAt(buf, at, plen, off, len, ok) {
            places.push({ inChunk: buf === current, at, plen });
            got.push({ type: buf[at + Ch.TYPE], data: buf.toString('hex', at + off, at + off + len), ok });
          },
          onPduError: () => assert.fail('error'),
        },
        TARGET_ACCEPTS,
        1 << 20,
      );
      rx.headerDigest = hd;
      rx.dataDigest = dd;
      for (const c of chunks) {
        current = c;
        rx.push(c);
      }
      assert.deepEqual(got, viaViews.pdus, `cut ${cut}`);
      // where each PDU was: whole inside a chunk, at its offset in it; else reassembled, at 0
      let start = 0;
      for (const [i, p] of pdus.entries()) {
        const end = start + p.length;
        const whole = cut === 0 || end <= cut || start >= cut;
        const at = cut === 0 || end <= cut ? start : start - cut;
        assert.deepEqual(
          places[i],
          whole ? { inChunk: true, at, plen: p.length } : { inChunk: false, at: 0, plen: p.length },
          `cut ${cut}, PDU ${i}`,
        );
        start = end;
      }
    }
  }
});
