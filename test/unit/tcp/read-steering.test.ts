// Reads of a large H2CData payload go straight into the command's buffer: the framer spots
// such a payload in a read not parsed yet, a plain socket reads the rest there, and the
// receiver learns only the count. What lands must be exactly what the parse of a copy would
// have put there, however the stream is split, with digests on or off.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { PayloadSteering } from '../../../src/nvmf/tcp/read-steering.ts';
import { PLACED_DATA, PlainSocket, RxBufferPool } from '../../../src/nvmf/tcp/socket.ts';
import { Ch, DataPdu, newDataPduHeader, PduType, readDataPduHeader } from '../../../src/wire/tcp.ts';
import { type PayloadPlacer, PduFramer } from '../../../src/wire/tcp-framer.ts';
import { PduReceiver, TARGET_ACCEPTS } from '../../../src/wire/tcp-receiver.ts';
import { capsuleCmd, h2cData, rawSqe } from '../../lib/raw-pdu.ts';

/** Commands waiting for data: ttag -> buffer; placeData answers as the TCP qpair does. */
class Waiting implements PayloadPlacer {
  headerDigest = false;
  dataDigest = false;
  readonly buffers = new Map<number, Buffer>();
  readonly received = new Map<number, number>();
  readonly asked: number[] = [];
  private readonly h = newDataPduHeader();

  placeData(header: Buffer, dataLength: number): Buffer | null {
    const { ttag, datao, datal } = readDataPduHeader(header, this.h);
    this.asked.push(ttag);
    const buf = this.buffers.get(ttag);
    if (buf === undefined || datal !== dataLength || datao !== (this.received.get(ttag) ?? 0)) return null;
    if (datao + datal > buf.length) return null;
    return buf.subarray(datao, datao + datal);
  }
}

function sameMemory(a: Buffer, b: Buffer): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.length === b.length;
}

const capsule = () => capsuleCmd(rawSqe(0x01, 1));

test('framer: the rest of a large H2CData payload that goes on past the read, once per tag and parse', () => {
  const w = new Waiting();
  w.buffers.set(3, Buffer.alloc(65536));
  w.buffers.set(4, Buffer.alloc(65536));
  const f = new PduFramer();
  f.resync(0);
  const first = Buffer.concat([capsule(), h2cData({ cccid: 1, ttag: 3, datao: 0 }, randomBytes(65536))]);
  const cut = capsule().length + DataPdu.HDR_SIZE + 1000;
  const rest = f.scan(first, cut, w, 16384);
  assert.ok(rest !== null, 'the payload goes on past the read');
  assert.ok(
    sameMemory(rest, (w.buffers.get(3) as Buffer).subarray(1000)),
    'the rest of ttag 3, after the 1000 bytes read',
  );
  // the reads that fill it, then the next PDUs: another tag's data PDU is placed too
  f.placed(rest.length);
  const next = Buffer.concat([capsule(), h2cData({ cccid: 2, ttag: 4, datao: 0 }, randomBytes(65536))]);
  const four = f.scan(next, 200, w, 16384);
  const fourAt = 200 - capsule().length - DataPdu.HDR_SIZE;
  assert.ok(four !== null && sameMemory(four, (w.buffers.get(4) as Buffer).subarray(fourAt)), 'tag 4 placed');
  f.placed(four.length);
  // a second data PDU of tag 3 before a parse is left alone, even one the command would take
  // now (a host sending offset 0 again): the parse of the first moves the command on first
  const again0 = h2cData({ cccid: 1, ttag: 3, datao: 0 }, randomBytes(65536));
  assert.ok(f.scan(again0, 100, w, 16384) === null, 'a second data PDU of one tag since the parse');
  assert.deepEqual(w.asked, [3, 4]);
  f.resync(0);
  const three = h2cData({ cccid: 1, ttag: 3, datao: 65536 }, randomBytes(65536));
  w.buffers.set(3, Buffer.alloc(131072));
  // after a parse (that command 64 KiB on) it qualifies
  w.received.set(3, 65536);
  f.resync(0);
  const again = f.scan(three, 100, w, 16384);
  const threeAt = 65536 + 100 - DataPdu.HDR_SIZE;
  assert.ok(
    again !== null && sameMemory(again, (w.buffers.get(3) as Buffer).subarray(threeAt)),
    'tag 3 after a parse',
  );
});

