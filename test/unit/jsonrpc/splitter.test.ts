import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { JsonStreamSplitter } from '../../../src/jsonrpc/index.ts';

function feedAll(splitter: JsonStreamSplitter, chunks: Buffer[]): { values: string[]; error: string | null } {
  const values: string[] = [];
  let error: string | null = null;
  for (const c of chunks) {
    error = splitter.feed(c, (t) => values.push(t));
    if (error !== null) break;
  }
  return { values, error };
}

const requests = [
  { jsonrpc: '2.0', method: 'bdev_get_bdevs', id: 1 },
  {
    jsonrpc: '2.0',
    method: 'x',
    id: 2,
    params: { s: 'braces } { ] [ and "quotes" and \\ backslash', n: [1, [2, { a: 3 }]] },
  },
  [
    { jsonrpc: '2.0', method: 'a', id: 3 },
    { jsonrpc: '2.0', method: 'b' },
  ],
  { jsonrpc: '2.0', method: 'utf8', id: 4, params: { name: 'ünïcødé ✓ 🚀' } },
];
const texts = requests.map((r) => JSON.stringify(r));
const whole = Buffer.from(` ${texts.join('\n')}  \r\n\t`);

test('every single split point of a multi-request buffer yields the same values', () => {
  for (let cut = 0; cut <= whole.length; cut++) {
    const { values, error } = feedAll(new JsonStreamSplitter(), [
      whole.subarray(0, cut),
      whole.subarray(cut),
    ]);
    assert.equal(error, null, `cut at ${cut}`);
    assert.deepEqual(values, texts, `cut at ${cut}`);
  }
});

test('every pair of split points (three chunks) yields the same values', () => {
  for (let a = 0; a <= whole.length; a += 3) {
    for (let b = a; b <= whole.length; b += 5) {
      const { values } = feedAll(new JsonStreamSplitter(), [
        whole.subarray(0, a),
        whole.subarray(a, b),
        whole.subarray(b),
      ]);
      assert.deepEqual(values, texts, `cuts at ${a},${b}`);
    }
  }
});

test('byte-at-a-time feeding yields the same values', () => {
  const chunks: Buffer[] = [];
  for (let i = 0; i < whole.length; i++) chunks.push(whole.subarray(i, i + 1));
  assert.deepEqual(feedAll(new JsonStreamSplitter(), chunks).values, texts);
});

test('random JSON values split at random points come out intact (property)', () => {
  const objectArb = fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 5 });
  fc.assert(
    fc.property(
      fc.array(objectArb, { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (objs, cutSeeds) => {
        const parts = objs.map((o) => JSON.stringify(o));
        const buf = Buffer.from(parts.join(''));
        const cuts = [...new Set(cutSeeds.map((c) => c % (buf.length + 1)))].sort((x, y) => x - y);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const c of cuts) {
          chunks.push(buf.subarray(prev, c));
          prev = c;
        }
        chunks.push(buf.subarray(prev));
        const { values, error } = feedAll(new JsonStreamSplitter(), chunks);
        assert.equal(error, null);
        assert.deepEqual(values, parts);
      },
    ),
    { numRuns: 300 },
  );
});

test('a non-JSON start is reported as garbage and the splitter stays failed', () => {
  const s = new JsonStreamSplitter();
  const got: string[] = [];
  assert.equal(
    s.feed(Buffer.from('{"a":1} hello'), (t) => got.push(t)),
    'garbage',
  );
  assert.deepEqual(got, ['{"a":1}']);
  assert.equal(
    s.feed(Buffer.from('{"b":2}'), (t) => got.push(t)),
    'garbage',
  );
  assert.equal(got.length, 1);
});

test('a value over the limit is reported as too_large, whether in one chunk or many', () => {
  const big = Buffer.from(JSON.stringify({ s: 'x'.repeat(2000) }));
  assert.equal(
    new JsonStreamSplitter(1000).feed(big, () => assert.fail('no value expected')),
    'too_large',
  );
  const s = new JsonStreamSplitter(1000);
  let err: string | null = null;
  for (let i = 0; i < big.length && err === null; i += 100) {
    err = s.feed(big.subarray(i, i + 100), () => assert.fail('no value expected'));
  }
  assert.equal(err, 'too_large');
});

test('a truncated value stays pending (midValue) and completes when the rest arrives', () => {
  const s = new JsonStreamSplitter();
  const got: string[] = [];
  assert.equal(
    s.feed(Buffer.from('{"method":"a","params":{"x":"}'), (t) => got.push(t)),
    null,
  );
  assert.equal(s.midValue, true);
  assert.equal(got.length, 0);
  s.feed(Buffer.from('"}}'), (t) => got.push(t));
  assert.equal(s.midValue, false);
  assert.deepEqual(JSON.parse(got[0]), { method: 'a', params: { x: '}' } });
});
