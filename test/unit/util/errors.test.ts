// docs/errors.md lists every error code the sources throw, once each, with the
// class that throws it; every error class is rooted at NvmfTsError. Read from
// the source text (grep-like), so a new code or class cannot be left out.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RpcErrorCode } from '../../../src/jsonrpc/index.ts';
import {
  DuplicateNameError,
  InvalidArgumentError,
  NvmfTsError,
  UsageError,
} from '../../../src/util/errors.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const sources = sourceFiles(SRC).map((path) => ({
  path: relative(ROOT, path),
  text: readFileSync(path, 'utf8'),
}));

/** The argument texts of every `new NAME(...)` in `text` (top-level commas; strings and templates skipped). */
function constructorArgs(text: string, name: string): string[][] {
  const calls: string[][] = [];
  const re = new RegExp(`new ${name}\\(`, 'g');
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const args: string[] = [];
    let depth = 0;
    let cur = '';
    let i = m.index + m[0].length;
    for (; i < text.length; i++) {
      const c = text[i];
      if (c === "'" || c === '"' || c === '`') {
        // copy the literal whole; a template's ${...} may hold quotes and parentheses of its own
        const start = i;
        let nest = 0;
        for (i++; i < text.length; i++) {
          if (text[i] === '\\') i++;
          else if (c === '`' && text[i] === '$' && text[i + 1] === '{') nest++;
          else if (c === '`' && text[i] === '}' && nest > 0) nest--;
          else if (text[i] === c && nest === 0) break;
        }
        cur += text.slice(start, i + 1);
        continue;
      }
      if (c === '(' || c === '[' || c === '{') depth++;
      if (c === ')' || c === ']' || c === '}') {
        if (depth === 0) break;
        depth--;
      }
      if (c === ',' && depth === 0) {
        args.push(cur.trim());
        cur = '';
        continue;
      }
      cur += c;
    }
    if (cur.trim() !== '') args.push(cur.trim());
    calls.push(args);
  }
  return calls;
}

function stringLiteral(arg: string | undefined): string | null {
  const m = /^'([^']*)'$/.exec(arg ?? '');
  return m === null ? null : m[1];
}

/** Rows of the Markdown table that follows `heading` in docs/errors.md: the cells of each row. */
function tableAfter(doc: string, heading: string): string[][] {
  const from = doc.indexOf(heading);
  assert.ok(from >= 0, `docs/errors.md has a "${heading}" section`);
  const rows: string[][] = [];
  let inTable = false;
  for (const line of doc.slice(from).split('\n').slice(1)) {
    if (line.startsWith('#')) break;
    if (!line.startsWith('|')) {
      if (inTable) break;
      continue;
    }
    inTable = true;
    const cells = line
      .slice(1, -1)
      .split(' | ')
      .map((c) => c.trim());
    if (cells[0] === 'code' || cells[0].startsWith('---')) continue;
    rows.push(cells);
  }
  return rows;
}

const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
const codeRows = tableAfter(doc, '## Codes').map(([code, cls]) => ({
  code: code.replace(/`/g, ''),
  cls: cls.replace(/`/g, ''),
}));
const rpcRows = tableAfter(doc, '## JSON-RPC error codes').map(([code]) => Number(code));

/** Every error class declared under src/ and what it extends. */
const classes = new Map<string, { base: string; path: string; text: string }>();
for (const s of sources) {
  for (const m of s.text.matchAll(/class (\w+) extends (\w+)\b/g)) {
    if (m[1].endsWith('Error')) classes.set(m[1], { base: m[2], path: s.path, text: s.text });
  }
}

/** Classes whose first constructor argument is the code (the others have theirs fixed in the class). */
const CODE_FIRST = [
  'BdevError',
  'NvmeQueueError',
  'TcpTransportError',
  'NvmeControllerError',
  'RpcClientError',
];

test('every error class is rooted at NvmfTsError, and every one that exists is in docs/errors.md', () => {
  const rootOf = (name: string): string => {
    let n = name;
    for (let i = 0; i < 10 && classes.has(n); i++) n = classes.get(n)!.base;
    return n;
  };
  assert.equal(classes.get('NvmfTsError')?.base, 'Error');
  for (const [name, c] of classes) {
    if (name === 'NvmfTsError') continue;
    assert.equal(rootOf(name), 'Error', `${name} (${c.path})`);
    assert.notEqual(c.base, 'Error', `${name} (${c.path}) extends Error directly, not NvmfTsError`);
  }
  const documented = new Set(codeRows.map((r) => r.cls));
  for (const name of classes.keys()) {
    if (name === 'NvmfTsError' || name === 'RpcError') continue; // the root; RpcError's codes are the second table
    assert.ok(documented.has(name), `docs/errors.md names no code of ${name}`);
  }
});

