// nvmf-rpc: command-line client with SPDK rpc.py's syntax,
//   nvmf-rpc [-s SOCK] [-t TIMEOUT] [-r RETRIES] [-v] [--dry-run] METHOD [args...]
// Each method's flags and positionals come from its ParamSpec list (ParamSpec.cli);
// `nvmf-rpc call METHOD ['{json}']` sends any method raw.

import { basename } from 'node:path';
import { cliFlagsOf, type ParamSpec, RpcClient, RpcError, type RpcMethod } from '../jsonrpc/index.ts';
import { UsageError } from '../util/errors.ts';

export const DEFAULT_RPC_SOCKET = '/var/tmp/spdk.sock';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const consoleIo: CliIo = {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
};

export interface GlobalOptions {
  socket: string;
  timeoutMs: number;
  retries: number;
  verbose: boolean;
  dryRun: boolean;
  help: boolean;
  /** Script mode sends all commands as one JSON-RPC batch (rpc.py -b). */
  batch: boolean;
}

// ---------------------------------------------------------------- per-method arguments

/** The flags a parameter answers to on the command line (default: --name-with-dashes). */
export const flagsOf = cliFlagsOf;

function isPositional(spec: ParamSpec): boolean {
  return spec.cli?.positional === true;
}

function takesValue(spec: ParamSpec): boolean {
  const action = spec.cli?.action;
  if (action === 'store_true' || action === 'store_false') return false;
  return !(spec.type === 'boolean' && action === undefined);
}

function metavar(spec: ParamSpec): string {
  return spec.name.toUpperCase();
}

export function methodUsage(m: RpcMethod): string {
  const parts = [`usage: nvmf-rpc ${m.name}`, '[-h]'];
  for (const p of m.params) {
    if (isPositional(p)) continue;
    const flag = flagsOf(p)[0];
    const body = takesValue(p) ? `${flag} ${metavar(p)}` : flag;
    parts.push(p.required ? body : `[${body}]`);
  }
  for (const p of m.params) {
    if (!isPositional(p)) continue;
    parts.push(p.required ? p.name : `[${p.name}]`);
  }
  return parts.join(' ');
}

export function methodHelp(m: RpcMethod): string {
  const lines = [methodUsage(m), '', m.summary];
  const pos = m.params.filter(isPositional);
  const opt = m.params.filter((p) => !isPositional(p));
  const describe = (p: ParamSpec): string => {
    const extra: string[] = [];
    if (p.required) extra.push('required');
    if (p.enum) extra.push(`one of: ${p.enum.join(', ')}`);
    if (p.min !== undefined) extra.push(`min ${p.min}`);
    if (p.max !== undefined) extra.push(`max ${p.max}`);
    if (p.default !== undefined) extra.push(`default ${JSON.stringify(p.default)}`);
    return extra.length > 0 ? `${p.help} (${extra.join('; ')})` : p.help;
  };
  if (pos.length > 0) {
    lines.push('', 'positional arguments:');
    for (const p of pos) lines.push(`  ${p.name.padEnd(28)} ${describe(p)}`);
  }
  lines.push('', 'options:', `  ${'-h, --help'.padEnd(28)} show this help message and exit`);
  for (const p of opt) {
    const flags = flagsOf(p).join(', ') + (takesValue(p) ? ` ${metavar(p)}` : '');
    lines.push(`  ${flags.padEnd(28)} ${describe(p)}`);
  }
  return lines.join('\n');
}

function convertValue(m: RpcMethod, spec: ParamSpec, raw: string): unknown {
  const bad = (what: string): never => {
    throw new UsageError(`argument ${flagsOf(spec)[0]}: invalid ${what} value: '${raw}'`, methodUsage(m));
  };
  if (spec.cli?.int || spec.type === 'integer') {
    const t = raw.trim();
    if (!/^[-+]?(0x[0-9a-f]+|\d+)$/i.test(t)) return bad('int');
    const n = t.replace(/^[-+]/, '').toLowerCase().startsWith('0x') ? Number.parseInt(t, 16) : Number(t);
    return Number.isSafeInteger(n) ? n : bad('int');
  }
  switch (spec.type) {
    case 'number': {
      const n = Number(raw);
      return raw.trim() !== '' && Number.isFinite(n) ? n : bad('float');
    }
    case 'boolean':
      if (/^(true|1|yes)$/i.test(raw)) return true;
      if (/^(false|0|no)$/i.test(raw)) return false;
      return bad('bool');
    case 'object':
    case 'array':
    case 'any': {
      const t = raw.trim();
      if (t.startsWith('{') || t.startsWith('[') || spec.type === 'any') {
        try {
          return JSON.parse(t);
        } catch {
          if (spec.type !== 'any') return bad('JSON');
          return raw;
        }
      }
      if (spec.type === 'array') return t === '' ? [] : t.split(',');
      return bad('JSON');
    }
    default:
      return raw;
  }
}

