// Every tool answers --version with the package's version and exits 0.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
};

test('nvmf_tgt, nvmf-rpc, nvmf and nvmf-perf print "<tool> (nvmf-ts) <version>" for --version', () => {
  assert.deepEqual(Object.keys(pkg.bin).sort(), ['nvmf', 'nvmf-perf', 'nvmf-rpc', 'nvmf_tgt']);
  for (const [tool, script] of Object.entries(pkg.bin)) {
    const out = execFileSync(
      process.execPath,
      [new URL(`../../${script}`, import.meta.url).pathname, '--version'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(out, `${tool} (nvmf-ts) ${pkg.version}\n`);
  }
  // among other options for the option-only tools
  const tgt = new URL('../../bin/nvmf_tgt.mjs', import.meta.url).pathname;
  assert.equal(
    execFileSync(process.execPath, [tgt, '-m', '0x1', '--version'], { encoding: 'utf8' }),
    `nvmf_tgt (nvmf-ts) ${pkg.version}\n`,
  );
});
