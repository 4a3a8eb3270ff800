// The secure channel's TLS server context (src/nvmf/tcp/tls-context.ts): no session
// tickets (and the check that proves it also catches a context that sends them), and the
// two facts about Node's TLS behind its cipher suite: external PSKs ride on SHA-256 only,
// so a 48-byte (SHA-384) PSK cannot complete a handshake even with TLS_AES_256_GCM_SHA384
// offered, and TLS_AES_128_GCM_SHA256 is what a client offering both gets.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import type { TlsServerSocketOptions } from '../../../src/nvmf/tcp/socket.ts';
import {
  checkNoSessionTickets,
  createTlsServerContext,
  TLS_SERVER_CIPHERS,
} from '../../../src/nvmf/tcp/tls-context.ts';

test('the listener context sends no session ticket; a default TLS 1.3 context does, and the check says so', async () => {
  assert.equal(TLS_SERVER_CIPHERS, 'TLS_AES_128_GCM_SHA256');
  await checkNoSessionTickets();
  await assert.rejects(
    checkNoSessionTickets(() =>
      tls.createSecureContext({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: TLS_SERVER_CIPHERS }),
    ),
    /sent 1 TLS session ticket\(s\), which the Linux host cannot take/,
  );
});

/** A PSK handshake over loopback: resolves with the cipher, or the client's error message. */
function handshake(server: tls.SecureContext, clientCiphers: string, psk: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      const options: TlsServerSocketOptions = {
        isServer: true,
        secureContext: server,
        pskCallback: () => psk,
      };
      const t = new tls.TLSSocket(s, options);
      t.on('error', () => {});
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({
        port: (srv.address() as net.AddressInfo).port,
        host: '127.0.0.1',
        minVersion: 'TLSv1.3',
        ciphers: clientCiphers,
        checkServerIdentity: () => undefined,
        pskCallback: () => ({ psk, identity: 'NVMe0R01 h s' }),
      });
      const done = (r: string) => {
        c.destroy();
        srv.close();
        resolve(r);
      };
      c.on('secureConnect', () => done(c.getCipher().name));
      c.on('error', (e) => done(`error: ${e.message}`));
    });
  });
}

test("Node's PSK callback path is SHA-256 only: a client offering both suites gets TLS_AES_128_GCM_SHA256, a SHA-384 one gets no PSK handshake", async () => {
  const both = tls.createSecureContext({
    minVersion: 'TLSv1.3',
    ciphers: 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256',
  });
  assert.equal(
    await handshake(both, 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256', Buffer.alloc(32, 1)),
    'TLS_AES_128_GCM_SHA256',
  );
  assert.match(
    await handshake(both, 'TLS_AES_256_GCM_SHA384', Buffer.alloc(48, 2)),
    /^error: .*handshake failure/,
  );
  assert.equal(
    await handshake(
      createTlsServerContext(),
      'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256',
      Buffer.alloc(32, 3),
    ),
    'TLS_AES_128_GCM_SHA256',
  );
});
