// The RDMA addon (native/rdma, src/rdma) in the bookworm guest over soft-RoCE: the
// repository is shared into the guest (run-guest -P, virtio-9p) and
// guest/rdma-addon-smoke.ts runs there with the project's Node.js, built addon
// included. Against the kernel's nvmet-rdma target (a peer we did not write): CM
// rejects for bad NVMe/RDMA private data, accept, Fabrics Connect by SEND with its data
// fetched by the target's RDMA READ from our SharedArrayBuffer, Identify by its RDMA
// WRITE, disconnect. Between threads of ours: connect request handed from the acceptor
// to a poll-group worker, SRQ, RDMA READ / WRITE of 64 KiB, the idle poll group asleep
// until its completion channel fires, bad SGEs and rkeys, clean worker exits and the
// cleanup of a terminated worker. One boot; about a minute under TCG.
// Needs `sudo bash scripts/setup-interop.sh` and the addon built (npm ci with
// libibverbs-dev and librdmacm-dev); see docs/rdma.md and docs/interop.md.
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, reportGuestChecks, runProjectGuest } from './lib/harness.ts';

const SCRIPT = join(REPO_ROOT, 'test/interop/guest/rdma-addon-checks.sh');
// 38-65 s measured under TCG at load 6-8 (boot 10-22 s, the smoke script 19-37 s).
const GUEST_TIMEOUT_SECONDS = 300;
const CHECKS = [
  'rxe-and-nvmet-rdma',
  'addon-loads-in-guest',
  'plain-arraybuffer-refused',
  'object-churn-with-gc',
  'nvmet-rejects-bad-private-data',
  'nvmet-cm-established',
  'nvmet-fabrics-connect',
  'nvmet-identify-by-rdma-write',
  'nvmet-disconnect',
  'acceptor-transfers-request',
  'cross-thread-accept',
  'cross-thread-established',
  'idle-poll-group-sleeps',
  'cross-thread-send-recv',
  'rdma-read',
  'rdma-write-then-send',
  'host-sees-rdma-write',
  'bad-sge-refused',
  'bad-rkey-remote-access-error',
  'cross-thread-teardown',
  'shared-memory-seen-by-main',
  'workers-exit-on-their-own',
  'terminated-worker-cleaned-up',
  'smoke-script-exit',
  'nvmet-saw-our-hostnqn',
];

test('bookworm guest: the RDMA addon against nvmet-rdma and between our own threads over rxe0', async (t) => {
  const run = await runProjectGuest({
    script: SCRIPT,
    env: { RDMA_NQN: 'nqn.2016-06.io.nvmf-ts:rdma-addon', RDMA_PORT: '4791' },
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
  });
  await reportGuestChecks(t, run, CHECKS, 'rdma-addon.log', () => '');
});
