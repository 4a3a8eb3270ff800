// Bad input on a secure-channel (TLS 1.3) listener of a real nvmf_tgt with two poll groups:
// garbage instead of a ClientHello, a plain ICReq, a wrong PSK, an unknown identity, a
// ClientHello cut short and then silence, garbage records after a good handshake, a bad
// PDU inside TLS. Each ends only that connection (closed by the target, no ICResp where
// the handshake failed), while a host on the same TLS port keeps completing verified I/O.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { Ch, IcResp, PduType, TermReqFes } from '../../../src/wire/tcp.ts';
import {
  type ChildTarget,
  finalTermReq,
  GoodHost,
  icReq,
  RawConnection,
  startTlsTarget,
  TLS_HOST,
  TLS_KEY,
  TLS_NQN,
  TLS_PLAIN_HOST,
  tlsClientPsk,
} from '../../lib/index.ts';

/** what a silent host gets before the target gives up on it */
const CONNECT_TIMEOUT_MS = 1500;

let target: ChildTarget;
let tlsPort: string;
let good: GoodHost;
/** the queues of the well-behaved host (admin + 2 I/O) */
let baseline = 0;

before(async () => {
  ({ target, tlsPort } = await startTlsTarget({
    cores: '0x3',
    env: { ...process.env, NVMF_TS_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS) },
  }));
  good = await GoodHost.connect({ port: tlsPort, subnqn: TLS_NQN, hostnqn: TLS_HOST, tlsKey: TLS_KEY });
  baseline = await target.total('current_qpairs');
  assert.equal(baseline, 3);
});

after(async () => {
  await good?.close();
  assert.deepEqual(target?.uncaughtErrors() ?? [], []);
  assert.equal(await target?.stop(), 0, 'the target exits cleanly after all the bad input');
});

/** Run one bad-input case while the good host works; it must stay unharmed. */
async function whileGoodHostWorks(name: string, bad: () => Promise<void>): Promise<void> {
  const since = good.rounds;
  good.start();
  assert.ok(await good.waitRounds(since + 3), `${name}: the good host works before`);
  await bad();
  const after = good.rounds;
  assert.ok(await good.waitRounds(after + 3), `${name}: the good host works after`);
  await good.assertHealthy(since, 6);
  assert.equal(await target.total('current_qpairs'), baseline, `${name}: only the good host's queues remain`);
}

/** A plain TCP connection that sends `bytes`; resolves with what came back once the target closed it. */
async function plainSend(bytes: Buffer, timeoutMs = 5000): Promise<{ reply: Buffer; closed: boolean }> {
  const c = await RawConnection.connect(tlsPort);
  await c.write(bytes);
  const closed = await c.waitClosed(timeoutMs);
  const reply = c.data;
  c.destroy();
  return { reply, closed };
}

/** No NVMe/TCP PDU in a reply: at most a TLS alert record (content type 21). */
function assertNoNvme(reply: Buffer, name: string): void {
  assert.ok(reply.length === 0 || reply[0] === 21, `${name}: got ${reply.subarray(0, 16).toString('hex')}`);
  assert.notEqual(reply[Ch.TYPE], PduType.IC_RESP, `${name}: no ICResp`);
}

test('garbage instead of a ClientHello: the connection is closed, nothing NVMe comes back', async () => {
  await whileGoodHostWorks('garbage', async () => {
    const { reply, closed } = await plainSend(randomBytes(512));
    assert.ok(closed, 'closed by the target');
    assertNoNvme(reply, 'garbage');
  });
});

test('a plain ICReq on the TLS listener gets no ICResp: the connection is closed', async () => {
  await whileGoodHostWorks('plain ICReq', async () => {
    const { reply, closed } = await plainSend(icReq());
    assert.ok(closed, 'closed by the target');
    assertNoNvme(reply, 'plain ICReq');
  });
});

test('a wrong PSK, an unknown identity, a non-NVMe identity: the handshake fails', async () => {
  await whileGoodHostWorks('bad PSKs', async () => {
    const right = tlsClientPsk();
    const wrong = Buffer.from(right.psk);
    wrong[31] ^= 1;
    const unknown = tlsClientPsk(TLS_PLAIN_HOST);
    for (const [name, identity, psk] of [
      ['wrong PSK', right.identity, wrong],
      ['unknown identity', unknown.identity, unknown.psk],
      ['not an NVMe identity', 'Client_identity', right.psk],
      [
        'v1 identity with a bad digest',
        `${tlsClientPsk(TLS_HOST, TLS_NQN, 1).identity.slice(0, -4)}AAA=`,
        right.psk,
      ],
    ] as const) {
      await assert.rejects(RawConnection.connectTls(tlsPort, { identity, psk }), name);
    }
  });
  assert.match(target.log(), /TLS connection failed \(PSK identity "NVMe0R01 /);
});

test('a ClientHello cut short, then silence: closed after the connect timeout', async () => {
  await whileGoodHostWorks('silent mid-handshake', async () => {
    // the start of a TLS record holding a ClientHello: type 22, version, a length never met
    const partial = Buffer.from([22, 3, 1, 1, 0, 1, 0, 0, 252, 3, 3]);
    const started = Date.now();
    const { reply, closed } = await plainSend(partial, 4 * CONNECT_TIMEOUT_MS + 5000);
    assert.ok(closed, 'closed by the target');
    assert.ok(Date.now() - started >= CONNECT_TIMEOUT_MS - 100, 'not before the connect timeout');
    assertNoNvme(reply, 'silent');
  });
});

test('garbage records after a good handshake end that connection', async () => {
  await whileGoodHostWorks('garbage records', async () => {
    const p = tlsClientPsk();
    const raw = net.connect({ host: '127.0.0.1', port: Number(tlsPort) });
    await new Promise((r) => raw.once('connect', r));
    const t = tls.connect({
      socket: raw,
      minVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256',
      checkServerIdentity: () => undefined,
      pskCallback: () => ({ psk: p.psk, identity: p.identity }),
    });
    t.on('error', () => {});
    await new Promise((r) => t.once('secureConnect', r));
    const closed = new Promise((r) => raw.once('close', r));
    // an application-data record whose authentication tag cannot be right
    raw.write(Buffer.concat([Buffer.from([23, 3, 3, 0, 64]), randomBytes(64)]));
    await closed;
  });
});

test('a bad PDU inside TLS: C2HTermReq through TLS, then closed (the PDU rules hold over TLS)', async () => {
  await whileGoodHostWorks('bad PDU', async () => {
    const p = tlsClientPsk();
    const c = await RawConnection.connectTls(tlsPort, { identity: p.identity, psk: p.psk });
    await c.write(icReq());
    await c.waitBytes(IcResp.SIZE);
    // a CapsuleCmd header whose PDU length is shorter than its header
    const bad = Buffer.alloc(8);
    bad[Ch.TYPE] = PduType.CAPSULE_CMD;
    bad[Ch.HLEN] = 72;
    bad.writeUInt32LE(8, Ch.PLEN);
    await c.write(bad);
    assert.ok(await c.waitClosed(), 'closed by the target');
    const term = finalTermReq(c.data.subarray(IcResp.SIZE));
    assert.equal(term?.fes, TermReqFes.INVALID_HEADER_FIELD);
    c.destroy();
  });
});
