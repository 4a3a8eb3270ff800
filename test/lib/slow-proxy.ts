// A TCP proxy on 127.0.0.1 that forwards host → target bytes one byte per
// write (a macrotask apart), so the target sees PDUs split at every byte;
// target → host bytes pass through unchanged.

import net from 'node:net';

export interface SlowProxy {
  port: string;
  /** bytes forwarded host → target so far */
  forwarded(): number;
  close(): Promise<void>;
}

export async function startByteSplitProxy(targetPort: string | number): Promise<SlowProxy> {
  const sockets = new Set<net.Socket>();
  let forwarded = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: Number(targetPort) });
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const queue: number[] = [];
    let pumping = false;
    const pump = () => {
      if (queue.length === 0 || upstream.destroyed) {
        pumping = false;
        return;
      }
      const byte = queue.shift() as number;
      forwarded++;
      upstream.write(Buffer.of(byte), () => setImmediate(pump));
    };
    client.on('data', (c: Buffer) => {
      for (const b of c) queue.push(b);
      if (!pumping) {
        pumping = true;
        pump();
      }
    });
    upstream.on('data', (c: Buffer) => client.write(c));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: String((server.address() as net.AddressInfo).port),
    forwarded: () => forwarded,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
