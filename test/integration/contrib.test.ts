// The systemd unit and the Containerfile in contrib/: checked as far as this machine
// allows. The unit goes through `systemd-analyze verify` (with /opt/nvmf-ts pointed at
// this checkout, where its ExecStart exists) and must draw no warning; where
// systemd-analyze is missing its fields are checked instead. The Containerfile is not
// built here (no network for the base image): its COPY sources must exist and its
// entry point must be the target the unit runs.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const UNIT = readFileSync(join(ROOT, 'contrib/systemd/nvmf-ts.service'), 'utf8');
const CONTAINERFILE = readFileSync(join(ROOT, 'contrib/container/Containerfile'), 'utf8');

/** key → values of a unit file's section */
function section(text: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let inside = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      inside = line === `[${name}]`;
      continue;
    }
    if (!inside || line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const k = line.slice(0, eq);
    out.set(k, [...(out.get(k) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

function hasSystemdAnalyze(): boolean {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('the systemd unit: its fields, and systemd-analyze verify without a warning', async () => {
  const svc = section(UNIT, 'Service');
  assert.equal(svc.get('Type')?.[0], 'exec');
  assert.equal(svc.get('KillSignal')?.[0], 'SIGTERM', "nvmf_tgt's orderly shutdown");
  assert.equal(svc.get('Restart')?.[0], 'on-failure');
  assert.equal(svc.get('RuntimeDirectory')?.[0], 'nvmf-ts');
  const exec = svc.get('ExecStart')?.[0] ?? '';
  assert.match(
    exec,
    /^\/opt\/nvmf-ts\/node_modules\/\.bin\/node \/opt\/nvmf-ts\/bin\/nvmf_tgt\.mjs \$NVMF_TGT_ARGS$/,
  );
  assert.match(
    svc.get('Environment')?.[0] ?? '',
    /-r \/run\/nvmf-ts\/spdk\.sock --json \/etc\/nvmf-ts\/config\.json/,
  );
  assert.equal(section(UNIT, 'Install').get('WantedBy')?.[0], 'multi-user.target');

  // the command it runs works from this checkout
  const [node, script] = exec.replaceAll('/opt/nvmf-ts', ROOT).split(' ');
  const version = execFileSync(node, [script, '--version'], { encoding: 'utf8' });
  assert.match(version, /^nvmf_tgt \(nvmf-ts\) \d+\.\d+\.\d+/);

  if (!hasSystemdAnalyze()) {
    assert.notEqual(process.env.CI, 'true', 'systemd-analyze is missing on the CI machine');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'nvmf-unit-'));
  try {
    const file = join(dir, 'nvmf-ts.service');
    writeFileSync(file, UNIT.replaceAll('/opt/nvmf-ts', ROOT));
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile('systemd-analyze', ['verify', file], (err, _out, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, stderr }),
      ),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'systemd-analyze verify found nothing to say');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the Containerfile: its COPY sources exist, it runs the same target, stops with SIGTERM', () => {
  const lines = CONTAINERFILE.split('\n').filter((l) => !l.startsWith('#'));
  const froms = lines.filter((l) => l.startsWith('FROM '));
  assert.equal(froms.length, 2, 'a build stage and a runtime stage');
  for (const f of froms) assert.doesNotMatch(f, /:latest\b/, 'pinned base images');
  for (const l of lines.filter((x) => x.startsWith('COPY ') && !x.includes('--from='))) {
    const parts = l.split(/\s+/).slice(1, -1);
    for (const p of parts) assert.ok(existsSync(join(ROOT, p)), `COPY source ${p} exists`);
  }
  assert.match(CONTAINERFILE, /^RUN npm ci --omit=dev/m);
  assert.match(
    CONTAINERFILE,
    /^ENTRYPOINT \["\/opt\/nvmf-ts\/node_modules\/\.bin\/node", "\/opt\/nvmf-ts\/bin\/nvmf_tgt\.mjs"\]$/m,
  );
  assert.match(CONTAINERFILE, /^STOPSIGNAL SIGTERM$/m);
  assert.match(CONTAINERFILE, /^COPY config\/default\.json \/etc\/nvmf-ts\/config\.json$/m);
});
