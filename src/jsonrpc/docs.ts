// Reference documentation and schema checks generated from the method table:
// docs/rpc.md is renderRpcDocs(collectRpcMethods()), kept current by a test.

import { type ParamSpec, type RpcMethod, RpcState } from './types.ts';
import { checkParam } from './validate.ts';

const PARAM_TYPES = new Set(['string', 'integer', 'number', 'boolean', 'object', 'array', 'any']);

/** The flags a parameter answers to on the nvmf-rpc command line (default: --name-with-dashes). */
export function cliFlagsOf(spec: ParamSpec): string[] {
  if (spec.cli?.flags && spec.cli.flags.length > 0) return spec.cli.flags;
  return [`--${spec.name.replaceAll('_', '-')}`];
}

/** Problems with a method table (missing summary/help, bad schema, clashing CLI flags); empty when fine. */
export function lintRpcMethods(methods: readonly RpcMethod[]): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const m of methods) {
    const where = `method ${m.name || '(unnamed)'}`;
    if (!/^[a-z][a-z0-9_]*$/.test(m.name ?? '')) problems.push(`${where}: name must be lower_snake_case`);
    if (names.has(m.name)) problems.push(`${where}: registered twice`);
    names.add(m.name);
    if (typeof m.summary !== 'string' || m.summary.trim() === '') problems.push(`${where}: missing summary`);
    const allStates = RpcState.STARTUP | RpcState.RUNTIME;
    if (!Number.isInteger(m.states) || m.states === 0 || (m.states & ~allStates) !== 0) {
      problems.push(`${where}: states must be a non-empty RpcState mask`);
    }
    if (typeof m.handler !== 'function') problems.push(`${where}: missing handler`);
    if (!Array.isArray(m.params)) {
      problems.push(`${where}: missing params schema (use [] for none)`);
      continue;
    }
    const flags = new Map<string, string>();
    const paramNames = new Set<string>();
    for (const p of m.params) {
      const pw = `${where} param ${p.name}`;
      if (!/^[a-z][a-z0-9_]*$/.test(p.name ?? '')) problems.push(`${pw}: name must be lower_snake_case`);
      if (paramNames.has(p.name)) problems.push(`${pw}: declared twice`);
      paramNames.add(p.name);
      lintSpec(p, pw, problems);
      if (p.cli?.positional) {
        if (p.cli.flags !== undefined) problems.push(`${pw}: a positional has no flags`);
        continue;
      }
      for (const f of cliFlagsOf(p)) {
        if (!/^-(-[A-Za-z0-9][A-Za-z0-9_-]*|[A-Za-z0-9][A-Za-z0-9]*)$/.test(f))
          problems.push(`${pw}: bad CLI flag ${f}`);
        if (f === '-h' || f === '--help') problems.push(`${pw}: CLI flag ${f} is reserved for help`);
        const other = flags.get(f);
        if (other !== undefined) problems.push(`${pw}: CLI flag ${f} also used by ${other}`);
        flags.set(f, p.name);
      }
    }
  }
  return problems;
}

/** Checks of one spec, recursing into object members and array items. */
function lintSpec(p: ParamSpec, pw: string, problems: string[]): void {
  if (!PARAM_TYPES.has(p.type)) problems.push(`${pw}: unknown type ${p.type}`);
  if (typeof p.help !== 'string' || p.help.trim() === '') problems.push(`${pw}: missing help`);
  if (p.enum !== undefined && p.type !== 'string') problems.push(`${pw}: enum needs type string`);
  if (p.min !== undefined && p.max !== undefined && p.min > p.max) problems.push(`${pw}: min > max`);
  if (p.properties !== undefined && p.type !== 'object') problems.push(`${pw}: properties need type object`);
  if (p.items !== undefined && p.type !== 'array') problems.push(`${pw}: items need type array`);
  if (p.default !== undefined) {
    try {
      checkParam(p, p.default);
    } catch (e) {
      problems.push(`${pw}: default does not satisfy its own schema (${(e as Error).message})`);
    }
  }
  const seen = new Set<string>();
  for (const member of p.properties ?? []) {
    if (!/^[a-z][a-z0-9_]*$/.test(member.name ?? ''))
      problems.push(`${pw}.${member.name}: name must be lower_snake_case`);
    if (seen.has(member.name)) problems.push(`${pw}.${member.name}: declared twice`);
    seen.add(member.name);
    lintSpec(member, `${pw}.${member.name}`, problems);
  }
  if (p.items !== undefined) lintSpec(p.items, `${pw}[]`, problems);
}

function stateText(states: number): string {
  const s: string[] = [];
  if (states & RpcState.STARTUP) s.push('startup (before `framework_start_init`)');
  if (states & RpcState.RUNTIME) s.push('runtime');
  return s.join(', ');
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('<', '&lt;').replaceAll('\n', ' ');
}

function constraints(p: ParamSpec): string {
  const c: string[] = [];
  if (p.enum) c.push(`one of ${p.enum.map((v) => `\`${v}\``).join(', ')}`);
  if (p.min !== undefined) c.push(`≥ ${p.min}`);
  if (p.max !== undefined) c.push(`≤ ${p.max}`);
  if (p.default !== undefined) c.push(`default \`${JSON.stringify(p.default)}\``);
  return c.join('; ');
}

