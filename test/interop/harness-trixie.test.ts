// Harness self-test of the trixie guest flavour (Debian 13: kernel 6.12, nvme-cli 2.13,
// tlshd), kernel against kernel, no nvmf-ts: in one guest the kernel's target (nvmet, on
// the guest's own address) requires DH-HMAC-CHAP of one host NQN and TLS 1.3 of
// another, and the kernel's host connects with `nvme connect --dhchap-secret` (a secret
// from `nvme gen-dhchap-key`; also bidirectional) and `nvme connect --tls` (the PSK put
// into the .nvme keyring by the guest's nvme-tls-psk); fio verifies through each; no
// secret, a wrong secret, plain TCP to the TLS port and a host without a PSK are refused.
// The guest's PSK derivation is checked against tlsPskFromInterchangeKey here.
// Needs `sudo bash scripts/setup-interop.sh` (both flavours); see docs/interop.md.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  missingPrerequisites,
  REPO_ROOT,
  reportGuestChecks,
  runGuest,
  tlsInterchangeKey,
  tlsPskFromInterchangeKey,
} from './lib/harness.ts';

const SCRIPT = join(REPO_ROOT, 'test/interop/guest/trixie-auth-tls-checks.sh');
const HOST_AUTH = 'nqn.2014-08.org.nvmexpress:uuid:7a1e0001-0000-4000-8000-000000000001';
const HOST_TLS = 'nqn.2014-08.org.nvmexpress:uuid:7a1e0001-0000-4000-8000-000000000002';
const HOST_NOPSK = 'nqn.2014-08.org.nvmexpress:uuid:7a1e0001-0000-4000-8000-000000000003';
const SUB_AUTH = 'nqn.2016-06.io.nvmf-ts:harness-auth';
const SUB_TLS = 'nqn.2016-06.io.nvmf-ts:harness-tls';
// 66-73 s under TCG with other jobs running (boot 10-20 s; the wrong secret is refused
// in 0.6-7 s with admin_timeout=5).
const GUEST_TIMEOUT_SECONDS = 300;
const CHECKS = [
  'trixie-image',
  'dhchap-target',
  'dhchap-no-secret-refused',
  'dhchap-wrong-secret-refused',
  'dhchap-connect-fio-verify',
  'dhchap-bidirectional',
  'tls-psk-inserted',
  'tls-target',
  'tls-plain-refused',
  'tls-no-psk-refused',
  'tls-connect-fio-verify',
];

test('trixie guest: kernel nvmet and nvme-tcp with DH-HMAC-CHAP and TLS 1.3, fio verify', async (t) => {
  const missing = missingPrerequisites('trixie');
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const tlsKey = tlsInterchangeKey(randomBytes(32));
  const run = await runGuest({
    flavour: 'trixie',
    script: SCRIPT,
    env: { HOST_AUTH, HOST_TLS, HOST_NOPSK, SUB_AUTH, SUB_TLS, TLS_KEY: tlsKey },
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
  });
  await reportGuestChecks(t, run, CHECKS, 'harness-trixie.log', () => '');
  await t.test('the guest derived the TLS PSK as the specification does', () => {
    const line = run.stdout.split('\n').find((l) => l.startsWith('TLS-PSK '));
    assert.ok(line, `the guest printed no TLS-PSK line (exit ${run.code})`);
    const [identity, psk] = line.slice('TLS-PSK '.length).trimEnd().split('|');
    const expected = tlsPskFromInterchangeKey(tlsKey, HOST_TLS, SUB_TLS);
    assert.equal(identity, expected.identity);
    assert.equal(psk, expected.tlsPsk.toString('hex'));
  });
});
