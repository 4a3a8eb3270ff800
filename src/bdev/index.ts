// The bdev layer for users of bdevs (SPDK's include/spdk/bdev.h): the nvmf
// target, stacked modules reaching their base, tools. Open a bdev, get a
// channel on your thread, submit I/O; each completion comes back later on
// that thread to the callback you gave, with the BdevIo to read and free.
// Also: claims, QoS, statistics and the bdev list. Module authors import
// src/bdev/module.ts instead, which adds the module-side contract.

export type { BdevEventCb, BdevEventType, BdevIoCb, LentData } from './bdev.ts';
export {
  Bdev,
  BdevChannel,
  BdevDesc,
  BdevIo,
  bdevFreeIo,
  bdevIoGetNvmeStatus,
  ioPoolStats,
  setBdevIoPoolSize,
  sliceIov,
} from './bdev.ts';
export { BdevError, type BdevErrorCode } from './errors.ts';
export type { QosLimits } from './qos.ts';
export type { BdevRecord } from './registry.ts';
export {
  bdevClaim,
  bdevClaimByName,
  bdevCollectStats,
  bdevGetRecord,
  bdevGetReplica,
  bdevListRecords,
  bdevReleaseClaim,
  bdevReleaseClaimByName,
  bdevSetHistogram,
  bdevSetQos,
  bdevSetRealmThreads,
} from './registry.ts';
export { bdevClose, bdevGetIoChannel, bdevOpen, bdevPutIoChannel } from './replicas.ts';
export {
  BdevIoStats,
  type BdevIoStatsSnapshot,
  HISTOGRAM_BUCKETS,
  iostatJson,
  nowTicks,
  TICK_RATE,
} from './stats.ts';
export {
  bdevAbort,
  bdevCompare,
  bdevCompareAndWrite,
  bdevFlush,
  bdevRead,
  bdevReadZcopy,
  bdevReset,
  bdevUnmap,
  bdevWrite,
  bdevWriteZeroes,
  bdevZcopyEnd,
  bdevZcopyStartWrite,
  type Ch as BdevChannelArg,
} from './submit.ts';
export {
  type BdevDescriptor,
  BdevIoStatus,
  BdevIoType,
  type BlockRange,
  changesBlocks,
  ioTypeNames,
} from './types.ts';
