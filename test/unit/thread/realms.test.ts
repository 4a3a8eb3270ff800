// The thread library across two real realms (main + one worker).
import assert from 'node:assert/strict';
import { createConnection, createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { MessageChannel, Worker } from 'node:worker_threads';
import {
  currentThread,
  defineHandler,
  forEachChannel,
  getIoChannel,
  type Realm,
  sendMsg,
  spawnThread,
  startRealm,
  type ThreadRef,
} from '../../../src/thread/index.ts';
import {
  adoptSocket,
  DEVICE,
  iterations,
  realmSetup,
  stopOnReactor1,
  takeChannel,
  visit,
  type Where,
  whereAmI,
} from './fixtures/handlers.ts';

let realm: Realm;
let worker: Worker;

before(async () => {
  const { port1, port2 } = new MessageChannel();
  const sharedIds = new Int32Array(new SharedArrayBuffer(4));
  worker = new Worker(new URL('./fixtures/realm-worker.ts', import.meta.url), {
    workerData: { reactor: 1, reactorCount: 2, ports: [port2, undefined], sharedIds },
    transferList: [port2],
  });
  realm = startRealm({
    reactor: 0,
    reactorCount: 2,
    ports: [undefined, port1],
    sharedIds,
    defaultThreadName: 'app_thread',
  });
  realmSetup();
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
});

after(async () => {
  const exited = new Promise((r) => worker.once('exit', r));
  worker.postMessage('stop');
  await exited;
  realm.stop();
});

// replies land here, in realm 0
const inbox: Where[] = [];
const waiters: Array<() => void> = [];
defineHandler<Where>('fx.inbox', (w) => {
  inbox.push(w);
  for (const f of waiters.splice(0)) f();
});

async function nextReply(): Promise<Where> {
  while (inbox.length === 0) await new Promise<void>((r) => waiters.push(r));
  return inbox.shift() as Where;
}

function spawn(name: string, reactor: number): Promise<ThreadRef> {
  return new Promise((resolve) => spawnThread(name, reactor, (r) => resolve(r)));
}

test('spawnThread on another reactor, then messages there and back', async () => {
  const ref = await spawn('remote_a', 1);
  assert.equal(ref.reactor, 1);
  assert.equal(ref.name, 'remote_a');
  assert.notEqual(ref.id, currentThread().id); // ids are unique across realms
  sendMsg(ref, whereAmI, { replyTo: currentThread().ref, tag: 'hello', reply: 'fx.inbox' });
  assert.deepEqual(await nextReply(), { thread: 'remote_a', reactor: 1, tag: 'hello' });
  assert.throws(() => sendMsg(ref, () => {}, 1), /needs a named handler/);
});

test('an idle worker realm wakes promptly for a message', async () => {
  const ref = await spawn('remote_b', 1);
  sendMsg(ref, iterations, { replyTo: currentThread().ref, tag: 'before', reply: 'fx.inbox' });
  const before = (await nextReply()).iterations ?? -1;
  await new Promise((r) => setTimeout(r, 300)); // time for both realms to go idle
  const t0 = performance.now();
  sendMsg(ref, iterations, { replyTo: currentThread().ref, tag: 'wake', reply: 'fx.inbox' });
  const w = await nextReply();
  assert.equal(w.tag, 'wake');
  assert.ok(performance.now() - t0 < 200, `round trip took ${performance.now() - t0} ms`);
  // the worker was asleep, not spinning, when the message came: its loop made only the turns
  // of the two messages' poll windows (100 µs each, a turn costs at least ~1 µs: at most ~200,
  // 10–30 seen) in those 300 ms, where a loop that never slept makes tens of thousands
  const turns = (w.iterations ?? -1) - before;
  assert.ok(before >= 0 && turns > 0 && turns <= 250, `${turns} loop turns of the worker while idle`);
});

test('forEachChannel visits channel holders in both realms and carries ctx back; a status stops it', async () => {
  getIoChannel(DEVICE); // app_thread, realm 0
  const r1 = await spawn('remote_ch', 1);
  sendMsg(r1, takeChannel, { replyTo: currentThread().ref, reply: 'fx.inbox' });
  assert.equal((await nextReply()).thread, 'remote_ch');
  const r = await new Promise<{ ctx: { seen: string[] }; status: number }>((resolve) =>
    forEachChannel(DEVICE, visit, { seen: [] as string[] }, (x) => resolve(x)),
  );
  assert.equal(r.status, 0);
  assert.deepEqual(r.ctx.seen, ['0:app_thread', '1:remote_ch']);
  const s = await new Promise<{ ctx: { seen: string[] }; status: number }>((resolve) =>
    forEachChannel(DEVICE, stopOnReactor1, { seen: [] as string[] }, (x) => resolve(x)),
  );
  assert.deepEqual(s, { ctx: { seen: ['app_thread', 'remote_ch'] }, status: 7 });
});

test('an accepted socket moves to a thread of another realm with sendMsg transfer', async () => {
  const ref = await spawn('remote_sock', 1);
  const server = createServer((sock) => sendMsg(ref, adoptSocket, { sock }, [sock]));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const c = createConnection(port, '127.0.0.1');
  c.write('ping');
  const got = await new Promise<string>((resolve, reject) => {
    c.once('data', (d) => resolve(d.toString()));
    c.once('error', reject);
    setTimeout(() => reject(new Error('no echo')), 5000).unref();
  });
  assert.equal(got, 'reactor 1: ping');
  c.destroy();
  await new Promise((r) => server.close(r));
});
