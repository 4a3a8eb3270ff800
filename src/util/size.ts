// Byte sizes on command lines: digits with an optional k, M or G suffix (powers of 1024).

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** The bytes `v` names ("64k", "64M", "1G", "4096"), or null when it is not such a size. */
export function parseByteSize(v: string): number | null {
  const m = /^(\d+)([kKmMgG]?)$/.exec(v);
  return m === null ? null : Number(m[1]) * UNITS[m[2].toLowerCase()];
}
