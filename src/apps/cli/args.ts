// Command-line helpers shared by `nvmf` and `nvmf-perf`: number parsing
// (decimal or 0x…) that throws UsageError (exit 2), Node's parseArgs errors
// told apart, and a clean exit that lets stdout drain first.

import { UsageError } from '../../util/errors.ts';

/** An integer option: decimal or 0x-prefixed hex, within [min, max]. */
export function parseInteger(name: string, text: string | undefined, min: number, max: number): number {
  if (text === undefined) throw new UsageError(`--${name} is required`);
  const t = text.trim();
  const v = /^0x[0-9a-f]+$/i.test(t)
    ? Number.parseInt(t.slice(2), 16)
    : /^\d+$/.test(t)
      ? Number(t)
      : Number.NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max)
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, not "${text}"`);
  return v;
}

/** Node's parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes: those are usage errors. */
export function isParseArgsError(err: unknown): err is Error {
  if (!(err instanceof Error)) return false;
  const code = (err as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}

/** Exit once stdout and stderr have taken everything written so far (pipes are asynchronous). */
export function exitWhenFlushed(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
