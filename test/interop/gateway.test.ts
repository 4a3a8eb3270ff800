// Gateway interop: target A (our nvmf_tgt) exports a file (aio bdev); target B (another
// nvmf_tgt) attaches A with its bdev_nvme module and exports the remote namespace
// (Nvme0n1) again. The Linux kernel host in a QEMU guest writes a pattern through B,
// reads it back through B, disconnects, and reads the same LBAs through A directly;
// then our host library, from the host side, reads the pattern through A and checks
// the other direction (written through A, read through B). In a last phase the guest
// writes through B while the test kills A (SIGKILL) and starts it again on the same
// port and file: B reconnects, holds and resubmits the I/O, and fio's verify passes.
// Needs `sudo bash scripts/setup-interop.sh` once; a missing prerequisite fails the
// setup test with what to do (never a skip). See docs/interop.md.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { NvmeController, type NvmeIoQpair } from '../../src/nvme/index.ts';
import {
  freePort,
  GUEST_HOST_IP,
  type GuestRunResult,
  missingPrerequisites,
  NODE_BIN,
  REPO_ROOT,
  type RunningTarget,
  reportGuestChecks,
  rpcCall,
  runGuest,
  startNvmfTgt,
} from './lib/harness.ts';

// Our host library and nvmf-perf (a child) present this identity: nothing is read
// from /etc/nvme or written to ~/.config.
const TEST_HOSTID = randomUUID();
process.env.NVMF_TS_HOSTNQN = `nqn.2014-08.org.nvmexpress:uuid:${TEST_HOSTID}`;
process.env.NVMF_TS_HOSTID = TEST_HOSTID;

const GATEWAY_CHECKS_SCRIPT = join(REPO_ROOT, 'test/interop/guest/gateway-checks.sh');
const BDEV_NVME_DIR = join(REPO_ROOT, 'src/modules/bdev/nvme');
const A_NQN = 'nqn.2016-06.io.spdk:gateway-a';
const B_NQN = 'nqn.2016-06.io.spdk:gateway-b';
const CONTROLLER_NAME = 'Nvme0';
const BDEV_NAME = `${CONTROLLER_NAME}n1`;
const BLOCK_SIZE = 512;
const NS_BYTES = 64 * 1024 * 1024;
const PATTERN_OFFSET = 8 * 1024 * 1024;
const PATTERN_MB = 4;
const GUEST_TIMEOUT_SECONDS = 300;
const FAILOVER_MB = 6;
/** When the test kills A after the guest opens the failover window. */
const KILL_AFTER_MS = 2000;
const GUEST_CHECKS = [
  'gw-connect-b',
  'gw-fio-verify-b',
  'gw-write-b',
  'gw-readback-b',
  'gw-disconnect-b',
  'gw-connect-a',
  'gw-read-a',
  'gw-disconnect-a',
  'gw-failover-connect',
  'gw-failover-fio',
  'gw-failover-disconnect',
];

let portA = 0;
let portB = 0;
let targetA: RunningTarget | undefined;
let targetB: RunningTarget | undefined;
let setupError: string | undefined = 'setup did not run';
let guestRun: GuestRunResult | undefined;
/** Holds A's backing file (kept across A's restart). */
let dataDir: string | undefined;
let configOfA: object | undefined;
/** What happened to A during the failover window (ms since the epoch). */
const failover: { killedAt?: number; restartedAt?: number; closedAt?: number; error?: string } = {};

after(async () => {
  // The targets' folders (config, log) stay in the OS temp folder for inspection.
  if (targetB) await targetB.stop();
  if (targetA) await targetA.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

function requireSetup(): void {
  if (setupError !== undefined) assert.fail(`not run: ${setupError}`);
}

function listenAddress(port: number) {
  return { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
}

/** Target A: a 64 MiB file (aio bdev, survives A's restart) as nsid 1 of A_NQN, any host. */
function configA(port: number, filename: string): object {
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [{ method: 'bdev_aio_create', params: { name: 'Aio0', filename, block_size: BLOCK_SIZE } }],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          {
            method: 'nvmf_create_subsystem',
            params: { nqn: A_NQN, allow_any_host: true, serial_number: 'GATEWAYA0000001' },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: A_NQN, namespace: { nsid: 1, bdev_name: 'Aio0' } },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: A_NQN, listen_address: listenAddress(port) },
          },
        ],
      },
    ],
  };
}