test('framer: after a parse, the data PDU still arriving counts as seen; an unknown one stops it', () => {
  const w = new Waiting();
  w.buffers.set(3, Buffer.alloc(65536));
  // the host sends tag 3's data twice from offset 0 while the first is still arriving: the
  // second must not be steered (the first completes the command, its buffer goes elsewhere)
  const dup = h2cData({ cccid: 1, ttag: 3, datao: 0 }, randomBytes(65536));
  const f = new PduFramer();
  f.resync(5000, 3);
  const read = Buffer.concat([randomBytes(5000), dup.subarray(0, 200)]);
  assert.ok(f.scan(read, read.length, w, 16384) === null);
  assert.deepEqual(w.asked, []);
  f.resync(5000, -1);
  assert.ok(f.scan(read, read.length, w, 16384) !== null, 'with no data PDU in progress it is steered');
  f.resync(5000, -2);
  assert.ok(f.scan(read, read.length, w, 16384) === null, 'a data PDU of unknown tag in progress');
});

test('receiver: where the stream is after a parse (bytes to the PDU end, the data tag arriving)', () => {
  const w = new Waiting();
  w.buffers.set(7, Buffer.alloc(65536));
  const rx = new PduReceiver(
    {
      onPdu() {},
      onPduError: () => assert.fail('no error'),
      placeData: (h, n) => w.placeData(h, n),
      onDataPlaced() {},
    },
    TARGET_ACCEPTS,
    1 << 20,
  );
  const pdu = h2cData({ cccid: 1, ttag: 7, datao: 0 }, randomBytes(65536));
  assert.deepEqual([rx.bytesToPduEnd(), rx.dataTagInProgress()], [0, -1]);
  rx.push(pdu, 4);
  assert.deepEqual([rx.bytesToPduEnd(), rx.dataTagInProgress()], [-1, -2], 'inside the common header');
  rx.push(pdu.subarray(4), 6);
  assert.deepEqual([rx.bytesToPduEnd(), rx.dataTagInProgress()], [pdu.length - 10, -2], 'tag not in yet');
  rx.push(pdu.subarray(10), 1000);
  assert.deepEqual([rx.bytesToPduEnd(), rx.dataTagInProgress()], [pdu.length - 1010, 7], 'placing its data');
  const rest = rx.placementWindow(1024);
  assert.ok(
    rest !== null && sameMemory(rest, (w.buffers.get(7) as Buffer).subarray(1010 - DataPdu.HDR_SIZE)),
  );
  pdu.copy(rest, 0, 1010);
  rx.pushPlaced(rest.length);
  assert.deepEqual([rx.bytesToPduEnd(), rx.dataTagInProgress()], [0, -1]);
  assert.ok((w.buffers.get(7) as Buffer).equals(pdu.subarray(DataPdu.HDR_SIZE)));
});

test('framer: whole PDUs, short rests, split headers, refused and wrong headers are left to the parse', () => {
  const w = new Waiting();
  w.buffers.set(1, Buffer.alloc(65536));
  const pdu = h2cData({ cccid: 1, ttag: 1, datao: 0 }, randomBytes(65536));
  const f = new PduFramer();
  f.resync(0);
  assert.ok(f.scan(pdu, pdu.length, w, 16384) === null, 'the whole PDU in the read');
  f.resync(0);
  assert.ok(f.scan(pdu, pdu.length - 1000, w, 16384) === null, 'less than minRest to come');
  f.resync(0);
  assert.ok(f.scan(pdu, 5, w, 16384) === null, 'the common header split');
  assert.ok(f.scan(pdu, pdu.length, w, 16384) === null, 'stopped until a resync');
  // a command not waiting: the placer says no, framing goes on to the next PDU
  const other = h2cData({ cccid: 9, ttag: 9, datao: 0 }, randomBytes(32768));
  f.resync(0);
  assert.ok(f.scan(Buffer.concat([other, capsule()]), other.length + 10, w, 1024) === null);
  // a header length the parse refuses
  const badHlen = Buffer.from(pdu);
  badHlen[Ch.HLEN] = 20;
  f.resync(0);
  assert.ok(f.scan(badHlen, 4096, w, 16384) === null);
  // header digests: a wrong one is never trusted, the right one is
  w.headerDigest = true;
  const hd = h2cData({ cccid: 1, ttag: 1, datao: 0 }, randomBytes(65536), { hdgst: true });
  const wrong = Buffer.from(hd);
  wrong[DataPdu.HDR_SIZE] ^= 1;
  f.resync(0);
  assert.ok(f.scan(wrong, 4096, w, 16384) === null, 'a wrong header digest');
  f.resync(0);
  const rest = f.scan(hd, 4096, w, 16384);
  assert.ok(rest !== null && rest.length === 65536 - (4096 - hd[Ch.PDO]));
  assert.equal(hd[Ch.TYPE], PduType.H2C_DATA);
});

