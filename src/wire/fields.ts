// Field helpers shared by the wire structures: fixed-width strings (space- or
// NUL-padded, as identify data, NQNs and discovery entries carry them) and
// little-endian integers wider than 32 bits read as JS numbers.

/** Reads a NUL-terminated string of at most `len` bytes (NQN fields), as is. */
export function readCString(buf: Buffer, off: number, len: number): string {
  const end = Math.min(buf.length, off + len);
  let i = off;
  while (i < end && buf[i] !== 0) i++;
  return buf.toString('latin1', off, i);
}

/** Reads a fixed-width ASCII field padded with spaces or NULs, the padding removed. */
export function readPaddedString(buf: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && buf[end] !== 0) end++;
  return buf.toString('latin1', off, end).trimEnd();
}

/** Writes `s` space-padded to `len` bytes (identify strings). */
export function writePadded(buf: Buffer, off: number, len: number, s: string): void {
  buf.fill(0x20, off, off + len);
  buf.write(s.slice(0, len), off, 'latin1');
}

/** Writes `s` NUL-padded to `len` bytes (NQN fields). */
export function writeNulPadded(buf: Buffer, off: number, len: number, s: string): void {
  buf.fill(0, off, off + len);
  buf.write(s.slice(0, len - 1), off, 'latin1');
}

/** A 64-bit little-endian value as a number (exact below 2^53). */
export function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * 0x1_0000_0000 + buf.readUInt32LE(off);
}

/** Stores a number (< 2^53) as a 64-bit little-endian value. */
export function writeU64(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v >>> 0, off);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000) >>> 0, off + 4);
}

/** A 64- or 128-bit little-endian counter: a number when exact, else its decimal string. */
export function readCounter(buf: Buffer, off: number, len: 8 | 16): number | string {
  let v = 0n;
  for (let i = len - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[off + i]);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}
