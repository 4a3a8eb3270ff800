// Harness self-test of soft-RoCE in the bookworm guest (kernel 6.1), kernel against
// kernel, no nvmf-ts: rxe0 on the guest's eth0, user-space verbs (rping over rdma_cm,
// ibv_rc_pingpong), then the kernel's nvme-rdma host against the kernel's nvmet-rdma
// target on the guest's own address (discover, connect, fio verify, disconnect).
// An RDMA target under test will run inside the guest the same way: the host machine
// has no rxe, so RoCE cannot reach it at 10.0.2.2.
// Needs `sudo bash scripts/setup-interop.sh`; see docs/interop.md.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { missingPrerequisites, REPO_ROOT, reportGuestChecks, runGuest } from './lib/harness.ts';

const SCRIPT = join(REPO_ROOT, 'test/interop/guest/rdma-loopback-checks.sh');
// 89-96 s under TCG with other jobs running (load 6-7).
const GUEST_TIMEOUT_SECONDS = 300;
const CHECKS = [
  'rxe-up',
  'verbs-rping',
  'verbs-rc-pingpong',
  'nvmet-rdma-target',
  'nvme-rdma-discover',
  'nvme-rdma-fio-verify',
  'nvme-rdma-disconnect',
];

test('bookworm guest: soft-RoCE rxe0, verbs, kernel nvme-rdma host against kernel nvmet-rdma, fio verify', async (t) => {
  const missing = missingPrerequisites('bookworm');
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const run = await runGuest({
    flavour: 'bookworm',
    script: SCRIPT,
    env: { RDMA_NQN: 'nqn.2016-06.io.nvmf-ts:harness-rdma' },
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
  });
  await reportGuestChecks(t, run, CHECKS, 'harness-rdma.log', () => '');
});
