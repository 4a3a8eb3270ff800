// What a 128 KiB Buffer.copy between a malloc bdev's memory and a transport buffer costs as
// their offsets modulo 64 vary: the measurement behind util/aligned-memory.ts. The memory is
// 64 MiB (the default malloc bdev, larger than the last-level cache) walked in 128 KiB steps;
// sixteen buffers are used in turn, as at QD16. Both come from page-aligned memory, viewed at
// the offsets given; "rd" is a read's copy (memory → buffer), "wr" a write's (buffer → memory).
// Prints the best of --rounds interleaved rounds per case (the host's memory speed moves between
// rounds; the minimum is the copy's own cost). Never gates CI.
//
//   node bench/copy-alignment.ts [--rounds 12] [--copies 3000]

import { parseArgs } from 'node:util';
import { pageAlignedArrayBuffer, pageAlignedSharedArrayBuffer } from '../src/util/aligned-memory.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '12' }, copies: { type: 'string', default: '3000' } },
});
const ROUNDS = Number(values.rounds);
const COPIES = Number(values.copies);
const SIZE = 131072;
const MEMORY = 64 * 1024 * 1024;

const shared = pageAlignedSharedArrayBuffer(MEMORY + 4096);
const plain = pageAlignedArrayBuffer(16 * SIZE + 4096);
if (shared === null || plain === null) throw new Error('no page-aligned memory to be had');

interface Case {
  memoryOffset: number;
  bufferOffset: number;
  dir: 'rd' | 'wr';
}
const cases: Case[] = [];
for (const memoryOffset of [0, 16])
  for (const bufferOffset of [0, 16, 32, 48])
    for (const dir of ['rd', 'wr'] as const) cases.push({ memoryOffset, bufferOffset, dir });

const best = new Map<Case, number>();
for (let round = 0; round < ROUNDS; round++) {
  for (const c of cases) {
    const memory = Buffer.from(shared, c.memoryOffset, MEMORY);
    const buffers: Buffer[] = [];
    for (let i = 0; i < 16; i++) buffers.push(Buffer.from(plain, c.bufferOffset + i * SIZE, SIZE));
    let pos = ((round * 7919) % (MEMORY / SIZE)) * SIZE;
    const start = performance.now();
    for (let i = 0; i < COPIES; i++) {
      const b = buffers[i & 15];
      if (c.dir === 'rd') memory.copy(b, 0, pos, pos + SIZE);
      else b.copy(memory, pos, 0, SIZE);
      pos += SIZE;
      if (pos >= MEMORY) pos = 0;
    }
    const us = ((performance.now() - start) * 1000) / COPIES;
    best.set(c, Math.min(best.get(c) ?? Number.POSITIVE_INFINITY, us));
  }
}

console.log('memory+  buffer+  copy  µs per 128 KiB (best of %d rounds)', ROUNDS);
for (const c of cases) {
  const us = best.get(c) as number;
  console.log(
    `${String(c.memoryOffset).padStart(7)}  ${String(c.bufferOffset).padStart(7)}  ${c.dir.padStart(4)}  ${us.toFixed(2)}`,
  );
}
