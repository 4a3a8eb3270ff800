// DH-HMAC-CHAP against a host we did not write: the Linux 6.12 kernel host of the trixie
// guest (nvme-cli 2.13) authenticates to OUR nvmf_tgt. The guest makes its keys with
// `nvme gen-dhchap-key` and hands them to this test over a small control channel (one
// TCP line per request, bash's /dev/tcp in the guest), which puts them in key files, the
// target's keyring and its subsystems by RPC, rotates them (nvmf_subsystem_set_keys) and
// narrows the digests and DH groups (nvmf_set_config), and answers which queues of a
// subsystem completed authentication (nvmf_subsystem_get_qpairs). The guest checks:
// refused without a secret and with a wrong one (in bounded time: admin_timeout=5),
// hmac(sha512)/ffdhe8192 with every queue authenticated and fio verify, re-authentication
// of every queue after a key rotation, the old secret refused, bidirectional (and a
// wrong controller secret refused by the host), hmac(sha256)/null with fio verify.
// Needs `sudo bash scripts/setup-interop.sh` (the trixie image); see docs/interop.md.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  canConnect,
  freePort,
  missingPrerequisites,
  REPO_ROOT,
  type RunningTarget,
  reportGuestChecks,
  rpcCall,
  runGuest,
  startNvmfTgt,
} from './lib/harness.ts';

const SCRIPT = join(REPO_ROOT, 'test/interop/guest/auth-host-checks.sh');
const SUB1 = 'nqn.2016-06.io.nvmf-ts:auth1';
const SUB2 = 'nqn.2016-06.io.nvmf-ts:auth2';
const HOST1 = 'nqn.2014-08.org.nvmexpress:uuid:a0000001-0000-4000-8000-000000000001';
const HOST2 = 'nqn.2014-08.org.nvmexpress:uuid:a0000001-0000-4000-8000-000000000002';
// boot 10-20 s; ffdhe8192 in the guest kernel under TCG costs seconds per queue
const GUEST_TIMEOUT_SECONDS = 600;
const CHECKS = [
  'trixie-image',
  'target-keys',
  'dhchap-no-secret-refused',
  'dhchap-wrong-secret-refused',
  'dhchap-sha512-ffdhe8192-fio',
  'dhchap-reauth-rotated-key',
  'dhchap-old-secret-refused',
  'dhchap-bidirectional-fio',
  'dhchap-wrong-ctrl-secret-refused',
  'dhchap-sha256-null-fio',
];

let target: RunningTarget | undefined;
let control: Server | undefined;
const keyDir = mkdtempSync(join(tmpdir(), 'nvmf-auth-keys-'));

after(async () => {
  control?.close();
  if (target) await target.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

function config(port: number): object {
  const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
  const sub = (nqn: string, bdev: string, serial: string) => [
    { method: 'nvmf_create_subsystem', params: { nqn, allow_any_host: false, serial_number: serial } },
    { method: 'nvmf_subsystem_add_ns', params: { nqn, namespace: { nsid: 1, bdev_name: bdev } } },
    { method: 'nvmf_subsystem_add_listener', params: { nqn, listen_address: listen } },
  ];
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 65536, block_size: 512 } },
          { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 65536, block_size: 512 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          ...sub(SUB1, 'Malloc0', 'SPDKAUTH0001'),
          ...sub(SUB2, 'Malloc1', 'SPDKAUTH0002'),
        ],
      },
    ],
  };
}

let keyCount = 0;

/** A key file (0600) and its keyring entry; returns the key's name. */
async function addKey(socket: string, text: string): Promise<string> {
  const name = `key${++keyCount}`;
  const path = join(keyDir, name);
  writeFileSync(path, text, { mode: 0o600 });
  await rpcCall(socket, 'keyring_file_add_key', { name, path });
  return name;
}

