// OUR target's NVMe/RDMA transport against the Linux kernel's nvme-rdma host, both in the
// bookworm guest over soft-RoCE (rxe0 on eth0; rxe loops the traffic back): the repository
// is shared into the guest (run-guest -P) and guest/rdma-target-checks.sh starts nvmf_tgt
// there with `nvmf_create_transport -t RDMA`, then runs nvme discover / connect -t rdma
// with two I/O queues, fio verify (4 KiB random, 128 KiB sequential on two queues), ext4
// mkfs/fsck/remount, disconnect and reconnect, and a timed fio run over RDMA and over TCP
// against the same target with its CPU time taken around each (CPU per I/O, RDMA vs TCP).
// One boot; 4-7 minutes under TCG. Needs `sudo bash scripts/setup-interop.sh` and the
// addon built (npm ci with libibverbs-dev and librdmacm-dev); see docs/rdma.md.
import { join } from 'node:path';
import { test } from 'node:test';
import { outputSection, REPO_ROOT, reportGuestChecks, runProjectGuest } from './lib/harness.ts';

const SCRIPT = join(REPO_ROOT, 'test/interop/guest/rdma-target-checks.sh');
// 6 min 8 s measured under TCG at load 3-4 (boot 10-20 s, each fio verify 30-60 s).
const GUEST_TIMEOUT_SECONDS = 900;
const CHECKS = [
  'rxe-up',
  'target-listens-rdma',
  'rpc-rdma-transport',
  'discover-rdma',
  'connect-rdma',
  'io-queues',
  'fio-4k-randwrite-verify',
  'fio-128k-seq-verify',
  'ext4-remount',
  'disconnect',
  'target-alive-after-disconnect',
  'reconnect-data-intact',
  'cpu-per-io',
  'target-alive-at-end',
];

test('bookworm guest: our nvmf_tgt over RDMA (rxe0) and the kernel nvme-rdma host', async (t) => {
  const run = await runProjectGuest({
    script: SCRIPT,
    memoryMiB: 1536,
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
  });
  for (const line of run.stdout.split('\n')) if (line.startsWith('CPU-PER-IO')) t.diagnostic(line);
  await reportGuestChecks(t, run, CHECKS, 'rdma-target.log', () => {
    const log = outputSection(run.stdout, 'CPU per I/O');
    return log === '' ? '' : `\n--- last section ---\n${log.slice(-2000)}`;
  });
});