/** Target B before the attach: the subsystem and its listener; the namespace comes by RPC. */
function configB(port: number): object {
  return {
    subsystems: [
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          {
            method: 'nvmf_create_subsystem',
            params: { nqn: B_NQN, allow_any_host: true, serial_number: 'GATEWAYB0000001' },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: B_NQN, listen_address: listenAddress(port) },
          },
        ],
      },
    ],
  };
}

function logNote(): string {
  let note = '';
  for (const [name, target] of [
    ['A', targetA],
    ['B', targetB],
  ] as const) {
    if (target)
      note += `\n--- nvmf_tgt ${name} log ${target.logPath} (last lines) ---\n${target.logTail(20)}`;
  }
  return note;
}

test('gateway setup: target A (file) and target B attaching A with bdev_nvme, exporting Nvme0n1', async () => {
  const missing = missingPrerequisites();
  if (!existsSync(BDEV_NVME_DIR)) {
    missing.push(`${BDEV_NVME_DIR} does not exist: the bdev_nvme module (the gateway) is not built yet`);
  }
  if (missing.length > 0) {
    setupError = `gateway prerequisites missing:\n  ${missing.join('\n  ')}`;
    assert.fail(setupError);
  }
  portA = await freePort();
  portB = await freePort();
  while (portB === portA) portB = await freePort();
  try {
    dataDir = mkdtempSync(join(tmpdir(), 'nvmf-gateway-'));
    const backingFile = join(dataDir, 'a.img');
    writeFileSync(backingFile, '');
    truncateSync(backingFile, NS_BYTES);
    configOfA = configA(portA, backingFile);
    targetA = await startNvmfTgt({ port: portA, config: configOfA, cpuMask: '0x1' });
    targetB = await startNvmfTgt({ port: portB, config: configB(portB), cpuMask: '0x1' });
    const created = await rpcCall(
      targetB.rpcSocket,
      'bdev_nvme_attach_controller',
      {
        name: CONTROLLER_NAME,
        trtype: 'tcp',
        adrfam: 'ipv4',
        traddr: '127.0.0.1',
        trsvcid: String(portA),
        subnqn: A_NQN,
        // B's host queues to A carry header and data digests (the guest's hop does not)
        hdgst: true,
        ddgst: true,
        // ride through A's restart: retry every second, give up after a minute
        ctrlr_loss_timeout_sec: 60,
        reconnect_delay_sec: 1,
      },
      30_000,
    );
    assert.deepEqual(created, [BDEV_NAME], `bdev_nvme_attach_controller returned ${JSON.stringify(created)}`);
    await rpcCall(targetB.rpcSocket, 'nvmf_subsystem_add_ns', {
      nqn: B_NQN,
      namespace: { nsid: 1, bdev_name: BDEV_NAME },
    });
    const bdevs = (await rpcCall(targetB.rpcSocket, 'bdev_get_bdevs', { name: BDEV_NAME })) as {
      block_size: number;
      num_blocks: number;
    }[];
    assert.equal(bdevs[0]?.block_size, BLOCK_SIZE, `bdev_get_bdevs ${JSON.stringify(bdevs)}`);
    assert.equal(bdevs[0]?.num_blocks, NS_BYTES / BLOCK_SIZE, `bdev_get_bdevs ${JSON.stringify(bdevs)}`);
    const controllers = (await rpcCall(targetB.rpcSocket, 'bdev_nvme_get_controllers')) as { name: string }[];
    assert.ok(
      Array.isArray(controllers) && controllers.some((c) => c.name === CONTROLLER_NAME),
      `bdev_nvme_get_controllers lacks ${CONTROLLER_NAME}: ${JSON.stringify(controllers)}`,
    );
  } catch (error) {
    setupError = `could not set up the gateway: ${(error as Error).message}${logNote()}`;
    throw new Error(setupError);
  }
  setupError = undefined;
});

