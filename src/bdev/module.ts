// The bdev layer for module authors (SPDK's include/spdk/bdev_module.h):
// everything a user has (index.ts) plus what a module implements and calls.
// A module is a BdevModule (builds a BdevBackend replica per realm from a
// BdevDescriptor); its backend finishes each BdevIo it is given with
// io.complete / completeNvme / completeStatus; its control path registers,
// resizes and unregisters bdevs and loads into the module table. Guide:
// docs/bdev-module.md.

export type { BdevBackend, BdevModule } from './bdev.ts';
export { bdevDeviceId, zcopyPossible } from './bdev.ts';
export * from './index.ts';
export {
  bdevModuleDescriptor,
  bdevNotifyResize,
  bdevRegister,
  bdevUnregister,
  getBdevModule,
  registerBdevModule,
} from './registry.ts';
export { isUuid, newBdevDescriptor } from './types.ts';
