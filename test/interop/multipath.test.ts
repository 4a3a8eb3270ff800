// Multipath across two gateways: two nvmf_tgt processes export one Ceph RBD image
// (test/lib/ceph.ts starts a one-node cluster) under the same subsystem NQN, serial,
// model and namespace identity (NGUID and UUID), ANA reporting on, gateway 1's
// listener optimized and gateway 2's non-optimized, controller IDs from disjoint
// ranges (min_cntlid / max_cntlid). The Linux host in QEMU connects both paths
// (native NVMe multipath): I/O goes to the optimized gateway; after
// nvmf_subsystem_listener_set_ana_state swaps the states the host follows (its
// sysfs ana_state, and the gateways' I/O counters); gateway 1 is killed under fio
// verify and the I/O goes on through gateway 2 with no verify error; what the guest
// wrote last is in the image (rbd export). Needs `scripts/setup-interop.sh` and Ceph
// (.ci/run installs both); a missing prerequisite fails the setup test, never a skip.

import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CephCluster, missingCephTools } from '../lib/ceph.ts';
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

const CHECKS_SCRIPT = join(REPO_ROOT, 'test/interop/guest/multipath-checks.sh');
const NQN = 'nqn.2016-06.io.spdk:rbd-mp';
const IMAGE = 'mp0';
const IMAGE_MB = 64;
const BLOCK_SIZE = 4096;
const CNTLID = [
  [1, 999],
  [1000, 1999],
] as const;
const FAILOVER_MB = 6;
const KILL_AFTER_MS = 2000;
const GUEST_CHECKS = [
  'mp-multipath-on',
  'mp-connect',
  'mp-one-namespace',
  'mp-cntlid',
  'mp-ana-initial',
  'mp-io-1',
  'mp-ana-follow',
  'mp-io-2',
  'mp-ana-back',
  'mp-failover-fio',
  'mp-path-states',
  'mp-pattern',
  'mp-disconnect',
];

let ceph: CephCluster | undefined;
const ports: number[] = [];
const gateways: Array<RunningTarget | undefined> = [undefined, undefined];
let setupError: string | undefined = 'setup did not run';
const nguid = randomUUID().replaceAll('-', '').toUpperCase();
const uuid = randomUUID();

after(async () => {
  for (const g of gateways) if (g?.alive()) await g.stop();
  await ceph?.stop();
});

function listenAddress(port: number) {
  return { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
}

/** Gateway i (0 or 1): the cluster, the image as Rbd0, the subsystem and its one listener. */
function gatewayConfig(i: 0 | 1, c: CephCluster): object {
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          {
            method: 'bdev_rbd_register_cluster',
            params: { name: 'ceph', user_id: 'admin', config_file: c.conf, key_file: c.keyring },
          },
          {
            method: 'bdev_rbd_create',
            params: {
              name: 'Rbd0',
              pool_name: 'rbd',
              rbd_name: IMAGE,
              block_size: BLOCK_SIZE,
              cluster_name: 'ceph',
              uuid,
            },
          },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          {
            method: 'nvmf_create_subsystem',
            params: {
              nqn: NQN,
              allow_any_host: true,
              serial_number: 'RBDMP0000000001',
              model_number: 'nvmf-ts rbd gateway',
              ana_reporting: true,
              min_cntlid: CNTLID[i][0],
              max_cntlid: CNTLID[i][1],
            },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Rbd0', nguid, uuid } },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: {
              nqn: NQN,
              listen_address: listenAddress(ports[i]),
              ana_state: i === 0 ? 'optimized' : 'non_optimized',
            },
          },
        ],
      },
    ],
  };
}

function logNote(): string {
  let note = '';
  gateways.forEach((g, i) => {
    if (g) note += `\n--- gateway ${i + 1} log ${g.logPath} (last lines) ---\n${g.logTail(20)}`;
  });
  return note;
}

function requireSetup(): void {
  if (setupError !== undefined) assert.fail(`not run: ${setupError}`);
}

test('multipath setup: a Ceph cluster, one image, two gateways exporting it (ANA, disjoint cntlid ranges)', async () => {
  const missing = missingPrerequisites();
  const noCeph = missingCephTools();
  if (noCeph.length > 0)
    missing.push(
      `Ceph commands ${noCeph.join(', ')} (apt-get install ceph-mon ceph-mgr ceph-osd ceph-common)`,
    );
  if (missing.length > 0) {
    setupError = `multipath prerequisites missing:\n  ${missing.join('\n  ')}`;
    assert.fail(setupError);
  }
  try {
    ceph = await CephCluster.start();
    // layering only: with exclusive-lock the surviving gateway's first write would wait
    // ~30 s for the killed gateway's lock to expire
    await ceph.createImage(IMAGE, IMAGE_MB);
    ports.push(await freePort());
    let p2 = await freePort();
    while (p2 === ports[0]) p2 = await freePort();
    ports.push(p2);
    for (const i of [0, 1] as const) {
      gateways[i] = await startNvmfTgt({ port: ports[i], config: gatewayConfig(i, ceph), cpuMask: '0x1' });
    }
    for (const g of gateways) {
      const subs = (await rpcCall(g!.rpcSocket, 'nvmf_get_subsystems')) as Array<{
        nqn: string;
        namespaces?: Array<{ nguid: string; uuid: string }>;
      }>;
      const s = subs.find((x) => x.nqn === NQN);
      assert.equal(s?.namespaces?.[0]?.nguid, nguid);
      assert.equal(s?.namespaces?.[0]?.uuid, uuid);
    }
  } catch (error) {
    setupError = `could not set up the gateways: ${(error as Error).message}${logNote()}`;
    throw new Error(setupError);
  }
  setupError = undefined;
});

