// Ordering evidence on a live queue. NVMe/TCP carries one queue's capsules and
// responses in order, and the target takes a queue's commands in the order
// they arrive. So when a command the target answers at once comes back, every
// command sent before it on that queue has reached the target, and any
// response the target sent for them before it has arrived too. A test that
// claims "these commands are still waiting" checks that after such a round
// trip instead of after a sleep.

import { FABRICS_OPCODE, FabricsCommandType, SQE_SIZE, Sqe, statusOf } from '../../src/wire/nvme.ts';

/** Anything with the host library's raw `submit` (an NvmeIoQpair or an NvmeTcpQpair). */
export interface CommandSubmitter {
  submit(cmd: Buffer, data: Buffer | null, isRead: boolean, cb: (cpl: Buffer) => void): boolean;
}

/**
 * A Fabrics Property Get on an I/O queue: the target answers it at once, with
 * Invalid Opcode (properties belong to the admin queue), even while the
 * subsystem is paused. Resolves with the status ((sct << 8) | sc).
 */
export function ioQueueRoundTrip(q: CommandSubmitter): Promise<number> {
  const cmd = Buffer.alloc(SQE_SIZE);
  cmd[Sqe.OPCODE] = FABRICS_OPCODE;
  cmd[Sqe.FCTYPE] = FabricsCommandType.PROPERTY_GET;
  return new Promise((resolve, reject) => {
    if (!q.submit(cmd, null, false, (cpl) => resolve(statusOf(cpl))))
      reject(new Error('probe refused: the queue is full or closed'));
  });
}

/** What countKeepAlives counts. */
export interface KeepAliveCount {
  sent: number;
  answered: number;
}

/**
 * Count the Keep Alives a controller's own keep-alive timer sends and sees
 * answered (one every KATO/2): a test that claims a connection stays up
 * through several KATOs waits for that many answered Keep Alives.
 */
export function countKeepAlives(ctrlr: { keepAlive(): Promise<unknown> }): KeepAliveCount {
  const count: KeepAliveCount = { sent: 0, answered: 0 };
  const send = ctrlr.keepAlive.bind(ctrlr);
  ctrlr.keepAlive = () => {
    count.sent++;
    return send().then((cpl) => {
      count.answered++;
      return cpl;
    });
  };
  return count;
}
