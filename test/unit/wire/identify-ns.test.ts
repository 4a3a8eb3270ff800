import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildIdentifyNamespace, IDENTIFY_SIZE } from '../../../src/wire/identify.ts';

test('Identify Namespace puts NOIOB at bytes 47:46 and leaves NPWG (64) zero', () => {
  const buf = Buffer.alloc(IDENTIFY_SIZE, 0xaa);
  buildIdentifyNamespace(buf, {
    numBlocks: 0x1_0000_0010,
    blockSize: 4096,
    thinProvisioned: true,
    optimalIoBoundary: 32,
    nguid: null,
    eui64: null,
    anaGroupId: 0,
  });
  assert.equal(buf.readUInt16LE(46), 32);
  assert.equal(buf.readUInt16LE(64), 0);
  assert.equal(buf.readBigUInt64LE(0), 0x1_0000_0010n); // NSZE
  assert.equal(buf.readUInt32LE(128) >>> 16, 12); // LBAF0.LBADS
});
