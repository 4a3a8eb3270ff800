// Logging: levels, per-component debug flags (-L bdev), one line per event,
// plain text or JSON (--log-json), to stderr and optionally to a file with
// size-based rotation (--log-file). Lines are written synchronously, so their
// order is the order of events across worker realms too and nothing is lost
// when the process exits; the I/O path logs nothing at the default level.
//
// As SPDK: the print level decides what reaches stderr, the log level what
// reaches the log file (SPDK's syslog); a debug line needs its component's flag
// (or the level DEBUG). Every logger(component) registers its component as a
// flag; -L and log_set_flag accept registered flags only (and 'all').

import { closeSync, fstatSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { InvalidArgumentError } from './errors.ts';

export const LogLevel = { ERROR: 0, WARN: 1, NOTICE: 2, INFO: 3, DEBUG: 4 } as const;
export type LogLevelName = 'error' | 'warn' | 'notice' | 'info' | 'debug';
const LEVEL_NAMES: readonly LogLevelName[] = ['error', 'warn', 'notice', 'info', 'debug'];
/** SPDK's names for the levels (log_get_level answers these) */
const SPDK_LEVEL_NAMES = ['ERROR', 'WARNING', 'NOTICE', 'INFO', 'DEBUG'] as const;

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  notice(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  /** whether a debug line of this component would be written (to skip building it) */
  debugEnabled(): boolean;
}

export interface LogConfig {
  /** what reaches stderr (SPDK's print level) */
  level: number;
  flags: string[];
  json: boolean;
  /** what reaches the log file (SPDK's log level); default: the print level */
  fileLevel?: number;
  /** a log file (appended to); none by default */
  file?: string | null;
  /** rotate the file when it grows past this many bytes (0: never); keeps FILE.1 .. FILE.<keep> */
  fileMaxBytes?: number;
  fileKeep?: number;
}

const config: Required<LogConfig> = {
  level: LogLevel.NOTICE,
  flags: [],
  json: false,
  fileLevel: LogLevel.NOTICE,
  file: null,
  fileMaxBytes: 0,
  fileKeep: 5,
};
let flagSet = new Set<string>();
let allFlags = false;
let realmTag = 'r0';
let fileFd = -1;
let fileBytes = 0;
/** colour the level on a terminal (fd 2 is the process's, so every realm sees the same), unless NO_COLOR */
const colour = isatty(2) && process.env.NO_COLOR === undefined;
const LEVEL_COLOURS = ['\u001b[31m', '\u001b[33m', '\u001b[36m', '', '\u001b[2m'];

/** Components that registered a logger in this realm (every realm loads the same tables). */
const registered = new Set<string>();

/** A level by name: nvmf-ts's (error … debug) or SPDK's (ERROR, WARNING, NOTICE, INFO, DEBUG). */
export function parseLogLevel(name: string): number {
  const n = name.toLowerCase();
  const i = LEVEL_NAMES.indexOf((n === 'warning' ? 'warn' : n) as LogLevelName);
  if (i < 0)
    throw new InvalidArgumentError(`unknown log level '${name}' (use ${SPDK_LEVEL_NAMES.join(', ')})`);
  return i;
}

/** SPDK's name of a level ('NOTICE'). */
export function logLevelName(level: number): string {
  return SPDK_LEVEL_NAMES[level] ?? 'DEBUG';
}

function openFile(): void {
  if (fileFd >= 0) closeSync(fileFd);
  fileFd = -1;
  if (config.file === null) return;
  fileFd = openSync(config.file, 'a', 0o640);
  try {
    fileBytes = statSync(config.file).size;
  } catch {
    fileBytes = 0;
  }
}

/** FILE → FILE.1 → … → FILE.<keep> (the oldest goes), then a fresh FILE. */
function rotate(): void {
  const f = config.file;
  if (f === null) return;
  // every realm appends to the file: when another one rotated it already, follow it
  try {
    if (statSync(f).ino !== fstatSync(fileFd).ino) {
      openFile();
      if (fileBytes < config.fileMaxBytes) return;
    }
  } catch {
    // the file is gone: rotate anyway, which reopens it
  }
  closeSync(fileFd);
  fileFd = -1;
  for (let i = config.fileKeep - 1; i >= 1; i--) {
    try {
      renameSync(`${f}.${i}`, `${f}.${i + 1}`);
    } catch {
      // that generation does not exist yet
    }
  }
  try {
    renameSync(f, `${f}.1`);
  } catch {
    // another realm rotated it first
  }
  openFile();
}

export function configureLogging(c: Partial<LogConfig>, reactor?: number): void {
  if (c.level !== undefined) config.level = c.level;
  if (c.flags !== undefined) config.flags = [...c.flags];
  if (c.json !== undefined) config.json = c.json;
  if (c.fileLevel !== undefined) config.fileLevel = c.fileLevel;
  else if (c.level !== undefined && c.file !== undefined) config.fileLevel = c.level;
  if (c.fileMaxBytes !== undefined) config.fileMaxBytes = c.fileMaxBytes;
  if (c.fileKeep !== undefined) config.fileKeep = Math.max(1, c.fileKeep);
  if (c.file !== undefined && c.file !== config.file) {
    config.file = c.file;
    openFile();
  }
  flagSet = new Set(config.flags);
  allFlags = flagSet.has('all');
  if (reactor !== undefined) realmTag = `r${reactor}`;
}

export function logConfig(): Required<LogConfig> {
  return { ...config, flags: [...config.flags] };
}

/** Component flags set with -L; 'all' enables every component. */
export function logFlagEnabled(component: string): boolean {
  return allFlags || flagSet.has(component);
}

/** Every registered flag, sorted. */
export function registeredLogFlags(): string[] {
  return [...registered].sort();
}

/** Throws naming the registered flags when `flag` is neither one of them nor 'all'. */
export function checkLogFlag(flag: string): void {
  if (flag !== 'all' && !registered.has(flag)) {
    throw new InvalidArgumentError(
      `unknown log flag '${flag}' (registered: ${registeredLogFlags().join(', ')}, or all)`,
    );
  }
}

function emit(level: number, component: string, msg: string, fields?: Record<string, unknown>): void {
  // a debug line with its component's flag is written whatever the level (SPDK's -L)
  const flagged = level === LogLevel.DEBUG && logFlagEnabled(component);
  const toStderr = flagged || level <= config.level;
  const toFile = fileFd >= 0 && (flagged || level <= config.fileLevel);
  if (!toStderr && !toFile) return;
  const time = new Date().toISOString();
  let line: string;
  if (config.json) {
    line = JSON.stringify({ time, level: LEVEL_NAMES[level], reactor: realmTag, component, msg, ...fields });
  } else {
    let extra = '';
    if (fields)
      for (const [k, v] of Object.entries(fields))
        extra += ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
    line = `[${time}] ${LEVEL_NAMES[level].toUpperCase()} ${realmTag} ${component}: ${msg}${extra}`;
  }
  line += '\n';
  if (toStderr) {
    try {
      writeSync(2, colour && !config.json ? paint(level, line) : line);
    } catch {
      // stderr gone (EPIPE): nothing sensible left to do with a log line
    }
  }
  if (toFile) {
    try {
      fileBytes += writeSync(fileFd, line);
      if (config.fileMaxBytes > 0 && fileBytes >= config.fileMaxBytes) rotate();
    } catch {
      // the file went away or the disk is full: stderr still has the line
    }
  }
}

/** The level word in its colour (the file always gets plain text). */
function paint(level: number, line: string): string {
  const word = LEVEL_NAMES[level].toUpperCase();
  const c = LEVEL_COLOURS[level];
  return c === '' ? line : line.replace(` ${word} `, ` ${c}${word}\u001b[0m `);
}

const loggers = new Map<string, Logger>();

export function logger(component: string): Logger {
  let l = loggers.get(component);
  if (l === undefined) {
    registered.add(component);
    l = {
      error: (m, f) => emit(LogLevel.ERROR, component, m, f),
      warn: (m, f) => emit(LogLevel.WARN, component, m, f),
      notice: (m, f) => emit(LogLevel.NOTICE, component, m, f),
      info: (m, f) => emit(LogLevel.INFO, component, m, f),
      debug: (m, f) => emit(LogLevel.DEBUG, component, m, f),
      debugEnabled: () => logFlagEnabled(component) || config.level >= LogLevel.DEBUG,
    };
    loggers.set(component, l);
  }
  return l;
}
