// The NVMe/TCP secure channel (TLS 1.3 with PSKs) on a real nvmf_tgt with two poll groups:
// the RPCs (keys by keyring name, what is refused, what save_config writes and that it
// replays), the host library over TLS (admin and I/O queues on both reactors, verified
// data, 32 reads at once of different data), the discovery log's TREQ/TSAS, identity
// versions 0 and 1, no session tickets, and a TLS connection bound to the host and
// subsystem of its PSK identity.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type tls from 'node:tls';
import { formatPskInterchange, PskHash } from '../../src/keyring/index.ts';
import { DISCOVERY_NQN, NvmeController } from '../../src/nvme/index.ts';
import { TcpSecType, TreqSecureChannel } from '../../src/wire/discovery.ts';
import { FabricsStatus, StatusCodeType, statusOf, statusSc, statusSct } from '../../src/wire/nvme.ts';
import { IcResp, PduType, readIcResp } from '../../src/wire/tcp.ts';
import {
  ChildTarget,
  capsuleCmd,
  connectCmd,
  cqeAt,
  freePort,
  icReq,
  pattern,
  RawConnection,
  runNvmf,
  startTlsTarget,
  TEST_NQN,
  TLS_HOST,
  TLS_KEY,
  TLS_KEY_NAME,
  TLS_NQN,
  TLS_PLAIN_HOST,
  tlsClientPsk,
  tlsListener,
} from '../lib/index.ts';

let target: ChildTarget;
let tlsPort: string;

before(async () => {
  ({ target, tlsPort } = await startTlsTarget({ cores: '0x3' }));
});

after(async () => {
  assert.deepEqual(target?.uncaughtErrors() ?? [], []);
  const code = await target?.stop();
  assert.equal(code, 0);
});

function rpcError(code: number, message: RegExp) {
  return (e: { code: number; message: string }) => {
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  };
}

