// bdev_nvme_set_keys: target A requires DH-HMAC-CHAP from the gateway's host NQN
// (bidirectional); gateway B (two reactors) attaches A's subsystem with keyring
// keys and exports it. A rotation: A takes new keys (nvmf_subsystem_set_keys),
// B's bdev_nvme_set_keys re-authenticates the admin queue and both realms' I/O
// queues with the new ones (A counts the authentications) while I/O goes on;
// the old key is refused by A afterwards, and B's next connects use the new
// keys. Going back to the old keys is refused (the re-authentication fails,
// A drops B's controller), and the right keys heal it. Key names appear in
// save_config; key material never in B's log nor in any RPC answer.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RpcError } from '../../src/jsonrpc/index.ts';
import { formatDhchapSecret } from '../../src/keyring/index.ts';
import { NvmeAuthError, NvmeController, type NvmeIoQpair } from '../../src/nvme/index.ts';
import { ChildTarget, pattern, waitFor } from '../lib/index.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const CLI = new URL('../../src/apps/nvmf-rpc.ts', import.meta.url).pathname;
const CNODE_A = 'nqn.2016-06.io.spdk:keysA';
const CNODE_B = 'nqn.2016-06.io.spdk:keysB';
const HOST = 'nqn.2014-08.org.nvmexpress:uuid:5e7c0000-0000-4000-8000-000000000001';
const BS = 512;
const KEY1 = formatDhchapSecret({ hash: 1, key: randomBytes(32) });
const CKEY1 = formatDhchapSecret({ hash: 2, key: randomBytes(48) });
const KEY2 = formatDhchapSecret({ hash: 3, key: randomBytes(64) });
const CKEY2 = formatDhchapSecret({ hash: 0, key: randomBytes(32) });
/** the base64 part of each secret: what must never be printed */
const MATERIAL = [KEY1, CKEY1, KEY2, CKEY2].map((k) => k.split(':')[2]);

let a: ChildTarget;
let b: ChildTarget;
let host: { c: NvmeController; qs: NvmeIoQpair[] } | null = null;

function listener(port: string) {
  return { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: port };
}

async function addKeys(t: ChildTarget, prefix: string): Promise<void> {
  for (const [name, text] of [
    ['k1', KEY1],
    ['ck1', CKEY1],
    ['k2', KEY2],
    ['ck2', CKEY2],
  ]) {
    const path = join(t.dir, `${prefix}${name}`);
    writeFileSync(path, `${text}\n`, { mode: 0o600 });
    await t.call('keyring_file_add_key', { name: `${prefix}${name}`, path });
  }
}

/** A's DH-HMAC-CHAP counters over its poll groups. */
async function authCounts(): Promise<{ ok: number; failed: number }> {
  const s = await a.call<{ poll_groups: Array<{ dhchap_authentications: number; dhchap_failures: number }> }>(
    'nvmf_get_stats',
  );
  return {
    ok: s.poll_groups.reduce((n, g) => n + g.dhchap_authentications, 0),
    failed: s.poll_groups.reduce((n, g) => n + g.dhchap_failures, 0),
  };
}

/** Write through each of the host's queues on B and read back through the other. */
async function verifiedIo(seed: number): Promise<void> {
  assert.ok(host);
  for (const [i, q] of host.qs.entries()) {
    const data = pattern(8 * BS, seed + i);
    const lba = (seed % 100) * 16 + i * 8;
    await q.writeAsync(1, lba, 8, data);
    const back = Buffer.alloc(data.length);
    await host.qs[1 - i].readAsync(1, lba, 8, back);
    assert.ok(back.equals(data), `queue ${i}: read back`);
  }
}

/** B's queues at A: cntlid and qid of each, with their authentication state. */
async function queuesOnA(): Promise<string[]> {
  const qs = await a.call<Array<{ cntlid: number; qid: number; auth?: { state: string } }>>(
    'nvmf_subsystem_get_qpairs',
    { nqn: CNODE_A },
  );
  return qs.map((q) => `${q.cntlid}/${q.qid}/${q.auth?.state}`).sort();
}

async function controllerState(): Promise<string> {
  const [c] = await b.call<Array<{ ctrlrs: Array<{ state: string }> }>>('bdev_nvme_get_controllers', {
    name: 'Nvme0',
  });
  return c.ctrlrs[0].state;
}

function noSecretsIn(text: string, where: string): void {
  for (const m of MATERIAL) assert.ok(!text.includes(m), `no key material in ${where}`);
}

