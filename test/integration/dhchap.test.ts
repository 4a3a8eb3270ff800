// DH-HMAC-CHAP (NVMe in-band authentication) on a real nvmf_tgt with two poll groups, with
// our host library and with a raw host that sends the messages itself: one-way and
// bidirectional authentication of the admin queue and every I/O queue with verified I/O,
// the RPCs (keys by keyring name, what is refused, what save_config writes), a key rotation
// with nvmf_subsystem_set_keys and re-authentication, and bad input, each ending only its
// own queue with the right reason while another host's I/O goes on: wrong key, wrong
// controller key, no key, unusable hash or DH group, truncated and oversized messages,
// messages out of order, a replayed transaction, commands before authentication and a
// host that goes silent mid-way.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hostResponse } from '../../src/auth/index.ts';
import { formatDhchapSecret, parseDhchapSecret } from '../../src/keyring/index.ts';
import { execute } from '../../src/nvme/command.ts';
import { NvmeAuthError, NvmeController, NvmeStatusError } from '../../src/nvme/index.ts';
import { NvmeTcpQpair } from '../../src/nvme/tcp-qpair.ts';
import {
  AUTH_PROTOCOL_DHCHAP,
  AuthFailure,
  AuthMessageId,
  AuthType,
  ConnectAuthReq,
  connectAuthReq,
  DhchapHashId,
  DhGroupId,
  readAuthFailure,
  readAuthHeader,
  readDhchapChallenge,
  writeAuthFailure,
  writeAuthNegotiate,
  writeAuthReceive,
  writeAuthSend,
  writeDhchapReply,
} from '../../src/wire/auth.ts';
import { writeConnectCommand, writeConnectData } from '../../src/wire/fabrics.ts';
import { FabricsStatus, SQE_SIZE, StatusCodeType } from '../../src/wire/nvme.ts';
import {
  ChildTarget,
  freePort,
  pattern,
  runNvmf,
  TLS_KEY,
  tlsListener,
  waitFor,
  within,
} from '../lib/index.ts';

const NQN = 'nqn.2016-06.io.nvmf-ts:dhchap';
const HOST = 'nqn.2014-08.org.nvmexpress:uuid:d0000001-0000-4000-8000-000000000001';
const HOST_BIDI = 'nqn.2014-08.org.nvmexpress:uuid:d0000001-0000-4000-8000-000000000002';
const HOST_ROTATE = 'nqn.2014-08.org.nvmexpress:uuid:d0000001-0000-4000-8000-000000000003';
const HOST_RAW = 'nqn.2014-08.org.nvmexpress:uuid:d0000001-0000-4000-8000-000000000004';
const HOST_NOAUTH = 'nqn.2014-08.org.nvmexpress:uuid:d0000001-0000-4000-8000-000000000005';
const HOST_TLS = 'nqn.2014-08.org.nvmexpress:uuid:d0000001-0000-4000-8000-000000000006';
const BDEV = 'AuthMalloc';
const BLOCK = 512;

// secrets: one untransformed (hash 00) and others transformed with their own hash
const KEY = formatDhchapSecret({ hash: 1, key: randomBytes(32) });
const CKEY = formatDhchapSecret({ hash: 3, key: randomBytes(64) });
const KEY_ROTATED = formatDhchapSecret({ hash: 2, key: randomBytes(48) });
const KEY_RAW = formatDhchapSecret({ hash: 0, key: randomBytes(32) });
const WRONG = formatDhchapSecret({ hash: 1, key: randomBytes(32) });

let target: ChildTarget;
/** a secure-channel (TLS) listener of the same subsystem */
let tlsPort: string;

function keyFile(name: string, text: string): string {
  const path = join(target.dir, name);
  writeFileSync(path, `${text}\n`, { mode: 0o600 });
  return path;
}

before(async () => {
  // min_kato 1 s: a 1 s KATO bounds the silent host's authentication
  target = await ChildTarget.start({ cores: '0x3', transport: { min_kato: 1000 } });
  for (const [name, text] of [
    ['key0', KEY],
    ['ckey0', CKEY],
    ['key1', KEY_ROTATED],
    ['keyraw', KEY_RAW],
  ])
    await target.call('keyring_file_add_key', { name, path: keyFile(name, text) });
  await target.call('bdev_malloc_create', { name: BDEV, num_blocks: 16384, block_size: BLOCK });
  await target.call('nvmf_create_subsystem', { nqn: NQN, allow_any_host: false });
  await target.call('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { nsid: 1, bdev_name: BDEV } });
  await target.call('nvmf_subsystem_add_host', { nqn: NQN, host: HOST, dhchap_key: 'key0' });
  await target.call('nvmf_subsystem_add_host', {
    nqn: NQN,
    host: HOST_BIDI,
    dhchap_key: 'key0',
    dhchap_ctrlr_key: 'ckey0',
  });
  await target.call('nvmf_subsystem_add_host', { nqn: NQN, host: HOST_ROTATE, dhchap_key: 'key0' });
  await target.call('nvmf_subsystem_add_host', { nqn: NQN, host: HOST_RAW, dhchap_key: 'keyraw' });
  await target.call('nvmf_subsystem_add_host', { nqn: NQN, host: HOST_NOAUTH });
  // TLS on the connection and DH-HMAC-CHAP on the queues inside it
  await target.call('keyring_file_add_key', { name: 'psk0', path: keyFile('psk0', TLS_KEY) });
  await target.call('nvmf_subsystem_add_host', { nqn: NQN, host: HOST_TLS, psk: 'psk0', dhchap_key: 'key0' });
  tlsPort = String(await freePort());
  await target.call('nvmf_subsystem_add_listener', tlsListener(tlsPort, NQN));
  await target.call('nvmf_subsystem_add_listener', {
    nqn: NQN,
    listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: target.port },
  });
});