/**
 * Parse a method's command-line arguments (after METHOD) into JSON params,
 * argparse style, then apply the method's cliTransform. Throws UsageError.
 */
export function buildParams(m: RpcMethod, args: readonly string[]): Record<string, unknown> {
  const usage = methodUsage(m);
  const byFlag = new Map<string, ParamSpec>();
  for (const p of m.params) if (!isPositional(p)) for (const f of flagsOf(p)) byFlag.set(f, p);
  const positionals = m.params.filter(isPositional);
  const out: Record<string, unknown> = {};
  let posIndex = 0;
  let onlyPositionals = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const looksLikeFlag = !onlyPositionals && a.startsWith('-') && a.length > 1 && !/^-\d/.test(a);
    if (a === '--' && !onlyPositionals) {
      onlyPositionals = true;
      continue;
    }
    if (looksLikeFlag) {
      let flag = a;
      let inline: string | undefined;
      const eq = a.indexOf('=');
      if (a.startsWith('--') && eq > 0) {
        flag = a.slice(0, eq);
        inline = a.slice(eq + 1);
      }
      const spec = byFlag.get(flag);
      if (spec === undefined) throw new UsageError(`unrecognized arguments: ${a}`, usage);
      if (!takesValue(spec)) {
        if (inline !== undefined)
          throw new UsageError(`argument ${flag}: ignored explicit argument '${inline}'`, usage);
        out[spec.name] = spec.cli?.action !== 'store_false';
        continue;
      }
      let raw = inline;
      if (raw === undefined) {
        if (i + 1 >= args.length) throw new UsageError(`argument ${flag}: expected one argument`, usage);
        raw = args[++i];
      }
      const append = spec.cli?.action === 'append';
      // Each appended value is one element: parse it as a scalar (or JSON when it looks like JSON).
      const value =
        append && spec.type === 'array'
          ? convertValue(m, { ...spec, type: 'any' }, raw)
          : convertValue(m, spec, raw);
      if (append) {
        const prev = out[spec.name];
        out[spec.name] = Array.isArray(prev) ? [...prev, value] : [value];
      } else out[spec.name] = value;
      continue;
    }
    const spec = positionals[posIndex++];
    if (spec === undefined) throw new UsageError(`unrecognized arguments: ${a}`, usage);
    out[spec.name] = convertValue(m, spec, a);
  }
  const missing: string[] = [];
  for (const p of m.params) {
    if (out[p.name] !== undefined) continue;
    if (isPositional(p) && posIndex <= positionals.indexOf(p) && (p.required || m.cliTransform)) {
      // argparse: positionals are required; a method with cliTransform uses every positional.
      missing.push(p.name);
    } else if (p.required && !isPositional(p)) missing.push(flagsOf(p).join('/'));
  }
  if (missing.length > 0)
    throw new UsageError(`the following arguments are required: ${missing.join(', ')}`, usage);
  if (m.cliTransform === undefined) return out;
  try {
    return m.cliTransform(out);
  } catch (e) {
    // a transform refusing a combination of flags is a usage error of this method
    if (e instanceof UsageError && e.usage === undefined) throw new UsageError(e.message, usage);
    throw e;
  }
}

// ---------------------------------------------------------------- global arguments

export function globalUsage(): string {
  return 'usage: nvmf-rpc [-h] [--version] [-s SOCK] [-t TIMEOUT] [-r RETRIES] [-v | --verbose LEVEL] [--dry-run] [-b] [--server] [METHOD [args...]]';
}