/**
 * A plain socket, the steering and a receiver wired as the TCP qpair wires them (reads queued
 * by the socket callback, parsed later, then the steering resynchronised), fed one stream
 * written at once by a client.
 */
async function receiveStream(
  stream: Buffer,
  w: Waiting,
): Promise<{ placedReads: number; placedBytes: number }> {
  const pool = new RxBufferPool(8);
  const steering = new PayloadSteering(w);
  const done = new Map<number, boolean>();
  const h = newDataPduHeader();
  const rx = new PduReceiver(
    {
      onPdu(pdu, off, len, ok) {
        // an H2CData PDU whole in one read: copied, as the qpair's handleH2CData does
        if (pdu[Ch.TYPE] !== PduType.H2C_DATA) return;
        const { ttag, datao } = readDataPduHeader(pdu, h);
        pdu.copy(w.buffers.get(ttag) as Buffer, datao, off, off + len);
        w.received.set(ttag, (w.received.get(ttag) ?? 0) + len);
        done.set(ttag, ok);
      },
      onPduError(fes, fei) {
        assert.fail(`receiver error FES ${fes} FEI ${fei}`);
      },
      placeData: (header, len) => w.placeData(header, len),
      onDataPlaced(header, ok) {
        const { ttag, datal } = readDataPduHeader(header, h);
        w.received.set(ttag, (w.received.get(ttag) ?? 0) + datal);
        done.set(ttag, ok);
      },
    },
    TARGET_ACCEPTS,
    1 << 20,
  );
  rx.headerDigest = w.headerDigest;
  rx.dataDigest = w.dataDigest;
  const queue: Array<[Buffer, number, boolean]> = [];
  let placedReads = 0;
  let placedBytes = 0;
  let received = 0;
  let parseQueued = false;
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const finished = new Promise<void>((resolve) => {
    server.on('connection', (s) => {
      const sock = new PlainSocket(s, pool);
      sock.steerReads(steering);
      sock.start(
        (buf, n, pooled) => {
          if (buf === PLACED_DATA) {
            placedReads++;
            placedBytes += n;
          }
          // a pooled buffer is parsed later: keep a copy of what this read put in it
          queue.push([buf === PLACED_DATA ? buf : Buffer.from(buf.subarray(0, n)), n, pooled]);
          received += n;
          if (parseQueued) return;
          parseQueued = true;
          setImmediate(() => {
            parseQueued = false;
            for (const [b, len] of queue.splice(0)) {
              if (b === PLACED_DATA) rx.pushPlaced(len);
              else rx.push(b, len);
            }
            steering.resync(rx);
            if (received === stream.length) resolve();
          });
        },
        () => {},
      );
    });
  });
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  client.write(stream);
  await finished;
  client.destroy();
  server.close();
  for (const [ttag, buf] of w.buffers) {
    assert.equal(done.get(ttag), true, `ttag ${ttag}: its data placed, digest good`);
    assert.equal(w.received.get(ttag), buf.length);
  }
  return { placedReads, placedBytes };
}

for (const digests of [false, true]) {
  test(`a plain socket reads large payloads straight into their buffers, intact (digests ${digests})`, async () => {
    const w = new Waiting();
    w.headerDigest = digests;
    w.dataDigest = digests;
    const parts: Buffer[] = [];
    const want = new Map<number, Buffer>();
    for (let ttag = 0; ttag < 12; ttag++) {
      const len = [131072, 65536, 40960, 16384 + 512][ttag % 4];
      const data = randomBytes(len);
      want.set(ttag, data);
      w.buffers.set(ttag, Buffer.alloc(len));
      parts.push(capsuleCmd(rawSqe(0x01, 1), null, { hdgst: digests }));
      parts.push(h2cData({ cccid: ttag, ttag, datao: 0 }, data, { hdgst: digests, ddgst: digests }));
    }
    const { placedReads, placedBytes } = await receiveStream(Buffer.concat(parts), w);
    for (const [ttag, data] of want)
      assert.ok((w.buffers.get(ttag) as Buffer).equals(data), `ttag ${ttag} intact`);
    assert.ok(placedReads > 0, 'some reads went straight into a command buffer');
    assert.ok(placedBytes >= 65536, `${placedBytes} bytes placed`);
  });
}