after(async () => {
  assert.deepEqual(target?.uncaughtErrors() ?? [], []);
  const code = await target?.stop();
  assert.equal(code, 0);
});

function trid(hostnqn: string) {
  return { traddr: '127.0.0.1', trsvcid: target.port, subnqn: NQN, hostnqn };
}

/** Write a pattern through each queue and read it back. */
async function verifyIo(c: NvmeController, queues: number, seed: number): Promise<void> {
  const qs = await c.createIoQpairs(queues, 32);
  for (const [i, q] of qs.entries()) {
    const data = pattern(8 * BLOCK, seed + i);
    const lba = (seed % 64) * 64 + i * 8;
    await q.writeAsync(1, lba, 8, data);
    const back = Buffer.alloc(data.length);
    await q.readAsync(1, lba, 8, back);
    assert.ok(back.equals(data), `queue ${q.qid}: data read back`);
  }
}

interface QpairJson {
  cntlid: number;
  qid: number;
  state: string;
  hostnqn: string;
  auth?: { state: string; digest: string; dhgroup: string };
}

async function qpairsOf(hostnqn: string): Promise<QpairJson[]> {
  const all = (await target.call('nvmf_subsystem_get_qpairs', { nqn: NQN })) as QpairJson[];
  return all.filter((q) => q.hostnqn === hostnqn);
}

function authError(by: string, reason: number) {
  return (e: unknown) => {
    assert.ok(e instanceof NvmeAuthError, String(e));
    assert.equal(e.by, by, e.message);
    assert.equal(e.reason, reason, e.message);
    return true;
  };
}

// ------------------------------------------------------------ the RPCs

test('add_host: keys by keyring name; an unknown key, a controller key alone and a non-DHHC key refused; get_subsystems and save_config name keys, never bytes', async () => {
  await assert.rejects(
    target.call('nvmf_subsystem_add_host', { nqn: NQN, host: 'nqn.2014-08.io.x:h9', dhchap_key: 'nokey' }),
    (e: { code: number; message: string }) => e.code === -32602 && /nokey/.test(e.message),
  );
  await assert.rejects(
    target.call('nvmf_subsystem_add_host', {
      nqn: NQN,
      host: 'nqn.2014-08.io.x:h9',
      dhchap_ctrlr_key: 'ckey0',
    }),
    (e: { message: string }) => /controller key requires host key/.test(e.message),
  );
  const psk = keyFile('notdhchap', 'NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:');
  await target.call('keyring_file_add_key', { name: 'notdhchap', path: psk });
  await assert.rejects(
    target.call('nvmf_subsystem_add_host', {
      nqn: NQN,
      host: 'nqn.2014-08.io.x:h9',
      dhchap_key: 'notdhchap',
    }),
    (e: { code: number }) => e.code === -32602,
  );
  const subs = (await target.call('nvmf_get_subsystems')) as Array<{ nqn: string; hosts: unknown[] }>;
  const hosts = subs.find((s) => s.nqn === NQN)?.hosts;
  assert.deepEqual(
    hosts?.find((h) => (h as { nqn: string }).nqn === HOST_BIDI),
    { nqn: HOST_BIDI, dhchap_key: 'key0', dhchap_ctrlr_key: 'ckey0' },
  );
  const saved = JSON.stringify(await target.call('save_config'));
  assert.match(saved, /"dhchap_ctrlr_key":"ckey0"/);
  for (const secret of [KEY, CKEY, KEY_ROTATED, KEY_RAW]) {
    assert.ok(!saved.includes(secret.split(':')[2]), 'no key bytes in save_config');
    assert.ok(!target.log().includes(secret.split(':')[2]), 'no key bytes in the log');
  }
});

// ------------------------------------------------------------ our host