/** Split argv into global options, the method name and the method's own arguments. */
export function parseGlobal(argv: readonly string[]): {
  opts: GlobalOptions;
  method?: string;
  rest: string[];
} {
  const opts: GlobalOptions = {
    socket: DEFAULT_RPC_SOCKET,
    timeoutMs: 60_000,
    retries: 0,
    verbose: false,
    dryRun: false,
    help: false,
    batch: false,
  };
  let i = 0;
  const value = (flag: string): string => {
    if (i + 1 >= argv.length) throw new UsageError(`argument ${flag}: expected one argument`, globalUsage());
    return argv[++i];
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-s' || a === '--server') opts.socket = value(a);
    else if (a === '-t' || a === '--timeout') {
      const v = value(a);
      const s = Number(v);
      if (!Number.isFinite(s) || s <= 0)
        throw new UsageError(`argument -t: invalid timeout '${v}'`, globalUsage());
      opts.timeoutMs = Math.round(s * 1000);
    } else if (a === '-r') {
      const v = value(a);
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0)
        throw new UsageError(`argument -r: invalid int value: '${v}'`, globalUsage());
      opts.retries = n;
    } else if (a === '-v') opts.verbose = true;
    else if (a === '--verbose') {
      // rpc.py: --verbose {DEBUG,INFO,ERROR}; ERROR is its quiet default.
      const level = value(a);
      if (!['DEBUG', 'INFO', 'ERROR'].includes(level)) {
        throw new UsageError(
          `argument --verbose: invalid choice: '${level}' (choose from DEBUG, INFO, ERROR)`,
          globalUsage(),
        );
      }
      opts.verbose = level !== 'ERROR';
    } else if (a === '--dry-run') opts.dryRun = true;
    else if (a === '-b' || a === '--batch-mode') opts.batch = true;
    else if (a === '--no-batch-mode') opts.batch = false;
    else if (a === '-h' || a === '--help') opts.help = true;
    else if (a.startsWith('-')) throw new UsageError(`unrecognized arguments: ${a}`, globalUsage());
    else return { opts, method: a, rest: argv.slice(i + 1) };
  }
  return { opts, rest: [] };
}

// ---------------------------------------------------------------- output

/** JSON text as Python's json.dumps(indent=2) writes it (ensure_ascii: non-ASCII as \uXXXX). */
export function pythonJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Print a result the way rpc.py's print helpers do. */
export function formatResult(m: RpcMethod | undefined, result: unknown): string | undefined {
  const mode = m?.cliPrint;
  if (mode === 'none') return undefined;
  if (mode === 'array' && Array.isArray(result)) return result.map((v) => String(v)).join(' ');
  if (mode === undefined && (result === true || result === null || result === undefined)) return undefined;
  const text = pythonJson(result);
  // print_json strips the quotes of a bare string result (e.g. a new bdev's name).
  return typeof result === 'string' ? text.replace(/^"|"$/g, '') : text;
}

/** rpc.py's JSONRPCException text: the request's params, then the error object. */
export function formatError(method: string, params: unknown, reqId: number, err: RpcError): string {
  const req: Record<string, unknown> =
    params !== null && typeof params === 'object' && !Array.isArray(params) ? { ...params } : {};
  req.method = method;
  req.req_id = reqId;
  const error: Record<string, unknown> = { code: err.code, message: err.message };
  if (err.data !== undefined) error.data = err.data;
  return ['request:', pythonJson(req), 'Got JSON-RPC error response', 'response:', pythonJson(error)].join(
    '\n',
  );
}

// ---------------------------------------------------------------- commands

/** Split a command line like Python's shlex.split (POSIX quoting and backslashes). */
export function shellSplit(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new UsageError('No closing quotation');
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      inWord = true;
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length && '"\\$`'.includes(line[j + 1])) j++;
        cur += line[j];
      }
      if (j >= line.length) throw new UsageError('No closing quotation');
      i = j;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new UsageError('No escaped character');
      cur += line[++i];
      inWord = true;
    } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

type Prepared =
  | { kind: 'output'; text: string }
  | { kind: 'call'; name: string; method: RpcMethod | undefined; params: unknown };

/** Turn METHOD + its arguments into a call (or help text). Throws UsageError. */
export function prepareCommand(table: readonly RpcMethod[], name: string, rest: readonly string[]): Prepared {
  if (name === 'call') {
    // Raw: nvmf-rpc call METHOD ['{json params}']
    const [raw, json, ...extra] = rest;
    const usage = 'usage: nvmf-rpc call METHOD [JSON_PARAMS]';
    if (raw === undefined || extra.length > 0)
      throw new UsageError('expected METHOD and optional JSON params', usage);
    let params: unknown;
    if (json !== undefined) {
      try {
        params = JSON.parse(json);
      } catch (e) {
        throw new UsageError(`JSON_PARAMS is not valid JSON: ${(e as Error).message}`, usage);
      }
    }
    return { kind: 'call', name: raw, method: table.find((m) => m.name === raw), params };
  }
  const method = table.find((m) => m.name === name);
  if (method === undefined) {
    // Not in the local table: still sendable when given no args or one JSON object.
    if (rest.length > 1 || (rest.length === 1 && !rest[0].trim().startsWith('{'))) {
      throw new UsageError(
        `unknown method '${name}' (send it raw: nvmf-rpc call METHOD '{json}')`,
        globalUsage(),
      );
    }
    let params: unknown;
    if (rest.length === 1) {
      try {
        params = JSON.parse(rest[0]);
      } catch (e) {
        throw new UsageError(`params are not valid JSON: ${(e as Error).message}`, globalUsage());
      }
    }
    return { kind: 'call', name, method: undefined, params };
  }
  if (rest.includes('-h') || rest.includes('--help')) return { kind: 'output', text: methodHelp(method) };
  return { kind: 'call', name, method, params: buildParams(method, rest) };
}