function keyFile(name: string, text: string): string {
  const path = join(target.dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}

/** The TLS host's controller on the TLS subsystem, through `port`. */
function connectOverTls(port: string): Promise<NvmeController> {
  return NvmeController.connect({
    traddr: '127.0.0.1',
    trsvcid: port,
    subnqn: TLS_NQN,
    hostnqn: TLS_HOST,
    tlsKey: TLS_KEY,
  });
}

test('RPCs: a PSK by keyring name; unknown, malformed and SHA-384 keys, -k with allow_any_host or on a plain port refused; key bytes in no answer', async () => {
  const host = 'nqn.2014-08.org.nvmexpress:uuid:7a1e0001-0000-4000-8000-0000000000b1';
  await assert.rejects(
    target.call('nvmf_subsystem_add_host', { nqn: TLS_NQN, host, psk: 'nokey' }),
    rpcError(-22, /PSK 'nokey': Key 'nokey' does not exist/),
  );
  await target.call('keyring_file_add_key', {
    name: 'garbage',
    path: keyFile('garbage', 'NVMeTLSkey-1:01:abc:'),
  });
  await assert.rejects(
    target.call('nvmf_subsystem_add_host', { nqn: TLS_NQN, host, psk: 'garbage' }),
    rpcError(-22, /PSK 'garbage': TLS PSK: /),
  );
  const k48 = formatPskInterchange({ hash: PskHash.SHA384, key: randomBytes(48) });
  await target.call('keyring_file_add_key', { name: 'k48', path: keyFile('k48', k48) });
  await assert.rejects(
    target.call('nvmf_subsystem_add_host', { nqn: TLS_NQN, host, psk: 'k48' }),
    rpcError(-95, /48-byte \(SHA-384\) key.*TLS_AES_128_GCM_SHA256/),
  );
  // nothing of a refused host stays
  const subs = (await target.call('nvmf_get_subsystems')) as {
    nqn: string;
    hosts: { nqn: string; psk?: string }[];
    allow_any_host: boolean;
  }[];
  const tlsSub = subs.find((s) => s.nqn === TLS_NQN);
  assert.deepEqual(tlsSub?.hosts, [{ nqn: TLS_HOST, psk: TLS_KEY_NAME }, { nqn: TLS_PLAIN_HOST }]);
  // the key is referenced by the host that has it
  const keys = (await target.call('keyring_get_keys')) as { name: string; refcnt: number }[];
  assert.equal(keys.find((k) => k.name === TLS_KEY_NAME)?.refcnt, 1);

  // as SPDK: TLS admits hosts by their PSK, "any host" contradicts it
  const port = String(await freePort());
  await assert.rejects(
    target.call('nvmf_subsystem_add_listener', tlsListener(port, TEST_NQN)),
    rpcError(-32603, /Cannot establish secure channel, when 'allow_any_host' is set/),
  );
  // a port is TLS for every subsystem on it, or for none
  const plainPort = target.port;
  await assert.rejects(
    target.call('nvmf_subsystem_add_listener', tlsListener(plainPort)),
    rpcError(-22, new RegExp(`Listener 127.0.0.1:${plainPort} exists without a secure channel`)),
  );
  await assert.rejects(
    target.call('nvmf_subsystem_add_listener', {
      ...tlsListener(tlsPort, DISCOVERY_NQN),
      secure_channel: false,
    }),
    rpcError(-22, new RegExp(`Listener 127.0.0.1:${tlsPort} exists with a secure channel`)),
  );
  await assert.rejects(
    target.call('nvmf_subsystem_add_listener', { ...tlsListener(port), sock_impl: 'posix' }),
    rpcError(-22, /sock_impl different from 'ssl'/),
  );

  const saved = JSON.stringify(await target.call('save_config'));
  const keyBytes = Buffer.from(TLS_KEY.split(':')[2], 'base64').subarray(0, 32);
  for (const secret of [TLS_KEY.split(':')[2], keyBytes.toString('hex'), keyBytes.toString('base64')])
    assert.ok(!saved.includes(secret), 'save_config holds no key bytes');
  for (const p of [tlsClientPsk(), tlsClientPsk(TLS_HOST, TLS_NQN, 1)])
    assert.ok(!saved.includes(p.psk.toString('hex')) && !saved.includes(p.psk.toString('base64')));
  const cfg = JSON.parse(saved) as {
    subsystems: { subsystem: string; config: { method: string; params: Record<string, unknown> }[] }[];
  };
  const nvmf = cfg.subsystems.find((s) => s.subsystem === 'nvmf')?.config ?? [];
  assert.ok(
    nvmf.some(
      (e) =>
        e.method === 'nvmf_subsystem_add_host' && e.params.host === TLS_HOST && e.params.psk === TLS_KEY_NAME,
    ),
  );
  assert.ok(
    nvmf.some(
      (e) =>
        e.method === 'nvmf_subsystem_add_listener' &&
        e.params.nqn === TLS_NQN &&
        e.params.secure_channel === true,
    ),
  );
});

test('the host library over TLS: admin and I/O queues on both poll groups, data verified; the TLS port is "required, TLS 1.3" in the discovery log', async () => {
  const c = await connectOverTls(tlsPort);
  try {
    await c.setNumQueues(2);
    const queues = [await c.createIoQpair(32), await c.createIoQpair(32)];
    // 64 KiB (R2T and C2HData over several TLS records) and 4 KiB (in-capsule) on each queue
    for (const [i, q] of queues.entries()) {
      for (const blocks of [128, 8]) {
        const data = pattern(blocks * 512, i * 1000 + blocks);
        await q.writeAsync(1, i * 1024, blocks, data);
        const back = Buffer.alloc(data.length);
        await queues[1 - i].readAsync(1, i * 1024, blocks, back);
        assert.ok(back.equals(data), `queue ${i}: ${blocks} blocks read back the same`);
      }
    }
    const groups = await target.pollGroups();
    assert.equal(groups.length, 2);
    assert.ok(
      groups.every((g) => g.current_qpairs >= 1),
      `the three queues spread over both poll groups: ${groups.map((g) => g.current_qpairs)}`,
    );
  } finally {
    await c.disconnect();
  }

  const disc = await NvmeController.connect({
    traddr: '127.0.0.1',
    trsvcid: target.port,
    subnqn: DISCOVERY_NQN,
    hostnqn: TLS_HOST,
  });
  try {
    const log = await disc.getDiscoveryLog();
    const tlsEntry = log.entries.find((e) => e.subnqn === TLS_NQN);
    const plainEntry = log.entries.find((e) => e.subnqn === TEST_NQN);
    assert.deepEqual(
      [tlsEntry?.trsvcid, (tlsEntry?.treq ?? 0) & 3, tlsEntry?.sectype],
      [tlsPort, TreqSecureChannel.REQUIRED, TcpSecType.TLS_1_3],
    );
    assert.deepEqual(
      [(plainEntry?.treq ?? 0) & 3, plainEntry?.sectype],
      [TreqSecureChannel.NOT_REQUIRED, TcpSecType.NONE],
    );
  } finally {
    await disc.disconnect();
  }
  await target.settled();
});

test('over TLS, 32 reads at once of different data (4 and 16 KiB), round after round, each read back its own', async () => {
  const c = await connectOverTls(tlsPort);
  try {
    await c.setNumQueues(1);
    const q = await c.createIoQpair(32);
    // 4 KiB (read into the slot's in-capsule buffer) and 16 KiB (a pool buffer) chunks
    const chunks = Array.from({ length: 64 }, (_v, i) => ({
      lba: 8192 + i * 32,
      blocks: i % 4 === 3 ? 32 : 8,
    }));
    const datas = chunks.map((ch, i) => pattern(ch.blocks * 512, 3000 + i));
    for (const half of [0, 1])
      await Promise.all(
        chunks
          .slice(half * 32, half * 32 + 32)
          .map((ch, k) => q.writeAsync(1, ch.lba, ch.blocks, datas[half * 32 + k])),
      );
    for (let round = 0; round < 4; round++) {
      // each round reads the half the last one did not, so a slot's next read is other data
      const picked = chunks.map((_ch, i) => i).filter((i) => (i + round) % 2 === 0);
      const backs = picked.map((i) => Buffer.alloc(datas[i].length));
      await Promise.all(picked.map((i, k) => q.readAsync(1, chunks[i].lba, chunks[i].blocks, backs[k])));
      for (const [k, i] of picked.entries())
        assert.ok(backs[k].equals(datas[i]), `round ${round}: chunk ${i} read back the same`);
    }
  } finally {
    await c.disconnect();
  }
});

/** A TLS client (Node) that counts the NewSessionTickets it receives; resolves with the connection. */
async function tlsConnectCounting(
  identity: string,
  psk: Buffer,
): Promise<{ conn: RawConnection; tickets: () => number }> {
  let tickets = 0;
  const conn = await new Promise<RawConnection>((resolve, reject) => {
    RawConnection.connectTls(tlsPort, { identity, psk }).then((c) => {
      c.socket.on('session', () => tickets++);
      resolve(c);
    }, reject);
  });
  return { conn, tickets: () => tickets };
}

test('identities v0 and v1 complete the handshake and get an ICResp; the target sends no session ticket', async () => {
  for (const version of [0, 1] as const) {
    const p = tlsClientPsk(TLS_HOST, TLS_NQN, version);
    const { conn, tickets } = await tlsConnectCounting(p.identity, p.psk);
    try {
      assert.equal((conn.socket as tls.TLSSocket).getProtocol(), 'TLSv1.3');
      assert.equal((conn.socket as tls.TLSSocket).getCipher().name, 'TLS_AES_128_GCM_SHA256');
      await conn.write(icReq());
      const got = await conn.waitBytes(IcResp.SIZE);
      assert.equal(got[0], PduType.IC_RESP, `identity v${version}: an ICResp`);
      assert.equal(readIcResp(got).pfv, 0);
      // tickets come right after the handshake, before application data: by the ICResp they are in
      assert.equal(tickets(), 0, `identity v${version}: no NewSessionTicket`);
    } finally {
      conn.destroy();
    }
  }
});

test('a TLS connection Connects only as the host and subsystem its PSK identity names', async () => {
  const p = tlsClientPsk();
  for (const [hostnqn, subnqn] of [
    [TLS_PLAIN_HOST, TLS_NQN],
    [TLS_HOST, TEST_NQN],
  ]) {
    const conn = await RawConnection.connectTls(tlsPort, { identity: p.identity, psk: p.psk });
    try {
      await conn.write(icReq());
      const { sqe, data } = connectCmd(1, 0, 32, 0xffff, subnqn, hostnqn);
      await conn.write(capsuleCmd(sqe, data));
      const got = await conn.waitBytes(IcResp.SIZE + 24);
      assert.equal(got[IcResp.SIZE], PduType.CAPSULE_RESP);
      const status = statusOf(cqeAt(got, IcResp.SIZE));
      assert.deepEqual(
        [statusSct(status), statusSc(status)],
        [StatusCodeType.COMMAND_SPECIFIC, FabricsStatus.INVALID_HOST],
        `Connect as ${hostnqn} to ${subnqn} over ${p.identity}`,
      );
    } finally {
      conn.destroy();
    }
  }
  // the host without a PSK can use no TLS port: its identity is unknown
  const other = tlsClientPsk(TLS_PLAIN_HOST, TLS_NQN);
  await assert.rejects(RawConnection.connectTls(tlsPort, { identity: other.identity, psk: other.psk }));
  await target.settled();
});

test('save_config replays: keyring, the host PSK by name and the secure listener, and TLS works there', async () => {
  const saved = (await target.call('save_config')) as {
    subsystems: { subsystem: string; config: { method: string; params: Record<string, unknown> }[] }[];
  };
  // the replay gets ports of its own
  const tlsPort2 = String(await freePort());
  const plainPort2 = String(await freePort());
  for (const s of saved.subsystems) {
    for (const e of s.config) {
      const a = e.params?.listen_address as { trsvcid: string } | undefined;
      if (a !== undefined) a.trsvcid = a.trsvcid === tlsPort ? tlsPort2 : plainPort2;
    }
  }
  const file = join(target.dir, 'saved.json');
  writeFileSync(file, JSON.stringify(saved));
  const replay = await ChildTarget.start({ cores: '0x1', configFile: file });
  try {
    const c = await connectOverTls(tlsPort2);
    await c.disconnect();
    const again = JSON.stringify(await replay.call('save_config'));
    assert.match(again, /"psk":"key0"/);
  } finally {
    assert.equal(await replay.stop(), 0);
  }
});

const nvmf = (args: string[], input?: Buffer | string) => runNvmf(args, target.dir, input);

test('nvmf CLI: --tls --tls-key FILE (or the key itself) writes and reads over TLS; --tls alone is a usage error', async () => {
  const keyPath = keyFile('cli-key', `${TLS_KEY}\n`);
  const conn = ['-t', 'tcp', '-a', '127.0.0.1', '--trsvcid', tlsPort, '--nqn', TLS_NQN, '-q', TLS_HOST];
  const data = pattern(4096, 77);
  const w = await nvmf(
    ['write', ...conn, '--tls', '--tls-key', keyPath, '-n', '1', '-s', '2048', '-c', '7'],
    data,
  );
  assert.equal(w.code, 0, w.stderr);
  const r = await nvmf(['read', ...conn, '--tls-key', TLS_KEY, '-n', '1', '-s', '2048', '-c', '7']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.equals(data), 'read back what was written');
  const bare = await nvmf(['identify', ...conn, '--tls']);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /--tls needs --tls-key/);
  // without TLS the port gives nothing: the connection fails
  const plain = await nvmf(['identify', ...conn]);
  assert.equal(plain.code, 1, plain.stderr);
});

