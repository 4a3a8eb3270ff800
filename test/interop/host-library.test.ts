// Our host library (src/nvme) against a target we did not write: the Linux kernel's
// NVMe/TCP target (nvmet-tcp) in a background QEMU guest, forwarded to 127.0.0.1.
// Discovery, connect (plain and with header + data digests), Identify, log pages,
// verified I/O across the in-capsule / R2T boundary up to nvmet's 4 MiB limit,
// several I/O queues at once, full queue depth, keep-alive, the allow list of a
// restricted subsystem, disconnect and reconnect(). Then the project's tools against
// the same target: the `nvmf` CLI, bdev_nvme (our nvmf_tgt attaching nvmet and
// exporting it again) and `nvmf-perf` (the same command against nvmet and ours).
// Needs `sudo bash scripts/setup-interop.sh` once; a missing prerequisite fails the
// setup test with the command that fixes it (never a skip). See docs/interop.md.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  DEFAULT_HOST_MAX_TRANSFER,
  DISCOVERY_NQN,
  discover,
  discoveredSubsystems,
  NvmeController,
  type NvmeIoQpair,
  NvmeStatusError,
  type TransportId,
} from '../../src/nvme/index.ts';
import {
  Cns,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeNsidList,
  IdCtrl,
  lbaFormatIndex,
  namespaceSizes,
} from '../../src/wire/identify.ts';
import { decodeHealthLog, ERROR_LOG_ENTRY_SIZE, HEALTH_LOG_SIZE, LogPage } from '../../src/wire/log.ts';
import { decodeCap } from '../../src/wire/nvme.ts';
import { countKeepAlives, waitFor } from '../lib/index.ts';
import { tcpOf } from '../lib/tcp-qpair-of.ts';
import {
  canConnect,
  freePort,
  missingPrerequisites,
  NODE_BIN,
  REPO_ROOT,
  type RunningTarget,
  rpcCall,
  startNvmfTgt,
  startReferenceTarget,
  stopReferenceTarget,
  targetConfig,
} from './lib/harness.ts';

const NQN = 'nqn.2016-06.io.spdk:cnode1';
const RESTRICTED_NQN = 'nqn.2016-06.io.spdk:cnode2';
const ALLOWED_HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
/** A host NQN nobody put on an allow list: this process's default identity (env wins over /etc/nvme). */
const TEST_HOSTID = randomUUID();
const STRANGER_HOSTNQN = `nqn.2014-08.org.nvmexpress:uuid:${TEST_HOSTID}`;
process.env.NVMF_TS_HOSTNQN = STRANGER_HOSTNQN;
process.env.NVMF_TS_HOSTID = TEST_HOSTID;
/** reference-target exports a 256 MiB null_blk with 512-byte blocks as nsid 1. */
const BLOCK_SIZE = 512;
const NAMESPACE_BYTES = 256 * 1024 * 1024;
/** The kernel target's in-capsule limit (nvmet-tcp's default inline_data_size, 4 pages). */
const KERNEL_INLINE_DATA = 16 * 1024;
/** The kernel target's MAXH2CDATA and, measured, its largest accepted transfer (MDTS is 0). */
const KERNEL_MAX_TRANSFER = 4 * 1024 * 1024;
const SC_DATA_SGL_LENGTH_INVALID = 0x0f;
const SCT_COMMAND_SPECIFIC = 1;
const SC_CONNECT_INVALID_HOST = 0x84;

let port = 0;
let referenceStarted = false;
let setupError: string | undefined = 'setup did not run';

let ourTarget: RunningTarget | undefined;
let gatewayTarget: RunningTarget | undefined;

after(async () => {
  if (gatewayTarget) await gatewayTarget.stop();
  if (ourTarget) await ourTarget.stop();
  if (referenceStarted) stopReferenceTarget(port);
});

function trid(extra: Partial<TransportId> = {}): TransportId {
  return { traddr: '127.0.0.1', trsvcid: String(port), subnqn: NQN, ...extra };
}

function requireSetup(): void {
  if (setupError !== undefined) assert.fail(`not run: ${setupError}`);
}

/** Each 512-byte block starts with its LBA and a seed, then bytes derived from both. */
function blockPattern(lba: number, bytes: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(bytes);
  for (let block = 0; block * BLOCK_SIZE < bytes; block++) {
    const off = block * BLOCK_SIZE;
    buf.writeUInt32LE(lba + block, off);
    buf.writeUInt32LE(seed >>> 0, off + 4);
    let x = (Math.imul(lba + block, 2654435761) + seed) >>> 0;
    for (let i = 8; i < BLOCK_SIZE; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      buf[off + i] = x >>> 24;
    }
  }
  return buf;
}