test('one-way: admin and both I/O queues authenticate (sha512, ffdhe8192 chosen), verified I/O, get_qpairs shows every queue completed', async () => {
  const c = await NvmeController.connect(trid(HOST), { dhchapSecret: KEY });
  try {
    assert.deepEqual(c.auth, { digest: 'sha512', dhgroup: 'ffdhe8192', bidirectional: false });
    await verifyIo(c, 2, 1);
    const qs = (await qpairsOf(HOST)).filter((q) => q.cntlid === c.cntlid);
    assert.equal(qs.length, 3, 'admin + 2 I/O queues');
    for (const q of qs) {
      assert.equal(q.state, 'enabled');
      assert.deepEqual(
        q.auth,
        { state: 'completed', digest: 'sha512', dhgroup: 'ffdhe8192' },
        `qid ${q.qid}`,
      );
    }
  } finally {
    await c.disconnect();
  }
});

test('bidirectional: the controller proves itself with the controller key (sha256, null group as offered); a wrong controller secret is refused by the host', async () => {
  const o = { dhchapDigests: ['sha256'], dhchapDhgroups: ['null'] };
  const c = await NvmeController.connect(trid(HOST_BIDI), {
    dhchapSecret: KEY,
    dhchapCtrlrSecret: CKEY,
    ...o,
  });
  try {
    assert.deepEqual(c.auth, { digest: 'sha256', dhgroup: 'null', bidirectional: true });
    await verifyIo(c, 2, 2);
  } finally {
    await c.disconnect();
  }
  await assert.rejects(
    NvmeController.connect(trid(HOST_BIDI), { dhchapSecret: KEY, dhchapCtrlrSecret: WRONG, ...o }),
    authError('host', AuthFailure.FAILED),
  );
  // the host asks the controller of a host without a controller key to prove itself: refused
  await assert.rejects(
    NvmeController.connect(trid(HOST), { dhchapSecret: KEY, dhchapCtrlrSecret: CKEY, ...o }),
    authError('controller', AuthFailure.FAILED),
  );
});

test('refused: a wrong secret (failure1 "failed"), no secret, and a host without a key connects without authenticating', async () => {
  const o = { dhchapDhgroups: ['ffdhe2048'] };
  await assert.rejects(
    NvmeController.connect(trid(HOST), { dhchapSecret: WRONG, ...o }),
    authError('controller', AuthFailure.FAILED),
  );
  await assert.rejects(NvmeController.connect(trid(HOST)), authError('none', 0));
  const c = await NvmeController.connect(trid(HOST_NOAUTH));
  try {
    assert.equal(c.auth, null);
    await verifyIo(c, 1, 3);
  } finally {
    await c.disconnect();
  }
  const stats = (await target.call('nvmf_get_stats')) as {
    poll_groups: Array<{ dhchap_failures: number; dhchap_authentications: number }>;
  };
  assert.ok(stats.poll_groups.reduce((n, g) => n + g.dhchap_failures, 0) >= 2, 'failures counted');
});

test('set_keys: a rotation applies to the next authentication; re-authentication of every queue with the new secret, the old one refused; I/O goes on', async () => {
  const o = { dhchapDhgroups: ['ffdhe2048'] };
  const c = await NvmeController.connect(trid(HOST_ROTATE), { dhchapSecret: KEY, ...o });
  try {
    const qs = await c.createIoQpairs(2, 32);
    // re-authentication with the current key, while the queues stay up
    assert.equal((await c.reauthenticate()).dhgroup, 'ffdhe2048');
    await target.call('nvmf_subsystem_set_keys', { nqn: NQN, host: HOST_ROTATE, dhchap_key: 'key1' });
    // the queues authenticated before go on
    const data = pattern(4096, 7);
    await qs[0].writeAsync(1, 100, 8, data);
    // the new key for a new controller; the old one is refused
    await assert.rejects(
      NvmeController.connect(trid(HOST_ROTATE), { dhchapSecret: KEY, ...o }),
      authError('controller', AuthFailure.FAILED),
    );
    const c2 = await NvmeController.connect(trid(HOST_ROTATE), { dhchapSecret: KEY_ROTATED, ...o });
    await c2.disconnect();
    // the first controller re-authenticates all its queues with the new secret
    c.setDhchapSecrets({ dhchapSecret: KEY_ROTATED });
    await c.reauthenticate();
    const back = Buffer.alloc(4096);
    await qs[1].readAsync(1, 100, 8, back);
    assert.ok(back.equals(data));
    const mine = (await qpairsOf(HOST_ROTATE)).filter((q) => q.cntlid === c.cntlid);
    assert.equal(mine.length, 3);
    for (const q of mine) assert.equal(q.auth?.state, 'completed');
    // set_keys for a host not on the list
    await assert.rejects(
      target.call('nvmf_subsystem_set_keys', {
        nqn: NQN,
        host: 'nqn.2014-08.io.x:nohost',
        dhchap_key: 'key1',
      }),
      (e: { code: number }) => e.code === -22,
    );
  } finally {
    await c.disconnect();
    await target.call('nvmf_subsystem_set_keys', { nqn: NQN, host: HOST_ROTATE, dhchap_key: 'key0' });
  }
});

