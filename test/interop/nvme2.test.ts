// Real-host interop: the Linux host's NVMe 2.0 controller bring-up against OUR nvmf_tgt,
// both ways of CAP.CSS bit 6 (I/O command sets). Two targets, one guest boot: the default
// target (bit 6 clear, as SPDK without ZNS namespaces) gets CC.CSS = 000b; the one with
// `nvmf_set_config cap_css_iocs` gets CC.CSS = 110b from Linux (which then reads the
// command set identifiers of the namespaces). Both report VS 2.0 and CAP.CRWMS and must do verified I/O. The guest
// reads CAP/CC/VS with `nvme get-property`. Guest side: test/interop/guest/nvme2-checks.sh.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  freePort,
  GUEST_HOST_IP,
  missingPrerequisites,
  REPO_ROOT,
  type RunningTarget,
  reportGuestChecks,
  runGuest,
  startNvmfTgt,
} from './lib/harness.ts';

const NQN = 'nqn.2016-06.io.spdk:cnode1';
const SCRIPT = join(REPO_ROOT, 'test/interop/guest/nvme2-checks.sh');

function config(port: number, capCssIocs: boolean): object {
  const listenAddress = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          ...(capCssIocs ? [{ method: 'nvmf_set_config', params: { cap_css_iocs: true } }] : []),
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
          },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address: listenAddress } },
        ],
      },
    ],
  };
}

const targets: RunningTarget[] = [];
after(async () => {
  for (const t of targets) await t.stop();
});

test('linux host: CC.CSS 000b without CAP.CSS bit 6, 110b with it; VS 2.0; I/O both ways', async (t) => {
  const missing = missingPrerequisites();
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const portNvm = await freePort();
  targets.push(await startNvmfTgt({ port: portNvm, cpuMask: '0x1', config: config(portNvm, false) }));
  const portIocs = await freePort();
  targets.push(await startNvmfTgt({ port: portIocs, cpuMask: '0x1', config: config(portIocs, true) }));
  const run = await runGuest({
    script: SCRIPT,
    env: {
      TARGET_ADDR: GUEST_HOST_IP,
      TARGET_NQN: NQN,
      PORT_NVM: String(portNvm),
      PORT_IOCS: String(portIocs),
    },
    timeoutSeconds: 300,
  });
  const logNote = () =>
    targets.map((tg) => `\n--- nvmf_tgt log ${tg.logPath} (last lines) ---\n${tg.logTail(20)}`).join('');
  await reportGuestChecks(t, run, ['css-nvm', 'css-all-iocs'], 'nvme2.log', logNote);
  await t.test('both targets alive afterwards', () => {
    for (const tg of targets) assert.ok(tg.alive(), `nvmf_tgt died${logNote()}`);
  });
});
