// DH-HMAC-CHAP from OUR host side against a target we did not write: the Linux 6.12
// kernel target (nvmet, trixie guest) requires authentication of two hosts, with keys
// the guest made with `nvme gen-dhchap-key` (auth-nvmet-target.sh; the guest's port
// 4420 is forwarded to 127.0.0.1). While the guest waits on the control channel, this
// test connects with the host library: one-way hmac(sha512)/ffdhe8192 with two I/O
// queues (each authenticated, nvmet asks on every queue), verified I/O and a
// re-authentication of every queue; bidirectional (nvmet proves itself with its
// controller key); a wrong secret, a wrong controller secret (we refuse nvmet) and no
// secret refused; hmac(sha256) without DH; `nvmf connect -S -C`; and our nvmf_tgt
// attaching nvmet with bdev_nvme_attach_controller --dhchap-key --dhchap-ctrlr-key
// (keyring names), its I/O queues in both reactors authenticating too, data written
// through it read back. Needs `sudo bash scripts/setup-interop.sh` (the trixie image).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  NvmeAuthError,
  NvmeController,
  type NvmeIoQpair,
  NvmeStatusError,
  type TransportId,
} from '../../src/nvme/index.ts';
import { AuthFailure } from '../../src/wire/auth.ts';
import { pattern } from '../lib/index.ts';
import {
  freePort,
  missingPrerequisites,
  NODE_BIN,
  REPO_ROOT,
  type RunningTarget,
  reportGuestChecks,
  rpcCall,
  runGuest,
  startNvmfTgt,
} from './lib/harness.ts';

const SCRIPT = join(REPO_ROOT, 'test/interop/guest/auth-nvmet-target.sh');
const NVMF_CLI = join(REPO_ROOT, 'bin/nvmf.mjs');
const SUBA = 'nqn.2016-06.io.nvmf-ts:nvmet-auth-a';
const SUBB = 'nqn.2016-06.io.nvmf-ts:nvmet-auth-b';
const HOSTA = 'nqn.2014-08.org.nvmexpress:uuid:b0000001-0000-4000-8000-00000000000a';
const HOSTB = 'nqn.2014-08.org.nvmexpress:uuid:b0000001-0000-4000-8000-00000000000b';
const GW_NQN = 'nqn.2016-06.io.nvmf-ts:gw-nvmet-auth';
const GUEST_TIMEOUT_SECONDS = 600;

interface Keys {
  keyA: string;
  ctrlA: string;
  keyB: string;
}

let control: Server | undefined;
let gateway: RunningTarget | undefined;
const keyDir = mkdtempSync(join(tmpdir(), 'nvmf-auth-host-'));

