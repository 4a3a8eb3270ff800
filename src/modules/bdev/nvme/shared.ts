// What the record (app thread) and the replicas (every realm) of one attached
// controller share: the descriptor's plain parameters and a small
// SharedArrayBuffer the record updates with Atomics when the controller
// resets, reconnects (new cntlid) or is deleted. Replicas read it on their
// own I/O path, so a reconnect reaches every realm without a message.
// Each namespace's bdev also has a small SharedArrayBuffer of ANA states, one
// byte per path (by the path's index), which the record writes when it reads a
// path's ANA log page and the realms read when they choose a path.

import type { DhchapHostConfig, TransportId } from '../../../nvme/index.ts';
import type { ThreadRef } from '../../../thread/index.ts';
import { AnaState } from '../../../wire/log.ts';

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

/** Paths one controller can have (the size of a bdev's ANA state array). */
export const MAX_PATHS = 32;

/** An ANA state through which I/O can go (SPDK's "accessible"). */
export function anaAccessible(state: number): boolean {
  return state === AnaState.optimized || state === AnaState.non_optimized;
}

/** SPDK's names of the ANA states (ns_data.ana_state of bdev_get_bdevs). */
export function anaStateName(state: number): string {
  for (const [name, v] of Object.entries(AnaState)) if (v === state) return name;
  return 'change';
}

/** A bdev's ANA states, one byte per path index, all optimized until a path's ANA log says otherwise. */
export function newAnaStates(): SharedArrayBuffer {
  const buf = new SharedArrayBuffer(MAX_PATHS);
  new Uint8Array(buf).fill(AnaState.optimized);
  return buf;
}

export type MultipathPolicyName = 'active_passive' | 'active_active';
export type MultipathSelectorName = 'round_robin' | 'queue_depth';

/** How a bdev with several paths chooses one (SPDK's mp_policy, selector, rr_min_io). */
export interface MultipathConfig {
  policy: MultipathPolicyName;
  /** active_active only */
  selector: MultipathSelectorName;
  /** round_robin: I/Os sent on a path before the next one takes over */
  minIo: number;
}

/** SPDK's default: active_passive (selector round_robin, min_io 1, which only active_active uses). */
export const DEFAULT_MULTIPATH: MultipathConfig = {
  policy: 'active_passive',
  selector: 'round_robin',
  minIo: 1,
};

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
  /** this path's index into `ana` (0: the first path) */
  pathIndex: number;
  /** this namespace's ANA state through each path (by path index; newAnaStates) */
  ana: SharedArrayBuffer;
  /** the multipath policy the bdev starts with (bdev_nvme_set_multipath_policy changes it in every realm) */
  multipath: MultipathConfig;
  /**
   * bdev_nvme_set_options disable_auto_failback false: active_passive goes back to an earlier
   * path as soon as it is usable again; true: it stays on the path it failed over to until that
   * fails, an ANA state changes or bdev_nvme_set_preferred_path is called (SPDK's io path cache)
   */
  autoFailback: boolean;
  /** bdev_nvme_set_options io_path_stat: each path's queue counts this namespace's I/O (bdev_nvme_get_path_iostat) */
  ioPathStat: boolean;
  /** the record's thread (the app thread): realms tell it when a path answered with an ANA error */
  recordThread: ThreadRef;
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
    /** Identify Controller CMIC bit 3: the remote reports ANA states */
    anaReporting: boolean;
  };
}

export function newSharedState(): SharedArrayBuffer {
  return new SharedArrayBuffer(Shared.SLOTS * 4);
}