/** The first differing block, for a readable failure. */
function firstMismatch(got: Buffer, want: Buffer): string {
  for (let off = 0; off < want.length; off += BLOCK_SIZE) {
    if (!got.subarray(off, off + BLOCK_SIZE).equals(want.subarray(off, off + BLOCK_SIZE))) {
      return `block ${off / BLOCK_SIZE}: got LBA tag ${got.readUInt32LE(off)} seed ${got.readUInt32LE(off + 4)}, want ${want.readUInt32LE(off)} seed ${want.readUInt32LE(off + 4)}`;
    }
  }
  return 'equal';
}

async function writeReadVerify(io: NvmeIoQpair, lba: number, bytes: number, seed: number): Promise<void> {
  const data = blockPattern(lba, bytes, seed);
  await io.writeAsync(1, lba, bytes / BLOCK_SIZE, data);
  const back = Buffer.alloc(bytes);
  await io.readAsync(1, lba, bytes / BLOCK_SIZE, back);
  assert.ok(back.equals(data), `${bytes} bytes at LBA ${lba}: ${firstMismatch(back, data)}`);
}

test('kernel target setup: guest image, QEMU, nvmet-tcp on a loopback port', async () => {
  const missing = missingPrerequisites();
  if (missing.length > 0) {
    setupError = `interop prerequisites missing:\n  ${missing.join('\n  ')}`;
    assert.fail(setupError);
  }
  port = await freePort();
  try {
    startReferenceTarget({ port, nqn: NQN, restrictedNqn: RESTRICTED_NQN, allowedHostNqn: ALLOWED_HOSTNQN });
    referenceStarted = true;
  } catch (error) {
    setupError = `could not start the kernel target: ${(error as Error).message}`;
    throw error;
  }
  assert.ok(await canConnect(port), `kernel target does not accept connections on 127.0.0.1:${port}`);
  setupError = undefined;
});

test('discovery: discover() of the string form lists cnode1 (tcp, ipv4, port 4420), not the restricted one', async () => {
  requireSetup();
  // No hostnqn: the library's default identity (STRANGER_HOSTNQN through the env).
  const result = await discover(`trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${port}`);
  assert.equal(result.error, undefined);
  assert.ok(result.genctr > 0n, `GENCTR ${result.genctr}`);
  const entries = result.entries;
  const subsystem = entries.find((e) => e.subnqn === NQN);
  assert.ok(subsystem, `no entry for ${NQN}: ${JSON.stringify(entries)}`);
  assert.equal(subsystem.trtype, 3, 'trtype TCP');
  assert.equal(subsystem.adrfam, 1, 'adrfam IPv4');
  assert.equal(subsystem.subtype, 2, 'subtype NVM subsystem');
  // The guest's nvmet port listens on 0.0.0.0:4420; the kernel reports the address the
  // discovery connection arrived on (QEMU user networking: the guest's 10.0.2.15).
  assert.equal(subsystem.trsvcid, '4420');
  assert.match(subsystem.traddr, /^\d+\.\d+\.\d+\.\d+$/);
  assert.ok(
    discoveredSubsystems(result).some((e) => e.subnqn === NQN),
    'discoveredSubsystems() lacks cnode1',
  );
  assert.ok(
    !entries.some((e) => e.subnqn === RESTRICTED_NQN),
    `${RESTRICTED_NQN} listed to a host not on its allow list: ${JSON.stringify(entries)}`,
  );
  // The same through a controller object and getDiscoveryLog(), as the allowed host.
  const ctrlr = await NvmeController.connect(trid({ subnqn: DISCOVERY_NQN, hostnqn: ALLOWED_HOSTNQN }), {
    kato: 0,
  });
  try {
    assert.ok(ctrlr.isDiscovery, 'a discovery controller');
    const allowedView = (await ctrlr.getDiscoveryLog()).entries;
    assert.ok(
      allowedView.some((e) => e.subnqn === RESTRICTED_NQN),
      `${RESTRICTED_NQN} not listed to its allowed host: ${JSON.stringify(allowedView)}`,
    );
  } finally {
    await ctrlr.disconnect();
  }
});

