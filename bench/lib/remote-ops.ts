// Named handlers that run small bdev operations on a thread of any realm,
// for the real-reactor tests: write/read blocks, hold a descriptor open until
// hot-remove, keep I/O in flight across a hot-remove, hold a zero-copy read's
// lend and end it.

import * as B from '../../src/bdev/index.ts';
import { defineHandler, sendMsg, type ThreadRef } from '../../src/thread/index.ts';

export type RemoteOp =
  | { op: 'write'; bdev: string; offset: number; data: Uint8Array }
  | { op: 'read'; bdev: string; offset: number; blocks: number }
  | { op: 'holdUntilRemove'; bdev: string }
  | { op: 'inflightAcrossRemove'; bdev: string; count: number }
  | { op: 'lend'; bdev: string; offset: number; blocks: number; key: string }
  | { op: 'endLend'; key: string };

export interface RemoteReply {
  token: number;
  ok: boolean;
  /** lend: whether the bdev lent its own memory */
  zcopy?: boolean;
  data?: Uint8Array;
  events?: string[];
  statuses?: Array<[boolean, number]>;
  error?: string;
}

interface Msg {
  body: RemoteOp;
  replyTo: ThreadRef;
  token: number;
}

/** Lends held by this realm (op 'lend'), until 'endLend'. */
const lends = new Map<
  string,
  { desc: B.BdevDesc; ch: ReturnType<typeof B.bdevGetIoChannel>; io: B.BdevIo }
>();

const remoteOp = defineHandler<Msg>('bench.bdev.remoteOp', (m) => {
  const reply = (r: Omit<RemoteReply, 'token'>) => sendMsg(m.replyTo, remoteDone, { token: m.token, ...r });
  const b = m.body;
  try {
    switch (b.op) {
      case 'write':
      case 'read': {
        const desc = B.bdevOpen(b.bdev, b.op === 'write', () => {});
        const ch = B.bdevGetIoChannel(desc);
        const bs = desc.bdev.blockSize;
        const buf = b.op === 'write' ? Buffer.from(b.data) : Buffer.alloc(b.blocks * bs);
        const cb: B.BdevIoCb = (io, ok) => {
          B.bdevFreeIo(io);
          B.bdevPutIoChannel(ch);
          B.bdevClose(desc);
          reply({ ok, data: b.op === 'read' ? new Uint8Array(buf) : undefined });
        };
        if (b.op === 'write') B.bdevWrite(desc, ch, [buf], b.offset, buf.length / bs, false, cb, null);
        else B.bdevRead(desc, ch, [buf], b.offset, b.blocks, cb, null);
        return;
      }
      case 'holdUntilRemove': {
        const events: string[] = [];
        let ch: ReturnType<typeof B.bdevGetIoChannel> | null = null;
        const desc = B.bdevOpen(b.bdev, true, (ev) => {
          events.push(ev);
          if (ev !== 'remove') return;
          if (ch !== null) B.bdevPutIoChannel(ch);
          B.bdevClose(desc);
          reply({ ok: true, events });
        });
        ch = B.bdevGetIoChannel(desc);
        return;
      }
      case 'inflightAcrossRemove': {
        const statuses: Array<[boolean, number]> = [];
        let ch: ReturnType<typeof B.bdevGetIoChannel> | null = null;
        const desc = B.bdevOpen(b.bdev, false, (ev) => {
          if (ev !== 'remove') return;
          if (ch !== null) B.bdevPutIoChannel(ch);
          ch = null;
          B.bdevClose(desc);
        });
        ch = B.bdevGetIoChannel(desc);
        const cb: B.BdevIoCb = (io, ok) => {
          statuses.push([ok, B.bdevIoGetNvmeStatus(io).sc]);
          B.bdevFreeIo(io);
          if (statuses.length === b.count) reply({ ok: true, statuses });
        };
        for (let i = 0; i < b.count; i++) {
          B.bdevRead(desc, ch, [Buffer.alloc(desc.bdev.blockSize)], i, 1, cb, i);
        }
        return;
      }
      case 'lend': {
        const desc = B.bdevOpen(b.bdev, false, () => {});
        const ch = B.bdevGetIoChannel(desc);
        const key = b.key;
        const buf = Buffer.alloc(b.blocks * desc.bdev.blockSize);
        const cb: B.BdevIoCb = (io, ok) => {
          lends.set(key, { desc, ch, io });
          reply({ ok, zcopy: io.zcopy, data: new Uint8Array(Buffer.concat(io.iov)) });
        };
        B.bdevReadZcopy(desc, ch, [buf], b.offset, b.blocks, cb, null);
        return;
      }
      case 'endLend': {
        const held = lends.get(b.key);
        if (held === undefined) throw new Error(`no lend ${b.key}`);
        lends.delete(b.key);
        B.bdevZcopyEnd(held.io);
        B.bdevPutIoChannel(held.ch);
        B.bdevClose(held.desc);
        reply({ ok: true });
        return;
      }
    }
  } catch (e) {
    reply({ ok: false, error: (e as Error).message });
  }
});

const waiting = new Map<number, (r: RemoteReply) => void>();
let nextToken = 1;

const remoteDone = defineHandler<RemoteReply>('bench.bdev.remoteDone', (r) => {
  waiting.get(r.token)?.(r);
  waiting.delete(r.token);
});

/** Run an op on `thread` (any realm); resolves on the calling thread. */
export function remote(thread: ThreadRef, body: RemoteOp, replyTo: ThreadRef): Promise<RemoteReply> {
  const token = nextToken++;
  return new Promise((resolve) => {
    waiting.set(token, resolve);
    sendMsg(thread, remoteOp, { body, replyTo, token });
  });
}
