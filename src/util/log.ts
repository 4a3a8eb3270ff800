// Logging: levels, per-component debug flags (-L bdev), one line per event,
// plain text or JSON (--log-json). Writes synchronously to stderr so the
// order of lines is the order of events, across worker realms too.

import { writeSync } from 'node:fs';
import { InvalidArgumentError } from './errors.ts';

export const LogLevel = { ERROR: 0, WARN: 1, NOTICE: 2, INFO: 3, DEBUG: 4 } as const;
export type LogLevelName = 'error' | 'warn' | 'notice' | 'info' | 'debug';
const LEVEL_NAMES: readonly LogLevelName[] = ['error', 'warn', 'notice', 'info', 'debug'];

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  notice(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export interface LogConfig {
  level: number;
  flags: string[];
  json: boolean;
}

const config: LogConfig = { level: LogLevel.NOTICE, flags: [], json: false };
let flagSet = new Set<string>();
let realmTag = 'r0';

export function parseLogLevel(name: string): number {
  const i = LEVEL_NAMES.indexOf(name.toLowerCase() as LogLevelName);
  if (i < 0) throw new InvalidArgumentError(`unknown log level '${name}' (use ${LEVEL_NAMES.join(', ')})`);
  return i;
}

export function configureLogging(c: Partial<LogConfig>, reactor?: number): void {
  if (c.level !== undefined) config.level = c.level;
  if (c.flags !== undefined) config.flags = [...c.flags];
  if (c.json !== undefined) config.json = c.json;
  flagSet = new Set(config.flags);
  if (reactor !== undefined) realmTag = `r${reactor}`;
}

export function logConfig(): LogConfig {
  return { level: config.level, flags: [...config.flags], json: config.json };
}

/** Component flags set with -L; 'all' enables every component. */
export function logFlagEnabled(component: string): boolean {
  return flagSet.has(component) || flagSet.has('all');
}

function emit(level: number, component: string, msg: string, fields?: Record<string, unknown>): void {
  // debug lines need the component flag; other levels follow the global level
  if (
    level === LogLevel.DEBUG
      ? !logFlagEnabled(component) && config.level < LogLevel.DEBUG
      : level > config.level
  ) {
    return;
  }
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
  try {
    writeSync(2, `${line}\n`);
  } catch {
    // stderr gone (EPIPE): nothing sensible left to do with a log line
  }
}

const loggers = new Map<string, Logger>();

export function logger(component: string): Logger {
  let l = loggers.get(component);
  if (l === undefined) {
    l = {
      error: (m, f) => emit(LogLevel.ERROR, component, m, f),
      warn: (m, f) => emit(LogLevel.WARN, component, m, f),
      notice: (m, f) => emit(LogLevel.NOTICE, component, m, f),
      info: (m, f) => emit(LogLevel.INFO, component, m, f),
      debug: (m, f) => emit(LogLevel.DEBUG, component, m, f),
    };
    loggers.set(component, l);
  }
  return l;
}