// ---------------------------------------------------------------- main

/** The method table the CLI knows: nvmf_tgt's rpcMethodTable(), if present. */
export async function loadMethodTable(): Promise<RpcMethod[]> {
  // The specifier is computed so that a missing table does not break type checking of this file.
  const spec = new URL('../modules/event/index.ts', import.meta.url).href;
  try {
    const mod = (await import(spec)) as { rpcMethodTable?: () => RpcMethod[] };
    return mod.rpcMethodTable ? mod.rpcMethodTable() : [];
  } catch {
    return [];
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function connectWithRetries(opts: GlobalOptions): Promise<RpcClient> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await RpcClient.connect(opts.socket, opts.timeoutMs);
    } catch (e) {
      if (attempt >= opts.retries) throw e;
      await sleep(200);
    }
  }
}

export interface RunOptions {
  methods?: RpcMethod[];
  io?: CliIo;
  /** Script for the no-METHOD mode (default: read process.stdin unless it is a terminal). */
  stdin?: string;
  /** Command lines for --server mode (default: process.stdin, line by line). */
  lines?: AsyncIterable<string>;
}

async function* stdinLines(): AsyncIterable<string> {
  const { createInterface } = await import('node:readline');
  yield* createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
}

/**
 * rpc.py --server: each input line is a whole command line (global options
 * included), run on its own connection; its output ends with **STATUS=0 or 1.
 */
async function serveLines(lines: AsyncIterable<string>, run: RunOptions, io: CliIo): Promise<number> {
  const methods = run.methods ?? (await loadMethodTable());
  for await (const line of lines) {
    let code: number;
    try {
      const words = shellSplit(line);
      code = words.length === 0 ? 0 : await runCli(words, { ...run, methods, io, stdin: '' });
    } catch (e) {
      io.out((e as Error).message);
      code = 1;
    }
    io.out(`**STATUS=${code === 0 ? 0 : 1}`);
  }
  return 0;
}

