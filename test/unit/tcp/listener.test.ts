import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { TcpListener } from '../../../src/nvmf/tcp/index.ts';
import type { TransportAddress } from '../../../src/nvmf/transport.ts';
import { pollUntil } from '../../lib/wait.ts';

function hasIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

async function connectOnce(host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const c = net.connect({ host, port }, () => {
      c.destroy();
      resolve();
    });
    c.once('error', reject);
  });
}

test('listeners start, hand over paused sockets with their address, stop, and report bind errors', async () => {
  const families: Array<[string, string]> = [['IPv4', '127.0.0.1']];
  if (await hasIpv6Loopback()) families.push(['IPv6', '::1']);
  for (const [adrfam, traddr] of families) {
    const accepted: Array<{ paused: boolean; addr: TransportAddress }> = [];
    const l = new TcpListener({ trtype: 'TCP', adrfam, traddr, trsvcid: '0' }, (socket, addr) => {
      accepted.push({ paused: socket.isPaused(), addr });
      socket.destroy();
    });
    await l.listen();
    assert.ok(l.listening);
    await connectOnce(traddr, l.port);
    await pollUntil(() => accepted.length > 0, { timeoutMs: 1000, intervalMs: 10 });
    assert.equal(accepted.length, 1);
    assert.equal(accepted[0].paused, true);
    assert.equal(accepted[0].addr.adrfam, adrfam);
    // a second listener on the same port fails with the bind error
    const dup = new TcpListener({ trtype: 'TCP', adrfam, traddr, trsvcid: String(l.port) }, () => {});
    await assert.rejects(dup.listen(), /EADDRINUSE/);
    assert.equal(dup.listening, false);
    const port = l.port;
    await l.close();
    assert.equal(l.listening, false);
    await assert.rejects(connectOnce(traddr, port), /ECONNREFUSED/);
  }
});
