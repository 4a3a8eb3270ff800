#!/usr/bin/env node
// Shim: refuse old Node with one line, answer --version, re-execute with glibc's tunables for
// large copies (src/apps/copy-tuning.ts), then run the TypeScript entry point.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 26 || (major === 26 && minor < 6)) {
  console.error(
    `nvmf_tgt needs Node.js >= 26.6 (this is ${process.version}); run it through npm or node_modules/.bin/node`,
  );
  process.exit(1);
}
const { answerVersion } = await import('./version.mjs');
answerVersion('nvmf_tgt', { anywhere: true });
// large copies with non-temporal stores: glibc takes that from GLIBC_TUNABLES at exec
const { reexecWithNtCopies } = await import('../src/apps/copy-tuning.ts');
reexecWithNtCopies(process.argv.slice(2));
await import('../src/apps/nvmf_tgt.ts');
