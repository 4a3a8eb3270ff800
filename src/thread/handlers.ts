// Names of message handlers and walk iterators. Every realm evaluates the
// same modules, so a name defined in one realm exists under that name in all:
// a message or a walk crosses realms by name and is looked up here.

import { DuplicateNameError } from '../util/errors.ts';
import type { IoChannel } from './thread.ts';

export interface MsgHandler<A> {
  readonly name: string;
  readonly fn: (arg: A) => void;
}

export interface ChannelIter<A> {
  readonly name: string;
  readonly fn: (ch: IoChannel<unknown>, ctx: A, next: (status: number) => void) => void;
}

export interface ThreadIter<A> {
  readonly name: string;
  readonly fn: (ctx: A, next: (status: number) => void) => void;
}

const handlers = new Map<string, (arg: never) => void>();
const iters = new Map<string, (...args: never[]) => void>();

/** Register name -> fn in this realm's table. Every realm evaluates the same modules, so names resolve everywhere. */
export function defineHandler<A>(name: string, fn: (arg: A) => void): MsgHandler<A> {
  if (handlers.has(name)) throw new DuplicateNameError(`message handler '${name}' is already defined`);
  handlers.set(name, fn as (arg: never) => void);
  return { name, fn };
}

export function defineChannelIter<A>(name: string, fn: ChannelIter<A>['fn']): ChannelIter<A> {
  if (iters.has(name)) throw new DuplicateNameError(`iterator '${name}' is already defined`);
  iters.set(name, fn as (...args: never[]) => void);
  return { name, fn };
}

export function defineThreadIter<A>(name: string, fn: ThreadIter<A>['fn']): ThreadIter<A> {
  if (iters.has(name)) throw new DuplicateNameError(`iterator '${name}' is already defined`);
  iters.set(name, fn as (...args: never[]) => void);
  return { name, fn };
}

/** The function defined under `name` in this realm (a message from another realm names it). */
export function handlerNamed(name: string): ((arg: never) => void) | undefined {
  return handlers.get(name);
}

/** The iterator defined under `name` in this realm (a walk from another realm names it). */
export function iterNamed(name: string): ((...args: never[]) => void) | undefined {
  return iters.get(name);
}
