// Non-temporal stores for large copies: glibc's memmove switches to them only above
// x86_non_temporal_threshold, set from the last-level cache (tens to hundreds of MiB), so a
// 128 KiB write copied into a malloc bdev's memory reads every destination line into the
// cache first and evicts hot data with it, although nobody reads those blocks soon: about
// 18.5 µs per 128 KiB write instead of 10 on the machine measured (docs/performance.md). glibc reads
// its tunables only when a process starts, so nvmf_tgt's shim re-executes itself (same PID,
// same arguments) with GLIBC_TUNABLES set before it loads anything else.

import { readFileSync } from 'node:fs';
import { parseByteSize } from '../util/size.ts';

export const NT_COPY_OPTION = '--nt-copy-threshold';
/** 64 KiB: every transfer of at least 64 KiB; 4 KiB I/O and PDU-sized copies stay cached */
export const DEFAULT_NT_COPY_THRESHOLD = 64 * 1024;
/** glibc ignores a smaller x86_non_temporal_threshold (0x4040) */
const GLIBC_MIN_THRESHOLD = 0x4040;
/** an x86_rep_movsb_threshold above any copy's size: see tunablesFor */
const NO_REP_MOVSB = 0x40000000;

/** BYTES of `--nt-copy-threshold` (k, M, G suffixes): 0 leaves glibc's own threshold. */
export function parseNtCopyThreshold(v: string): number {
  const n = parseByteSize(v);
  if (n === null || !(n === 0 || (n >= GLIBC_MIN_THRESHOLD && n <= 1024 ** 3)))
    throw new Error(`${NT_COPY_OPTION} must be 0 or a size from 16448 (glibc's least) to 1G, not "${v}"`);
  return n;
}

/**
 * The GLIBC_TUNABLES value that makes copies of `threshold` bytes or more non-temporal, or
 * null when the process should be left as it is: threshold 0, not Linux on x86-64 (the
 * tunables are glibc's x86 ones), or GLIBC_TUNABLES already names the threshold (the user's
 * own choice, or this process already re-executed).
 */
export function tunablesFor(
  threshold: number,
  env: NodeJS.ProcessEnv,
  platform: string,
  arch: string,
  cpuVendor: string,
): string | null {
  if (threshold === 0 || platform !== 'linux' || arch !== 'x64') return null;
  const current = env.GLIBC_TUNABLES ?? '';
  if (current.includes('x86_non_temporal_threshold')) return null;
  const add = [`glibc.cpu.x86_non_temporal_threshold=0x${threshold.toString(16)}`];
  // on AMD glibc copies with `rep movsb` up to the L2 size whatever the non-temporal
  // threshold says; a rep-movsb threshold above every size sends large copies to the vector
  // loop, which honours it (smaller ones lose rep movsb, which glibc finds slow there anyway)
  if (cpuVendor === 'AuthenticAMD' && !current.includes('x86_rep_movsb_threshold'))
    add.push(`glibc.cpu.x86_rep_movsb_threshold=0x${NO_REP_MOVSB.toString(16)}`);
  return current === '' ? add.join(':') : `${current}:${add.join(':')}`;
}

/** The CPU's vendor string from /proc/cpuinfo ('' if unreadable). */
export function cpuVendor(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'latin1');
    return /^vendor_id\s*:\s*(\S+)/m.exec(info)?.[1] ?? '';
  } catch {
    return '';
  }
}

/** The threshold the command line asks for (its last `--nt-copy-threshold`), null if malformed. */
export function thresholdFromArgs(args: readonly string[]): number | null {
  let value: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') break;
    if (a === NT_COPY_OPTION) value = args[++i] ?? '';
    else if (a.startsWith(`${NT_COPY_OPTION}=`)) value = a.slice(NT_COPY_OPTION.length + 1);
  }
  if (value === null) return DEFAULT_NT_COPY_THRESHOLD;
  try {
    return parseNtCopyThreshold(value);
  } catch {
    return null; // the entry point's parser reports it
  }
}

/**
 * Re-executes this process with the tunables when the command line (and the environment)
 * call for it; returns when they do not, or when execve fails (the target then runs with
 * glibc's defaults, slower on large writes only).
 */
export function reexecWithNtCopies(args: readonly string[]): void {
  const threshold = thresholdFromArgs(args);
  if (threshold === null || threshold === 0) return;
  const tunables = tunablesFor(threshold, process.env, process.platform, process.arch, cpuVendor());
  if (tunables === null) return;
  try {
    process.execve?.(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      ...process.env,
      GLIBC_TUNABLES: tunables,
    });
  } catch {
    // e.g. a seccomp policy without execve: run as we are
  }
}
