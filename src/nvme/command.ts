// One admin (or Connect) command as a promise, for the control path: the
// completion resolves, an error status rejects with NvmeStatusError, a queue
// that refuses the command rejects with NvmeQueueError.

import { Cqe, isSuccess } from '../wire/nvme.ts';
import { NvmeStatusError, queueRefusal } from './errors.ts';
import type { NvmeQpair } from './qpair.ts';

export interface Completion {
  dw0: number;
  dw1: number;
  /** (sct << 8) | sc */
  status: number;
}

/** Run one command; `what` names it in errors. */
export function execute(
  qpair: NvmeQpair,
  cmd: Buffer,
  data: Buffer | null,
  isRead: boolean,
  what: string,
): Promise<Completion> {
  return new Promise((resolve, reject) => {
    const ok = qpair.submit(cmd, data, isRead, (cpl) => {
      if (isSuccess(cpl))
        resolve({ dw0: cpl.readUInt32LE(Cqe.DW0), dw1: cpl.readUInt32LE(Cqe.DW1), status: 0 });
      else reject(new NvmeStatusError(cpl, what));
    });
    if (!ok) reject(queueRefusal(qpair, what));
  });
}