test('bdev_nvme_attach_controller --psk: a gateway reaches the TLS subsystem by key name (queues in both realms); save_config names the key', async () => {
  const gateway = await ChildTarget.start({ cores: '0x3' });
  try {
    const keyPath = join(gateway.dir, 'gwkey');
    writeFileSync(keyPath, TLS_KEY, { mode: 0o600 });
    await gateway.call('keyring_file_add_key', { name: 'gwkey', path: keyPath });
    const k48 = join(gateway.dir, 'gw48');
    writeFileSync(k48, formatPskInterchange({ hash: PskHash.SHA384, key: randomBytes(48) }), { mode: 0o600 });
    await gateway.call('keyring_file_add_key', { name: 'gw48', path: k48 });
    const attach = {
      name: 'TlsGw',
      trtype: 'tcp',
      traddr: '127.0.0.1',
      trsvcid: tlsPort,
      subnqn: TLS_NQN,
      hostnqn: TLS_HOST,
    };
    await assert.rejects(
      gateway.call('bdev_nvme_attach_controller', { ...attach, psk: 'gw48' }),
      rpcError(-95, /SHA-384/),
    );
    await assert.rejects(
      gateway.call('bdev_nvme_attach_controller', { ...attach, psk: 'nokey' }),
      rpcError(-22, /does not exist/),
    );
    assert.deepEqual(await gateway.call('bdev_nvme_attach_controller', { ...attach, psk: 'gwkey' }), [
      'TlsGwn1',
    ]);
    // export it on the gateway: the host's I/O goes through bdev_nvme's TLS queues, one per realm
    const gw = 'nqn.2016-06.io.nvmf-ts:gw';
    await gateway.call('nvmf_create_subsystem', { nqn: gw, allow_any_host: true });
    await gateway.call('nvmf_subsystem_add_ns', { nqn: gw, namespace: { nsid: 1, bdev_name: 'TlsGwn1' } });
    await gateway.call('nvmf_subsystem_add_listener', {
      nqn: gw,
      listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: gateway.port },
    });
    const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: gateway.port, subnqn: gw });
    try {
      await c.setNumQueues(2);
      const queues = [await c.createIoQpair(16), await c.createIoQpair(16)];
      for (const [i, q] of queues.entries()) {
        const data = pattern(16 * 512, 500 + i);
        await q.writeAsync(1, 4096 + i * 64, 16, data);
        const back = Buffer.alloc(data.length);
        await queues[1 - i].readAsync(1, 4096 + i * 64, 16, back);
        assert.ok(back.equals(data));
      }
    } finally {
      await c.disconnect();
    }
    // the TLS target serves the gateway's admin queue and an I/O queue per gateway reactor
    assert.equal(await target.total('current_admin_qpairs'), 1);
    assert.equal(await target.total('current_io_qpairs'), 2);
    const saved = JSON.stringify(await gateway.call('save_config'));
    assert.match(saved, /"method":"bdev_nvme_attach_controller","params":\{[^}]*"psk":"gwkey"/);
    assert.ok(!saved.includes(TLS_KEY.split(':')[2]));
    const ctrlrs = JSON.stringify(await gateway.call('bdev_nvme_get_controllers', { name: 'TlsGw' }));
    assert.ok(!ctrlrs.includes(TLS_KEY.split(':')[2]) && !ctrlrs.includes('NVMeTLSkey'));
    const bdevs = JSON.stringify(await gateway.call('bdev_get_bdevs', { name: 'TlsGwn1' }));
    assert.ok(!bdevs.includes(TLS_KEY.split(':')[2]) && !bdevs.includes('NVMeTLSkey'));
  } finally {
    assert.equal(await gateway.stop(), 0);
  }
  await target.settled();
});