test('connect (no digests): Identify controller and namespace fields, SMART and error log pages', async () => {
  requireSetup();
  const ctrlr = await NvmeController.connect(trid());
  try {
    assert.ok(ctrlr.cdata, 'Identify Controller data missing after connect');
    const cdata = decodeIdentifyController(ctrlr.cdata);
    assert.ok(cdata.ver >= 0x10200, `VER 0x${cdata.ver.toString(16)} below NVMe 1.2`);
    assert.ok(cdata.sn.length > 0, 'SN empty');
    assert.match(cdata.mn, /Linux/, 'MN is the kernel target\'s "Linux"');
    assert.ok(cdata.fr.length > 0, 'FR empty');
    assert.equal(cdata.subnqn, NQN, 'SUBNQN');
    assert.equal(cdata.cntlid, ctrlr.cntlid, 'CNTLID matches the Connect response');
    assert.equal(cdata.mdts, 0, 'MDTS: nvmet-tcp reports no limit');
    assert.equal(cdata.sqes, 0x66, 'SQES 64 bytes');
    assert.equal(cdata.cqes, 0x44, 'CQES 16 bytes');
    assert.ok(cdata.nn >= 1, 'NN');
    assert.equal(ctrlr.ioInCapsuleDataSize, KERNEL_INLINE_DATA, 'IOCCSZ → in-capsule bytes');
    // CAP: MQES + 1 entries per queue, TO in 500 ms units, CSS NVM.
    assert.ok(decodeCap(ctrlr.cap).mqes + 1 >= 32, `CAP.MQES ${decodeCap(ctrlr.cap).mqes}`);
    assert.ok(((ctrlr.cap >> 37n) & 1n) === 1n, 'CAP.CSS NVM command set');

    const idns = await ctrlr.identify(Cns.NAMESPACE, 1);
    const { nsze, ncap } = namespaceSizes(idns);
    const ns = decodeIdentifyNamespace(idns);
    const lbads = ns.lbafs[lbaFormatIndex(ns.flbas, ns.nlbaf)].ds;
    assert.equal(1 << lbads, BLOCK_SIZE, 'LBA data size of the current format');
    assert.equal(nsze * BLOCK_SIZE, NAMESPACE_BYTES, 'NSZE of the 256 MiB namespace');
    assert.equal(ncap, nsze, 'NCAP = NSZE');

    const info = ctrlr.namespaces.get(1);
    assert.ok(info, `namespaces map lacks nsid 1: ${JSON.stringify([...ctrlr.namespaces.keys()])}`);
    assert.equal(info.blockSize, BLOCK_SIZE, 'namespaces map: block size');
    assert.equal(info.numBlocks, nsze, 'namespaces map: blocks');
    assert.ok(info.nguid !== null || info.uuid !== null, 'nvmet gives the namespace an NGUID or UUID');
    assert.equal(ctrlr.cdata?.[IdCtrl.MDTS], 0, 'nvmet reports MDTS 0 (no limit)');
    assert.equal(ctrlr.maxTransferSize, DEFAULT_HOST_MAX_TRANSFER, 'MDTS 0: the host cap bounds transfers');

    const activeList = decodeNsidList(await ctrlr.identify(Cns.ACTIVE_NS_LIST, 0));
    assert.equal(activeList[0], 1, 'active namespace list starts with nsid 1');

    const smart = decodeHealthLog(await ctrlr.getLogPage(LogPage.HEALTH, Buffer.alloc(HEALTH_LOG_SIZE)));
    assert.equal(smart.critical_warning & 0x1f, 0, 'SMART critical warning clear');
    const errors = await ctrlr.getLogPage(LogPage.ERROR, Buffer.alloc(ERROR_LOG_ENTRY_SIZE));
    assert.equal(errors.length, ERROR_LOG_ENTRY_SIZE, 'error log entry read');

    const queues = await ctrlr.setNumQueues(4);
    assert.ok(queues.sq >= 4 && queues.cq >= 4, `Number of Queues granted ${JSON.stringify(queues)}`);
    const kato = await ctrlr.getFeatures(0x0f);
    assert.equal(kato.dw0, 10_000, 'keep-alive timeout from Connect');
  } finally {
    await ctrlr.disconnect();
  }
});

