// bdev_nvme_set_options: SPDK's module-wide options, every one of them kept
// (those that take effect here and those accepted for SPDK configs) so that
// save_config writes them back before the attach calls, as SPDK does, and a
// replay restores them. The multipath defaults (multipath_opts) are what an
// attach without its own multipath_opts gets.

import { DHCHAP_DHGROUP_NAMES, DHCHAP_DIGEST_NAMES } from '../../../auth/index.ts';
import { DEFAULT_MULTIPATH, type MultipathConfig } from './shared.ts';

/** The options with SPDK v26.05's defaults, under SPDK's parameter names. */
export const nvmeOptions = {
  action_on_timeout: 'none',
  timeout_us: 0,
  timeout_admin_us: 0,
  /** keep alive timeout sent in Connect; a Keep Alive unanswered this long resets the controller */
  keep_alive_timeout_ms: 10000,
  arbitration_burst: 0,
  low_priority_weight: 0,
  medium_priority_weight: 0,
  high_priority_weight: 0,
  nvme_adminq_poll_period_us: 10000,
  nvme_ioq_poll_period_us: 0,
  io_queue_requests: 0,
  delay_cmd_submit: true,
  transport_retry_count: 4,
  bdev_retry_count: 3,
  transport_ack_timeout: 0,
  /** defaults of the attach parameters of the same names */
  ctrlr_loss_timeout_sec: 0,
  reconnect_delay_sec: 0,
  fast_io_fail_timeout_sec: 0,
  disable_auto_failback: false,
  generate_uuids: false,
  transport_tos: 0,
  nvme_error_stat: false,
  rdma_srq_size: 0,
  io_path_stat: false,
  allow_accel_sequence: false,
  rdma_max_cq_size: 0,
  rdma_cm_event_timeout_ms: 0,
  /** DH-HMAC-CHAP digests and DH groups an attach offers (SPDK's names; default all) */
  dhchap_digests: [...DHCHAP_DIGEST_NAMES],
  dhchap_dhgroups: [...DHCHAP_DHGROUP_NAMES],
  rdma_umr_per_io: false,
  tcp_connect_timeout_ms: 0,
  enable_flush: false,
  /** the multipath policy of an attach that names none */
  multipath: { ...DEFAULT_MULTIPATH } as MultipathConfig,
};

export type NvmeOptionName = Exclude<keyof typeof nvmeOptions, 'multipath'>;

/** SPDK's multipath_opts object: selector and min_io only where they apply. */
export function multipathOptsJson(m: MultipathConfig): Record<string, unknown> {
  if (m.policy !== 'active_active') return { policy: m.policy };
  if (m.selector !== 'round_robin') return { policy: m.policy, selector: m.selector };
  return { policy: m.policy, selector: m.selector, min_io: m.minIo };
}

/**
 * A multipath_opts object given to an RPC, over `base` (the members it leaves out keep their
 * value, as SPDK's decoder does). Returns the configuration, or the problem.
 */
export function mergeMultipathOpts(
  base: MultipathConfig,
  o: { policy?: string; selector?: string; min_io?: number } | undefined,
): MultipathConfig | string {
  const m: MultipathConfig = {
    policy: (o?.policy ?? base.policy) as MultipathConfig['policy'],
    selector: (o?.selector ?? base.selector) as MultipathConfig['selector'],
    minIo: o?.min_io ?? base.minIo,
  };
  if (m.policy === 'active_active' && m.selector === 'round_robin' && m.minIo === 0)
    return 'min_io must be non-zero';
  return m;
}

/** save_config: the bdev_nvme_set_options call with every option (SPDK's order). */
export function nvmeOptionsConfigJson(): { method: string; params: Record<string, unknown> } {
  const { multipath, ...rest } = nvmeOptions;
  const params: Record<string, unknown> = { ...rest };
  params.dhchap_digests = [...rest.dhchap_digests];
  params.dhchap_dhgroups = [...rest.dhchap_dhgroups];
  params.multipath_opts = multipathOptsJson(multipath);
  return { method: 'bdev_nvme_set_options', params };
}
