// Messages between threads, in this realm or another: sendMsg, the replies
// that come back to a calling thread (plain callbacks stay in their realm
// under a token; only the token and the value travel), and spawnThread.

import { InvalidArgumentError } from '../util/errors.ts';
import { defineHandler, type MsgHandler } from './handlers.ts';
import {
  createThread,
  currentThread,
  findLocalThread,
  postToReactor,
  realmReactor,
  realmReactorCount,
  SpdkThread,
  type ThreadRef,
  type Transferable,
  wakeReactor,
} from './thread.ts';

export function sendMsg<A>(
  to: ThreadRef | SpdkThread,
  h: MsgHandler<A> | ((a: A) => void),
  arg: A,
  transfer?: Transferable[],
): void {
  const ref = to instanceof SpdkThread ? to.ref : to;
  if (ref.reactor === realmReactor()) {
    const t = findLocalThread(ref.id);
    if (t === undefined) return; // thread gone: drop, as SPDK does for exited threads
    t.enqueue((typeof h === 'function' ? h : h.fn) as (a: unknown) => void, arg);
    wakeReactor();
    return;
  }
  if (typeof h === 'function') {
    throw new InvalidArgumentError(
      `sendMsg to thread '${ref.name}' on reactor ${ref.reactor} needs a named handler (defineHandler)`,
    );
  }
  postToReactor(ref.reactor, { k: 'msg', t: ref.id, h: h.name, a: arg }, transfer);
}

// replies to the calling thread: plain callbacks stay in their realm, keyed by token
export type Reply = ((v: unknown) => void) | MsgHandler<unknown>;
const replies = new Map<number, { thread: SpdkThread; cb: Reply }>();
let replyToken = 0;

/** Keep `cb` for the current thread; the reply carrying the returned token runs it there. */
export function holdReply(cb: Reply): number {
  const token = ++replyToken;
  replies.set(token, { thread: currentThread(), cb });
  return token;
}

const replyHandler = defineHandler<{ token: number; value: unknown }>('thread.reply', (m) => {
  const r = replies.get(m.token);
  if (r === undefined) return;
  replies.delete(m.token);
  if (typeof r.cb === 'function') r.cb(m.value);
  else r.cb.fn(m.value);
});

/** Send `value` to the reply held under `token` on thread `to`. */
export function reply(to: ThreadRef, token: number, value: unknown): void {
  sendMsg(to, replyHandler, { token, value });
}

/** Create a thread on reactor `reactor` (any realm); `done` runs on the calling thread with its ref. */
export function spawnThread(
  name: string,
  reactor: number,
  done: MsgHandler<ThreadRef> | ((r: ThreadRef) => void),
): void {
  if (!Number.isInteger(reactor) || reactor < 0 || reactor >= realmReactorCount()) {
    throw new InvalidArgumentError(
      `spawnThread '${name}': no reactor ${reactor} (have ${realmReactorCount()})`,
    );
  }
  const caller = currentThread();
  const token = holdReply(done as Reply);
  if (reactor === realmReactor()) {
    const t = createThread(name);
    reply(caller.ref, token, t.ref);
  } else postToReactor(reactor, { k: 'spawn', name, replyTo: caller.ref, token });
}

/** Forget the replies this realm waits for (resetRealm). */
export function resetReplies(): void {
  replies.clear();
}
