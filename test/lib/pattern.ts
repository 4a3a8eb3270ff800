/**
 * Deterministic test data of any length: 32-bit little-endian words derived
 * from their offset and `seed`, so two seeds differ in every word and no
 * block of it is zeros. Written, then read back and compared.
 */
export function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  const whole = len - (len % 4);
  for (let i = 0; i < whole; i += 4) b.writeUInt32LE(word(i, seed), i);
  if (whole < len) {
    const last = Buffer.alloc(4);
    last.writeUInt32LE(word(whole, seed), 0);
    last.copy(b, whole, 0, len - whole);
  }
  return b;
}

function word(offset: number, seed: number): number {
  return (Math.imul(offset + 1, 2654435761) ^ seed) >>> 0;
}