/** A stream of capsules and H2CData PDUs (some split into two PDUs) for `tags` commands. */
function mixedStream(w: Waiting, sizes: number[], digests: boolean, splitAt: number[]): Buffer {
  const parts: Buffer[] = [];
  const d = { hdgst: digests, ddgst: digests };
  sizes.forEach((len, ttag) => {
    const data = randomBytes(len);
    w.buffers.set(ttag, Buffer.alloc(len));
    want.set(ttag, data);
    parts.push(capsuleCmd(rawSqe(0x01, 1), null, { hdgst: digests }));
    const cut = splitAt[ttag] % len;
    if (cut === 0) parts.push(h2cData({ cccid: ttag, ttag, datao: 0 }, data, d));
    else {
      parts.push(h2cData({ cccid: ttag, ttag, datao: 0, last: false }, data.subarray(0, cut), d));
      parts.push(h2cData({ cccid: ttag, ttag, datao: cut }, data.subarray(cut), d));
    }
  });
  return Buffer.concat(parts);
}
const want = new Map<number, Buffer>();
let steeredReads = 0;
let limitedReads = 0;

test('reads of any size, parses at any point: steered reads leave every buffer as a copy would (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 0, max: 1 << 20 }), { minLength: 6, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 70000 }), { minLength: 8, maxLength: 8 }),
      fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
      fc.boolean(),
      (kib, splits, readSizes, parseAfter, digests) => {
        const w = new Waiting();
        w.headerDigest = digests;
        w.dataDigest = digests;
        want.clear();
        const stream = mixedStream(
          w,
          kib.map((k) => k * 1024),
          digests,
          splits,
        );
        const steering = new PayloadSteering(w);
        const h = newDataPduHeader();
        const errors: number[] = [];
        const rx = new PduReceiver(
          {
            onPdu(pdu, off, len) {
              if (pdu[Ch.TYPE] !== PduType.H2C_DATA) return;
              const { ttag, datao } = readDataPduHeader(pdu, h);
              pdu.copy(w.buffers.get(ttag) as Buffer, datao, off, off + len);
              w.received.set(ttag, datao + len);
            },
            onPduError(fes) {
              errors.push(fes);
            },
            placeData: (header, len) => w.placeData(header, len),
            onDataPlaced(header) {
              const { ttag, datao, datal } = readDataPduHeader(header, h);
              w.received.set(ttag, datao + datal);
            },
          },
          TARGET_ACCEPTS,
          1 << 21,
        );
        rx.headerDigest = digests;
        rx.dataDigest = digests;
        // the kernel's part: each read copies the stream's next bytes into the buffer given
        const queue: Array<[Buffer, number]> = [];
        let at = 0;
        let i = 0;
        while (at < stream.length) {
          const size = readSizes[i % readSizes.length];
          const target = steering.nextReadTarget();
          if (target !== null) {
            const n = Math.min(size, target.length, stream.length - at);
            stream.copy(target, 0, at, at + n);
            at += n;
            queue.push([PLACED_DATA, n]);
            steering.placedRead(n);
            steeredReads++;
          } else {
            const buf = Buffer.alloc(65536, 0xee);
            const limit = steering.nextReadLimit();
            const n = Math.min(size, limit > 0 ? limit : buf.length, stream.length - at);
            if (limit > 0) limitedReads++;
            stream.copy(buf, 0, at, at + n);
            at += n;
            queue.push([buf, n]);
            steering.pooledRead(buf, n);
          }
          if (parseAfter[i % parseAfter.length] || at === stream.length) {
            for (const [b, n] of queue.splice(0)) {
              if (b === PLACED_DATA) rx.pushPlaced(n);
              else rx.push(b, n);
            }
            steering.resync(rx);
          }
          i++;
        }
        assert.deepEqual(errors, []);
        for (const [ttag, data] of want) {
          assert.ok((w.buffers.get(ttag) as Buffer).equals(data), `ttag ${ttag} intact`);
        }
      },
    ),
    { numRuns: 300 },
  );
  assert.ok(steeredReads > 50, `${steeredReads} reads steered over the runs`);
  assert.ok(limitedReads > 10, `${limitedReads} reads limited to the next headers`);
});