for (const digests of [false, true]) {
  const label = digests ? 'header + data digests' : 'no digests';
  test(`verified I/O (${label}): in-capsule, R2T, up to the kernel's 4 MiB limit`, async (t) => {
    requireSetup();
    const ctrlr = await NvmeController.connect(trid({ hdgst: digests, ddgst: digests }));
    try {
      const io = await ctrlr.createIoQpair(64);
      assert.equal(tcpOf(io.qpair).headerDigest, digests, 'header digest negotiated');
      assert.equal(tcpOf(io.qpair).dataDigest, digests, 'data digest negotiated');
      const seed = digests ? 2 : 1;
      const base = digests ? 65536 : 0;
      let lba = base;
      // 16 KiB fits the capsule; 16 KiB + 512 needs an R2T; 4 MiB is the kernel's whole limit.
      for (const bytes of [
        512,
        4096,
        KERNEL_INLINE_DATA,
        KERNEL_INLINE_DATA + 512,
        128 * 1024,
        1 << 20,
        KERNEL_MAX_TRANSFER,
      ]) {
        await t.test(`${bytes} bytes`, () => writeReadVerify(io, lba, bytes, seed));
        lba += bytes / BLOCK_SIZE;
      }
      await t.test(
        'larger than 4 MiB: the library splits it under its host cap, the data reads back',
        async () => {
          // nvmet states MDTS 0 yet refuses one command above 4 MiB (Data SGL Length
          // Invalid); the library's host cap (1 MiB) splits the write so it never sees one.
          const bytes = KERNEL_MAX_TRANSFER + BLOCK_SIZE;
          const data = blockPattern(base, bytes, seed + 20);
          await io.writeAsync(1, base, bytes / BLOCK_SIZE, data);
          const back = Buffer.alloc(bytes);
          await io.readAsync(1, base, bytes / BLOCK_SIZE, back);
          assert.ok(back.equals(data), `split ${bytes}-byte write: ${firstMismatch(back, data)}`);
          // Why the cap: without it the same write goes out whole and nvmet refuses it.
          const uncapped = await NvmeController.connect(trid({ hdgst: digests, ddgst: digests }), {
            maxTransferSize: Number.POSITIVE_INFINITY,
          });
          try {
            const whole = await uncapped.createIoQpair(8);
            await assert.rejects(
              whole.writeAsync(1, base, bytes / BLOCK_SIZE, data),
              (e) => e instanceof NvmeStatusError && e.sct === 0 && e.sc === SC_DATA_SGL_LENGTH_INVALID,
            );
          } finally {
            await uncapped.disconnect();
          }
          await writeReadVerify(io, base, 4096, seed + 10);
        },
      );
      await t.test('write zeroes, deallocate, flush, FUA write', async () => {
        await io.writeAsync(1, base, 8, blockPattern(base, 4096, seed));
        await io.writeZeroesAsync(1, base, 8);
        const back = Buffer.alloc(4096, 0xee);
        await io.readAsync(1, base, 8, back);
        assert.ok(
          back.every((b) => b === 0),
          'blocks read after Write Zeroes are not zero',
        );
        await io.dsmAsync(1, [[base + 8, 8]]);
        await io.flushAsync(1);
        const fuaData = blockPattern(base + 16, 4096, seed);
        await io.writeAsync(1, base + 16, 8, fuaData, true);
        await io.readAsync(1, base + 16, 8, back);
        assert.ok(back.equals(fuaData), 'FUA write read back');
      });
      await t.test(
        'errors come back as statuses: Compare (not in ONCS), LBA out of range, bad nsid',
        async () => {
          const oncs = ctrlr.cdata!.readUInt16LE(IdCtrl.ONCS);
          assert.equal(oncs & 1, 0, 'nvmet does not claim Compare');
          await assert.rejects(io.compareAsync(1, base, 1, Buffer.alloc(BLOCK_SIZE)), (e: unknown) => {
            return e instanceof NvmeStatusError && e.sct === 0 && e.sc === 0x01; // Invalid Opcode
          });
          const lastLba = NAMESPACE_BYTES / BLOCK_SIZE - 1;
          await assert.rejects(io.readAsync(1, lastLba, 2, Buffer.alloc(2 * BLOCK_SIZE)), (e: unknown) => {
            // SPDK answers LBA Out of Range (0x80); nvmet 6.1 passes the bio to the block
            // layer, which fails it: Internal Error (0x06). Either is a status, not a hang.
            return e instanceof NvmeStatusError && e.sct === 0 && (e.sc === 0x80 || e.sc === 0x06);
          });
          await assert.rejects(io.readAsync(2, 0, 1, Buffer.alloc(BLOCK_SIZE)), NvmeStatusError);
          await writeReadVerify(io, lastLba, BLOCK_SIZE, seed); // last block still fine
        },
      );
    } finally {
      await ctrlr.disconnect();
    }
  });
}