test('nvmf_set_config: digests and DH groups the target allows; a host offering none of them is refused with the reason', async () => {
  await target.call('nvmf_set_config', {
    dhchap_digests: ['sha384'],
    dhchap_dhgroups: ['null', 'ffdhe3072'],
  });
  try {
    const c = await NvmeController.connect(trid(HOST), { dhchapSecret: KEY });
    assert.deepEqual(c.auth, { digest: 'sha384', dhgroup: 'ffdhe3072', bidirectional: false });
    await c.disconnect();
    await assert.rejects(
      NvmeController.connect(trid(HOST), { dhchapSecret: KEY, dhchapDigests: ['sha256', 'sha512'] }),
      authError('controller', AuthFailure.HASH_UNUSABLE),
    );
    await assert.rejects(
      NvmeController.connect(trid(HOST), { dhchapSecret: KEY, dhchapDhgroups: ['ffdhe2048'] }),
      authError('controller', AuthFailure.DHGROUP_UNUSABLE),
    );
    await assert.rejects(
      target.call('nvmf_set_config', { dhchap_digests: ['md5'] }),
      (e: { code: number }) => e.code === -32602,
    );
  } finally {
    await target.call('nvmf_set_config', {
      dhchap_digests: ['sha256', 'sha384', 'sha512'],
      dhchap_dhgroups: ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'],
    });
  }
});

test('TLS and DH-HMAC-CHAP together: a host with a PSK and a key authenticates every queue inside the secure channel; without its secret it is refused after the handshake', async () => {
  const t = { ...trid(HOST_TLS), trsvcid: tlsPort, tlsKey: TLS_KEY };
  const c = await NvmeController.connect(t, { dhchapSecret: KEY, dhchapDhgroups: ['ffdhe2048'] });
  try {
    assert.deepEqual(c.auth, { digest: 'sha512', dhgroup: 'ffdhe2048', bidirectional: false });
    await verifyIo(c, 2, 9);
    const qs = (await qpairsOf(HOST_TLS)).filter((q) => q.cntlid === c.cntlid);
    assert.equal(qs.length, 3);
    for (const q of qs) assert.equal(q.auth?.state, 'completed');
  } finally {
    await c.disconnect();
  }
  await assert.rejects(NvmeController.connect(t), authError('none', 0));
});

// ------------------------------------------------------------ a raw host

/** An admin queue of HOST_RAW after Connect, before any authentication. */
async function rawAdmin(kato = 10_000): Promise<{ q: NvmeTcpQpair; authreq: number }> {
  const q = await NvmeTcpQpair.connect({
    traddr: '127.0.0.1',
    trsvcid: target.port,
    queueSize: 32,
    inCapsuleDataSize: 8192,
  });
  const cmd = Buffer.alloc(SQE_SIZE);
  writeConnectCommand(cmd, { recfmt: 0, qid: 0, sqsize: 31, cattr: 0, kato });
  const data = Buffer.alloc(1024);
  writeConnectData(data, { hostid: Buffer.alloc(16, 4), cntlid: 0xffff, subnqn: NQN, hostnqn: HOST_RAW });
  const c = await execute(q, cmd, data, false, 'Connect');
  return { q, authreq: connectAuthReq(c.dw0) };
}

async function authSend(q: NvmeTcpQpair, msg: Buffer): Promise<void> {
  const cmd = Buffer.alloc(SQE_SIZE);
  writeAuthSend(cmd, msg.length);
  await execute(q, cmd, msg, false, 'Authentication Send');
}

async function authReceive(q: NvmeTcpQpair, size = 4096): Promise<Buffer> {
  const cmd = Buffer.alloc(SQE_SIZE);
  const buf = Buffer.alloc(size);
  writeAuthReceive(cmd, size);
  await execute(q, cmd, buf, true, 'Authentication Receive');
  return buf;
}

function negotiate(
  tid: number,
  hashIds: number[] = [DhchapHashId.SHA256],
  groups: number[] = [DhGroupId.NULL],
) {
  const buf = Buffer.alloc(72);
  writeAuthNegotiate(buf, {
    tid,
    scC: 0,
    protocols: [{ authId: AUTH_PROTOCOL_DHCHAP, hashIds, dhGroupIds: groups }],
  });
  return buf;
}

/** The reply to a challenge with the raw host's secret (null group). */
function replyTo(challengeMsg: Buffer, tid: number, secret = KEY_RAW): Buffer {
  const ch = readDhchapChallenge(challengeMsg);
  const r1 = hostResponse({
    hashId: ch.hashId,
    secret: parseDhchapSecret(secret),
    hostnqn: HOST_RAW,
    subnqn: NQN,
    challenge: ch.challenge,
    seqnum: ch.seqnum,
    tid,
    sessionKey: null,
  });
  const reply = Buffer.alloc(16 + 2 * r1.length);
  writeDhchapReply(reply, {
    tid,
    response: r1,
    cvalid: 0,
    seqnum: 0,
    challenge: Buffer.alloc(r1.length),
    dhValue: Buffer.alloc(0),
  });
  return reply;
}

