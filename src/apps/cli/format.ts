// Human output of the CLIs: "name      : value" lines the way nvme-cli prints
// them, a hex dump for raw log pages, and number formatting.

/** Print `key : value` lines; keys in `hexKeys` show as 0x… like nvme-cli's flag fields. */
export function formatFields(
  fields: Record<string, unknown>,
  hexKeys: ReadonlySet<string> = new Set(),
  width = 10,
): string {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (Array.isArray(value)) continue; // lists are printed by the caller
    const shown = typeof value === 'number' && hexKeys.has(key) ? `0x${value.toString(16)}` : String(value);
    lines.push(`${key.padEnd(width)}: ${shown}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Classic 16-bytes-a-line hex dump with an ASCII column. */
export function hexDump(buf: Buffer): string {
  let out = '       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f\n';
  for (let off = 0; off < buf.length; off += 16) {
    const row = buf.subarray(off, Math.min(off + 16, buf.length));
    const bytes = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    out += `${off.toString(16).padStart(4, '0')}: ${bytes.padEnd(47)} "${ascii}"\n`;
  }
  return out;
}

/** A JSON document with 2-space indentation and a final newline. */
export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Fixed decimals, for tables. */
export function fixed(v: number, digits = 2): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '0.00';
}