test('four I/O queues at once: concurrent verified writes then reads (callback API, depth 16 each)', async () => {
  requireSetup();
  const QUEUES = 4;
  const DEPTH = 16;
  const IOS_PER_QUEUE = 96;
  const ctrlr = await NvmeController.connect(trid({ hdgst: true, ddgst: true }));
  try {
    await ctrlr.setNumQueues(QUEUES);
    const queues = await ctrlr.createIoQpairs(QUEUES, 32);
    assert.deepEqual(
      queues.map((q) => q.qid),
      [1, 2, 3, 4],
    );
    // Queue q owns a 16 MiB region from 128 MiB on; sizes cycle 4 KiB .. 64 KiB (some need R2T).
    const sizes = [4096, 8192, 32768, 65536, 20480];
    const plan = queues.map((_, q) => {
      const ios: { lba: number; bytes: number }[] = [];
      let lba = (128 * 1024 * 1024) / BLOCK_SIZE + q * 32768;
      for (let i = 0; i < IOS_PER_QUEUE; i++) {
        const bytes = sizes[(i + q) % sizes.length];
        ios.push({ lba, bytes });
        lba += bytes / BLOCK_SIZE;
      }
      return ios;
    });
    const runPhase = (isRead: boolean) =>
      Promise.all(
        queues.map(
          (io, q) =>
            new Promise<void>((resolve, reject) => {
              let next = 0;
              let done = 0;
              const mismatches: string[] = [];
              const start = (): void => {
                const index = next++;
                const { lba, bytes } = plan[q][index];
                const want = blockPattern(lba, bytes, 100 + q);
                const buf = isRead ? Buffer.alloc(bytes) : want;
                const onDone = (status: number): void => {
                  if (status !== 0) {
                    reject(
                      new Error(
                        `queue ${io.qid} ${isRead ? 'read' : 'write'} LBA ${lba}: status 0x${status.toString(16)}`,
                      ),
                    );
                    return;
                  }
                  if (isRead && !buf.equals(want)) mismatches.push(`LBA ${lba}: ${firstMismatch(buf, want)}`);
                  done++;
                  if (next < IOS_PER_QUEUE) start();
                  else if (done === IOS_PER_QUEUE) {
                    if (mismatches.length > 0)
                      reject(new Error(`queue ${io.qid}: ${mismatches.slice(0, 3).join('; ')}`));
                    else resolve();
                  }
                };
                const submitted = isRead
                  ? io.read(1, lba, bytes / BLOCK_SIZE, buf, onDone)
                  : io.write(1, lba, bytes / BLOCK_SIZE, buf, onDone);
                if (!submitted) reject(new Error(`queue ${io.qid}: submit refused at depth ${DEPTH}`));
              };
              for (let i = 0; i < DEPTH; i++) start();
            }),
        ),
      );
    await runPhase(false);
    await runPhase(true);
    for (const io of queues) assert.equal(io.qpair.outstanding, 0, `queue ${io.qid} has commands left`);
  } finally {
    await ctrlr.disconnect();
  }
});

test('queue depth: a 64-entry I/O queue holds 64 commands at once at nvmet, the 65th submit is refused', async () => {
  requireSetup();
  const ctrlr = await NvmeController.connect(trid());
  try {
    assert.equal(ctrlr.maxQueueSize, Number(ctrlr.cap & 0xffffn) + 1, 'maxQueueSize from CAP.MQES');
    assert.ok(ctrlr.maxQueueSize >= 64, `nvmet queue size ${ctrlr.maxQueueSize}`);
    const io = await ctrlr.createIoQpair(64);
    const statuses: number[] = [];
    let resolveAll: () => void = () => {};
    const allDone = new Promise<void>((r) => {
      resolveAll = r;
    });
    const onDone = (status: number): void => {
      statuses.push(status);
      if (statuses.length === 64) resolveAll();
    };
    const buffers = Array.from({ length: 65 }, () => Buffer.alloc(4096));
    for (let i = 0; i < 64; i++)
      assert.equal(io.read(1, i * 8, 8, buffers[i], onDone), true, `submit ${i + 1} of 64`);
    assert.equal(
      io.read(1, 0, 8, buffers[64], onDone),
      false,
      'the 65th command was accepted by a 64-entry queue',
    );
    await allDone;
    assert.deepEqual(
      statuses.filter((st) => st !== 0),
      [],
      'every one of the 64 reads completes with success',
    );
    await io.readAsync(1, 0, 8, buffers[64]); // room again once they completed
  } finally {
    await ctrlr.disconnect();
  }
});

test('keep-alive: a controller with KATO 2 s stays alive at nvmet through 5 s idle', async () => {
  requireSetup();
  const ctrlr = await NvmeController.connect(trid(), { kato: 2000 });
  try {
    const [io] = await ctrlr.createIoQpairs(1, 16);
    assert.equal((await ctrlr.getFeatures(0x0f)).dw0, 2000, 'KATO as nvmet holds it');
    // nvmet ends an association whose keep-alive lapses for KATO; ours sends one every KATO/2:
    // five of them answered by nvmet are 5 s idle (two and a half KATOs)
    const keepAlives = countKeepAlives(ctrlr);
    await waitFor('five Keep Alives answered by nvmet', () => keepAlives.answered >= 5, {
      timeoutMs: 15_000,
    });
    assert.ok(!ctrlr.failed, 'nvmet dropped the admin connection: keep-alive lapsed');
    await writeReadVerify(io, 350_000, 4096, 15);
  } finally {
    await ctrlr.disconnect();
  }
});