before(async () => {
  a = await ChildTarget.start({ cores: '0x1', config: null });
  await addKeys(a, 'a');
  await a.call('bdev_malloc_create', { name: 'Malloc0', num_blocks: 8192, block_size: BS });
  await a.call('nvmf_create_transport', { trtype: 'TCP' });
  await a.call('nvmf_create_subsystem', { nqn: CNODE_A, allow_any_host: false });
  await a.call('nvmf_subsystem_add_ns', { nqn: CNODE_A, namespace: { nsid: 1, bdev_name: 'Malloc0' } });
  await a.call('nvmf_subsystem_add_host', {
    nqn: CNODE_A,
    host: HOST,
    dhchap_key: 'ak1',
    dhchap_ctrlr_key: 'ack1',
  });
  await a.call('nvmf_subsystem_add_listener', { nqn: CNODE_A, listen_address: listener(a.port) });

  b = await ChildTarget.start({ cores: '0x3', config: null });
  await addKeys(b, 'b');
  // the null group keeps each authentication cheap on the shared machine
  await b.call('bdev_nvme_set_options', { dhchap_dhgroups: ['null', 'ffdhe2048'] });
  await b.call('nvmf_create_transport', { trtype: 'TCP' });
  await b.call('nvmf_create_subsystem', { nqn: CNODE_B, allow_any_host: true });
  await b.call('nvmf_subsystem_add_listener', { nqn: CNODE_B, listen_address: listener(b.port) });
});

after(async () => {
  await host?.c.disconnect().catch(() => undefined);
  for (const t of [b, a]) {
    if (t === undefined) continue;
    assert.deepEqual(t.uncaughtErrors(), []);
    await t.stop();
  }
});

test('attach with keys by name; I/O through both of B realms authenticates the admin queue and two I/O queues', async () => {
  const before = await authCounts();
  assert.deepEqual(
    await b.call('bdev_nvme_attach_controller', {
      name: 'Nvme0',
      trtype: 'tcp',
      adrfam: 'ipv4',
      traddr: '127.0.0.1',
      trsvcid: a.port,
      subnqn: CNODE_A,
      hostnqn: HOST,
      dhchap_key: 'bk1',
      dhchap_ctrlr_key: 'bck1',
      ctrlr_loss_timeout_sec: -1,
      reconnect_delay_sec: 1,
    }),
    ['Nvme0n1'],
  );
  await b.call('nvmf_subsystem_add_ns', { nqn: CNODE_B, namespace: { nsid: 1, bdev_name: 'Nvme0n1' } });
  const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: b.port, subnqn: CNODE_B });
  await c.setNumQueues(2);
  host = { c, qs: [await c.createIoQpair(32), await c.createIoQpair(32)] };
  await verifiedIo(1);
  const now = await authCounts();
  assert.deepEqual([now.ok - before.ok, now.failed - before.failed], [3, 0]);
});

test('refusals: no such controller (-19), an unknown key (-126), a controller key alone (-22)', async () => {
  const refused = (params: Record<string, unknown>, code: number) =>
    assert.rejects(
      b.call('bdev_nvme_set_keys', params),
      (e: unknown) => e instanceof RpcError && e.code === code,
    );
  await refused({ name: 'Nope', dhchap_key: 'bk2' }, -19);
  await refused({ name: 'Nvme0', dhchap_key: 'nokey' }, -126);
  await refused({ name: 'Nvme0', dhchap_ctrlr_key: 'bck2' }, -22);
  assert.equal(await controllerState(), 'enabled');
});

