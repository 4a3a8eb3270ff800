// Property-based fuzzing of the PDU receiver (fixed seed, bounded runs; `npm run fuzz`
// runs the same property for longer with a random seed).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Ch, IcReq } from '../../../src/wire/tcp.ts';
import { cut, receiverProperty, runReceiver } from '../../lib/fuzz-pdu.ts';
import { icReq } from '../../lib/raw-pdu.ts';

test('PDU receiver: arbitrary and mutated streams, chunked arbitrarily, never throw and end in valid PDUs or one error', () => {
  fc.assert(receiverProperty(), { seed: 0x6e766d66, numRuns: 1500 });
});

test('the property sees a real difference: a valid stream delivers its PDUs, a flipped type byte is an error', () => {
  const ic = icReq();
  const ok = runReceiver(cut(ic, [3, 50]), 'target', { hd: false, dd: false }, IcReq.SIZE, false);
  assert.equal(ok.pdus.length, 1);
  assert.deepEqual(ok.errors, []);
  ic[Ch.TYPE] = 0x44;
  const bad = runReceiver(cut(ic, [3, 50]), 'target', { hd: false, dd: false }, IcReq.SIZE, false);
  assert.deepEqual(bad.pdus, []);
  assert.deepEqual(bad.errors, ['1/0']);
});
