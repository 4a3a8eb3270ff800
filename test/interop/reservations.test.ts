// Real-host interop: reservations and namespace masking with the Linux NVMe/TCP host in a
// QEMU guest against OUR nvmf_tgt (-m 0x3). The guest connects two host identities (two
// host NQNs and host IDs, two controllers of one subsystem) and drives nvme-cli's
// resv-register / resv-acquire / resv-report / resv-release: registration, a Write
// Exclusive reservation, Reservation Conflict for the other host's write (its read
// passes), the reservation restored from the PTPL file after a SIGKILL and restart,
// preempt-and-abort while the preempted host writes, release and clear; then masking:
// namespace 2 (no_auto_visible) appears on host A by the AEN after nvmf_ns_add_host and
// never on host B. The subsystem has no discovery listener: `nvme discover` goes to its
// NVM listener. Guest side: test/interop/guest/reservation-checks.sh. See docs/interop.md.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  freePort,
  GUEST_HOST_IP,
  missingPrerequisites,
  REPO_ROOT,
  type RunningTarget,
  reportGuestChecks,
  rpcCall,
  runGuest,
  startNvmfTgt,
} from './lib/harness.ts';

const NQN = 'nqn.2016-06.io.spdk:cnode1';
const HOST_A = 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-1111-4111-8111-111111111111';
const MALLOC0_UUID = '6c1b9d52-8a3e-4f0b-9d71-3e5c2a4b7f10';
const SCRIPT = join(REPO_ROOT, 'test/interop/guest/reservation-checks.sh');
const CHECKS = [
  'discover-nvm-listener',
  'connect-two-hosts',
  'register',
  'register-wrong-key-conflict',
  'acquire-write-exclusive',
  'second-acquire-conflict',
  'non-holder-write-conflict',
  'ptpl-survives-restart',
  'preempt-and-abort',
  'release-and-clear',
  'masked-before',
  'ns-visible-after-add-host',
  'ns-hidden-from-other-host',
  'ns-gone-after-remove-host',
];

/** Namespace 1 shared with a PTPL file, namespace 2 visible to no host until nvmf_ns_add_host;
 * the subsystem's listener only (no discovery listener). */
function config(port: number, ptplFile: string): object {
  const listenAddress = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          // a fixed UUID: the PTPL file names the bdev, and the restarted target makes Malloc0 anew
          {
            method: 'bdev_malloc_create',
            params: { name: 'Malloc0', num_blocks: 32768, block_size: 512, uuid: MALLOC0_UUID },
          },
          { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 16384, block_size: 512 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          {
            method: 'nvmf_create_subsystem',
            params: { nqn: NQN, allow_any_host: true, serial_number: 'SPDK00000000000001' },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: {
              nqn: NQN,
              namespace: { nsid: 1, bdev_name: 'Malloc0', ptpl_file: ptplFile },
            },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 2, bdev_name: 'Malloc1', no_auto_visible: true } },
          },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address: listenAddress } },
        ],
      },
    ],
  };
}

type Qpair = { cntlid: number; qid: number; thread: string; hostnqn: string };

let target: RunningTarget | undefined;
after(async () => {
  if (target) await target.stop();
});

test('linux host: two host identities, reservations (nvme-cli resv-*), PTPL across a restart, masking', async (t) => {
  const missing = missingPrerequisites();
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const port = await freePort();
  const ptplFile = join(mkdtempSync(join(tmpdir(), 'nvmf-resv-interop-')), 'ns1.ptpl.json');
  const cfg = config(port, ptplFile);
  target = await startNvmfTgt({ port, cpuMask: '0x3', config: cfg });
  const requests: string[] = [];
  let qpairsBeforeRestart: Qpair[] = [];
  const failures: string[] = [];
  let pending: Promise<void> = Promise.resolve();
  // what the guest asks of the host side, one at a time in the order asked
  const handle = async (what: string): Promise<void> => {
    const tgt = target;
    assert.ok(tgt, 'no target');
    if (what === 'restart-target') {
      // where the two hosts' queues are, while both hold registrations (before the kill)
      qpairsBeforeRestart = (await rpcCall(tgt.rpcSocket, 'nvmf_subsystem_get_qpairs', {
        nqn: NQN,
      })) as Qpair[];
      // SIGKILL: no orderly shutdown may write the file; only what the commands persisted counts
      const persisted = readFileSync(ptplFile, 'utf8');
      const exited = new Promise((r) => tgt.process.once('exit', r));
      tgt.process.kill('SIGKILL');
      await exited;
      t.diagnostic(`PTPL file at the kill: ${persisted.replace(/\s+/g, ' ')}`);
      target = await startNvmfTgt({ port, cpuMask: '0x3', config: cfg });
    } else if (what === 'ns-add-host') {
      await rpcCall(tgt.rpcSocket, 'nvmf_ns_add_host', { nqn: NQN, nsid: 2, host: HOST_A });
    } else if (what === 'ns-remove-host') {
      await rpcCall(tgt.rpcSocket, 'nvmf_ns_remove_host', { nqn: NQN, nsid: 2, host: HOST_A });
    } else throw new Error(`unknown guest request ${what}`);
  };
  const run = await runGuest({
    script: SCRIPT,
    env: { TARGET_ADDR: GUEST_HOST_IP, TARGET_PORT: String(port), TARGET_NQN: NQN },
    timeoutSeconds: 420,
    onLine: (line) => {
      const m = /^REQUEST (\S+)/.exec(line);
      if (m === null) return;
      requests.push(m[1]);
      pending = pending.then(() =>
        handle(m[1]).catch((e) => {
          failures.push(`${m[1]}: ${(e as Error).message}`);
        }),
      );
    },
  });
  await pending;
  const logNote = () =>
    target ? `\n--- nvmf_tgt log ${target.logPath} (last lines) ---\n${target.logTail(30)}` : '';
  await t.test('the host side did what the guest asked', () => {
    assert.deepEqual(failures, []);
    assert.deepEqual(requests, ['restart-target', 'ns-add-host', 'ns-remove-host']);
  });
  await t.test('-m 0x3: each host has I/O queues on both reactors (one reservation state for both)', () => {
    t.diagnostic(
      qpairsBeforeRestart.map((q) => `cntlid ${q.cntlid} qid ${q.qid} ${q.thread} ${q.hostnqn}`).join('; '),
    );
    const hosts = new Set(qpairsBeforeRestart.map((q) => q.hostnqn));
    assert.equal(hosts.size, 2, `two hosts' queues: ${JSON.stringify(qpairsBeforeRestart)}`);
    for (const h of hosts) {
      const threads = new Set(
        qpairsBeforeRestart.filter((q) => q.hostnqn === h && q.qid > 0).map((q) => q.thread),
      );
      assert.ok(threads.size >= 2, `${h}: I/O queues on ${[...threads].join(', ')} only`);
    }
  });
  await reportGuestChecks(t, run, CHECKS, 'reservations.log', logNote);
  await t.test('target healthy afterwards; the subsystem lists namespace 2 as masked', async () => {
    const tgt = target;
    assert.ok(tgt, 'no target');
    assert.ok(tgt.alive(), `nvmf_tgt died${logNote()}`);
    const subs = (await rpcCall(tgt.rpcSocket, 'nvmf_get_subsystems')) as {
      nqn: string;
      namespaces?: { nsid: number; no_auto_visible?: boolean; hosts?: unknown[] }[];
    }[];
    const ns2 = subs.find((s) => s.nqn === NQN)?.namespaces?.find((n) => n.nsid === 2);
    assert.equal(ns2?.no_auto_visible, true, JSON.stringify(subs));
  });
});
