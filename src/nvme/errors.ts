// The host library's errors (docs/host-library.md, "Error model"; every code in
// docs/errors.md): a command that completed with an error status, a command
// that could not be submitted, a TCP connection that could not be set up, a
// controller that cannot be used as asked.

import { NvmfTsError } from '../util/errors.ts';
import { Cqe, getDnr, packedStatusToString, statusOf, statusSc, statusSct } from '../wire/nvme.ts';

/** A command completed with an error status. */
export class NvmeStatusError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_NVME_STATUS';
  readonly sct: number;
  readonly sc: number;
  readonly dnr: boolean;
  /** (sct << 8) | sc */
  readonly status: number;
  readonly dw0: number;
  constructor(cpl: Buffer, what: string) {
    const status = statusOf(cpl);
    super('NVMF_ERR_NVME_STATUS', `${what} failed: ${packedStatusToString(status)}`);
    this.status = status;
    this.sct = statusSct(status);
    this.sc = statusSc(status);
    this.dnr = getDnr(cpl);
    this.dw0 = cpl.readUInt32LE(Cqe.DW0);
  }
}

/** Why a queue refused a command (these codes predate the NVMF_ERR_ ones and stay as released). */
export type NvmeQueueErrorCode = 'full' | 'closed' | 'too-large';

/** A command could not be submitted: the queue is full, closed, or the transfer needs more commands than it holds. */
export class NvmeQueueError extends NvmfTsError {
  declare readonly code: NvmeQueueErrorCode;
  constructor(code: NvmeQueueErrorCode, message: string) {
    super(code, message);
  }
}

/** The TCP connection or the ICReq/ICResp exchange of a queue failed ('ECONNECT', as released). */
export class TcpTransportError extends NvmfTsError {
  declare readonly code: 'ECONNECT';
  constructor(code: 'ECONNECT', message: string) {
    super(code, message);
  }
}

/** What went wrong with a controller as a whole, rather than with one command. */
export type NvmeControllerErrorCode =
  | 'NVMF_ERR_CONTROLLER_FATAL'
  | 'NVMF_ERR_CONTROLLER_NOT_READY'
  | 'NVMF_ERR_CONTROLLER_DISCONNECTED'
  | 'NVMF_ERR_NO_IO_QUEUE'
  | 'NVMF_ERR_DISCOVERY_LOG_TOO_LARGE'
  | 'NVMF_ERR_DISCOVERY_LOG_UNSTABLE';

/**
 * A controller that cannot be used as asked: it reported a fatal status or
 * never became ready while enabling, it was disconnected, it granted no more
 * I/O queues, or its discovery log is too large or never stops changing.
 */
export class NvmeControllerError extends NvmfTsError {
  declare readonly code: NvmeControllerErrorCode;
  constructor(code: NvmeControllerErrorCode, message: string) {
    super(code, message);
  }
}

/**
 * DH-HMAC-CHAP on a queue did not succeed. `reason` is the AUTH_Failure reason code
 * explanation (wire/auth.ts AuthFailure) when the controller sent one (`by` 'controller') or
 * when the host refused the controller (`by` 'host'); 0 when no exchange took place (no secret
 * for a controller that requires one, secure channel concatenation asked for).
 */
export class NvmeAuthError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_AUTH';
  readonly qid: number;
  readonly reason: number;
  readonly by: 'controller' | 'host' | 'none';
  constructor(qid: number, by: 'controller' | 'host' | 'none', reason: number, message: string) {
    super('NVMF_ERR_AUTH', `qid ${qid}: ${message}`);
    this.qid = qid;
    this.by = by;
    this.reason = reason;
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
