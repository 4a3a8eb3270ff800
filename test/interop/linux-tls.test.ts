// The NVMe/TCP secure channel (TLS 1.3, PSK) against real peers, in the trixie guest
// (Debian 13: kernel 6.12, nvme-cli 2.13, tlshd):
// 1. the Linux host against OUR nvmf_tgt's --secure-channel listener (10.0.2.2): the PSK
//    put into the .nvme keyring by the guest's nvme-tls-psk, `nvme connect --tls`, fio
//    verify over two I/O queues, no session ticket trouble; a plain connect, a host
//    without a PSK, an identity the target does not know and a wrong PSK are refused;
//    `nvme discover` shows the TLS port as "required" / "tls13";
// 2. the project's host library against the guest's kernel target (nvmet-tcp with a TLS
//    port, tlshd and gnutls on the server side): discovery and verified I/O over TLS; a
//    wrong PSK and plain TCP are refused.
// Needs `sudo bash scripts/setup-interop.sh` (the trixie flavour); see docs/interop.md.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DISCOVERY_NQN, NvmeController } from '../../src/nvme/index.ts';
import { TcpSecType, TreqSecureChannel } from '../../src/wire/discovery.ts';
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
  tlsInterchangeKey,
} from './lib/harness.ts';

const HOST_SCRIPT = join(REPO_ROOT, 'test/interop/guest/trixie-tls-host-checks.sh');
const NVMET_SCRIPT = join(REPO_ROOT, 'test/interop/guest/trixie-tls-nvmet.sh');
const SUB_TLS = 'nqn.2016-06.io.nvmf-ts:tls';
const HOST_TLS = 'nqn.2014-08.org.nvmexpress:uuid:7a1e0002-0000-4000-8000-000000000001';
const HOST_OTHER = 'nqn.2014-08.org.nvmexpress:uuid:7a1e0002-0000-4000-8000-000000000002';
// a trixie boot is 10-20 s under TCG, the checks about a minute
const GUEST_TIMEOUT_SECONDS = 400;
const HOST_CHECKS = [
  'trixie-image',
  'discover-tls-entry',
  'tls-plain-refused',
  'tls-no-psk-refused',
  'tls-unknown-identity-refused',
  'tls-wrong-psk-refused',
  'tls-psk-inserted',
  'tls-connect-fio-verify',
  'tls-no-session-ticket',
  'tls-disconnect',
];

const keyDir = mkdtempSync(join(tmpdir(), 'nvmf-interop-tls-'));
let target: RunningTarget | undefined;

after(async () => {
  if (target) await target.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

test('Linux 6.12 host (nvme connect --tls, tlshd) against our secure-channel listener', async (t) => {
  const missing = missingPrerequisites('trixie');
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const tlsKey = tlsInterchangeKey(randomBytes(32));
  const wrongKey = tlsInterchangeKey(randomBytes(32));
  const keyPath = join(keyDir, 'key0');
  writeFileSync(keyPath, `${tlsKey}\n`, { mode: 0o600 });
  const plainPort = await freePort();
  const tlsPort = await freePort();
  const listen = (port: number) => ({
    trtype: 'TCP',
    adrfam: 'IPv4',
    traddr: '127.0.0.1',
    trsvcid: String(port),
  });
  target = await startNvmfTgt({
    port: plainPort,
    cpuMask: '0x3',
    config: {
      subsystems: [
        {
          subsystem: 'keyring',
          config: [{ method: 'keyring_file_add_key', params: { name: 'key0', path: keyPath } }],
        },
        {
          subsystem: 'bdev',
          config: [
            {
              method: 'bdev_malloc_create',
              params: { name: 'Malloc0', num_blocks: 131072, block_size: 512 },
            },
          ],
        },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            { method: 'nvmf_create_subsystem', params: { nqn: SUB_TLS, allow_any_host: false } },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: SUB_TLS, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
            },
            { method: 'nvmf_subsystem_add_host', params: { nqn: SUB_TLS, host: HOST_TLS, psk: 'key0' } },
            { method: 'nvmf_subsystem_add_host', params: { nqn: SUB_TLS, host: HOST_OTHER } },
            {
              method: 'nvmf_subsystem_add_listener',
              params: { nqn: DISCOVERY_NQN, listen_address: listen(plainPort) },
            },
            {
              method: 'nvmf_subsystem_add_listener',
              params: { nqn: SUB_TLS, listen_address: listen(tlsPort), secure_channel: true },
            },
          ],
        },
      ],
    },
  });
  const run = await runGuest({
    flavour: 'trixie',
    script: HOST_SCRIPT,
    env: {
      TARGET_ADDR: GUEST_HOST_IP,
      TARGET_PORT: String(tlsPort),
      PLAIN_PORT: String(plainPort),
      SUB_TLS,
      HOST_TLS,
      HOST_OTHER,
      TLS_KEY: tlsKey,
      WRONG_KEY: wrongKey,
    },
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
  });
  const tgt = target;
  const logNote = () => `\n--- nvmf_tgt log ${tgt.logPath} (last lines) ---\n${tgt.logTail(30)}`;
  await reportGuestChecks(t, run, HOST_CHECKS, 'linux-tls-host.log', logNote);
  await t.test(
    'the target refused the unknown identity and the wrong PSK at the handshake, and is unharmed',
    async () => {
      assert.ok(tgt.alive(), `nvmf_tgt died${logNote()}`);
      const log = tgt.logTail(400);
      assert.match(
        log,
        new RegExp(`TLS connection failed \\(PSK identity "NVMe0R01 ${HOST_OTHER} ${SUB_TLS}"\\)`),
      );
      assert.match(
        log,
        new RegExp(`TLS connection failed \\(PSK identity "NVMe0R01 ${HOST_TLS} ${SUB_TLS}"\\)`),
      );
      assert.doesNotMatch(log, /uncaught|Unhandled/i);
      const stats = (await rpcCall(tgt.rpcSocket, 'nvmf_get_stats')) as {
        poll_groups: { current_qpairs: number }[];
      };
      assert.deepEqual(
        stats.poll_groups.map((g) => g.current_qpairs),
        [0, 0],
        'every queue of the guest is gone',
      );
    },
  );
});

