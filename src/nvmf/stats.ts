// What one poll group reports: its line of nvmf_get_stats (SPDK's fields, then
// the leak counters nvmf-ts adds, docs/reliability.md) and its queues in
// nvmf_subsystem_get_qpairs. The target gathers them by walking the poll
// groups (messages.ts); NvmfPollGroup fills them in.
import type { RealmMemory } from '../util/memory.ts';
import type { AuthInfo } from './auth.ts';
import type { TransportAddress } from './transport.ts';

/** One poll group in nvmf_get_stats. */
export interface PgStats {
  name: string;
  admin_qpairs: number;
  io_qpairs: number;
  current_admin_qpairs: number;
  current_io_qpairs: number;
  pending_bdev_io: number;
  completed_nvme_io: number;
  transports: { trtype: string; qpairs: number }[];
  /** controllers whose admin queue is on this poll group */
  controllers: number;
  /** connections the transports hold (before and after Connect) */
  current_qpairs: number;
  /** commands handed to the core and not completed (bdev I/O, AERs, paused) */
  outstanding_requests: number;
  /** I/O commands parked on paused subsystems */
  queued_requests: number;
  memory: RealmMemory;
  /** libuv handles and requests alive in this realm (process.getActiveResourcesInfo) */
  handles: number;
  /** DH-HMAC-CHAP transactions that succeeded here (re-authentications included) */
  dhchap_authentications: number;
  /** queues closed here because their authentication failed or timed out */
  dhchap_failures: number;
}

/** All counters at zero, for the poll group named `name`. */
export function newPgStats(name: string): PgStats {
  return {
    name,
    admin_qpairs: 0,
    io_qpairs: 0,
    current_admin_qpairs: 0,
    current_io_qpairs: 0,
    pending_bdev_io: 0,
    completed_nvme_io: 0,
    transports: [],
    controllers: 0,
    current_qpairs: 0,
    outstanding_requests: 0,
    queued_requests: 0,
    memory: { heap_used: 0, heap_total: 0, external: 0, array_buffers: 0, rss: 0 },
    handles: 0,
    dhchap_authentications: 0,
    dhchap_failures: 0,
  };
}

/** One connected queue in nvmf_subsystem_get_qpairs. */
export interface QpairInfo {
  cntlid: number;
  qid: number;
  state: string;
  thread: string;
  hostnqn: string;
  listen_address: TransportAddress;
  peer_address: TransportAddress;
  /** DH-HMAC-CHAP: the queue's authentication (SPDK's "auth" object), when it has one */
  auth?: AuthInfo;
}