/** The next Receive carries AUTH_Failure1 with `rce`, then the target closes the queue. */
async function expectFailure1(q: NvmeTcpQpair, rce: number): Promise<void> {
  const closed = new Promise<string>((resolve) => {
    q.onClose = resolve;
  });
  const m = await authReceive(q);
  const h = readAuthHeader(m);
  assert.equal(h?.authType, AuthType.COMMON);
  assert.equal(h?.authId, AuthMessageId.FAILURE1);
  assert.equal(readAuthFailure(m).rce, rce);
  await within(5000, 'the target closes the queue after failure1', closed);
}

/** Meanwhile another host's controller does verified I/O. */
async function otherHostIo(seed: number): Promise<void> {
  const c = await NvmeController.connect(trid(HOST_NOAUTH));
  try {
    await verifyIo(c, 1, seed);
  } finally {
    await c.disconnect();
  }
}

test('raw host: the Connect answer sets AUTHREQ.ATR; any other command before authentication is refused (Authentication Required); a complete raw transaction then opens the queue', async () => {
  const { q, authreq } = await rawAdmin();
  try {
    assert.equal(authreq & ConnectAuthReq.ATR, ConnectAuthReq.ATR);
    const get = Buffer.alloc(SQE_SIZE);
    get[0] = 0x7f;
    get[4] = 0x04; // Property Get
    get.writeUInt32LE(0x08, 44); // VS
    await assert.rejects(execute(q, get, null, false, 'Property Get'), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError, String(e));
      assert.equal(e.sct, StatusCodeType.COMMAND_SPECIFIC);
      assert.equal(e.sc, FabricsStatus.AUTH_REQUIRED);
      return true;
    });
    await authSend(q, negotiate(5));
    const ch = await authReceive(q);
    await authSend(q, replyTo(ch, 5));
    const s1 = await authReceive(q);
    assert.equal(readAuthHeader(s1)?.authId, AuthMessageId.DHCHAP_SUCCESS1);
    const c = await execute(q, get, null, false, 'Property Get');
    assert.ok(c.dw0 !== 0, 'VS answered after authentication');
  } finally {
    q.close();
  }
});

test('bad input: each ends its own queue with the reason while another host does I/O', async () => {
  const cases: Array<{ name: string; rce: number; run: (q: NvmeTcpQpair) => Promise<void> }> = [
    {
      name: 'wrong key',
      rce: AuthFailure.FAILED,
      run: async (q) => {
        await authSend(q, negotiate(1));
        await authSend(q, replyTo(await authReceive(q), 1, WRONG));
      },
    },
    {
      name: 'unknown hash id',
      rce: AuthFailure.HASH_UNUSABLE,
      run: (q) => authSend(q, negotiate(1, [0x09])),
    },
    {
      name: 'unknown DH group',
      rce: AuthFailure.DHGROUP_UNUSABLE,
      run: (q) => authSend(q, negotiate(1, [DhchapHashId.SHA256], [0x42])),
    },
    {
      name: 'truncated negotiate',
      rce: AuthFailure.INCORRECT_PAYLOAD,
      run: (q) => authSend(q, negotiate(1).subarray(0, 40)),
    },
    {
      name: 'oversized negotiate',
      rce: AuthFailure.INCORRECT_PAYLOAD,
      run: (q) => authSend(q, Buffer.concat([negotiate(1), Buffer.alloc(4000, 0xaa)])),
    },
    {
      name: 'truncated reply',
      rce: AuthFailure.INCORRECT_PAYLOAD,
      run: async (q) => {
        await authSend(q, negotiate(1));
        await authSend(q, replyTo(await authReceive(q), 1).subarray(0, 30));
      },
    },
    {
      name: 'reply before negotiate (out of order)',
      rce: AuthFailure.INCORRECT_PROTOCOL_MESSAGE,
      run: async (q) => {
        const reply = Buffer.alloc(16 + 64);
        writeDhchapReply(reply, {
          tid: 1,
          response: randomBytes(32),
          cvalid: 0,
          seqnum: 0,
          challenge: Buffer.alloc(32),
          dhValue: Buffer.alloc(0),
        });
        await authSend(q, reply);
      },
    },
    {
      name: 'a second negotiate mid-transaction',
      rce: AuthFailure.INCORRECT_PROTOCOL_MESSAGE,
      run: async (q) => {
        await authSend(q, negotiate(1));
        await authReceive(q);
        await authSend(q, negotiate(1));
      },
    },
    {
      name: 'reply of another transaction id',
      rce: AuthFailure.INCORRECT_PAYLOAD,
      run: async (q) => {
        await authSend(q, negotiate(1));
        await authSend(q, replyTo(await authReceive(q), 2));
      },
    },
  ];
  const others = otherHostIo(40);
  for (const c of cases) {
    const { q } = await rawAdmin();
    try {
      await c.run(q);
      await expectFailure1(q, c.rce);
    } catch (e) {
      (e as Error).message = `${c.name}: ${(e as Error).message}`;
      throw e;
    } finally {
      q.close();
    }
  }
  await others;
  await otherHostIo(41);
});