/** Tell the guest the host side is done (it waits on its port 5000). */
function release(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => {
      s.end();
      resolve();
    });
    s.on('error', () => resolve());
  });
}

test("our host library against the 6.12 kernel target's TLS port (nvmet-tcp, tlshd)", async (t) => {
  const missing = missingPrerequisites('trixie');
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const tlsKey = tlsInterchangeKey(randomBytes(32));
  const nvmetPort = await freePort();
  const donePort = await freePort();
  let ready!: () => void;
  const nvmetReady = new Promise<void>((r) => {
    ready = r;
  });
  const running = runGuest({
    flavour: 'trixie',
    script: NVMET_SCRIPT,
    env: { SUB_TLS, HOST_TLS, TLS_KEY: tlsKey },
    forwards: [`${nvmetPort}:4421`, `${donePort}:5000`],
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
    onLine: (line) => {
      if (line === 'NVMET-READY') ready();
    },
  });
  const guestEnded = running.then(() => {
    throw new Error('the guest ended before nvmet was ready');
  });
  const hostSide: string[] = [];
  try {
    await Promise.race([nvmetReady, guestEnded]);
    const trid = { traddr: '127.0.0.1', trsvcid: String(nvmetPort), hostnqn: HOST_TLS, tlsKey };
    await t.test('discovery over TLS: the kernel says secure channel required, TLS 1.3', async () => {
      const disc = await NvmeController.connect({ ...trid, subnqn: DISCOVERY_NQN });
      try {
        const log = await disc.getDiscoveryLog();
        const e = log.entries.find((x) => x.subnqn === SUB_TLS);
        assert.ok(e, `no entry for ${SUB_TLS}: ${JSON.stringify(log.entries)}`);
        assert.deepEqual([e.treq & 3, e.sectype], [TreqSecureChannel.REQUIRED, TcpSecType.TLS_1_3]);
        hostSide.push(`discovery: treq ${e.treq}, sectype ${e.sectype}`);
      } finally {
        await disc.disconnect();
      }
    });
    await t.test(
      'admin and two I/O queues over TLS, 4 KiB and 64 KiB writes read back the same',
      async () => {
        const c = await NvmeController.connect({ ...trid, subnqn: SUB_TLS });
        try {
          await c.setNumQueues(2);
          const queues = [await c.createIoQpair(32), await c.createIoQpair(32)];
          for (const [i, q] of queues.entries()) {
            for (const blocks of [8, 128]) {
              const data = randomBytes(blocks * 512);
              const lba = i * 4096 + blocks;
              await q.writeAsync(1, lba, blocks, data);
              const back = Buffer.alloc(data.length);
              await queues[1 - i].readAsync(1, lba, blocks, back);
              assert.ok(back.equals(data), `queue ${i}, ${blocks} blocks`);
            }
          }
          hostSide.push(`I/O: cntlid ${c.cntlid}, 2 I/O queues verified`);
        } finally {
          await c.disconnect();
        }
      },
    );
    await t.test('a wrong PSK and plain TCP are refused by the kernel target', async () => {
      const wrong = { ...trid, subnqn: SUB_TLS, tlsKey: tlsInterchangeKey(randomBytes(32)) };
      await assert.rejects(NvmeController.connect(wrong, { connectTimeoutMs: 20_000 }));
      const { tlsKey: _key, ...plain } = trid;
      await assert.rejects(
        NvmeController.connect({ ...plain, subnqn: SUB_TLS }, { connectTimeoutMs: 20_000 }),
      );
    });
  } finally {
    await release(donePort);
  }
  const run = await running;
  await reportGuestChecks(
    t,
    run,
    ['nvmet-tls-port', 'host-done'],
    'linux-tls-nvmet.log',
    () => `\n${hostSide.join('\n')}`,
  );
  await t.test('tlshd shook hands on the server side for every queue (discovery, admin, 2 I/O)', () => {
    const m = /^TLSHD-HANDSHAKES (\d+)$/m.exec(run.stdout);
    assert.ok(m, 'the guest printed no TLSHD-HANDSHAKES line');
    assert.ok(Number(m[1]) >= 4, `tlshd: ${m[1]} successful handshakes`);
  });
});
