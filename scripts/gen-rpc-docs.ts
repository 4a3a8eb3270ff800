// Writes docs/rpc.md from the method table; `--check` exits 1 when the file is stale.
//   node_modules/.bin/node scripts/gen-rpc-docs.ts [--check]

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { lintRpcMethods, renderRpcDocs } from '../src/jsonrpc/index.ts';
import { rpcMethodTable } from '../src/modules/event/index.ts';

const target = fileURLToPath(new URL('../docs/rpc.md', import.meta.url));
const methods = rpcMethodTable();
const problems = lintRpcMethods(methods);
for (const p of problems) console.error(`schema problem: ${p}`);
const text = renderRpcDocs(methods);

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    // missing counts as stale
  }
  if (current !== text) {
    console.error('docs/rpc.md is stale: run `npm run docs:rpc`');
    process.exitCode = 1;
  }
} else {
  writeFileSync(target, text);
  console.log(`wrote ${target} (${methods.length} methods)`);
}
if (problems.length > 0) process.exitCode = 1;