test('restricted subsystem: a stranger host NQN is refused (Connect Invalid Host), the allowed one reads and writes', async () => {
  requireSetup();
  await assert.rejects(
    NvmeController.connect(trid({ subnqn: RESTRICTED_NQN })), // the default identity: STRANGER_HOSTNQN
    (error: unknown) =>
      error instanceof NvmeStatusError &&
      error.sct === SCT_COMMAND_SPECIFIC &&
      error.sc === SC_CONNECT_INVALID_HOST &&
      error.dnr,
  );
  const ctrlr = await NvmeController.connect(trid({ subnqn: RESTRICTED_NQN, hostnqn: ALLOWED_HOSTNQN }));
  try {
    assert.equal(decodeIdentifyController(ctrlr.cdata!).subnqn, RESTRICTED_NQN);
    const ns = await ctrlr.identify(0, 1);
    assert.equal(
      Number(ns.readBigUInt64LE(0)) * BLOCK_SIZE,
      64 * 1024 * 1024,
      'restricted namespace is 64 MiB',
    );
    const io = await ctrlr.createIoQpair(16);
    await writeReadVerify(io, 1000, 65536, 7);
  } finally {
    await ctrlr.disconnect();
  }
});

test('disconnect: queues close, their submits are refused, and a new controller reads the data back', async () => {
  requireSetup();
  const first = await NvmeController.connect(trid());
  const io = await first.createIoQpair(16);
  const data = blockPattern(200_000, 8192, 9);
  await io.writeAsync(1, 200_000, 16, data);
  await first.disconnect();
  assert.ok(io.closed, 'I/O queue still open after disconnect');
  assert.ok(first.admin.closed, 'admin queue still open after disconnect');
  assert.equal(
    io.read(1, 200_000, 1, Buffer.alloc(BLOCK_SIZE), () => {}),
    false,
    'a closed queue accepted a command',
  );
  const second = await NvmeController.connect(trid());
  try {
    const io2 = await second.createIoQpair(16);
    const back = Buffer.alloc(8192);
    await io2.readAsync(1, 200_000, 16, back);
    assert.ok(back.equals(data), `data after reconnect: ${firstMismatch(back, data)}`);
  } finally {
    await second.disconnect();
  }
});

test('reconnect(): a new admin queue and the same I/O queue objects, usable again, data intact', async () => {
  requireSetup();
  const ctrlr = await NvmeController.connect(trid({ hdgst: true }));
  try {
    const [io] = await ctrlr.createIoQpairs(1, 16);
    const data = blockPattern(300_000, 65536, 11);
    await io.writeAsync(1, 300_000, 128, data);
    const oldAdmin = ctrlr.admin;
    await ctrlr.reconnect();
    assert.notEqual(ctrlr.admin, oldAdmin, 'reconnect kept the old admin queue');
    assert.ok(oldAdmin.closed, 'the old admin connection is still open');
    assert.ok(!io.closed, 'the I/O queue object was not connected again');
    assert.equal(decodeIdentifyController(ctrlr.cdata!).subnqn, NQN, 'identified again');
    const back = Buffer.alloc(65536);
    await io.readAsync(1, 300_000, 128, back);
    assert.ok(back.equals(data), `after reconnect: ${firstMismatch(back, data)}`);
    await writeReadVerify(io, 300_200, 16896, 12);
  } finally {
    await ctrlr.disconnect();
  }
});

// ---- the project's `nvmf` CLI against the kernel target

const NVMF_CLI = join(REPO_ROOT, 'bin/nvmf.mjs');

