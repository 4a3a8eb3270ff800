// The host library's errors (docs/host-library.md, "Error model"): a command
// that completed with an error status, a command that could not be submitted,
// a TCP connection that could not be set up.

import { Cqe, getDnr, packedStatusToString, statusOf, statusSc, statusSct } from '../wire/nvme.ts';

/** A command completed with an error status. */
export class NvmeStatusError extends Error {
  readonly sct: number;
  readonly sc: number;
  readonly dnr: boolean;
  /** (sct << 8) | sc */
  readonly status: number;
  readonly dw0: number;
  constructor(cpl: Buffer, what: string) {
    const status = statusOf(cpl);
    super(`${what} failed: ${packedStatusToString(status)}`);
    this.name = 'NvmeStatusError';
    this.status = status;
    this.sct = statusSct(status);
    this.sc = statusSc(status);
    this.dnr = getDnr(cpl);
    this.dw0 = cpl.readUInt32LE(Cqe.DW0);
  }
}

/** A command could not be submitted: the queue is full, closed, or the transfer needs more commands than it holds. */
export class NvmeQueueError extends Error {
  /** 'full' | 'closed' | 'too-large' */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'NvmeQueueError';
    this.code = code;
  }
}

/** The TCP connection or the ICReq/ICResp exchange of a queue failed. */
export class TcpTransportError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'TcpTransportError';
    this.code = code;
  }
}

/** Why a queue refused a command, as an error: it is closed (and why) or full. */
export function queueRefusal(
  q: { closed: boolean; closeReason: string | null; outstanding: number; queueSize: number },
  what: string,
): NvmeQueueError {
  if (q.closed)
    return new NvmeQueueError('closed', `${what}: queue closed${q.closeReason ? ` (${q.closeReason})` : ''}`);
  return new NvmeQueueError(
    'full',
    `${what}: queue full (${q.outstanding} of ${q.queueSize} commands outstanding)`,
  );
}