async function readStdin(): Promise<string | undefined> {
  if (process.stdin.isTTY) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function reportUsage(io: CliIo, e: UsageError): number {
  io.err(e.usage ?? globalUsage());
  io.err(`nvmf-rpc: error: ${e.message}`);
  return 2;
}

/** Like rpc.py, an empty params object is not sent at all. */
function omitEmpty(params: unknown): unknown {
  const empty = params !== null && typeof params === 'object' && Object.keys(params).length === 0;
  return params === undefined || empty ? undefined : params;
}

/** rpc.py -b: every script command in one batch; results to stdout, errors to stderr. */
async function sendBatch(
  batch: Array<{ method: string; params?: unknown }>,
  opts: GlobalOptions,
  io: CliIo,
  connect: () => Promise<RpcClient>,
): Promise<number> {
  if (opts.dryRun) {
    io.out(`Request:\n${pythonJson(batch.map((c) => ({ method: c.method, params: c.params ?? null })))}`);
    return 0;
  }
  const responses = await (await connect()).callBatch(batch);
  let errors = 0;
  for (const r of responses) {
    if (r.error !== undefined) continue;
    if (r.result !== null && r.result !== undefined) io.out(pythonJson(r.result));
  }
  for (const r of responses) {
    if (r.error === undefined) continue;
    errors++;
    io.err(pythonJson(r.error));
  }
  return errors > 0 ? 1 : 0;
}

/** Send one prepared call and print its result; returns the RpcError (not printed) on failure. */
async function sendCall(
  client: RpcClient,
  call: Extract<Prepared, { kind: 'call' }>,
  opts: GlobalOptions,
  io: CliIo,
): Promise<RpcError | undefined> {
  const { name, method, params } = call;
  const sent = omitEmpty(params);
  if (opts.verbose) io.err(`request: ${JSON.stringify({ method: name, params: sent })}`);
  try {
    const result = await client.call(name, sent);
    if (opts.verbose) io.err(`response: ${JSON.stringify(result)}`);
    const text = formatResult(method, result);
    if (text !== undefined) io.out(text);
    return undefined;
  } catch (e) {
    if (e instanceof RpcError) return e;
    // spdk_kill_instance may take the server down before it answers (rpc.py ignores that too).
    if (name === 'spdk_kill_instance') return undefined;
    throw e;
  }
}

/**
 * Run one CLI invocation; returns the exit status (0 ok, 1 RPC/connection error, 2 usage error).
 * Without METHOD, runs one command per line from stdin on one connection, as rpc.py does.
 */
export async function runCli(argv: readonly string[], run: RunOptions = {}): Promise<number> {
  const io = run.io ?? consoleIo;
  if (argv.length === 1 && argv[0] === '--server') return serveLines(run.lines ?? stdinLines(), run, io);
  let opts: GlobalOptions;
  let method: string | undefined;
  let rest: string[];
  try {
    ({ opts, method, rest } = parseGlobal(argv));
  } catch (e) {
    if (e instanceof UsageError) return reportUsage(io, e);
    throw e;
  }
  const table = run.methods ?? (await loadMethodTable());

  let script: string[] | undefined;
  let single: Prepared | undefined;
  if (method === undefined) {
    if (opts.help) {
      io.out(globalUsage());
      io.out(
        '\nmethods (nvmf-rpc METHOD -h for its arguments; `nvmf-rpc call METHOD [JSON]` sends any method;',
      );
      io.out('without METHOD, commands are read from stdin, one per line):');
      for (const m of [...table].sort((a, b) => a.name.localeCompare(b.name))) {
        io.out(`  ${m.name.padEnd(40)} ${m.summary}`);
      }
      return 0;
    }
    const text = run.stdin ?? (await readStdin());
    if (text === undefined) {
      io.err(globalUsage());
      return 2;
    }
    script = text.split('\n');
  } else {
    try {
      single = prepareCommand(table, method, rest);
    } catch (e) {
      if (e instanceof UsageError) return reportUsage(io, e);
      throw e;
    }
    if (single.kind === 'output') {
      io.out(single.text);
      return 0;
    }
    if (opts.dryRun) {
      io.out(`Request:\n${pythonJson({ method: single.name, params: single.params ?? null })}`);
      return 0;
    }
  }

  let client: RpcClient | undefined;
  const connect = async (): Promise<RpcClient> => {
    client ??= await connectWithRetries(opts);
    return client;
  };
  try {
    if (single !== undefined && single.kind === 'call') {
      const err = await sendCall(await connect(), single, opts, io);
      if (err === undefined) return 0;
      io.out(formatError(single.name, single.params ?? {}, 1, err));
      return 1;
    }
    let executed = '';
    let reqId = 0;
    const batch: Array<{ method: string; params?: unknown }> = [];
    for (const line of script ?? []) {
      if (line.trim() === '') continue;
      executed = `${executed}\n${line.trimEnd()}`;
      let words: string[];
      try {
        words = shellSplit(line);
      } catch (e) {
        io.err(`nvmf-rpc: error: ${(e as Error).message}: ${line}`);
        return 2;
      }
      if (words.length === 0 || words[0].startsWith('#')) continue;
      let prepared: Prepared;
      try {
        prepared = prepareCommand(table, words[0], words.slice(1));
      } catch (e) {
        if (e instanceof UsageError) return reportUsage(io, e);
        throw e;
      }
      if (prepared.kind === 'output') {
        io.out(prepared.text);
        continue;
      }
      if (opts.batch) {
        batch.push({ method: prepared.name, params: omitEmpty(prepared.params) });
        continue;
      }
      if (opts.dryRun) {
        io.out(`Request:\n${pythonJson({ method: prepared.name, params: prepared.params ?? null })}`);
        continue;
      }
      reqId++;
      const err = await sendCall(await connect(), prepared, opts, io);
      if (err !== undefined) {
        io.out('Exception:');
        io.out(`${executed.trim()} <<<`);
        io.out(formatError(prepared.name, prepared.params ?? {}, reqId, err));
        return 1;
      }
    }
    if (opts.batch && batch.length > 0) return await sendBatch(batch, opts, io, connect);
    return 0;
  } catch (e) {
    io.out((e as Error).message);
    return 1;
  } finally {
    client?.close();
  }
}

function isEntryPoint(): boolean {
  if (import.meta.main) return true;
  // Imported by the bin/nvmf-rpc.mjs shim (or a symlink named nvmf-rpc).
  const script = process.argv[1] ? basename(process.argv[1]) : '';
  return script === 'nvmf-rpc' || script === 'nvmf-rpc.mjs';
}

if (isEntryPoint()) {
  // `nvmf-rpc ... | head`: a closed pipe ends the output quietly, as for any Unix tool.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  process.exitCode = await runCli(process.argv.slice(2));
}