/** Write operations Rbd0 completed on gateway i. */
async function writes(i: number): Promise<number> {
  const g = gateways[i];
  if (!g?.alive()) return Number.NaN;
  const r = (await rpcCall(g.rpcSocket, 'bdev_get_iostat', { name: 'Rbd0' })) as {
    bdevs: Array<{ num_write_ops: number }>;
  };
  return r.bdevs[0].num_write_ops;
}

async function setAna(i: number, state: string): Promise<void> {
  await rpcCall(gateways[i]!.rpcSocket, 'nvmf_subsystem_listener_set_ana_state', {
    nqn: NQN,
    listen_address: listenAddress(ports[i]),
    ana_state: state,
  });
}

test('linux host multipathing across the gateways: ANA followed, gateway 1 killed under fio verify', async (t) => {
  requireSetup();
  // what the host side did at each marker line of the guest (in order)
  const samples = new Map<string, number[]>();
  const actions: Promise<void>[] = [];
  const errors: string[] = [];
  const at = (what: string, fn: () => Promise<void>) =>
    actions.push(fn().catch((e: Error) => void errors.push(`${what}: ${e.message}`)));
  const sample = (marker: string) =>
    at(marker, async () => {
      samples.set(marker, [await writes(0), await writes(1)]);
    });
  const failover: { killedAt?: number; closedAt?: number } = {};
  const run = await runGuest({
    script: CHECKS_SCRIPT,
    env: {
      TARGET_ADDR: GUEST_HOST_IP,
      PORT1: String(ports[0]),
      PORT2: String(ports[1]),
      NQN,
      NS_BYTES: String(IMAGE_MB << 20),
      CNTLID1: CNTLID[0].join('-'),
      CNTLID2: CNTLID[1].join('-'),
      FAILOVER_MB: String(FAILOVER_MB),
    },
    timeoutSeconds: 600,
    onLine: (line) => {
      if (/^MP-IO-\d-(START|DONE)$/.test(line)) sample(line);
      else if (line === 'MP-FLIP-1')
        at(line, async () => {
          await setAna(0, 'non_optimized');
          await setAna(1, 'optimized');
        });
      else if (line === 'MP-FLIP-2')
        at(line, async () => {
          await setAna(1, 'non_optimized');
          await setAna(0, 'optimized');
        });
      else if (line === 'FAILOVER-WINDOW-OPEN') {
        sample('FAILOVER-START');
        at('kill gateway 1', async () => {
          await new Promise((r) => setTimeout(r, KILL_AFTER_MS));
          const g = gateways[0]!;
          const exited = new Promise((r) => g.process.once('exit', r));
          g.process.kill('SIGKILL');
          await exited;
          failover.killedAt = Date.now();
        });
      } else if (line === 'FAILOVER-WINDOW-CLOSED') {
        failover.closedAt = Date.now();
        sample('FAILOVER-DONE');
      }
    },
  });
  await Promise.all(actions);
  await reportGuestChecks(t, run, GUEST_CHECKS, 'multipath.log', logNote);

  await t.test('the host side acted at every marker', () => {
    assert.deepEqual(errors, []);
  });
  const delta = (from: string, to: string, i: number): number => {
    const a = samples.get(from);
    const b = samples.get(to);
    assert.ok(a && b, `samples at ${from} and ${to}: ${JSON.stringify([...samples])}`);
    return b[i] - a[i];
  };
  await t.test('I/O went to the optimized gateway only, and followed the ANA change', () => {
    const g1First = delta('MP-IO-1-START', 'MP-IO-1-DONE', 0);
    const g2First = delta('MP-IO-1-START', 'MP-IO-1-DONE', 1);
    const g1Then = delta('MP-IO-2-START', 'MP-IO-2-DONE', 0);
    const g2Then = delta('MP-IO-2-START', 'MP-IO-2-DONE', 1);
    t.diagnostic(
      `writes: gateway 1 optimized ${g1First} / ${g2First}; gateway 2 optimized ${g1Then} / ${g2Then}`,
    );
    assert.ok(g1First > 0 && g2First === 0, `gateway 1 optimized: ${g1First} writes on 1, ${g2First} on 2`);
    assert.ok(g2Then > 0 && g1Then === 0, `gateway 2 optimized: ${g1Then} writes on 1, ${g2Then} on 2`);
  });
  await t.test('gateway 1 died inside the fio window and gateway 2 carried the rest', () => {
    assert.ok(
      failover.killedAt !== undefined &&
        failover.closedAt !== undefined &&
        failover.killedAt < failover.closedAt,
      `the kill was not inside the fio window: ${JSON.stringify(failover)}`,
    );
    assert.ok(delta('FAILOVER-START', 'FAILOVER-DONE', 1) > 0, 'gateway 2 took writes after the kill');
    assert.equal(gateways[1]?.alive(), true, `gateway 2 is up${logNote()}`);
  });
  await t.test('what the guest wrote last through gateway 2 is in the image (rbd export)', async () => {
    const line = /^PATTERN ([0-9a-f]{32}) (\d+) (\d+)$/m.exec(run.stdout);
    assert.ok(line, 'the guest printed no PATTERN line');
    const bytes = await ceph!.exportRange(IMAGE, Number(line[2]), Number(line[3]));
    assert.equal(createHash('md5').update(bytes).digest('hex'), line[1]);
  });
});
