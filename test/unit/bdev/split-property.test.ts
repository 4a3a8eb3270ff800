// Property: whatever the geometry (block size, boundary, transfer limit) and
// however the caller cuts its buffers, a write then a read of the same range
// round-trips, and no child reaching the module breaks the limits.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import * as B from '../../../src/bdev/module.ts';
import { newLendGuardMemory } from '../../../src/modules/bdev/malloc/lend-guard.ts';
import { pollIdle, recorder, settle, uniq } from './harness.ts';

test('split + scatter lists round-trip for any geometry and buffer cut', async () => {
  const geometries = [
    { bs: 512, boundary: 16, max: 0 },
    { bs: 512, boundary: 0, max: 7 },
    { bs: 4096, boundary: 8, max: 3 },
    { bs: 512, boundary: 5, max: 4 },
  ];
  const bdevs: Array<{
    desc: B.BdevDesc;
    ch: ReturnType<typeof B.bdevGetIoChannel>;
    sizes: Array<[number, number]>;
    g: (typeof geometries)[0];
  }> = [];
  for (const g of geometries) {
    const name = uniq('Prop');
    await settle(
      B.bdevRegister(
        B.newBdevDescriptor({
          module: 'malloc',
          name,
          blockSize: g.bs,
          numBlocks: 128,
          optimalIoBoundary: g.boundary,
          splitOnOptimalIoBoundary: g.boundary > 0,
          maxTransferBlocks: g.max,
          params: {
            memory: new SharedArrayBuffer(128 * g.bs),
            lendGuard: newLendGuardMemory(128 * g.bs),
            physicalBlockSize: g.bs,
          },
        }),
      ),
    );
    const desc = B.bdevOpen(name, true, () => {});
    const ch = B.bdevGetIoChannel(desc);
    const sizes: Array<[number, number]> = [];
    const backend = desc.bdev.backend;
    const submit = backend.submit.bind(backend);
    backend.submit = (io, ctx) => {
      sizes.push([io.offsetBlocks, io.numBlocks]);
      submit(io, ctx);
    };
    bdevs.push({ desc, ch, sizes, g });
  }
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: geometries.length - 1 }),
      fc.integer({ min: 0, max: 127 }),
      fc.integer({ min: 1, max: 64 }),
      fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 6 }),
      fc.integer({ min: 0, max: 255 }),
      (gi, offset, len, cuts, seed) => {
        const { desc, ch, sizes, g } = bdevs[gi];
        const num = Math.min(len, 128 - offset);
        const total = num * g.bs;
        const data = Buffer.alloc(total);
        for (let i = 0; i < total; i++) data[i] = (i + seed) & 0xff;
        // cut the buffer at the given lengths (what remains is the last piece)
        const iov: Buffer[] = [];
        let pos = 0;
        for (const c of cuts) {
          if (pos + c >= total) break;
          iov.push(data.subarray(pos, pos + c));
          pos += c;
        }
        iov.push(data.subarray(pos));
        sizes.length = 0;
        const r = recorder();
        B.bdevWrite(desc, ch, iov, offset, num, false, r.cb, 'w');
        pollIdle();
        for (const [o, n] of sizes) {
          if (g.max > 0) assert.ok(n <= g.max, `child of ${n} blocks over the limit ${g.max}`);
          if (g.boundary > 0) assert.equal(Math.floor(o / g.boundary), Math.floor((o + n - 1) / g.boundary));
        }
        assert.equal(
          sizes.reduce((a, [, n]) => a + n, 0),
          num,
        );
        const out = [Buffer.alloc(Math.floor(total / 3)), Buffer.alloc(total - Math.floor(total / 3))];
        B.bdevRead(desc, ch, out, offset, num, r.cb, 'r');
        pollIdle();
        assert.ok(r.done.every((d) => d.ok));
        assert.ok(Buffer.concat(out).equals(data));
      },
    ),
    { numRuns: 300 },
  );
});
