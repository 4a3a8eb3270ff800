// HandleWriter (src/util/handle-writev.ts): bursts written straight to a socket's libuv handle.
// Over real loopback sockets: the bytes arrive whole and in order whether the kernel took a
// burst at once (done runs before write returns) or libuv finished it later (done runs then),
// and a write the kernel refuses destroys the socket with the write's error.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import tls from 'node:tls';
import { BurstWriter, HandleWriter } from '../../../src/util/handle-writev.ts';

async function connectedPair(): Promise<{ client: net.Socket; server: net.Socket; close: () => void }> {
  const listener = net.createServer({ pauseOnConnect: true });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as net.AddressInfo;
  const accepted = once(listener, 'connection');
  const client = net.connect({ host: '127.0.0.1', port });
  await once(client, 'connect');
  const [server] = (await accepted) as [net.Socket];
  return {
    client,
    server,
    close: () => {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

test('a socket without a libuv stream handle, or a TLS socket, gets no writer (its bursts go through the stream)', async (t) => {
  assert.equal(HandleWriter.for(new net.Socket()), null);
  const { client, close } = await connectedPair();
  t.after(close);
  assert.ok(HandleWriter.for(client), 'a connected plain socket has one');
  const overTls = new tls.TLSSocket(client);
  t.after(() => overTls.destroy());
  assert.equal(HandleWriter.for(overTls), null, 'TLS encrypts in its stream');
});

test('bursts arrive whole and in order, done once each: at once when the kernel took them, later when not', async (t) => {
  const { client, server, close } = await connectedPair();
  t.after(close);
  const writer = HandleWriter.for(client);
  assert.ok(writer, 'Node 26 sockets are written through their handle');

  // 48 bursts of three parts, 512 KiB each: more than loopback buffers hold while nobody reads
  const BURSTS = 48;
  const PART = 512 * 1024;
  const expected: Buffer[] = [];
  const doneOrder: number[] = [];
  let atOnce = 0;
  let later = 0;
  const { promise: allDone, resolve: resolveAllDone } = Promise.withResolvers<void>();
  const bufs: Buffer[] = [];
  for (let i = 0; i < BURSTS; i++) {
    bufs.length = 0;
    for (let p = 0; p < 3; p++) {
      const b = Buffer.alloc(p === 1 ? PART : 24 + i, (i * 3 + p) & 0xff);
      b.writeUInt32LE(i, 0);
      bufs.push(b);
      expected.push(b);
    }
    let returned = false;
    writer.write(bufs, () => {
      doneOrder.push(i);
      if (returned) later++;
      else atOnce++;
      if (doneOrder.length === BURSTS) resolveAllDone();
    });
    returned = true;
  }
  assert.ok(atOnce > 0, 'the first bursts fit in the socket buffers');
  assert.ok(doneOrder.length < BURSTS, 'the rest waits for the reader');

  const total = expected.reduce((n, b) => n + b.length, 0);
  const received: Buffer[] = [];
  let got = 0;
  server.on('data', (chunk: Buffer) => {
    received.push(chunk);
    got += chunk.length;
  });
  server.resume();
  while (got < total) await once(server, 'data');
  await allDone;
  assert.equal(got, total);
  assert.ok(Buffer.concat(received).equals(Buffer.concat(expected)), 'the bytes arrive in burst order');
  assert.deepEqual(
    doneOrder,
    Array.from({ length: BURSTS }, (_v, i) => i),
  );
  assert.ok(later > 0, 'some bursts were finished by libuv after write returned');
  assert.equal(atOnce + later, BURSTS);
});

test('a write the kernel refuses destroys the socket with that error and still runs done', async (t) => {
  const { client, server, close } = await connectedPair();
  t.after(close);
  const writer = HandleWriter.for(client);
  assert.ok(writer);
  // the client does not read, so only a write can learn that the peer reset the connection
  client.pause();
  const errored = once(client, 'error');
  server.resetAndDestroy();
  await once(server, 'close');
  const part = Buffer.alloc(64 * 1024);
  let writes = 0;
  let dones = 0;
  for (; writes < 200 && !client.destroyed; writes++) {
    writer.write([part], () => dones++);
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(client.destroyed, `the socket is destroyed within ${writes} writes`);
  const [err] = (await errored) as [NodeJS.ErrnoException];
  assert.equal(err.syscall, 'write');
  assert.match(err.message, /^write E(PIPE|CONNRESET)$/);
  assert.equal(dones, writes, 'every write ran its done');
  // once closed, a write does nothing
  writer.write([part], () => dones++);
  assert.equal(dones, writes);
});

test('a BurstWriter without a handle writer corks its stream: the parts arrive in order, done runs once after them', async () => {
  // a stream with no libuv handle (as a TLS socket's bursts go: through its Writable)
  const stream = new PassThrough();
  const writer = new BurstWriter(stream as unknown as net.Socket);
  let corks = 0;
  const cork = stream.cork.bind(stream);
  stream.cork = () => {
    corks++;
    cork();
  };
  let dones = 0;
  writer.write([Buffer.from('one,'), Buffer.from('two,'), Buffer.from('three')], () => dones++);
  writer.write([Buffer.from(';four')], null);
  assert.equal(corks, 2, 'one cork per burst');
  stream.end();
  const got: Buffer[] = [];
  for await (const chunk of stream) got.push(chunk as Buffer);
  assert.equal(Buffer.concat(got).toString(), 'one,two,three;four');
  assert.equal(dones, 1, "the first burst's done, once; the second has none");
});
