// This realm's bdev replicas (built, resized and dropped by the registry's
// messages), and the descriptors and channels threads open on them.

import {
  currentThread,
  getIoChannel,
  type IoChannel,
  putIoChannel,
  registerIoDevice,
  sendMsg,
  unregisterIoDevice,
} from '../thread/index.ts';
import { logger } from '../util/log.ts';
import { Bdev, BdevChannel, BdevDesc, type BdevEventCb, type BdevModule, bdevDeviceId } from './bdev.ts';
import { BdevError } from './errors.ts';
import type { BdevDescriptor } from './types.ts';

const log = logger('bdev');
const realmBdevs = new Map<string, Bdev>(); // name and aliases → replica

export function realmLookup(name: string): Bdev | undefined {
  return realmBdevs.get(name);
}

/** Build and register this realm's replica (called by the registry in every realm). */
export function addReplica(d: BdevDescriptor, module: BdevModule): Bdev {
  if (realmBdevs.has(d.name)) throw new BdevError('EEXIST', `bdev ${d.name} already exists in this realm`);
  const bdev = new Bdev(d);
  bdev.backend = module.createReplica(d, bdev);
  realmBdevs.set(d.name, bdev);
  for (const a of d.aliases) realmBdevs.set(a, bdev);
  registerIoDevice<BdevChannel>(
    bdevDeviceId(d.name),
    () => {
      const ch = new BdevChannel(bdev, currentThread());
      bdev.channels.add(ch);
      return ch;
    },
    (ch) => {
      bdev.retiredStats.add(ch.stats.snapshot());
      bdev.channels.delete(ch);
      bdev.backend.destroyChannel?.(ch.moduleCtx);
    },
    d.name,
  );
  return bdev;
}

/**
 * Hot-remove in this realm: tell every open descriptor's thread, wait until
 * all are closed and every channel is put, then drop the replica.
 */
export function removeReplica(name: string, done: () => void): void {
  const bdev = realmBdevs.get(name);
  if (bdev === undefined) {
    done();
    return;
  }
  bdev.removing = true;
  for (const desc of bdev.descs) {
    sendMsg(desc.thread, notifyRemove, desc);
  }
  const finish = () => {
    realmBdevs.delete(bdev.name);
    for (const a of bdev.aliases) realmBdevs.delete(a);
    unregisterIoDevice(bdevDeviceId(bdev.name), () => {
      bdev.backend.destruct?.();
      done();
    });
  };
  if (bdev.descs.size === 0) finish();
  else pendingRemovals.set(bdev, finish);
}

const pendingRemovals = new Map<Bdev, () => void>();

function notifyRemove(desc: BdevDesc): void {
  if (!desc.closed) desc.onEvent('remove', desc.bdev);
}

function notifyResize(desc: BdevDesc): void {
  if (!desc.closed) desc.onEvent('resize', desc.bdev);
}

export function resizeReplica(name: string, numBlocks: number): void {
  const bdev = realmBdevs.get(name);
  if (bdev === undefined) return;
  bdev.numBlocks = numBlocks;
  bdev.descriptor.numBlocks = numBlocks;
  bdev.backend.resize?.(numBlocks);
  for (const desc of bdev.descs) sendMsg(desc.thread, notifyResize, desc);
}

// ---------------------------------------------------------------- descriptors and channels

/** Open a bdev (by name or alias) in this realm, on the current thread. Throws if absent or being removed. */
export function bdevOpen(name: string, write: boolean, onEvent: BdevEventCb): BdevDesc {
  const bdev = realmBdevs.get(name);
  if (bdev === undefined || bdev.removing) throw new BdevError('ENODEV', `bdev ${name} does not exist`);
  const desc = new BdevDesc(bdev, write, onEvent, currentThread());
  bdev.descs.add(desc);
  if (log.debugEnabled()) {
    log.debug(
      `open ${name}${write ? ' for writing' : ''} on ${desc.thread.name} (${bdev.descs.size} open here)`,
    );
  }
  return desc;
}

export function bdevClose(desc: BdevDesc): void {
  if (desc.closed) return;
  desc.closed = true;
  desc.onClose?.();
  desc.onClose = null;
  const bdev = desc.bdev;
  bdev.descs.delete(desc);
  if (bdev.descs.size === 0) {
    const finish = pendingRemovals.get(bdev);
    if (finish !== undefined) {
      pendingRemovals.delete(bdev);
      finish();
    }
  }
}

export function bdevGetIoChannel(desc: BdevDesc): IoChannel<BdevChannel> {
  return getIoChannel<BdevChannel>(bdevDeviceId(desc.bdev.name));
}

export function bdevPutIoChannel(ch: IoChannel<BdevChannel>): void {
  putIoChannel(ch as IoChannel<unknown>);
}
