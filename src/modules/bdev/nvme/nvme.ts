// bdev_nvme: the target as a gateway. Each namespace of a remote NVMe-oF
// controller becomes a bdev (NAMEn<nsid>) that this target can export again.
// The record (ctrlr.ts, app thread) holds the admin connection and reconnects
// it; each realm's replica (backend.ts) sends I/O on its own I/O queue.

import type { Bdev, BdevBackend, BdevDescriptor, BdevModule } from '../../../bdev/module.ts';
import { NvmeBdevBackend } from './backend.ts';
import { bdevRemoved, configFor } from './ctrlr.ts';

export const nvmeModule: BdevModule = {
  name: 'nvme',
  createReplica(desc: BdevDescriptor, _bdev: Bdev): BdevBackend {
    return new NvmeBdevBackend(desc);
  },
  writeConfigJson: configFor,
  destroyRecord: bdevRemoved,
};
