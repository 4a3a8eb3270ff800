// `--version` for every tool, answered by the shim before the TypeScript entry
// point loads: "<tool> (nvmf-ts) <version>", the version spdk_get_version reports.
import { readFileSync } from 'node:fs';

/**
 * Prints the version and exits when the command line asks for it: `--version`
 * anywhere among the options of an option-only tool (nvmf_tgt, nvmf-perf), or
 * as the first argument of a command tool (nvmf, nvmf-rpc), whose later
 * arguments belong to the command.
 */
export function answerVersion(tool, { anywhere }) {
  const args = process.argv.slice(2);
  const asked = anywhere ? args.includes('--version') : args[0] === '--version';
  if (!asked) return;
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  console.log(`${tool} (nvmf-ts) ${pkg.version}`);
  process.exit(0);
}
