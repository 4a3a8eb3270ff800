// The target's errors whose message an RPC shows as is.

import { NvmfTsError } from '../util/errors.ts';

/**
 * A target operation refused (a subsystem, namespace, host, listener or
 * transport that cannot be added, found or removed); `errno` is the negative
 * errno the nvmf_* RPCs answer with as their JSON-RPC code (-22 by default), as SPDK does.
 */
export class NvmfError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_TARGET';
  readonly errno: number;
  constructor(message: string, errno = -22) {
    super('NVMF_ERR_TARGET', message);
    this.errno = errno;
  }
}