/** Kill A (SIGKILL) while the guest writes through B, then start it again on the same port and file. */
async function restartA(): Promise<void> {
  try {
    await new Promise((r) => setTimeout(r, KILL_AFTER_MS));
    const old = targetA!;
    if (!old.alive()) throw new Error(`target A had already exited before the kill${logNote()}`);
    const exited = new Promise((r) => old.process.once('exit', r));
    old.process.kill('SIGKILL');
    await exited;
    failover.killedAt = Date.now();
    targetA = await startNvmfTgt({ port: portA, config: configOfA!, cpuMask: '0x1' });
    failover.restartedAt = Date.now();
  } catch (error) {
    failover.error = (error as Error).message;
  }
}

test('linux host through the gateway: write via B, read back via B and via A; A restarted under I/O', async (t) => {
  requireSetup();
  let restart: Promise<void> | undefined;
  const run = await runGuest({
    script: GATEWAY_CHECKS_SCRIPT,
    env: {
      TARGET_ADDR: GUEST_HOST_IP,
      A_PORT: String(portA),
      A_NQN,
      B_PORT: String(portB),
      B_NQN,
      NS_BYTES: String(NS_BYTES),
      PATTERN_OFFSET: String(PATTERN_OFFSET),
      PATTERN_MB: String(PATTERN_MB),
      FAILOVER_MB: String(FAILOVER_MB),
    },
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
    onLine: (line) => {
      if (line.startsWith('FAILOVER-WINDOW-OPEN') && !restart) restart = restartA();
      if (line.startsWith('FAILOVER-WINDOW-CLOSED')) failover.closedAt = Date.now();
    },
  });
  await restart;
  guestRun = run;
  await reportGuestChecks(t, run, GUEST_CHECKS, 'gateway.log', logNote);
  await t.test('A was killed and back while the guest wrote through B', () => {
    assert.equal(failover.error, undefined, `restarting A: ${failover.error}${logNote()}`);
    assert.ok(failover.killedAt && failover.restartedAt, `A was not restarted: ${JSON.stringify(failover)}`);
    assert.ok(
      failover.closedAt !== undefined && failover.killedAt < failover.closedAt,
      `fio finished before A was killed, so the restart proved nothing: ${JSON.stringify(failover)}`,
    );
    t.diagnostic(
      `A down for ${failover.restartedAt - failover.killedAt} ms; fio ended ${failover.closedAt - failover.restartedAt} ms after A was back`,
    );
  });
});

async function connectIo(port: number, subnqn: string): Promise<{ ctrlr: NvmeController; io: NvmeIoQpair }> {
  const ctrlr = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: String(port), subnqn });
  return { ctrlr, io: await ctrlr.createIoQpair(32) };
}

