// Walks: forEachChannel and forEachThread visit threads one after another,
// by messages, starting in the caller's realm and going round the reactors;
// the walk's context travels with it (structured-cloned between realms).

import { NotRegisteredError } from '../util/errors.ts';
import { type ChannelIter, iterNamed, type MsgHandler, type ThreadIter } from './handlers.ts';
import { holdReply, type Reply, reply } from './messages.ts';
import {
  currentThread,
  localThreads,
  postToReactor,
  realmReactor,
  realmReactorCount,
  type SpdkThread,
  type Walk,
  wakeReactor,
} from './thread.ts';

function finishWalk(w: Walk): void {
  reply(w.origin, w.token, { ctx: w.ctx, status: w.status });
}

function nextRealm(w: Walk): void {
  const next = (w.reactor + 1) % realmReactorCount();
  if (next === w.start) {
    finishWalk(w);
    return;
  }
  w.reactor = next;
  postToReactor(next, { k: 'walk', w });
}

/** Run walk `w` over this realm's threads, then pass it to the next realm (or finish it). */
export function walkRealm(w: Walk): void {
  const targets: SpdkThread[] = [];
  for (const t of localThreads()) {
    if (t.exited) continue;
    if (w.kind === 'th' || t.channels.has(w.id)) targets.push(t);
  }
  const iter = iterNamed(w.iter);
  if (iter === undefined) throw new NotRegisteredError(`unknown iterator '${w.iter}'`);
  const step = (i: number): void => {
    if (i >= targets.length) {
      nextRealm(w);
      return;
    }
    const t = targets[i];
    t.enqueue(() => {
      const next = (status: number): void => {
        if (status !== 0) {
          w.status = status;
          finishWalk(w);
        } else step(i + 1);
      };
      if (w.kind === 'th') {
        (iter as ThreadIter<unknown>['fn'])(w.ctx, next);
        return;
      }
      const ch = t.channels.get(w.id);
      if (ch === undefined) next(0);
      else (iter as ChannelIter<unknown>['fn'])(ch, w.ctx, next);
    }, undefined);
    wakeReactor();
  };
  step(0);
}

type Done<A> = MsgHandler<{ ctx: A; status: number }> | ((r: { ctx: A; status: number }) => void);

/**
 * Visit every thread (all realms) holding a channel for `id`, one after
 * another; `iter.fn` calls next(status) (non-zero stops the walk); then
 * `done` runs on the calling thread. ctx is structured-cloned between realms.
 */
export function forEachChannel<A>(id: string, iter: ChannelIter<A>, ctx: A, done: Done<A>): void {
  const caller = currentThread();
  const token = holdReply(done as Reply);
  walkRealm({
    kind: 'ch',
    id,
    iter: iter.name,
    ctx,
    origin: caller.ref,
    token,
    start: realmReactor(),
    reactor: realmReactor(),
    status: 0,
  });
}

/** Visit every thread of every realm, one after another, then `done` on the calling thread. */
export function forEachThread<A>(iter: ThreadIter<A>, ctx: A, done: Done<A>): void {
  const caller = currentThread();
  const token = holdReply(done as Reply);
  walkRealm({
    kind: 'th',
    id: '',
    iter: iter.name,
    ctx,
    origin: caller.ref,
    token,
    start: realmReactor(),
    reactor: realmReactor(),
    status: 0,
  });
}
