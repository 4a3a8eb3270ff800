// The bdev layer's errors: the failure kind is an errno name, which the bdev
// RPCs answer with as SPDK does (-EEXIST, -ENODEV…; modules/bdev/rpc-util.ts).

import { NvmfTsError } from '../util/errors.ts';

export type BdevErrorCode = 'EEXIST' | 'ENODEV' | 'EBUSY' | 'EINVAL' | 'ENOMEM';

/** A bdev operation refused: a name taken, no such bdev, a claim held, a bad value, no memory. */
export class BdevError extends NvmfTsError {
  declare readonly code: BdevErrorCode;
  constructor(code: BdevErrorCode, message: string) {
    super(code, message);
  }
}
