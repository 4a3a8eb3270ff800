// Public surface of the bdev layer. Users of bdevs (the nvmf target) need the
// descriptor / channel / I/O calls; module authors also use BdevModule,
// BdevBackend, BdevIo.complete*, and the registry (bdevRegister...).

export type {
  BdevBackend,
  BdevEventCb,
  BdevEventType,
  BdevModule,
  BlockRange,
  Ch as BdevChannelArg,
} from './bdev.ts';
export {
  Bdev,
  BdevChannel,
  BdevDesc,
  bdevAbort,
  bdevClose,
  bdevCompare,
  bdevCompareAndWrite,
  bdevDeviceId,
  bdevFlush,
  bdevGetIoChannel,
  bdevOpen,
  bdevPutIoChannel,
  bdevRead,
  bdevReadZcopy,
  bdevReset,
  bdevUnmap,
  bdevWrite,
  bdevWriteZeroes,
  sliceIov,
} from './bdev.ts';
export type { BdevIoCb } from './bdev-io.ts';
export { BdevIo, bdevFreeIo, bdevIoGetNvmeStatus, ioPoolStats, setBdevIoPoolSize } from './bdev-io.ts';
export type { QosLimits } from './qos.ts';
export type { BdevRecord } from './registry.ts';
export {
  BdevError,
  bdevClaim,
  bdevClaimByName,
  bdevCollectStats,
  bdevGetRecord,
  bdevGetReplica,
  bdevListRecords,
  bdevNotifyResize,
  bdevRegister,
  bdevReleaseClaim,
  bdevReleaseClaimByName,
  bdevSetHistogram,
  bdevSetQos,
  bdevSetRealmThreads,
  bdevUnregister,
  getBdevModule,
  registerBdevModule,
} from './registry.ts';
export { BdevIoStats, HISTOGRAM_BUCKETS, iostatJson, TICK_RATE } from './stats.ts';
export {
  type BdevDescriptor,
  BdevIoStatus,
  BdevIoType,
  ioTypeNames,
  isUuid,
  NvmeStatus,
  newBdevDescriptor,
} from './types.ts';
