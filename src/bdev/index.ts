// Public surface of the bdev layer. Users of bdevs (the nvmf target) need the
// descriptor / channel / I/O calls; module authors also use BdevModule,
// BdevBackend, BdevIo.complete*, and the registry (bdevRegister...).

export type { BdevBackend, BdevEventCb, BdevEventType, BdevIoCb, BdevModule } from './bdev.ts';
export {
  Bdev,
  BdevChannel,
  BdevDesc,
  BdevIo,
  bdevDeviceId,
  bdevFreeIo,
  bdevIoGetNvmeStatus,
  ioPoolStats,
  setBdevIoPoolSize,
  sliceIov,
} from './bdev.ts';
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
export { bdevClose, bdevGetIoChannel, bdevOpen, bdevPutIoChannel } from './replicas.ts';
export { BdevIoStats, HISTOGRAM_BUCKETS, iostatJson, TICK_RATE } from './stats.ts';
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
  type Ch as BdevChannelArg,
} from './submit.ts';
export {
  type BdevDescriptor,
  BdevIoStatus,
  BdevIoType,
  type BlockRange,
  ioTypeNames,
  isUuid,
  newBdevDescriptor,
} from './types.ts';