function cliColumn(p: ParamSpec): string {
  if (p.cli?.positional) return `positional \`${p.name}\``;
  const flags = cliFlagsOf(p)
    .map((f) => `\`${f}\``)
    .join(', ');
  const action = p.cli?.action;
  return action ? `${flags} (${action})` : flags;
}

/** Object members and array items below a parameter, as [path, spec] rows. */
function nestedSpecs(p: ParamSpec, path: string): Array<[string, ParamSpec]> {
  const rows: Array<[string, ParamSpec]> = [];
  for (const member of p.properties ?? []) {
    rows.push([`${path}.${member.name}`, member]);
    rows.push(...nestedSpecs(member, `${path}.${member.name}`));
  }
  if (p.items !== undefined) {
    rows.push([`${path}[]`, p.items]);
    rows.push(...nestedSpecs(p.items, `${path}[]`));
  }
  return rows;
}

function usageLine(m: RpcMethod): string {
  const parts = [`nvmf-rpc ${m.name}`];
  for (const p of m.params) {
    if (p.cli?.positional) continue;
    const flag = cliFlagsOf(p)[0];
    const flagOnly =
      p.cli?.action === 'store_true' ||
      p.cli?.action === 'store_false' ||
      (p.type === 'boolean' && !p.cli?.action);
    const body = flagOnly ? flag : `${flag} ${p.name.toUpperCase()}`;
    parts.push(p.required ? body : `[${body}]`);
  }
  for (const p of m.params) if (p.cli?.positional) parts.push(p.required ? p.name : `[${p.name}]`);
  return parts.join(' ');
}

/** Markdown reference for every method, sorted by name. Deterministic: same table, same text. */
export function renderRpcDocs(methods: readonly RpcMethod[]): string {
  const sorted = [...methods].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [
    '# JSON-RPC methods',
    '',
    '<!-- Generated from the method table by `npm run docs:rpc` (scripts/gen-rpc-docs.ts). Do not edit by hand. -->',
    '',
    'The target serves JSON-RPC 2.0 on a Unix socket (default `/var/tmp/spdk.sock`, `nvmf_tgt -r PATH`),',
    "wire-compatible with SPDK's `scripts/rpc.py`. `nvmf-rpc` takes the same command lines as rpc.py;",
    "`nvmf-rpc call METHOD '{json}'` sends any method raw. Params are checked against the schema below:",
    'a wrong type, a value out of range, a missing required or an unknown parameter is error -32602 naming',
    'the field. A method called in the wrong state is error -1 (as SPDK).',
    '',
    '| Code | Meaning |',
    '| --- | --- |',
    '| -32700 | Parse error (the connection is closed) |',
    '| -32600 | Invalid request (or request over the size limit; the connection is closed) |',
    '| -32601 | Method not found |',
    '| -32602 | Invalid params (the message names the field) |',
    '| -32603 | Internal error |',
    '| -1 | Not allowed in the current state (startup vs runtime) |',
    '| other negative | errno from the component (e.g. -19 ENODEV, -17 EEXIST) |',
    '',
    '## Adding a method',
    '',
    "A component lists `RpcMethod` objects (`src/jsonrpc/types.ts`) in its framework subsystem's",
    '`rpcMethods`; `collectRpcMethods()` (`src/event/rpc-methods.ts`) gathers them for the server and the CLI.',
    'Each method has a `summary`, the `states` it may run in (`RpcState.STARTUP` / `RUNTIME`), and one',
    '`ParamSpec` per parameter with `help`; `cli` gives its rpc.py spelling (positional, flags, action).',
    'Optional: `cliTransform` reshapes CLI arguments (MB → blocks, flat flags → nested object) and',
    '`cliPrint` overrides how the CLI prints the result. Handlers throw `RpcError(code, message)`.',
    'Then run `npm run docs:rpc`; `test/unit/jsonrpc/docs.test.ts` fails while this file is stale or a',
    'method lacks a summary, a schema or help.',
    '',
    '## Methods',
    '',
  ];
  for (const m of sorted) out.push(`- [${m.name}](#${m.name}) — ${cell(m.summary)}`);
  for (const m of sorted) {
    out.push('', `## ${m.name}`, '', cell(m.summary.trim()), '', `Allowed: ${stateText(m.states)}.`, '');
    out.push('```', usageLine(m), '```', '');
    if (m.params.length === 0) {
      out.push('No parameters.');
      continue;
    }
    out.push(
      '| Name | Type | Required | Description | Constraints | CLI |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const p of m.params) {
      out.push(
        `| ${p.name} | ${p.type} | ${p.required ? 'yes' : 'no'} | ${cell(p.help)} | ${cell(constraints(p))} | ${cell(cliColumn(p))} |`,
      );
      for (const [path, member] of nestedSpecs(p, p.name)) {
        out.push(
          `| ${path} | ${member.type} | ${member.required ? 'yes' : 'no'} | ${cell(member.help)} | ${cell(constraints(member))} | |`,
        );
      }
    }
    if (m.cliTransform)
      out.push('', 'The CLI converts its arguments before sending (see the parameter descriptions).');
  }
  out.push('');
  return out.join('\n');
}