/** What the guest's host_do asks for; the answer is one line. */
async function serve(socket: string, request: string): Promise<string> {
  const [action, ...args] = request.trim().split(/\s+/);
  const keys = async (key: string, ctrl?: string) => ({
    dhchap_key: await addKey(socket, key),
    ...(ctrl !== undefined ? { dhchap_ctrlr_key: await addKey(socket, ctrl) } : {}),
  });
  switch (action) {
    case 'add-host': {
      const [nqn, host, key, ctrl] = args;
      await rpcCall(socket, 'nvmf_subsystem_add_host', { nqn, host, ...(await keys(key, ctrl)) });
      return 'ok';
    }
    case 'set-keys': {
      const [nqn, host, key, ctrl] = args;
      await rpcCall(socket, 'nvmf_subsystem_set_keys', { nqn, host, ...(await keys(key, ctrl)) });
      return 'ok';
    }
    case 'set-config': {
      const [digests, dhgroups] = args;
      await rpcCall(socket, 'nvmf_set_config', {
        dhchap_digests: digests.split(','),
        dhchap_dhgroups: dhgroups.split(','),
      });
      return 'ok';
    }
    case 'qpairs': {
      const qpairs = (await rpcCall(socket, 'nvmf_subsystem_get_qpairs', { nqn: args[0] })) as Array<{
        qid: number;
        state: string;
        auth?: { state: string; digest: string; dhgroup: string };
      }>;
      const items = qpairs.map(
        (q) =>
          `${q.qid}:${q.state}${q.auth ? `:${q.auth.state}:${q.auth.digest}:${q.auth.dhgroup}` : ':none'}`,
      );
      return `ok ${items.join(' ')}`;
    }
    case 'auth-count': {
      const stats = (await rpcCall(socket, 'nvmf_get_stats')) as {
        poll_groups: Array<{ dhchap_authentications: number }>;
      };
      return `ok ${stats.poll_groups.reduce((n, g) => n + g.dhchap_authentications, 0)}`;
    }
    default:
      return `error unknown action ${action}`;
  }
}

function startControl(socket: string, port: number, log: string[]): Promise<Server> {
  const server = createServer((conn: Socket) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      serve(socket, line).then(
        (answer) => {
          log.push(`${line} -> ${answer}`);
          conn.end(`${answer}\n`);
        },
        (e: Error) => {
          log.push(`${line} -> error ${e.message}`);
          conn.end(`error ${e.message.replace(/\n/g, ' ')}\n`);
        },
      );
    });
    conn.on('error', () => undefined);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

test('trixie guest (Linux 6.12 host) authenticates to our target with DH-HMAC-CHAP', async (t) => {
  const missing = missingPrerequisites('trixie');
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const port = await freePort();
  target = await startNvmfTgt({ port, cpuMask: '0x3', config: config(port) });
  const ctlPort = await freePort();
  const requests: string[] = [];
  control = await startControl(target.rpcSocket, ctlPort, requests);
  const run = await runGuest({
    flavour: 'trixie',
    script: SCRIPT,
    env: { TARGET_PORT: String(port), CTL_PORT: String(ctlPort), SUB1, SUB2, HOST1, HOST2 },
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
  });
  t.diagnostic(`control requests: ${requests.length}`);
  for (const line of run.stdout.split('\n').filter((l) => l.startsWith('REFUSED-SECONDS ')))
    t.diagnostic(line);
  const logNote = () => `\n--- nvmf_tgt log ${target?.logPath} (last lines) ---\n${target?.logTail(30)}`;
  await reportGuestChecks(t, run, CHECKS, 'linux-host-auth.log', logNote);
  await t.test('target healthy afterwards', async () => {
    assert.ok(target?.alive(), `nvmf_tgt died; log tail:\n${target?.logTail()}`);
    assert.ok(await canConnect(port));
    const subs = (await rpcCall(target!.rpcSocket, 'nvmf_get_subsystems')) as Array<{
      nqn: string;
      hosts: Array<{ nqn: string; dhchap_key?: string; dhchap_ctrlr_key?: string }>;
    }>;
    const host1 = subs.find((s) => s.nqn === SUB1)?.hosts.find((h) => h.nqn === HOST1);
    // the rotated keys, by name (never their bytes)
    assert.match(host1?.dhchap_key ?? '', /^key\d+$/);
    assert.match(host1?.dhchap_ctrlr_key ?? '', /^key\d+$/);
  });
});
