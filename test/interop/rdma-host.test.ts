// OUR host side over NVMe/RDMA (src/nvme's NvmeRdmaQpair through the nvmf CLI and
// nvmf-perf, trtype rdma) against the Linux kernel's nvmet-rdma target, both in the
// bookworm guest over soft-RoCE (rxe0 on eth0): the repository is shared into the guest
// (run-guest -P) and guest/rdma-host-checks.sh runs our tools there. One boot; about two
// minutes under TCG. Needs `sudo bash scripts/setup-interop.sh` and the addon built (npm ci
// with libibverbs-dev and librdmacm-dev); see docs/rdma.md.
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, reportGuestChecks, runProjectGuest } from './lib/harness.ts';

const SCRIPT = join(REPO_ROOT, 'test/interop/guest/rdma-host-checks.sh');
const GUEST_TIMEOUT_SECONDS = 900;
const CHECKS = [
  'nvmet-rdma-up',
  'discover-rdma',
  'identify-rdma',
  'id-ns-rdma',
  'write-read-20480',
  'write-read-1048576',
  'perf-rdma',
  'bdev-nvme-rdma-gateway',
  'gw-health-info',
  'nvmet-controllers',
];

test('bookworm guest: our host library, nvmf and nvmf-perf over RDMA (rxe0) against nvmet-rdma', async (t) => {
  const run = await runProjectGuest({
    script: SCRIPT,
    memoryMiB: 1536,
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
  });
  await reportGuestChecks(t, run, CHECKS, 'rdma-host.log', () => '');
});