test('a Receive with room for less than a failure message: Invalid Field, the queue ends, the target lives on', async () => {
  const { q } = await rawAdmin();
  const closed = new Promise<string>((resolve) => {
    q.onClose = resolve;
  });
  try {
    await authSend(q, negotiate(6));
    await assert.rejects(authReceive(q, 4), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError, String(e));
      assert.equal(e.sct, StatusCodeType.GENERIC);
      assert.equal(e.sc, 0x02);
      return true;
    });
    await within(5000, 'queue closed', closed);
    await otherHostIo(60);
  } finally {
    q.close();
  }
});

test('fuzz: transactions whose messages are mutated (bytes flipped, cut, extended) and Receives of random sizes end at most their own queue; the target keeps serving', async () => {
  // a seeded generator (mulberry32) so a failure can be replayed
  let seed = 0x5eed1234;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const mutate = (m: Buffer): Buffer => {
    const r = rand();
    if (r < 0.4) return m;
    if (r < 0.7) {
      const out = Buffer.from(m);
      for (let i = 0; i < 1 + Math.floor(rand() * 3); i++)
        out[Math.floor(rand() * out.length)] ^= 1 << Math.floor(rand() * 8);
      return out;
    }
    if (r < 0.85) return m.subarray(0, Math.max(1, Math.floor(rand() * m.length)));
    return Buffer.concat([m, randomBytes(1 + Math.floor(rand() * 200))]);
  };
  const receiveSize = () =>
    [4096, 4096, 4096, 8, 16, 100, 1 + Math.floor(rand() * 5000)][Math.floor(rand() * 7)];
  let outcomes = 0;
  let replies = 0;
  for (let i = 0; i < 30; i++) {
    const { q } = await rawAdmin();
    const tid = Math.floor(rand() * 0x10000);
    try {
      await authSend(q, mutate(negotiate(tid, [1, 2, 3], [0])));
      const ch = await authReceive(q, receiveSize());
      if (readAuthHeader(ch)?.authId === AuthMessageId.DHCHAP_CHALLENGE && ch[9] === DhGroupId.NULL) {
        replies++;
        await authSend(q, mutate(replyTo(ch, tid)));
        await authReceive(q, receiveSize());
      }
      if (rand() < 0.3) {
        const f2 = Buffer.alloc(8);
        writeAuthFailure(f2, 2, { tid, rc: 1, rce: 1 });
        await authSend(q, mutate(f2));
      }
      outcomes++;
    } catch {
      // a refused command or a closed queue: what bad input may get
      outcomes++;
    } finally {
      q.close();
    }
  }
  assert.equal(outcomes, 30);
  assert.ok(replies >= 5, `${replies} transactions got as far as a reply`);
  assert.ok(target.alive());
  await otherHostIo(70);
});

test('replay: the reply of a finished transaction, sent again to a new challenge with the same transaction id, is refused', async () => {
  const first = await rawAdmin();
  let replayed: Buffer;
  try {
    await authSend(first.q, negotiate(9));
    replayed = replyTo(await authReceive(first.q), 9);
    await authSend(first.q, replayed);
    assert.equal(readAuthHeader(await authReceive(first.q))?.authId, AuthMessageId.DHCHAP_SUCCESS1);
  } finally {
    first.q.close();
  }
  const { q } = await rawAdmin();
  try {
    await authSend(q, negotiate(9));
    await authReceive(q); // a fresh challenge
    await authSend(q, replayed);
    await expectFailure1(q, AuthFailure.FAILED);
  } finally {
    q.close();
  }
});

test('the host answers failure2: the target ends the queue', async () => {
  const { q } = await rawAdmin();
  const closed = new Promise<string>((resolve) => {
    q.onClose = resolve;
  });
  try {
    await authSend(q, negotiate(3));
    await authReceive(q);
    const f2 = Buffer.alloc(8);
    writeAuthFailure(f2, 2, { tid: 3, rc: 1, rce: AuthFailure.FAILED });
    await authSend(q, f2);
    await within(5000, 'queue closed after failure2', closed);
  } finally {
    q.close();
  }
});

test('a host silent mid-handshake loses its queue at the timeout (its KATO), another host goes on', async () => {
  const { q } = await rawAdmin(1000);
  const closed = new Promise<string>((resolve) => {
    q.onClose = resolve;
  });
  try {
    await authSend(q, negotiate(4));
    await authReceive(q);
    // no reply: the target ends the queue after the 1 s KATO
    const t0 = Date.now();
    await otherHostIo(50);
    await within(10_000, 'the silent queue is closed', closed);
    // the 1 s KATO, checked once a second: well before the 10 s default minimum
    assert.ok(Date.now() - t0 < 5000, `closed after ${Date.now() - t0} ms`);
    assert.match(target.log(), /authentication timed out \(state reply\)/);
    await waitFor('no raw queue left', async () => (await qpairsOf(HOST_RAW)).length === 0);
  } finally {
    q.close();
  }
});

