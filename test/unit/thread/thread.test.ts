import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import {
  currentThread,
  defineChannelIter,
  defineHandler,
  defineThreadIter,
  forEachChannel,
  forEachThread,
  getIoChannel,
  PollerStatus,
  putIoChannel,
  registerIoDevice,
  registerPoller,
  sendMsg,
  spawnThread,
  threadStats,
  unregisterIoDevice,
} from '../../../src/thread/index.ts';
import * as T from '../../../src/thread/testing.ts';

afterEach(() => {
  T.reset();
  T.useRealClock();
});

const seen: string[] = [];
const record = defineHandler<string>('test.record', (s) => seen.push(`${currentThread().name}:${s}`));
const countIter = defineChannelIter<{ names: string[] }>('test.countIter', (ch, ctx, next) => {
  ctx.names.push(`${ch.thread.name}/${ch.deviceId}`);
  next(0);
});
const stopIter = defineChannelIter<{ n: number }>('test.stopIter', (_ch, ctx, next) => {
  ctx.n++;
  next(ctx.n === 1 ? -5 : 0);
});
const threadIter = defineThreadIter<{ names: string[] }>('test.threadIter', (ctx, next) => {
  ctx.names.push(currentThread().name);
  next(0);
});

test('duplicate handler names are refused', () => {
  assert.throws(() => defineHandler('test.record', () => {}), /already defined/);
});

test('messages run on the target thread in order, in batches', () => {
  seen.length = 0;
  const a = T.createThread('a');
  const b = T.createThread('b');
  T.setCurrent(a);
  for (let i = 0; i < 20; i++) sendMsg(b.ref, record, String(i));
  sendMsg(a, (x: number) => seen.push(`${currentThread().name}:fn${x}`), 7);
  assert.equal(T.pollOnce(), true);
  // b drained only a batch of 8 on the first iteration
  assert.equal(seen.filter((s) => s.startsWith('b:')).length, 8);
  T.pollUntilIdle();
  assert.equal(seen.length, 21);
  assert.deepEqual(
    seen.filter((s) => s.startsWith('b:')),
    Array.from({ length: 20 }, (_, i) => `b:${i}`),
  );
  assert.ok(seen.includes('a:fn7'));
});

test('active and timed pollers, pause/resume/unregister', () => {
  T.useFakeClock(0);
  const t = T.createThread('p');
  T.setCurrent(t);
  let active = 0;
  let timed = 0;
  const pa = registerPoller(
    () => {
      active++;
      return active < 3 ? PollerStatus.BUSY : PollerStatus.IDLE;
    },
    0,
    'active',
  );
  const pt = registerPoller(
    () => {
      timed++;
      return PollerStatus.BUSY;
    },
    1000,
    'timed',
  );
  T.pollUntilIdle();
  assert.equal(active, 3);
  assert.equal(timed, 0);
  T.advance(1000);
  T.pollOnce();
  assert.equal(timed, 1);
  pt.pause();
  T.advance(5000);
  T.pollOnce();
  assert.equal(timed, 1);
  const stats = threadStats().find((s) => s.name === 'p');
  assert.equal(stats?.paused_pollers[0]?.name, 'timed');
  pt.resume();
  T.advance(1000);
  T.pollOnce();
  assert.equal(timed, 2);
  pa.unregister();
  pt.unregister();
  const before = active;
  T.advance(10_000);
  T.pollOnce();
  assert.equal(active, before);
  assert.equal(timed, 2);
});

test('io channels: one per thread, ref-counted, destroyed after last put, unregister waits', () => {
  const created: string[] = [];
  const destroyed: string[] = [];
  registerIoDevice(
    'dev0',
    () => {
      const name = currentThread().name;
      created.push(name);
      return { name };
    },
    (ctx: { name: string }) => destroyed.push(ctx.name),
  );
  const a = T.createThread('a');
  const b = T.createThread('b');
  T.setCurrent(a);
  const ca1 = getIoChannel<{ name: string }>('dev0');
  const ca2 = getIoChannel<{ name: string }>('dev0');
  assert.equal(ca1, ca2);
  assert.equal(ca1.refs, 2);
  T.setCurrent(b);
  const cb = getIoChannel<{ name: string }>('dev0');
  assert.equal(cb.ctx.name, 'b');
  assert.deepEqual(created, ['a', 'b']);
  assert.throws(() => getIoChannel('nope'), /not registered/);

  let gone = false;
  T.setCurrent(a);
  unregisterIoDevice('dev0', () => {
    gone = true;
  });
  putIoChannel(ca1);
  putIoChannel(ca2);
  putIoChannel(cb);
  assert.throws(() => putIoChannel(cb), /no references/);
  T.pollUntilIdle();
  assert.deepEqual(destroyed.sort(), ['a', 'b']);
  assert.equal(gone, true);
});

test('forEachChannel visits holders in turn, ctx mutations reach done; non-zero status stops', () => {
  registerIoDevice(
    'dev1',
    () => ({}),
    () => {},
  );
  const app = T.createThread('app');
  const x = T.createThread('x');
  const y = T.createThread('y');
  T.createThread('z'); // holds no channel
  for (const t of [x, y]) {
    T.setCurrent(t);
    getIoChannel('dev1');
  }
  T.setCurrent(app);
  let result: { ctx: { names: string[] }; status: number } | null = null;
  forEachChannel('dev1', countIter, { names: [] }, (r) => {
    assert.equal(currentThread().name, 'app');
    result = r;
  });
  T.pollUntilIdle();
  assert.deepEqual(result, { ctx: { names: ['x/dev1', 'y/dev1'] }, status: 0 });

  let stopped: { ctx: { n: number }; status: number } | null = null;
  T.setCurrent(app);
  forEachChannel('dev1', stopIter, { n: 0 }, (r) => {
    stopped = r;
  });
  T.pollUntilIdle();
  assert.deepEqual(stopped, { ctx: { n: 1 }, status: -5 });
});

test('forEachThread visits every thread; spawnThread on this reactor replies with the ref', () => {
  const app = T.createThread('app');
  T.createThread('w1');
  T.setCurrent(app);
  const got: { ref: { name: string; reactor: number } | null } = { ref: null };
  spawnThread('w2', 0, (r) => {
    got.ref = r;
  });
  assert.throws(() => spawnThread('bad', 3, () => {}), /no reactor 3/);
  T.pollUntilIdle();
  assert.equal(got.ref?.name, 'w2');
  assert.equal(got.ref?.reactor, 0);
  let names: string[] = [];
  T.setCurrent(app);
  forEachThread(threadIter, { names: [] }, (r) => {
    names = r.ctx.names;
  });
  T.pollUntilIdle();
  assert.deepEqual(names, ['app', 'w1', 'w2']);
});

test('a poller may unregister itself or another while running; stats stop listing it', () => {
  const t = T.createThread('self');
  T.setCurrent(t);
  let aRuns = 0;
  let bRuns = 0;
  const a: { p: ReturnType<typeof registerPoller> | null } = { p: null };
  const b = registerPoller(
    () => {
      bRuns++;
      return PollerStatus.IDLE;
    },
    0,
    'b',
  );
  a.p = registerPoller(
    () => {
      aRuns++;
      a.p?.unregister();
      b.unregister();
      return PollerStatus.BUSY;
    },
    0,
    'a',
  );
  T.pollUntilIdle();
  T.pollOnce();
  assert.equal(aRuns, 1);
  assert.equal(bRuns, 1); // b ran before a in that iteration, never after
  const info = threadStats().find((s) => s.name === 'self');
  assert.deepEqual(info?.active_pollers, []);
});