after(async () => {
  control?.close();
  if (gateway) await gateway.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

/** Write 16 blocks of a pattern and read them back through `q`. */
async function verifiedIo(q: NvmeIoQpair, lba: number, seed: number): Promise<void> {
  const data = pattern(16 * 512, seed);
  await q.writeAsync(1, lba, 16, data);
  const back = Buffer.alloc(data.length);
  await q.readAsync(1, lba, 16, back);
  assert.ok(back.equals(data), `data read back at LBA ${lba} differs`);
}

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(NODE_BIN, args, { cwd: REPO_ROOT, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** The host-side checks, run while the guest waits; each records its outcome for a subtest. */
async function hostChecks(
  fwd: number,
  keys: Keys,
  record: (name: string, fn: () => Promise<unknown>) => Promise<void>,
) {
  const tridA: TransportId = { traddr: '127.0.0.1', trsvcid: String(fwd), subnqn: SUBA, hostnqn: HOSTA };
  const tridB: TransportId = { traddr: '127.0.0.1', trsvcid: String(fwd), subnqn: SUBB, hostnqn: HOSTB };
  const opts = { asyncEvents: false, numIoQueues: 2 };

  await record(
    'one-way: hmac(sha512), ffdhe8192, two I/O queues, verified I/O, re-authentication',
    async () => {
      const t0 = performance.now();
      const c = await NvmeController.connect(tridA, { ...opts, dhchapSecret: keys.keyA });
      const connectMs = performance.now() - t0;
      try {
        assert.deepEqual(c.auth, { digest: 'sha512', dhgroup: 'ffdhe8192', bidirectional: false });
        const qs = await c.createIoQpairs(2, 16);
        for (const [i, q] of qs.entries()) await verifiedIo(q, 64 * i, i + 1);
        const t1 = performance.now();
        assert.deepEqual(await c.reauthenticate(), {
          digest: 'sha512',
          dhgroup: 'ffdhe8192',
          bidirectional: false,
        });
        const reauthMs = performance.now() - t1;
        for (const [i, q] of qs.entries()) await verifiedIo(q, 64 * i + 32, i + 11);
        return `admin connect with authentication ${connectMs.toFixed(0)} ms, re-authentication of 3 queues ${reauthMs.toFixed(0)} ms`;
      } finally {
        await c.disconnect();
      }
    },
  );

  await record('bidirectional: nvmet proves itself with the controller key', async () => {
    const c = await NvmeController.connect(tridA, {
      ...opts,
      dhchapSecret: keys.keyA,
      dhchapCtrlrSecret: keys.ctrlA,
    });
    try {
      assert.deepEqual(c.auth, { digest: 'sha512', dhgroup: 'ffdhe8192', bidirectional: true });
      const [q] = await c.createIoQpairs(1, 16);
      await verifiedIo(q, 128, 21);
    } finally {
      await c.disconnect();
    }
  });

  await record('a wrong secret is refused', async () => {
    const t0 = performance.now();
    const err = await NvmeController.connect(tridA, { ...opts, dhchapSecret: keys.keyB }).then(
      (c) => {
        void c.disconnect();
        return null;
      },
      (e: Error) => e,
    );
    assert.ok(err !== null, 'connected with another host key');
    const ms = performance.now() - t0;
    assert.ok(ms < 10_000, `refused after ${ms} ms`);
    // nvmet answers the Success1 receive with AUTH_Failure1 (reason 1: authentication failed)
    // and ends the controller in the same breath (nvmet_ctrl_fatal_error races the send): the
    // host sees either the Failure1 or its receive aborted by the queue's end. Both refuse.
    if (err instanceof NvmeStatusError) {
      assert.equal(err.sc, 0x08, `${err.name}: ${err.message}`); // ABORTED_SQ_DELETION
      assert.match(err.message, /DH-HMAC-CHAP_Success1/);
      return `the queue ended before nvmet's Failure1 arrived: ${err.message} (${ms.toFixed(0)} ms)`;
    }
    assert.ok(err instanceof NvmeAuthError, `${err.name}: ${err.message}`);
    assert.equal(err.by, 'controller');
    assert.equal(err.reason, AuthFailure.FAILED);
    return `${err.message} (${ms.toFixed(0)} ms)`;
  });

  await record('a wrong controller secret: the host refuses nvmet', async () => {
    const err = await NvmeController.connect(tridA, {
      ...opts,
      dhchapSecret: keys.keyA,
      dhchapCtrlrSecret: keys.keyA,
    }).then(
      (c) => {
        void c.disconnect();
        return null;
      },
      (e: Error) => e,
    );
    assert.ok(err instanceof NvmeAuthError, `${err?.name}: ${err?.message}`);
    assert.equal(err.by, 'host');
    assert.equal(err.reason, AuthFailure.FAILED);
    return err.message;
  });

  await record('no secret: refused before any exchange', async () => {
    const err = await NvmeController.connect(tridA, opts).then(
      (c) => {
        void c.disconnect();
        return null;
      },
      (e: Error) => e,
    );
    assert.ok(err instanceof NvmeAuthError, `${err?.name}: ${err?.message}`);
    assert.equal(err.by, 'none');
  });

  await record('hmac(sha256), no DH exchange', async () => {
    const c = await NvmeController.connect(tridB, { ...opts, dhchapSecret: keys.keyB });
    try {
      assert.deepEqual(c.auth, { digest: 'sha256', dhgroup: 'null', bidirectional: false });
      const [q] = await c.createIoQpairs(1, 16);
      await verifiedIo(q, 0, 31);
    } finally {
      await c.disconnect();
    }
  });

  await record('nvmf connect -S SECRET -C CTRL_SECRET (nvme-cli names)', async () => {
    const r = await run([
      NVMF_CLI,
      'connect',
      '-t',
      'tcp',
      '-a',
      '127.0.0.1',
      '-s',
      String(fwd),
      '-n',
      SUBA,
      '-q',
      HOSTA,
      '--dhchap-secret',
      keys.keyA,
      '-C',
      keys.ctrlA,
      '-o',
      'json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { authentication?: unknown; subnqn: string };
    assert.equal(out.subnqn.trim(), SUBA);
    assert.deepEqual(out.authentication, { digest: 'sha512', dhgroup: 'ffdhe8192', bidirectional: true });
    const refused = await run([
      NVMF_CLI,
      'connect',
      '-a',
      '127.0.0.1',
      '-s',
      String(fwd),
      '-n',
      SUBA,
      '-q',
      HOSTA,
    ]);
    assert.equal(refused.code, 1, `no secret: ${refused.stdout}`);
    assert.match(refused.stderr, /requires DH-HMAC-CHAP/);
  });

  await record(
    'bdev_nvme_attach_controller --dhchap-key --dhchap-ctrlr-key: nvmet behind our target',
    async () => {
      const port = await freePort();
      const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
      gateway = await startNvmfTgt({
        port,
        cpuMask: '0x3',
        config: {
          subsystems: [
            {
              subsystem: 'nvmf',
              config: [
                { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
                { method: 'nvmf_create_subsystem', params: { nqn: GW_NQN, allow_any_host: true } },
                { method: 'nvmf_subsystem_add_listener', params: { nqn: GW_NQN, listen_address: listen } },
              ],
            },
          ],
        },
      });
      const sock = gateway.rpcSocket;
      for (const [name, text] of [
        ['nvmet-host', keys.keyA],
        ['nvmet-ctrl', keys.ctrlA],
      ]) {
        const path = join(keyDir, name);
        writeFileSync(path, text, { mode: 0o600 });
        await rpcCall(sock, 'keyring_file_add_key', { name, path });
      }
      const names = await rpcCall(
        sock,
        'bdev_nvme_attach_controller',
        {
          name: 'Kernel0',
          trtype: 'tcp',
          adrfam: 'ipv4',
          traddr: '127.0.0.1',
          trsvcid: String(fwd),
          subnqn: SUBA,
          hostnqn: HOSTA,
          dhchap_key: 'nvmet-host',
          dhchap_ctrlr_key: 'nvmet-ctrl',
        },
        60_000,
      );
      assert.deepEqual(names, ['Kernel0n1']);
      await rpcCall(sock, 'nvmf_subsystem_add_ns', { nqn: GW_NQN, namespace: { bdev_name: 'Kernel0n1' } });
      // two I/O queues land on both poll groups: each reactor opens its own authenticated queue to nvmet
      const c = await NvmeController.connect({ ...listen, subnqn: GW_NQN }, opts);
      try {
        const qs = await c.createIoQpairs(2, 16);
        for (const [i, q] of qs.entries()) await verifiedIo(q, 256 + 64 * i, 41 + i);
      } finally {
        await c.disconnect();
      }
      const saved = JSON.stringify(await rpcCall(sock, 'save_config'));
      assert.match(saved, /"dhchap_key":"nvmet-host"/);
      assert.match(saved, /"dhchap_ctrlr_key":"nvmet-ctrl"/);
      assert.ok(!saved.includes(keys.keyA.split(':')[2]), 'save_config holds no key bytes');
    },
  );
}

test('our host library, nvmf CLI and bdev_nvme authenticate to the kernel target (nvmet, Linux 6.12)', async (t) => {
  const missing = missingPrerequisites('trixie');
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const fwd = await freePort();
  const ctlPort = await freePort();
  const results: Array<{ name: string; error: Error | null; note: string }> = [];
  const record = async (name: string, fn: () => Promise<unknown>) => {
    try {
      const v = await fn();
      results.push({ name, error: null, note: typeof v === 'string' ? v : '' });
    } catch (e) {
      results.push({ name, error: e as Error, note: '' });
    }
  };
  let checked = false;
  control = createServer((conn: Socket) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => {
      buf += d;
      if (!buf.includes('\n')) return;
      const [action, keyA, ctrlA, keyB] = buf.trim().split(/\s+/);
      if (action !== 'ready' || checked) {
        conn.end('error unexpected\n');
        return;
      }
      checked = true;
      hostChecks(fwd, { keyA, ctrlA, keyB }, record).then(
        () => conn.end('ok\n'),
        (e: Error) => conn.end(`error ${e.message}\n`),
      );
    });
    conn.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => control?.listen(ctlPort, '127.0.0.1', resolve));
  const guest = await runGuest({
    flavour: 'trixie',
    script: SCRIPT,
    env: { CTL_PORT: String(ctlPort), SUBA, SUBB, HOSTA, HOSTB },
    forwards: [`${fwd}:4420`],
    timeoutSeconds: GUEST_TIMEOUT_SECONDS,
  });
  await reportGuestChecks(t, guest, ['nvmet-auth-target', 'host-library-ran'], 'host-library-auth.log', () =>
    gateway ? `\n--- nvmf_tgt (bdev_nvme) log ---\n${gateway.logTail(30)}` : '',
  );
  assert.ok(checked, 'the guest never asked the test to run its checks');
  for (const r of results) {
    await t.test(r.name, () => {
      if (r.note !== '') t.diagnostic(`${r.name}: ${r.note}`);
      if (r.error !== null) throw r.error;
    });
  }
});