test("our host library: the guest's pattern is on A; a pattern written through A reads back through B", async () => {
  requireSetup();
  assert.ok(guestRun, 'the guest did not run');
  const line = /^PATTERN ([0-9a-f]{32}) (\d+) (\d+)$/m.exec(guestRun.stdout);
  assert.ok(line, `the guest printed no PATTERN line:\n${guestRun.stdout.slice(-3000)}`);
  const [, md5, offsetText, lengthText] = line;
  const lba = Number(offsetText) / BLOCK_SIZE;
  const length = Number(lengthText);
  const a = await connectIo(portA, A_NQN);
  const b = await connectIo(portB, B_NQN);
  try {
    const back = Buffer.alloc(length);
    const chunk = 128 * 1024;
    for (let off = 0; off < length; off += chunk) {
      await a.io.readAsync(1, lba + off / BLOCK_SIZE, chunk / BLOCK_SIZE, back.subarray(off, off + chunk));
    }
    assert.equal(createHash('md5').update(back).digest('hex'), md5, 'md5 of the pattern read through A');

    // The other direction, with several sizes (in-capsule and R2T through B's bdev_nvme).
    let target = lba + length / BLOCK_SIZE + 4096;
    for (const bytes of [512, 4096, 65536, 262144]) {
      const data = Buffer.alloc(bytes);
      for (let i = 0; i < bytes; i++) data[i] = (i * 31 + bytes + target) & 0xff;
      await a.io.writeAsync(1, target, bytes / BLOCK_SIZE, data);
      const viaB = Buffer.alloc(bytes);
      await b.io.readAsync(1, target, bytes / BLOCK_SIZE, viaB);
      assert.ok(
        viaB.equals(data),
        `${bytes} bytes written through A at LBA ${target} read differently through B`,
      );
      target += bytes / BLOCK_SIZE;
    }
  } finally {
    await b.ctrlr.disconnect();
    await a.ctrlr.disconnect();
  }
});

test('nvmf-perf 2 s 4 KiB randrw qd 32 through the gateway: no errors', async (t) => {
  requireSetup();
  const trid = `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${portB} subnqn:${B_NQN}`;
  const args = ['-r', trid, '-q', '32', '-o', '4096', '-w', 'randrw', '-M', '50', '-t', '2', '--json'];
  const run = spawnSync(NODE_BIN, [join(REPO_ROOT, 'bin/nvmf-perf.mjs'), ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 0, `nvmf-perf through B (exit ${run.status}): ${run.stderr}${logNote()}`);
  const total = (
    JSON.parse(run.stdout) as { total: { ios: number; errors: number; iops: number; p99_us: number } }
  ).total;
  assert.ok(total.ios > 0, `no I/O through the gateway: ${run.stdout}`);
  assert.equal(total.errors, 0, `I/O errors through the gateway: ${run.stdout}`);
  t.diagnostic(`through B: ${Math.round(total.iops)} IOPS, p99 ${Math.round(total.p99_us)} us`);
});

test('both targets alive; B lists its bdev_nvme controller and save_config writes the attach', async () => {
  requireSetup();
  assert.ok(targetA?.alive(), `target A died${logNote()}`);
  assert.ok(targetB?.alive(), `target B died${logNote()}`);
  const controllers = (await rpcCall(targetB!.rpcSocket, 'bdev_nvme_get_controllers')) as {
    name: string;
    ctrlrs?: { state?: string }[];
  }[];
  const nvme0 = controllers.find((c) => c.name === CONTROLLER_NAME);
  assert.ok(nvme0, `bdev_nvme_get_controllers after the run: ${JSON.stringify(controllers)}`);
  // reconnected to the restarted A, not stuck resetting
  assert.equal(nvme0.ctrlrs?.[0]?.state, 'enabled', `Nvme0 after A's restart: ${JSON.stringify(nvme0)}`);
  // save_config writes the attach back, digests included, so B can be replayed.
  const saved = (await rpcCall(targetB!.rpcSocket, 'save_config')) as {
    subsystems: { subsystem: string; config: { method: string; params: Record<string, unknown> }[] | null }[];
  };
  const attach = saved.subsystems
    .flatMap((sub) => sub.config ?? [])
    .find((entry) => entry.method === 'bdev_nvme_attach_controller');
  assert.ok(attach, `save_config lacks bdev_nvme_attach_controller: ${JSON.stringify(saved).slice(0, 2000)}`);
  assert.equal(attach.params.name, CONTROLLER_NAME);
  assert.equal(attach.params.trsvcid, String(portA));
  assert.equal(attach.params.subnqn, A_NQN);
  assert.equal(attach.params.hdgst, true);
  assert.equal(attach.params.ddgst, true);
});