test('every code thrown under src/ is in docs/errors.md once, with the class that throws it', () => {
  // code → classes that throw it
  const thrown = new Map<string, Set<string>>();
  const add = (code: string, cls: string): void => {
    if (!thrown.has(code)) thrown.set(code, new Set());
    thrown.get(code)!.add(cls);
  };
  for (const s of sources) {
    for (const cls of CODE_FIRST) {
      for (const args of constructorArgs(s.text, cls)) {
        const code = stringLiteral(args[0]);
        assert.ok(code !== null, `${s.path}: new ${cls}(${args[0]}, …) names its code as a literal`);
        add(code, cls);
      }
    }
  }
  // fixed codes: the literal in the class that owns it (its constructor's super call)
  for (const [name, c] of classes) {
    if (CODE_FIRST.includes(name)) continue;
    const body = c.text.slice(c.text.indexOf(`class ${name} extends`));
    const m = /super\('(NVMF_ERR_\w+)'/.exec(body.slice(0, body.indexOf('\n}\n')));
    if (m !== null) add(m[1], name);
  }
  // no NVMF_ERR_ literal anywhere that the two rules above did not see
  for (const s of sources) {
    for (const m of s.text.matchAll(/'(NVMF_ERR_\w+)'/g)) {
      assert.ok(thrown.has(m[1]), `${s.path}: code ${m[1]} is not thrown by a known error class`);
    }
  }

  const seen = new Set<string>();
  for (const r of codeRows) {
    assert.ok(!seen.has(r.code), `docs/errors.md lists ${r.code} twice`);
    seen.add(r.code);
    assert.ok(thrown.has(r.code), `docs/errors.md lists ${r.code}, which nothing under src/ throws`);
  }
  for (const [code, owners] of thrown) {
    const row = codeRows.find((r) => r.code === code);
    assert.ok(
      row !== undefined,
      `${code} (thrown by ${[...owners].join(', ')}) is missing from docs/errors.md`,
    );
    assert.equal(owners.size, 1, `${code} is thrown by more than one class: ${[...owners].join(', ')}`);
    assert.ok(
      owners.has(row.cls),
      `docs/errors.md gives ${code} to ${row.cls}; src/ throws it as ${[...owners]}`,
    );
  }
  assert.ok(thrown.size >= 30, `found ${thrown.size} codes: the scan works`);
});

test('every JSON-RPC error code an error can carry is in docs/errors.md once', () => {
  assert.equal(new Set(rpcRows).size, rpcRows.length, 'a JSON-RPC code listed twice');
  const numeric = (arg: string | undefined): number | null => {
    if (arg === undefined) return null;
    if (/^-?\d+$/.test(arg)) return Number(arg);
    const m = /^RpcErrorCode\.(\w+)$/.exec(arg);
    return m === null ? null : RpcErrorCode[m[1] as keyof typeof RpcErrorCode];
  };
  const codes = new Map<number, string>();
  for (const s of sources) {
    for (const args of constructorArgs(s.text, 'RpcError')) {
      const n = numeric(args[0]);
      if (n !== null) codes.set(n, s.path);
    }
    for (const args of constructorArgs(s.text, 'NvmeAttachError')) {
      const n = numeric(args[0]);
      assert.ok(n !== null, `${s.path}: NvmeAttachError errno ${args[0]} is a literal`);
      codes.set(n, s.path);
    }
    for (const args of constructorArgs(s.text, 'NvmfError')) {
      // a literal, or a constant of the file (`const EINVAL = -22;`)
      const constant =
        args[1] === undefined ? undefined : new RegExp(`const ${args[1]} = (-\\d+);`).exec(s.text)?.[1];
      const n = args.length > 1 ? (constant !== undefined ? Number(constant) : numeric(args[1])) : -22;
      assert.ok(n !== null, `${s.path}: NvmfError errno ${args[1]} is a literal`);
      codes.set(n, s.path);
    }
    for (const args of constructorArgs(s.text, 'KeyringError')) {
      // the errno: a literal, or constants of the file (`const EPERM = -1;`), maybe in a conditional
      const values = [...(args[1] ?? '').matchAll(/-\d+|\b[A-Z][A-Z0-9]+\b/g)].map((m) =>
        m[0].startsWith('-')
          ? Number(m[0])
          : Number(new RegExp(`const ${m[0]} = (-\\d+);`).exec(s.text)?.[1]),
      );
      assert.ok(values.length > 0, `${s.path}: KeyringError errno ${args[1]}`);
      for (const n of values) {
        assert.ok(Number.isInteger(n), `${s.path}: KeyringError errno ${args[1]} resolves to literals`);
        codes.set(n, s.path);
      }
    }
    for (const m of s.text.matchAll(/code: RpcErrorCode\.(\w+)/g))
      codes.set(RpcErrorCode[m[1] as keyof typeof RpcErrorCode], s.path);
  }
  // BdevError codes become errno answers through the bdev RPCs' table
  const errnoTable = sources.find((s) => s.path.endsWith('modules/bdev/rpc-util.ts'))!.text;
  const table = /const ERRNO[^=]*= \{([^}]*)\}/.exec(errnoTable);
  assert.ok(table !== null, 'rpc-util.ts maps BdevError codes to errno values');
  for (const m of table[1].matchAll(/(-\d+)/g)) codes.set(Number(m[1]), 'src/modules/bdev/rpc-util.ts');
  for (const [code, path] of codes) {
    assert.ok(rpcRows.includes(code), `JSON-RPC code ${code} (${path}) is missing from docs/errors.md`);
  }
  assert.ok(codes.size >= 10, `found ${codes.size} codes: the scan works`);
});

test('the root class: code, name and cause; the shared kinds carry fixed codes', () => {
  const e = new InvalidArgumentError('bad', { cause: 7 });
  assert.ok(e instanceof NvmfTsError && e instanceof Error);
  assert.equal(e.code, 'NVMF_ERR_INVALID_ARG');
  assert.equal(e.name, 'InvalidArgumentError');
  assert.equal(e.cause, 7);
  assert.match(String(e), /^InvalidArgumentError: bad$/);
  const u = new UsageError('no', 'usage: x');
  assert.equal(u.code, 'NVMF_ERR_USAGE');
  assert.equal(u.usage, 'usage: x');
  assert.equal(new UsageError('no').usage, undefined);
  assert.equal(new DuplicateNameError('twice').code, 'NVMF_ERR_DUPLICATE_NAME');
});
