import { InvalidArgumentError } from '../util/errors.ts';
// Parsing -m/--cpumask: a hex mask ("0x3", "3") or a core list ("[0,2-3]").

export function parseCpumask(text: string): number[] {
  const s = text.trim();
  const cores = new Set<number>();
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) throw new InvalidArgumentError(`cpumask '${text}': a core list must end with ']'`);
    const body = s.slice(1, -1).trim();
    if (body === '') throw new InvalidArgumentError(`cpumask '${text}': empty core list`);
    for (const part of body.split(',')) {
      const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
      if (m === null)
        throw new InvalidArgumentError(`cpumask '${text}': '${part}' is not a core number or range`);
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (b < a) throw new InvalidArgumentError(`cpumask '${text}': range ${a}-${b} is backwards`);
      for (let c = a; c <= b; c++) cores.add(c);
    }
  } else {
    const hex = s.replace(/^0x/i, '');
    if (!/^[0-9a-f]+$/i.test(hex))
      throw new InvalidArgumentError(`cpumask '${text}': expected a hex mask like 0x3 or a list like [0,1]`);
    let bit = 0;
    for (let i = hex.length - 1; i >= 0; i--) {
      const nibble = Number.parseInt(hex[i], 16);
      for (let k = 0; k < 4; k++) if (nibble & (1 << k)) cores.add(bit + k);
      bit += 4;
    }
  }
  if (cores.size === 0) throw new InvalidArgumentError(`cpumask '${text}' selects no core`);
  const out = [...cores].sort((a, b) => a - b);
  if (out[out.length - 1] > 1023)
    throw new InvalidArgumentError(`cpumask '${text}': core ${out[out.length - 1]} is out of range`);
  return out;
}
