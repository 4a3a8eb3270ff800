// nvmf-rpc: command-line client with SPDK rpc.py's syntax,
//   nvmf-rpc [-s SOCK] [-t TIMEOUT] [-r RETRIES] [-v] [--dry-run] METHOD [args...]
// Each method's flags and positionals come from its ParamSpec list (ParamSpec.cli);
// `nvmf-rpc call METHOD ['{json}']` sends any method raw.

import { basename } from 'node:path';
import { cliFlagsOf, type ParamSpec, RpcClient, RpcError, type RpcMethod } from '../jsonrpc/index.ts';

export const DEFAULT_RPC_SOCKET = '/var/tmp/spdk.sock';

/** A command-line mistake: printed with usage, exit status 2 (as argparse does). */
export class CliUsageError extends Error {
  readonly usage: string;
  constructor(message: string, usage: string) {
    super(message);
    this.name = 'CliUsageError';
    this.usage = usage;
  }
}

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
    throw new CliUsageError(`argument ${flagsOf(spec)[0]}: invalid ${what} value: '${raw}'`, methodUsage(m));
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
 * argparse style, then apply the method's cliTransform. Throws CliUsageError.
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
      if (spec === undefined) throw new CliUsageError(`unrecognized arguments: ${a}`, usage);
      if (!takesValue(spec)) {
        if (inline !== undefined)
          throw new CliUsageError(`argument ${flag}: ignored explicit argument '${inline}'`, usage);
        out[spec.name] = spec.cli?.action !== 'store_false';
        continue;
      }
      let raw = inline;
      if (raw === undefined) {
        if (i + 1 >= args.length) throw new CliUsageError(`argument ${flag}: expected one argument`, usage);
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
    if (spec === undefined) throw new CliUsageError(`unrecognized arguments: ${a}`, usage);
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
    throw new CliUsageError(`the following arguments are required: ${missing.join(', ')}`, usage);
  return m.cliTransform ? m.cliTransform(out) : out;
}

// ---------------------------------------------------------------- global arguments

export function globalUsage(): string {
  return 'usage: nvmf-rpc [-h] [-s SOCK] [-t TIMEOUT] [-r RETRIES] [-v] [--dry-run] METHOD [args...]';
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
  };
  let i = 0;
  const value = (flag: string): string => {
    if (i + 1 >= argv.length)
      throw new CliUsageError(`argument ${flag}: expected one argument`, globalUsage());
    return argv[++i];
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-s' || a === '--server') opts.socket = value(a);
    else if (a === '-t' || a === '--timeout') {
      const v = value(a);
      const s = Number(v);
      if (!Number.isFinite(s) || s <= 0)
        throw new CliUsageError(`argument -t: invalid timeout '${v}'`, globalUsage());
      opts.timeoutMs = Math.round(s * 1000);
    } else if (a === '-r') {
      const v = value(a);
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0)
        throw new CliUsageError(`argument -r: invalid int value: '${v}'`, globalUsage());
      opts.retries = n;
    } else if (a === '-v' || a === '--verbose') opts.verbose = true;
    else if (a === '--dry-run') opts.dryRun = true;
    else if (a === '-h' || a === '--help') opts.help = true;
    else if (a.startsWith('-')) throw new CliUsageError(`unrecognized arguments: ${a}`, globalUsage());
    else return { opts, method: a, rest: argv.slice(i + 1) };
  }
  return { opts, rest: [] };
}

// ---------------------------------------------------------------- output

/** Print a result the way rpc.py's print helpers do. */
export function formatResult(m: RpcMethod | undefined, result: unknown): string | undefined {
  const mode = m?.cliPrint;
  if (mode === 'none') return undefined;
  if (mode === 'array' && Array.isArray(result)) return result.map((v) => String(v)).join(' ');
  if (mode === undefined && (result === true || result === null || result === undefined)) return undefined;
  const text = JSON.stringify(result, null, 2);
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
  return [
    'request:',
    JSON.stringify(req, null, 2),
    'Got JSON-RPC error response',
    'response:',
    JSON.stringify(error, null, 2),
  ].join('\n');
}

// ---------------------------------------------------------------- main

