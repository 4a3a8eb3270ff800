// Public API of the thread library (see docs/ARCHITECTURE.md, "Reactors and realms").

export {
  type ChannelIter,
  defineChannelIter,
  defineHandler,
  defineThreadIter,
  type MsgHandler,
  type ThreadIter,
} from './handlers.ts';
export {
  getIoChannel,
  ioDeviceRegistered,
  putIoChannel,
  registerIoDevice,
  unregisterIoDevice,
} from './io-device.ts';
export { sendMsg, spawnThread } from './messages.ts';
export { currentRealm, type Realm, type RealmOptions, startRealm } from './realm.ts';
export { type PollerInfo, type ThreadInfo, TICK_RATE, threadInfo, threadStats } from './stats.ts';
export {
  createThread,
  currentThread,
  type IoChannel,
  nowUs,
  type Poller,
  PollerStatus,
  realmLoad,
  realmReactor,
  realmReactorCount,
  registerPoller,
  SpdkThread,
  type ThreadRef,
  type Transferable,
  turnUs,
  wakeReactor,
} from './thread.ts';
export { forEachChannel, forEachThread } from './walk.ts';