test('bdev_nvme_attach_controller --dhchap-key/--dhchap-ctrlr-key: a gateway attaches the subsystem by key names (bidirectional, the DH groups of bdev_nvme_set_options), its queues in both realms authenticate, I/O through it; save_config names the keys', async () => {
  const gateway = await ChildTarget.start({ cores: '0x3' });
  try {
    for (const [name, text] of [
      ['gwkey', KEY],
      ['gwckey', CKEY],
    ])
      await gateway.call('keyring_file_add_key', { name, path: keyFile(`${name}-gw`, text) });
    await assert.rejects(
      gateway.call('bdev_nvme_set_options', { dhchap_dhgroups: ['ffdhe1024'] }),
      (e: { code: number }) => e.code === -32602,
    );
    await gateway.call('bdev_nvme_set_options', {
      dhchap_digests: ['sha384'],
      dhchap_dhgroups: ['ffdhe2048'],
    });
    const attach = {
      name: 'AuthGw',
      trtype: 'tcp',
      adrfam: 'ipv4',
      traddr: '127.0.0.1',
      trsvcid: target.port,
      subnqn: NQN,
      hostnqn: HOST_BIDI,
    };
    await assert.rejects(
      gateway.call('bdev_nvme_attach_controller', { ...attach, dhchap_ctrlr_key: 'gwckey' }),
      (e: { code: number }) => e.code === -22,
    );
    await assert.rejects(
      gateway.call('bdev_nvme_attach_controller', { ...attach, dhchap_key: 'nokey' }),
      (e: { code: number }) => e.code === -126,
    );
    assert.deepEqual(
      await gateway.call('bdev_nvme_attach_controller', {
        ...attach,
        dhchap_key: 'gwkey',
        dhchap_ctrlr_key: 'gwckey',
      }),
      ['AuthGwn1'],
    );
    const gw = 'nqn.2016-06.io.nvmf-ts:authgw';
    await gateway.call('nvmf_create_subsystem', { nqn: gw, allow_any_host: true });
    await gateway.call('nvmf_subsystem_add_ns', { nqn: gw, namespace: { nsid: 1, bdev_name: 'AuthGwn1' } });
    await gateway.call('nvmf_subsystem_add_listener', {
      nqn: gw,
      listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: gateway.port },
    });
    const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: gateway.port, subnqn: gw });
    try {
      await c.setNumQueues(2);
      const queues = [await c.createIoQpair(16), await c.createIoQpair(16)];
      for (const [i, q] of queues.entries()) {
        const data = pattern(16 * BLOCK, 600 + i);
        await q.writeAsync(1, 8192 + i * 64, 16, data);
        const back = Buffer.alloc(data.length);
        await queues[1 - i].readAsync(1, 8192 + i * 64, 16, back);
        assert.ok(back.equals(data));
      }
    } finally {
      await c.disconnect();
    }
    // the gateway's queues at the target: the admin queue and one per gateway realm, all authenticated
    const qs = await qpairsOf(HOST_BIDI);
    assert.ok(qs.length >= 3, `${qs.length} queues`);
    for (const q of qs)
      assert.deepEqual(q.auth, { state: 'completed', digest: 'sha384', dhgroup: 'ffdhe2048' });
    const saved = JSON.stringify(await gateway.call('save_config'));
    assert.match(saved, /"dhchap_key":"gwkey"/);
    assert.match(saved, /"dhchap_ctrlr_key":"gwckey"/);
    assert.ok(!saved.includes(KEY.split(':')[2]) && !saved.includes(CKEY.split(':')[2]), 'no key bytes');
    await gateway.call('bdev_nvme_detach_controller', { name: 'AuthGw' });
  } finally {
    assert.deepEqual(gateway.uncaughtErrors(), []);
    await gateway.stop();
  }
});

const nvmf = (args: string[], input?: Buffer | string) => runNvmf(args, target.dir, input);

