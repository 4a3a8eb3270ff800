// The bdev_rbd module's error: what SPDK's RPC would answer, with a message naming the problem.
import { NvmfTsError } from '../../../util/errors.ts';

/** An error with the errno SPDK's RPC would answer (negative), and a message naming the problem. */
export class RbdError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_RBD';
  readonly errno: number;
  constructor(errno: number, message: string) {
    super('NVMF_ERR_RBD', message);
    this.errno = errno;
  }
}