/** Runs `nvmf ARGS…` (the child inherits this file's host identity env). */
function nvmf(args: string[]) {
  const run = spawnSync(NODE_BIN, [NVMF_CLI, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { ...run, what: `nvmf ${args.join(' ')} (exit ${run.status}): ${run.stderr}` };
}

test('nvmf CLI: discover, connect, identify, id-ns, smart-log, write then read a file, refused host', async () => {
  requireSetup();
  const target = ['-t', 'tcp', '-a', '127.0.0.1', '--trsvcid', String(port), '--nqn', NQN];
  const discovery = nvmf(['discover', '-t', 'tcp', '-a', '127.0.0.1', '-s', String(port), '-o', 'json']);
  assert.equal(discovery.status, 0, discovery.what);
  const records = (JSON.parse(discovery.stdout) as { records: { subnqn: string; trsvcid: string }[] })
    .records;
  assert.ok(
    records.some((r) => r.subnqn === NQN && r.trsvcid === '4420'),
    `nvmf discover: ${discovery.stdout}`,
  );

  const summary = nvmf(['connect', ...target]);
  assert.equal(summary.status, 0, summary.what);
  assert.match(summary.stdout, /mn\s*: Linux/);
  assert.match(summary.stdout, /nsid 1: 524288 blocks of 512 bytes/);

  const idCtrl = nvmf(['identify', ...target, '-o', 'json']);
  assert.equal(idCtrl.status, 0, idCtrl.what);
  const ctrl = JSON.parse(idCtrl.stdout) as { subnqn: string; mn: string; mdts: number; sn: string };
  assert.equal(ctrl.subnqn, NQN);
  assert.equal(ctrl.mn, 'Linux');
  assert.equal(ctrl.mdts, 0);
  assert.ok(ctrl.sn.length > 0, 'sn empty');

  const idNs = nvmf(['id-ns', ...target, '-n', '1', '-o', 'json']);
  assert.equal(idNs.status, 0, idNs.what);
  assert.equal((JSON.parse(idNs.stdout) as { nsze: number }).nsze, NAMESPACE_BYTES / BLOCK_SIZE);

  const smart = nvmf(['smart-log', ...target, '-o', 'json']);
  assert.equal(smart.status, 0, smart.what);
  assert.equal((JSON.parse(smart.stdout) as { critical_warning: number }).critical_warning, 0);

  const dir = mkdtempSync(join(tmpdir(), 'nvmf-cli-kernel-'));
  try {
    const data = blockPattern(400_000, 20480, 13); // 40 blocks: beyond the 16 KiB capsule
    writeFileSync(join(dir, 'in.bin'), data);
    const io = ['-n', '1', '-s', '400000', '-c', '39', '-z', '20480'];
    const write = nvmf(['write', ...target, ...io, '-d', join(dir, 'in.bin')]);
    assert.equal(write.status, 0, write.what);
    const read = nvmf(['read', ...target, '-g', '-G', ...io, '-d', join(dir, 'out.bin')]);
    assert.equal(read.status, 0, read.what);
    const back = readFileSync(join(dir, 'out.bin'));
    assert.ok(back.equals(data), `nvmf read after nvmf write: ${firstMismatch(back, data)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const refused = nvmf([
    'connect',
    '-t',
    'tcp',
    '-a',
    '127.0.0.1',
    '--trsvcid',
    String(port),
    '--nqn',
    RESTRICTED_NQN,
  ]);
  assert.equal(refused.status, 1, refused.what);
  assert.match(refused.stderr, /INVALID_HOST|0x84/);
});

// ---- bdev_nvme (our target as a host) in front of the kernel target

const GATEWAY_NQN = 'nqn.2016-06.io.spdk:gw-kernel';

test('bdev_nvme: our nvmf_tgt attaches the kernel target and exports it; data crosses both ways', async () => {
  requireSetup();
  const gatewayPort = await freePort();
  const listenAddress = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(gatewayPort) };
  gatewayTarget = await startNvmfTgt({
    port: gatewayPort,
    cpuMask: '0x1',
    config: {
      subsystems: [
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            { method: 'nvmf_create_subsystem', params: { nqn: GATEWAY_NQN, allow_any_host: true } },
            {
              method: 'nvmf_subsystem_add_listener',
              params: { nqn: GATEWAY_NQN, listen_address: listenAddress },
            },
          ],
        },
      ],
    },
  });
  const socket = gatewayTarget.rpcSocket;
  const created = await rpcCall(
    socket,
    'bdev_nvme_attach_controller',
    {
      name: 'Kernel0',
      trtype: 'tcp',
      adrfam: 'ipv4',
      traddr: '127.0.0.1',
      trsvcid: String(port),
      subnqn: NQN,
    },
    30_000,
  );
  assert.deepEqual(created, ['Kernel0n1']);
  await rpcCall(socket, 'nvmf_subsystem_add_ns', {
    nqn: GATEWAY_NQN,
    namespace: { nsid: 1, bdev_name: 'Kernel0n1' },
  });

  const viaGateway = await NvmeController.connect(
    trid({ trsvcid: String(gatewayPort), subnqn: GATEWAY_NQN }),
  );
  const direct = await NvmeController.connect(trid());
  try {
    const ns = viaGateway.namespaces.get(1);
    assert.equal(
      ns?.numBlocks,
      NAMESPACE_BYTES / BLOCK_SIZE,
      'the kernel namespace size through the gateway',
    );
    const [gw] = await viaGateway.createIoQpairs(1, 32);
    const [kernel] = await direct.createIoQpairs(1, 32);
    let lba = 450_000;
    for (const bytes of [512, 16896, 131072, 1 << 20]) {
      // written through the gateway, read from the kernel target directly ...
      const down = blockPattern(lba, bytes, 21);
      await gw.writeAsync(1, lba, bytes / BLOCK_SIZE, down);
      const atKernel = Buffer.alloc(bytes);
      await kernel.readAsync(1, lba, bytes / BLOCK_SIZE, atKernel);
      assert.ok(
        atKernel.equals(down),
        `${bytes} B via gateway, read at the kernel: ${firstMismatch(atKernel, down)}`,
      );
      // ... and written at the kernel target, read through the gateway
      const up = blockPattern(lba, bytes, 22);
      await kernel.writeAsync(1, lba, bytes / BLOCK_SIZE, up);
      const viaB = Buffer.alloc(bytes);
      await gw.readAsync(1, lba, bytes / BLOCK_SIZE, viaB);
      assert.ok(viaB.equals(up), `${bytes} B at the kernel, read via gateway: ${firstMismatch(viaB, up)}`);
      lba += bytes / BLOCK_SIZE;
    }
    // Write Zeroes and Flush pass through. Compare, which nvmet lacks, is emulated by
    // our bdev layer with a read (as SPDK's is): equal data passes, different data
    // is a Compare Failure; a gateway that passed nvmet's Invalid Opcode on instead
    // would still refuse the mismatch.
    await gw.writeZeroesAsync(1, 450_000, 8);
    const zeroes = Buffer.alloc(4096, 0xee);
    await kernel.readAsync(1, 450_000, 8, zeroes);
    assert.ok(
      zeroes.every((b) => b === 0),
      'Write Zeroes through the gateway did not reach the kernel target',
    );
    await gw.flushAsync(1);
    try {
      await gw.compareAsync(1, 450_000, 8, Buffer.alloc(4096));
    } catch (e) {
      assert.ok(e instanceof NvmeStatusError && e.sct === 0 && e.sc === 0x01, `compare of equal data: ${e}`);
    }
    await assert.rejects(
      gw.compareAsync(1, 450_000, 8, Buffer.alloc(4096, 1)),
      (e: unknown) =>
        e instanceof NvmeStatusError && ((e.sct === 2 && e.sc === 0x85) || (e.sct === 0 && e.sc === 0x01)),
    );
    assert.ok(gatewayTarget.alive(), `gateway nvmf_tgt died:\n${gatewayTarget.logTail()}`);
  } finally {
    await viaGateway.disconnect();
    await direct.disconnect();
  }
});

// ---- nvmf-perf: the same command against the kernel target and against ours

const NVMF_PERF = join(REPO_ROOT, 'bin/nvmf-perf.mjs');
const PERF_SECONDS = 3;
const RUN_DIR = process.env.NVMF_INTEROP_RUNDIR ?? '/tmp/nvmf-ts-interop';

type PerfTotal = {
  ios: number;
  errors: number;
  iops: number;
  mib_per_sec: number;
  min_lat_us: number;
  avg_lat_us: number;
  p50_us: number;
  p99_us: number;
  max_lat_us: number;
};

function runPerf(perfPort: number): { total: PerfTotal; command: string } {
  const trid = `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${perfPort} subnqn:${NQN}`;
  const args = [
    '-r',
    trid,
    '-q',
    '32',
    '-o',
    '4096',
    '-w',
    'randrw',
    '-M',
    '50',
    '-t',
    String(PERF_SECONDS),
    '--json',
  ];
  const run = spawnSync(NODE_BIN, [NVMF_PERF, ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const command = `nvmf-perf ${args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}`;
  assert.equal(run.status, 0, `${command} (exit ${run.status}): ${run.stderr}`);
  const report = JSON.parse(run.stdout) as { total: PerfTotal; errors: number };
  const total = report.total;
  assert.ok(total.ios > 0, `no I/O completed: ${run.stdout}`);
  assert.equal(total.errors, 0, `I/O errors: ${run.stdout}`);
  assert.ok(
    total.min_lat_us <= total.p50_us && total.p50_us <= total.p99_us && total.p99_us <= total.max_lat_us,
    `latencies out of order: ${JSON.stringify(total)}`,
  );
  return { total, command };
}

function describe(total: PerfTotal): string {
  return `${Math.round(total.iops)} IOPS, ${total.mib_per_sec.toFixed(1)} MiB/s, avg ${Math.round(total.avg_lat_us)} us, p99 ${Math.round(total.p99_us)} us`;
}

test(`nvmf-perf ${PERF_SECONDS} s 4 KiB randrw qd 32: against the kernel target, then the same against ours`, async (t) => {
  requireSetup();
  const kernel = runPerf(port);
  const oursPort = await freePort();
  ourTarget = await startNvmfTgt({
    port: oursPort,
    cpuMask: '0x1',
    config: targetConfig({
      port: oursPort,
      nqn: NQN,
      restrictedNqn: RESTRICTED_NQN,
      allowedHostNqn: ALLOWED_HOSTNQN,
    }),
  });
  const ours = runPerf(oursPort);
  const lines = [
    kernel.command.replace(`trsvcid:${port}`, 'trsvcid:PORT'),
    `  nvmet-tcp (kernel target, QEMU guest): ${describe(kernel.total)}`,
    `  nvmf_tgt -m 0x1 (ours, Malloc0):       ${describe(ours.total)}`,
  ];
  t.diagnostic(lines.join('\n'));
  mkdirSync(RUN_DIR, { recursive: true });
  writeFileSync(join(RUN_DIR, 'host-library-perf.txt'), `${lines.join('\n')}\n`);
});
