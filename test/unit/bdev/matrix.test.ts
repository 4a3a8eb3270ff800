// Every I/O type on every module: supported types succeed (and data checks
// out where the module stores data), unsupported ones fail with Invalid Opcode.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import * as B from '../../../src/bdev/index.ts';
import { createAioBdev } from '../../../src/modules/bdev/aio/aio.ts';
import { createDelayBdev } from '../../../src/modules/bdev/delay/delay.ts';
import { createErrorBdev } from '../../../src/modules/bdev/error/error.ts';
import { createMallocBdev } from '../../../src/modules/bdev/malloc/malloc.ts';
import { createNullBdev } from '../../../src/modules/bdev/null/null.ts';
import { createPassthruBdev } from '../../../src/modules/bdev/passthru/passthru.ts';
import { pattern } from '../../lib/pattern.ts';
import { recorder, settle, uniq, until } from './harness.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nvmf-ts-matrix-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const makers: Record<string, () => Promise<{ name: string; stores: boolean }>> = {
  malloc: async () => ({
    name: await createMallocBdev({ name: uniq('Malloc'), numBlocks: 256, blockSize: 512 }),
    stores: true,
  }),
  null: async () => ({
    name: await createNullBdev({ name: uniq('Null'), numBlocks: 256, blockSize: 4096 }),
    stores: false,
  }),
  aio: async () => {
    const file = path.join(dir, `${uniq('f')}.img`);
    fs.writeFileSync(file, Buffer.alloc(256 * 4096));
    return {
      name: await createAioBdev({ name: uniq('Aio'), filename: file, blockSize: 4096 }),
      stores: true,
    };
  },
  passthru: async () => {
    const base = await createMallocBdev({ name: uniq('Malloc'), numBlocks: 256, blockSize: 512 });
    return { name: await createPassthruBdev({ baseBdevName: base, name: uniq('PT') }), stores: true };
  },
  delay: async () => {
    const base = await createMallocBdev({ name: uniq('Malloc'), numBlocks: 256, blockSize: 512 });
    const name = uniq('Delay');
    await createDelayBdev({
      baseBdevName: base,
      name,
      avgReadLatency: 100,
      p99ReadLatency: 200,
      avgWriteLatency: 100,
      p99WriteLatency: 200,
    });
    return { name, stores: true };
  },
  error: async () => {
    const base = await createMallocBdev({ name: uniq('Malloc'), numBlocks: 256, blockSize: 512 });
    return { name: await createErrorBdev({ baseName: base }), stores: true };
  },
};

for (const [module, make] of Object.entries(makers)) {
  test(`${module}: every I/O type`, async () => {
    const { name, stores } = await settle(make());
    const desc = B.bdevOpen(name, true, () => {});
    const ch = B.bdevGetIoChannel(desc);
    const bs = desc.bdev.blockSize;
    const r = recorder();
    const data = pattern(4 * bs, bs + module.length);
    const expect = new Map<string, B.BdevIoType>();
    const go = async (tag: string, type: B.BdevIoType, submit: () => void) => {
      expect.set(tag, type);
      const n = r.done.length;
      submit();
      await until(() => r.done.length === n + 1);
    };
    await go('write', B.BdevIoType.WRITE, () => B.bdevWrite(desc, ch, [data], 4, 4, true, r.cb, 'write'));
    const out = Buffer.alloc(4 * bs);
    await go('read', B.BdevIoType.READ, () => B.bdevRead(desc, ch, [out], 4, 4, r.cb, 'read'));
    assert.ok(out.equals(stores ? data : Buffer.alloc(4 * bs)), 'read returns what the module keeps');
    const current = stores ? data : Buffer.alloc(4 * bs);
    await go('compare', B.BdevIoType.COMPARE, () =>
      B.bdevCompare(desc, ch, [current], 4, 4, r.cb, 'compare'),
    );
    await go('caw', B.BdevIoType.COMPARE_AND_WRITE, () =>
      B.bdevCompareAndWrite(
        desc,
        ch,
        [current.subarray(0, bs)],
        [current.subarray(0, bs)],
        4,
        1,
        false,
        r.cb,
        'caw',
      ),
    );
    await go('write_zeroes', B.BdevIoType.WRITE_ZEROES, () =>
      B.bdevWriteZeroes(desc, ch, 4, 2, r.cb, 'write_zeroes'),
    );
    await go('unmap', B.BdevIoType.UNMAP, () =>
      B.bdevUnmap(desc, ch, [{ offsetBlocks: 6, numBlocks: 2 }], r.cb, 'unmap'),
    );
    await go('flush', B.BdevIoType.FLUSH, () => B.bdevFlush(desc, ch, 0, desc.bdev.numBlocks, r.cb, 'flush'));
    await go('reset', B.BdevIoType.RESET, () => B.bdevReset(desc, ch, r.cb, 'reset'));
    for (const d of r.done) {
      const type = expect.get(d.tag as string)!;
      if (desc.bdev.supportsIo(type)) assert.deepEqual([d.tag, d.ok, d.sc], [d.tag, true, 0]);
      else assert.deepEqual([d.tag, d.ok, d.sc], [d.tag, false, 0x01]);
    }
    if (stores && desc.bdev.supportsIo(B.BdevIoType.UNMAP)) {
      await go('read2', B.BdevIoType.READ, () => B.bdevRead(desc, ch, [out], 4, 4, r.cb, 'read2'));
      assert.ok(out.equals(Buffer.alloc(4 * bs)), 'write_zeroes + unmap leave zeroes');
    }
    // abort of an I/O that is not queued anywhere fails
    const n = r.done.length;
    B.bdevAbort(desc, ch, 'nothing', r.cb, 'abort');
    await until(() => r.done.length === n + 1);
    assert.equal(r.done[n].ok, false);
    B.bdevPutIoChannel(ch);
    B.bdevClose(desc);
  });
}
