// The NVMe/TCP queue under a host library queue, for tests that reach its socket or
// digests (the controller and I/O queue types name the transport-neutral NvmeQpair).

import type { NvmeQpair } from '../../src/nvme/qpair.ts';
import { NvmeTcpQpair } from '../../src/nvme/tcp-qpair.ts';

export function tcpOf(q: NvmeQpair): NvmeTcpQpair {
  if (!(q instanceof NvmeTcpQpair)) throw new Error('not an NVMe/TCP queue');
  return q;
}