test('nvmf CLI: --dhchap-secret/-S and --dhchap-ctrl-secret/-C (nvme-cli names) write and read; a wrong secret fails; -C alone is a usage error', async () => {
  const conn = ['-t', 'tcp', '-a', '127.0.0.1', '--trsvcid', target.port, '--nqn', NQN, '-q', HOST_BIDI];
  const data = pattern(4096, 88);
  const w = await nvmf(
    [
      'write',
      ...conn,
      '--dhchap-secret',
      KEY,
      '--dhchap-ctrl-secret',
      CKEY,
      '-n',
      '1',
      '-s',
      '4096',
      '-c',
      '7',
    ],
    data,
  );
  assert.equal(w.code, 0, w.stderr);
  const r = await nvmf(['read', ...conn, '-S', KEY, '-n', '1', '-s', '4096', '-c', '7']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.equals(data), 'read back what was written');
  const c = await nvmf(['connect', ...conn, '-S', KEY, '-C', CKEY]);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout.toString(), /authenticated: sha512, ffdhe8192, controller authenticated too/);
  const wrong = await nvmf(['identify', ...conn, '-S', WRONG]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /refused the authentication/);
  const alone = await nvmf(['identify', ...conn, '-C', CKEY]);
  assert.equal(alone.code, 2);
  assert.match(alone.stderr, /needs --dhchap-secret/);
});

test('save_config replays: the keyring, the hosts with their keys by name and nvmf_set_config, and authentication works there', async () => {
  await target.call('nvmf_set_config', { dhchap_dhgroups: ['null', 'ffdhe3072'] });
  let saved: {
    subsystems: { subsystem: string; config: { method: string; params: Record<string, unknown> }[] }[];
  };
  try {
    saved = (await target.call('save_config')) as typeof saved;
  } finally {
    await target.call('nvmf_set_config', {
      dhchap_dhgroups: ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'],
    });
  }
  // the replay gets ports of its own
  const port2 = String(await freePort());
  const tlsPort2 = String(await freePort());
  for (const s of saved.subsystems) {
    for (const e of s.config) {
      const a = e.params?.listen_address as { trsvcid: string } | undefined;
      if (a !== undefined) a.trsvcid = a.trsvcid === tlsPort ? tlsPort2 : port2;
    }
  }
  const file = join(target.dir, 'saved-dhchap.json');
  writeFileSync(file, JSON.stringify(saved));
  const replay = await ChildTarget.start({ cores: '0x1', configFile: file });
  try {
    const c = await NvmeController.connect(
      { ...trid(HOST_BIDI), trsvcid: port2 },
      { dhchapSecret: KEY, dhchapCtrlrSecret: CKEY },
    );
    assert.deepEqual(c.auth, { digest: 'sha512', dhgroup: 'ffdhe3072', bidirectional: true });
    await c.disconnect();
    await assert.rejects(
      NvmeController.connect({ ...trid(HOST_BIDI), trsvcid: port2 }, { dhchapSecret: WRONG }),
      authError('controller', AuthFailure.FAILED),
    );
    const again = JSON.stringify(await replay.call('save_config'));
    assert.match(again, /"dhchap_key":"key0","dhchap_ctrlr_key":"ckey0"/);
  } finally {
    assert.equal(await replay.stop(), 0);
  }
});

const RPC_CLI = new URL('../../src/apps/nvmf-rpc.ts', import.meta.url).pathname;

function rpcCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [RPC_CLI, '-s', target.rpcPath, '-t', '10', ...args],
      { timeout: 20_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout, stderr }),
    );
  });
}

test("nvmf-rpc takes rpc.py's command lines: add_host --dhchap-key/--dhchap-ctrlr-key, set_keys, nvmf_set_config --dhchap-digests a,b --dhchap-dhgroups a,b", async () => {
  const host = 'nqn.2014-08.org.nvmexpress:uuid:d0000001-0000-4000-8000-0000000000cc';
  const add = await rpcCli(
    'nvmf_subsystem_add_host',
    NQN,
    host,
    '--dhchap-key',
    'key0',
    '--dhchap-ctrlr-key',
    'ckey0',
  );
  assert.equal(add.code, 0, add.stderr);
  const set = await rpcCli('nvmf_subsystem_set_keys', NQN, host, '--dhchap-key', 'key1');
  assert.equal(set.code, 0, set.stderr);
  const subs = (await target.call('nvmf_get_subsystems')) as Array<{
    nqn: string;
    hosts: Array<{ nqn: string }>;
  }>;
  assert.deepEqual(
    subs.find((s) => s.nqn === NQN)?.hosts.find((h) => h.nqn === host),
    { nqn: host, dhchap_key: 'key1' },
    'set_keys replaces both keys (the controller key given none is gone)',
  );
  const cfg = await rpcCli(
    'nvmf_set_config',
    '--dhchap-digests',
    'sha256,sha512',
    '--dhchap-dhgroups',
    'null,ffdhe4096',
  );
  assert.equal(cfg.code, 0, cfg.stderr);
  try {
    const c = await NvmeController.connect(trid(host), { dhchapSecret: KEY_ROTATED });
    assert.deepEqual(c.auth, { digest: 'sha512', dhgroup: 'ffdhe4096', bidirectional: false });
    await c.disconnect();
  } finally {
    await target.call('nvmf_set_config', {
      dhchap_digests: ['sha256', 'sha384', 'sha512'],
      dhchap_dhgroups: ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'],
    });
    await target.call('nvmf_subsystem_remove_host', { nqn: NQN, host });
  }
});