test('rotation: A takes new keys, set_keys re-authenticates every queue of B with them while I/O goes on; the old key is refused afterwards', async () => {
  await a.call('nvmf_subsystem_set_keys', {
    nqn: CNODE_A,
    host: HOST,
    dhchap_key: 'ak2',
    dhchap_ctrlr_key: 'ack2',
  });
  const before = await authCounts();
  const queuesBefore = await queuesOnA();
  // I/O running on both of B's realms during the re-authentication
  let stop = false;
  let done = 0;
  const errors: string[] = [];
  const loops = host!.qs.map(async (q, k) => {
    const back = Buffer.alloc(4 * BS);
    for (let i = 0; !stop; i++) {
      const data = pattern(4 * BS, 7000 + k * 100000 + i);
      const lba = 4096 + k * 1024 + ((i * 4) % 1024);
      try {
        await q.writeAsync(1, lba, 4, data);
        await q.readAsync(1, lba, 4, back);
        if (!back.equals(data)) errors.push(`queue ${k}: read back differs`);
        done++;
      } catch (e) {
        errors.push(`queue ${k}: ${(e as Error).message}`);
      }
    }
  });
  try {
    await waitFor('I/O running', () => done > 20);
    assert.equal(
      await b.call('bdev_nvme_set_keys', { name: 'Nvme0', dhchap_key: 'bk2', dhchap_ctrlr_key: 'bck2' }),
      true,
    );
    const at = done;
    await waitFor('I/O going on after the re-authentication', () => done > at + 20);
  } finally {
    stop = true;
    await Promise.all(loops);
  }
  assert.deepEqual(errors, []);
  const now = await authCounts();
  assert.deepEqual(
    [now.ok - before.ok, now.failed - before.failed],
    [3, 0],
    'admin + two I/O queues, none failed',
  );
  assert.deepEqual(
    await queuesOnA(),
    queuesBefore,
    'the same queues, re-authenticated in place (no reconnect)',
  );
  const r = await authCounts();
  // the old key no longer opens a controller for that host
  await assert.rejects(
    NvmeController.connect(
      { traddr: '127.0.0.1', trsvcid: a.port, subnqn: CNODE_A, hostnqn: HOST },
      { dhchapSecret: KEY1, dhchapCtrlrSecret: CKEY1 },
    ),
    NvmeAuthError,
  );
  // B's next connects use the new keys: a reset reconnects the admin and the realms' queues
  assert.equal(await b.call('bdev_nvme_reset_controller', { name: 'Nvme0' }), true);
  await verifiedIo(20);
  const after = await authCounts();
  assert.equal(after.failed, r.failed + 1, 'only the old-key attempt above failed');
  assert.ok(after.ok >= r.ok + 3, 'the reconnected queues authenticated');
  const saved = JSON.stringify(await b.call('save_config'));
  assert.match(saved, /"dhchap_key":"bk2"/);
  assert.match(saved, /"dhchap_ctrlr_key":"bck2"/);
});

test('back to the old keys: the re-authentication is refused (-13), A drops B; the right keys heal it', async () => {
  const before = await authCounts();
  await assert.rejects(
    b.call('bdev_nvme_set_keys', { name: 'Nvme0', dhchap_key: 'bk1', dhchap_ctrlr_key: 'bck1' }),
    (e: unknown) => e instanceof RpcError && e.code === -13 && /re-authentication failed/.test(e.message),
  );
  assert.ok((await authCounts()).failed > before.failed, 'A refused the old key');
  await waitFor('A to drop B', async () => (await controllerState()) !== 'enabled', { timeoutMs: 15_000 });
  assert.equal(
    await b.call('bdev_nvme_set_keys', { name: 'Nvme0', dhchap_key: 'bk2', dhchap_ctrlr_key: 'bck2' }),
    true,
  );
  await waitFor('B reconnected with the right keys', async () => (await controllerState()) === 'enabled', {
    timeoutMs: 15_000,
  });
  await verifiedIo(40);
});

test("nvmf-rpc takes rpc.py's command line (name positional, --dhchap-key, --dhchap-ctrlr-key); rpc_get_methods lists it", async () => {
  const before = await authCounts();
  const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(
      NODE,
      [
        CLI,
        '-s',
        b.rpcPath,
        'bdev_nvme_set_keys',
        'Nvme0',
        '--dhchap-key',
        'bk2',
        '--dhchap-ctrlr-key',
        'bck2',
      ],
      { timeout: 40_000 },
      (err, _stdout, stderr) => resolve({ code: err ? Number(err.code ?? 99) : 0, stderr }),
    ),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await authCounts()).ok > before.ok, 'the queues authenticated again');
  await verifiedIo(60);
  assert.ok((await b.call<string[]>('rpc_get_methods')).includes('bdev_nvme_set_keys'));
});

test('key material is in no RPC answer of B and nowhere in its log', async () => {
  for (const m of [
    'bdev_nvme_get_controllers',
    'save_config',
    'bdev_get_bdevs',
    'bdev_nvme_get_io_paths',
    'keyring_get_keys',
  ])
    noSecretsIn(JSON.stringify(await b.call(m)), m);
  noSecretsIn(b.log(), "B's log");
  assert.match(b.log(), /re-authenticated with new keys/);
});