/** The method table the CLI knows: the framework's collectRpcMethods(), if present. */
export async function loadMethodTable(): Promise<RpcMethod[]> {
  // The specifier is computed so that a missing table does not break type checking of this file.
  const spec = new URL('../event/rpc-methods.ts', import.meta.url).href;
  try {
    const mod = (await import(spec)) as { collectRpcMethods?: () => RpcMethod[] };
    return mod.collectRpcMethods ? mod.collectRpcMethods() : [];
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
}

/** Run one CLI invocation; returns the exit status (0 ok, 1 RPC/connection error, 2 usage error). */
export async function runCli(argv: readonly string[], run: RunOptions = {}): Promise<number> {
  const io = run.io ?? consoleIo;
  let methodName: string | undefined;
  let method: RpcMethod | undefined;
  let params: unknown;
  let opts: GlobalOptions;
  try {
    const g = parseGlobal(argv);
    opts = g.opts;
    const table = run.methods ?? (await loadMethodTable());
    if (g.method === undefined) {
      io.out(globalUsage());
      if (!opts.help) return 2;
      io.out(
        '\nmethods (nvmf-rpc METHOD -h for its arguments; `nvmf-rpc call METHOD [JSON]` sends any method):',
      );
      for (const m of [...table].sort((a, b) => a.name.localeCompare(b.name))) {
        io.out(`  ${m.name.padEnd(40)} ${m.summary}`);
      }
      return 0;
    }
    if (g.method === 'call') {
      // Raw: nvmf-rpc call METHOD ['{json params}']
      const [name, json, ...extra] = g.rest;
      const usage = 'usage: nvmf-rpc call METHOD [JSON_PARAMS]';
      if (name === undefined || extra.length > 0)
        throw new CliUsageError('expected METHOD and optional JSON params', usage);
      methodName = name;
      method = table.find((m) => m.name === name);
      if (json !== undefined) {
        try {
          params = JSON.parse(json);
        } catch (e) {
          throw new CliUsageError(`JSON_PARAMS is not valid JSON: ${(e as Error).message}`, usage);
        }
      }
    } else {
      methodName = g.method;
      method = table.find((m) => m.name === g.method);
      if (method === undefined) {
        // Not in the local table: still sendable when given no args or one JSON object.
        if (g.rest.length > 1 || (g.rest.length === 1 && !g.rest[0].trim().startsWith('{'))) {
          throw new CliUsageError(
            `unknown method '${g.method}' (send it raw: nvmf-rpc call METHOD '{json}')`,
            globalUsage(),
          );
        }
        params = g.rest.length === 1 ? JSON.parse(g.rest[0]) : undefined;
      } else {
        if (g.rest.includes('-h') || g.rest.includes('--help')) {
          io.out(methodHelp(method));
          return 0;
        }
        params = buildParams(method, g.rest);
      }
    }
  } catch (e) {
    if (e instanceof CliUsageError) {
      io.err(e.usage);
      io.err(`nvmf-rpc: error: ${e.message}`);
      return 2;
    }
    if (e instanceof SyntaxError) {
      io.err(`nvmf-rpc: error: params are not valid JSON: ${e.message}`);
      return 2;
    }
    throw e;
  }

  if (opts.dryRun) {
    io.out(`Request:\n${JSON.stringify({ method: methodName, params: params ?? null }, null, 2)}`);
    return 0;
  }
  let client: RpcClient;
  try {
    client = await connectWithRetries(opts);
  } catch (e) {
    io.out((e as Error).message);
    return 1;
  }
  try {
    if (opts.verbose) io.err(`request: ${JSON.stringify({ method: methodName, params })}`);
    // Like rpc.py, an empty params object is not sent at all.
    const empty = params !== null && typeof params === 'object' && Object.keys(params).length === 0;
    const result = await client.call(methodName, params === undefined || empty ? undefined : params);
    if (opts.verbose) io.err(`response: ${JSON.stringify(result)}`);
    const text = formatResult(method, result);
    if (text !== undefined) io.out(text);
    return 0;
  } catch (e) {
    if (e instanceof RpcError) io.out(formatError(methodName, params ?? {}, 1, e));
    else io.out((e as Error).message);
    return 1;
  } finally {
    client.close();
  }
}

function isEntryPoint(): boolean {
  if (import.meta.main) return true;
  // Imported by the bin/nvmf-rpc.mjs shim (or a symlink named nvmf-rpc).
  const script = process.argv[1] ? basename(process.argv[1]) : '';
  return script === 'nvmf-rpc' || script === 'nvmf-rpc.mjs';
}

if (isEntryPoint()) {
  process.exitCode = await runCli(process.argv.slice(2));
}
