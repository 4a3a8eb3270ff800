// An independent TLS stack against the secure-channel listener: this machine's
// `openssl s_client -tls1_3 -psk … -psk_identity …` completes the handshake with the
// identity and TLS PSK the target expects (versions 0 and 1, derived here and checked
// against the openssl CLI's own HKDF in test/unit/keyring/tls-psk.test.ts), offering
// both NVMe cipher suites, gets TLS_AES_128_GCM_SHA256 and no NewSessionTicket, and
// exchanges ICReq/ICResp; a wrong PSK and an unknown identity get no handshake.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { IcResp, PduType, readIcResp } from '../../src/wire/tcp.ts';
import { type ChildTarget, icReq, startTlsTarget, TLS_PLAIN_HOST, tlsClientPsk } from '../lib/index.ts';

let target: ChildTarget;
let tlsPort: string;

before(async () => {
  const version = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  assert.equal(version.status, 0, 'the openssl CLI is needed (Debian package openssl)');
  ({ target, tlsPort } = await startTlsTarget({ cores: '0x1' }));
});

after(async () => {
  assert.deepEqual(target?.uncaughtErrors() ?? [], []);
  assert.equal(await target?.stop(), 0);
});

interface SClientRun {
  code: number | null;
  /** application data received (s_client -brief writes only that to stdout) */
  stdout: Buffer;
  /** -brief's summary and errors */
  stderr: string;
  /** the -msg protocol trace */
  trace: string;
}

/** s_client with one PSK; sends an ICReq and stops once 128 bytes came back (or it ended). */
function sClient(identity: string, pskHex: string, name: string): Promise<SClientRun> {
  const msgFile = join(target.dir, `s_client-${name}.msg`);
  const child = spawn(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${tlsPort}`,
      '-tls1_3',
      '-ciphersuites',
      'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256',
      '-psk',
      pskHex,
      '-psk_identity',
      identity,
      '-brief',
      '-ign_eof',
      '-msg',
      '-msgfile',
      msgFile,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stdout = Buffer.alloc(0);
  let stderr = '';
  const timer = setTimeout(() => child.kill(), 10_000);
  child.stdout.on('data', (d: Buffer) => {
    stdout = Buffer.concat([stdout, d]);
    if (stdout.length >= IcResp.SIZE) child.kill();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin.on('error', () => {});
  child.stdin.write(icReq());
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      let trace = '';
      try {
        trace = readFileSync(msgFile, 'utf8');
      } catch {}
      resolve({ code, stdout, stderr, trace });
    }),
  );
}

for (const version of [0, 1] as const) {
  test(`identity v${version}: handshake, TLS_AES_128_GCM_SHA256, no session ticket, ICReq → ICResp`, async () => {
    const p = tlsClientPsk(undefined, undefined, version);
    const r = await sClient(p.identity, p.psk.toString('hex'), `v${version}`);
    assert.match(r.stderr, /Protocol version: TLSv1\.3/);
    assert.match(r.stderr, /Ciphersuite: TLS_AES_128_GCM_SHA256/);
    assert.match(r.trace, /ServerHello/);
    assert.doesNotMatch(r.trace, /NewSessionTicket/);
    assert.equal(r.stdout.length, IcResp.SIZE, r.stderr);
    assert.equal(r.stdout[0], PduType.IC_RESP);
    const ic = readIcResp(r.stdout);
    assert.equal(ic.pfv, 0);
    assert.ok(ic.maxh2cdata >= 4096);
  });
}

test('a wrong PSK and an unknown identity get no handshake (and so no ICResp)', async () => {
  const p = tlsClientPsk();
  const wrong = Buffer.from(p.psk);
  wrong[0] ^= 0xff;
  const unknown = tlsClientPsk(TLS_PLAIN_HOST);
  for (const [name, identity, psk] of [
    ['wrong-psk', p.identity, wrong],
    ['unknown-identity', unknown.identity, unknown.psk],
  ] as const) {
    const r = await sClient(identity, psk.toString('hex'), name);
    assert.notEqual(r.code, 0, `${name}: s_client failed`);
    assert.doesNotMatch(r.stderr, /CONNECTION ESTABLISHED/, name);
    assert.match(r.stderr, /alert|handshake failure|error/i, name);
    assert.equal(r.stdout.length, 0, `${name}: no application data`);
  }
  await target.settled();
});
