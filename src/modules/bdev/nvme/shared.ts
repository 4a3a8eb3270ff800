// What the record (app thread) and the replicas (every realm) of one attached
// controller share: the descriptor's plain parameters and a small
// SharedArrayBuffer the record updates with Atomics when the controller
// resets, reconnects (new cntlid) or is deleted. Replicas read it on their
// own I/O path, so a reconnect reaches every realm without a message.

import type { DhchapHostConfig, TransportId } from '../../../nvme/index.ts';

/** Slots of the shared Int32Array. */
export const Shared = {
  STATE: 0,
  /** bumped on every successful (re)connect of the admin queue */
  GENERATION: 1,
  CNTLID: 2,
  /** in-capsule data bytes for I/O queues (from IOCCSZ) */
  IN_CAPSULE: 3,
  /** entries per I/O queue (min(CAP.MQES + 1, our cap)) */
  QUEUE_SIZE: 4,
  /** I/O queues the remote granted (Number of Queues); 0 = not known */
  QUEUES_GRANTED: 5,
  SLOTS: 8,
} as const;

/** Shared.STATE values. */
export const CtrlrState = {
  ENABLED: 0,
  /** connection lost, reconnecting: I/O waits */
  RESETTING: 1,
  /** still reconnecting, but fast_io_fail_timeout_sec passed: I/O fails at once */
  FAIL_FAST: 2,
  /** detached or ctrlr_loss_timeout_sec passed: I/O fails, the bdevs are being removed */
  DELETED: 3,
} as const;

/** descriptor.params of an nvme bdev (structured-cloneable). */
export interface NvmeBdevParams {
  /** the bdev_nvme controller name (NAME of NAMEn1) */
  ctrlrName: string;
  /** unique per attach: realms key their shared queue by it, so a re-attach under the same name starts fresh */
  attachId: string;
  nsid: number;
  trid: TransportId;
  /** hex of the 16-byte host identifier used by the admin queue (I/O queues must send the same) */
  hostidHex: string;
  /** DH-HMAC-CHAP secrets the I/O queues authenticate with when the remote asks (null: none) */
  dhchap: DhchapHostConfig | null;
  /** ms between I/O queue reconnect attempts while the admin queue is up */
  retryDelayMs: number;
  connectTimeoutMs: number;
  /** Shared slots, see above */
  shared: SharedArrayBuffer;
  /** Identify Controller ONCS: which optional NVM commands the remote has (else the bdev layer emulates) */
  oncs: number;
  /** Identify Controller FUSES: bit 0 = fused compare and write */
  fuses: number;
  /** Identify Controller strings, for bdev_get_bdevs driver_specific */
  ctrlrData: {
    cntlid: number;
    vendorId: number;
    model: string;
    serial: string;
    firmware: string;
    subnqn: string;
  };
}

export function newSharedState(): SharedArrayBuffer {
  return new SharedArrayBuffer(Shared.SLOTS * 4);
}
