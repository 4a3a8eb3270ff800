// io_devices and their per-thread channels: registered in one realm under a
// string id, a channel created on a thread's first getIoChannel and destroyed
// by a message on that thread after its last putIoChannel.

import { DuplicateNameError, InvalidStateError, NotRegisteredError } from '../util/errors.ts';
import { sendMsg } from './messages.ts';
import { callerThreadOrNull, currentThread, type IoChannel, wakeReactor } from './thread.ts';

interface IoDevice {
  id: string;
  name: string;
  create: (id: string) => unknown;
  destroy: (ctx: unknown) => void;
  channels: number;
  unregistered: boolean;
  onGone: Array<() => void>;
}

const devices = new Map<string, IoDevice>();

export function registerIoDevice<C>(
  id: string,
  create: (id: string) => C,
  destroy: (ctx: C) => void,
  name?: string,
): void {
  const d = devices.get(id);
  if (d !== undefined && !d.unregistered)
    throw new DuplicateNameError(`io_device '${id}' is already registered`);
  devices.set(id, {
    id,
    name: name ?? id,
    create,
    destroy: destroy as (ctx: unknown) => void,
    channels: 0,
    unregistered: false,
    onGone: [],
  });
}

export function unregisterIoDevice(id: string, done?: () => void): void {
  const d = devices.get(id);
  if (d === undefined || d.unregistered) throw new NotRegisteredError(`io_device '${id}' is not registered`);
  d.unregistered = true;
  const caller = callerThreadOrNull();
  const notify = (): void => {
    if (done === undefined) return;
    if (caller !== null) sendMsg(caller, done, undefined);
    else done();
  };
  if (d.channels === 0) {
    devices.delete(id);
    notify();
  } else d.onGone.push(notify);
}

export function ioDeviceRegistered(id: string): boolean {
  const d = devices.get(id);
  return d !== undefined && !d.unregistered;
}

export function getIoChannel<C>(id: string): IoChannel<C> {
  const t = currentThread();
  const existing = t.channels.get(id);
  if (existing !== undefined) {
    existing.refs++;
    return existing as IoChannel<C>;
  }
  const d = devices.get(id);
  if (d === undefined || d.unregistered)
    throw new NotRegisteredError(`io_device '${id}' is not registered in this realm`);
  const ch: IoChannel<unknown> = { deviceId: id, thread: t, ctx: undefined, refs: 1 };
  t.channels.set(id, ch);
  d.channels++;
  try {
    (ch as { ctx: unknown }).ctx = d.create(id);
  } catch (e) {
    t.channels.delete(id);
    d.channels--;
    throw e;
  }
  return ch as IoChannel<C>;
}

function destroyChannelIfUnused(ch: IoChannel<unknown>): void {
  if (ch.refs > 0 || ch.thread.channels.get(ch.deviceId) !== ch) return;
  ch.thread.channels.delete(ch.deviceId);
  const d = devices.get(ch.deviceId);
  if (d === undefined) return;
  d.destroy(ch.ctx);
  d.channels--;
  if (d.unregistered && d.channels === 0) {
    devices.delete(d.id);
    for (const f of d.onGone) f();
  }
}

/** Release a reference; the channel is destroyed by a message once no references remain. */
export function putIoChannel(ch: IoChannel<unknown>): void {
  if (ch.refs <= 0)
    throw new InvalidStateError(`putIoChannel: channel for '${ch.deviceId}' has no references`);
  ch.refs--;
  if (ch.refs === 0) {
    ch.thread.enqueue(destroyChannelIfUnused as (a: unknown) => void, ch);
    wakeReactor();
  }
}

/** The name an io_device was registered with (its id when it has none or is gone). */
export function ioDeviceName(id: string): string {
  return devices.get(id)?.name ?? id;
}

/** Forget every io_device of this realm (resetRealm). */
export function resetIoDevices(): void {
  devices.clear();
}
