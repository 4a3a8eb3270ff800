// The NVMe-oF target on the app thread: registry of record for transports,
// subsystems, listeners, controller IDs and discovery state; the start-up and
// shutdown state machine; the acceptor that spreads connections over poll
// groups by the I/O queues they serve. Poll groups learn every change through
// forEachChannel.

import type { Socket } from 'node:net';
import { dhchapHashId, dhGroupId } from '../auth/index.ts';
import { bdevClaimByName, bdevGetRecord, bdevGetReplica, bdevReleaseClaimByName } from '../bdev/index.ts';
import { type DhchapSecret, type KeyRef, parseDhchapSecret } from '../keyring/index.ts';
import { currentThread, forEachChannel, sendMsg, spawnThread, type ThreadRef } from '../thread/index.ts';
import { logger } from '../util/log.ts';
import { DISCOVERY_NQN } from '../wire/discovery.ts';
import { GenericStatus } from '../wire/nvme.ts';
import type { ResvNotifyType } from '../wire/reservation.ts';
import { admitAdminConnect, admitIoConnect, type CtrlrRecord } from './connect.ts';
import { type Referral, referralEntry } from './discovery-log.ts';
import { NvmfError } from './errors.ts';
import { type HostPsk, loadHostPsk } from './host-psk.ts';
import type { IoWalk, PgIoSnapshot } from './io-stats.ts';
import {
  type AbortRequest,
  type AddTransportWalk,
  type AdminConnectRequest,
  type BdevRemoved,
  type ControllerId,
  type DhchapKeysRequest,
  type IoConnectRequest,
  type IoQueueId,
  NVMF_TGT_DEVICE,
  type OutstandingWalk,
  overPollGroups,
  type PreemptAbortWalk,
  type PreemptWaitWalk,
  type QpairsWalk,
  type ResvCommand,
  type StatsWalk,
  setTargetInbox,
  type TargetInbox,
  type TargetReply,
  type TargetSnapshot,
  type TlsPskEntry,
  toPollGroup,
} from './messages.ts';
import { type ReservationEffects, ReservationOwner } from './reservation-owner.ts';
import type { PgStats, QpairInfo } from './stats.ts';
import {
  type HostKeys,
  NvmfSubsystem,
  nqnError,
  SubsystemState,
  SubsystemType,
  sameAddress,
} from './subsystem.ts';
import {
  getTransport,
  type TransportAddress,
  type TransportListener,
  type TransportOptions,
} from './transport.ts';

const log = logger('nvmf');

export const TgtState = {
  INIT: 'INIT',
  CREATE_TARGET: 'CREATE_TARGET',
  CREATE_POLL_GROUPS: 'CREATE_POLL_GROUPS',
  START_SUBSYSTEMS: 'START_SUBSYSTEMS',
  RUNNING: 'RUNNING',
  FINI_STOP_SUBSYSTEMS: 'FINI_STOP_SUBSYSTEMS',
  FINI_DESTROY_SUBSYSTEMS: 'FINI_DESTROY_SUBSYSTEMS',
  FINI_DESTROY_POLL_GROUPS: 'FINI_DESTROY_POLL_GROUPS',
  FINI_DESTROY_TARGET: 'FINI_DESTROY_TARGET',
  STOPPED: 'STOPPED',
  ERROR: 'ERROR',
} as const;
export type TgtState = (typeof TgtState)[keyof typeof TgtState];

export interface NvmfConfig {
  discovery_filter: string;
  admin_cmd_passthru: Record<string, boolean>;
  dhchap_digests: string[];
  dhchap_dhgroups: string[];
  dup_host_policy: string;
}

interface ListenerEntry {
  address: TransportAddress;
  handle: TransportListener;
  /** subsystems listening on it */
  users: Set<string>;
  /** TLS first (nvmf_subsystem_add_listener --secure-channel): the whole port, whoever listens */
  secureChannel: boolean;
}

/** The claim an exported bdev carries (SPDK's module name in bdev_get_bdevs). */
const NVMF_CLAIM_OWNER = 'NVMe-oF Target';

function releaseNamespaceClaim(bdevName: string): void {
  if (bdevGetRecord(bdevName)?.claimedBy === NVMF_CLAIM_OWNER) bdevReleaseClaimByName(bdevName);
}

/** The host PSKs of every subsystem, as the poll groups look identities up. */
function tlsPskEntries(subsystems: Iterable<NvmfSubsystem>): TlsPskEntry[] {
  const out: TlsPskEntry[] = [];
  for (const s of subsystems) {
    for (const [hostnqn, hp] of s.hostPsks) {
      for (const p of hp.psks) out.push({ identity: p.identity, hostnqn, subnqn: s.nqn, psk: p.psk });
    }
  }
  return out;
}

function releaseHostPsks(s: NvmfSubsystem): void {
  for (const hp of s.hostPsks.values()) hp.ref.put();
  s.hostPsks.clear();
}

function addrKey(a: TransportAddress): string {
  return `${a.trtype.toUpperCase()}|${a.adrfam.toUpperCase()}|${a.traddr}|${a.trsvcid}`;
}

/** How often, and how long, a Preempt and Abort waits for the preempted commands (SPDK: 100 ms, 10 s). */
const PREEMPT_CHECK_MS = 100;
const PREEMPT_WAIT_MS = 10_000;

export class NvmfTarget implements TargetInbox, ReservationEffects {
  state: TgtState = TgtState.INIT;
  readonly appThread: ThreadRef;
  readonly subsystems = new Map<string, NvmfSubsystem>();
  readonly transports = new Map<string, TransportOptions>();
  readonly listeners = new Map<string, ListenerEntry>();
  readonly ctrlrs = new Map<number, CtrlrRecord>();
  readonly referrals: Referral[] = [];
  pollGroups: ThreadRef[] = [];
  maxSubsystems = 1024;
  crdt = [0, 0, 0];
  config: NvmfConfig = {
    discovery_filter: 'match_any',
    admin_cmd_passthru: {
      identify_ctrlr: false,
      identify_uuid_list: false,
      get_log_page: false,
      get_set_features: false,
      sanitize: false,
      security_send_recv: false,
      fw_update: false,
      nvme_mi: false,
      vendor_specific: false,
    },
    dhchap_digests: ['sha256', 'sha384', 'sha512'],
    dhchap_dhgroups: ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'],
    dup_host_policy: 'allow',
  };
  genctr = 0;
  /** advertise CAP.CSS bit 6, I/O command sets (nvmf_set_config cap_css_iocs; SPDK does only
   * with ZNS namespaces, so it is off by default) */
  capCssIocs = false;
  /** every namespace's reservation (this thread owns them) */
  readonly reservations: ReservationOwner;
  private snapshotVersion = 0;
  /** where the acceptor's search for the least loaded poll group starts (ties go in turn) */
  private rr = 0;
  private nextCntlid = 1;
  private nextPreemptToken = 1;

  constructor() {
    this.appThread = currentThread().ref;
    this.reservations = new ReservationOwner(this);
  }

  private setState(s: TgtState): void {
    log.info(`nvmf target state ${this.state} -> ${s}`);
    this.state = s;
  }

  // ------------------------------------------------------------ lifecycle

  /** CREATE_TARGET → CREATE_POLL_GROUPS → START_SUBSYSTEMS → RUNNING */
  async start(reactorCount: number): Promise<void> {
    try {
      this.setState(TgtState.CREATE_TARGET);
      const disc = new NvmfSubsystem({
        nqn: DISCOVERY_NQN,
        subtype: SubsystemType.DISCOVERY,
        serial: '',
        model: '',
        allowAnyHost: true,
        maxNamespaces: 0,
        minCntlid: 1,
        maxCntlid: 0xffef,
        anaReporting: false,
      });
      disc.state = SubsystemState.ACTIVE;
      this.subsystems.set(DISCOVERY_NQN, disc);
      this.setState(TgtState.CREATE_POLL_GROUPS);
      const refs: ThreadRef[] = [];
      for (let r = 0; r < reactorCount; r++) {
        refs.push(
          await new Promise<ThreadRef>((resolve) => spawnThread(`nvmf_tgt_poll_group_${r}`, r, resolve)),
        );
      }
      for (const ref of refs) {
        await this.call(ref, (token) => {
          sendMsg(ref, toPollGroup.create, {
            token,
            appThread: this.appThread,
            transports: [...this.transports.values()],
            snapshot: null,
          });
        });
      }
      this.pollGroups = refs;
      this.setState(TgtState.START_SUBSYSTEMS);
      for (const s of this.subsystems.values())
        if (s.state === SubsystemState.INACTIVE) s.state = SubsystemState.ACTIVE;
      await this.sync();
      this.setState(TgtState.RUNNING);
    } catch (e) {
      this.setState(TgtState.ERROR);
      throw e;
    }
  }

  /** FINI_STOP_SUBSYSTEMS → FINI_DESTROY_SUBSYSTEMS → FINI_DESTROY_POLL_GROUPS → FINI_DESTROY_TARGET → STOPPED */
  async stop(): Promise<void> {
    try {
      this.setState(TgtState.FINI_STOP_SUBSYSTEMS);
      // inactive subsystems make every poll group disconnect their queues
      for (const s of this.subsystems.values()) s.state = SubsystemState.INACTIVE;
      if (this.pollGroups.length > 0) await this.sync();
      // a net.Server's close waits for its connections; bound the wait
      await Promise.all(
        [...this.listeners.values()].map((l) =>
          Promise.race([l.handle.close().catch(() => {}), new Promise((r) => setTimeout(r, 500).unref())]),
        ),
      );
      this.listeners.clear();
      this.setState(TgtState.FINI_DESTROY_SUBSYSTEMS);
      for (const s of this.subsystems.values()) {
        releaseHostPsks(s);
        for (const h of [...s.hostKeys.keys()]) s.setHostKeys(h, null);
      }
      this.subsystems.clear();
      if (this.pollGroups.length > 0) await this.sync();
      this.setState(TgtState.FINI_DESTROY_POLL_GROUPS);
      for (const ref of this.pollGroups) {
        await this.call(ref, (token) =>
          sendMsg(ref, toPollGroup.destroy, { token, appThread: this.appThread }),
        );
      }
      this.pollGroups = [];
      this.setState(TgtState.FINI_DESTROY_TARGET);
      this.ctrlrs.clear();
      this.transports.clear();
      this.setState(TgtState.STOPPED);
    } catch (e) {
      this.setState(TgtState.ERROR);
      throw e;
    }
  }

  // ------------------------------------------------------------ messaging helpers

  private readonly waiters = new Map<number, (v: unknown) => void>();
  private nextToken = 1;

  /** Send something that answers with toTarget.reply {token}; resolves with its value. */
  call<T = unknown>(_to: ThreadRef, send: (token: number) => void): Promise<T> {
    const token = this.nextToken++;
    return new Promise<T>((resolve) => {
      this.waiters.set(token, resolve as (v: unknown) => void);
      send(token);
    });
  }

  reply(m: TargetReply): void {
    const w = this.waiters.get(m.token);
    if (w === undefined) return;
    this.waiters.delete(m.token);
    w(m.value);
  }

  /** Push the current state of every subsystem to every poll group. */
  sync(): Promise<void> {
    const snap: TargetSnapshot = {
      version: ++this.snapshotVersion,
      views: [...this.subsystems.values()].map((s) => s.view()),
      genctr: this.genctr,
      referrals: this.referrals.map((r) => referralEntry(r)),
      discoveryFilter: this.config.discovery_filter,
      capCssIocs: this.capCssIocs,
      dhchapDigests: this.config.dhchap_digests.map((d) => dhchapHashId(d) ?? -1).filter((i) => i >= 0),
      dhchapDhgroups: this.config.dhchap_dhgroups.map((g) => dhGroupId(g) ?? -1).filter((i) => i >= 0),
      tlsPsks: tlsPskEntries(this.subsystems.values()),
    };
    return new Promise((resolve) =>
      forEachChannel(NVMF_TGT_DEVICE, overPollGroups.snapshot, snap, () => resolve()),
    );
  }

  /** A change visible in the discovery log: bump the generation counter and sync. */
  private changed(discoveryVisible: boolean): Promise<void> {
    if (discoveryVisible) this.genctr++;
    return this.sync();
  }

  // ------------------------------------------------------------ transports

  async createTransport(opts: TransportOptions): Promise<void> {
    const key = opts.trtype.toUpperCase();
    if (this.transports.has(key)) throw new NvmfError(`Transport type '${opts.trtype}' already exists`, -17);
    const plugin = getTransport(key);
    if (plugin === undefined) throw new NvmfError(`Transport type '${opts.trtype}' is not supported`);
    const unavailable = plugin.unavailable?.() ?? null;
    if (unavailable !== null) throw new NvmfError(unavailable, -19);
    this.transports.set(key, opts);
    if (this.pollGroups.length === 0) return;
    const r = await new Promise<{ ctx: AddTransportWalk; status: number }>((resolve) =>
      forEachChannel(NVMF_TGT_DEVICE, overPollGroups.addTransport, { opts, error: null }, resolve),
    );
    if (r.status !== 0) {
      this.transports.delete(key);
      throw new NvmfError(`cannot create transport ${opts.trtype}: ${r.ctx.error}`);
    }
    log.notice(`*** ${key} Transport Init ***`);
  }

  // ------------------------------------------------------------ subsystems

  getSubsystem(nqn: string): NvmfSubsystem {
    const s = this.subsystems.get(nqn);
    if (s === undefined) throw new NvmfError(`Unable to find subsystem with NQN ${nqn}`, -19);
    return s;
  }

  async createSubsystem(o: {
    nqn: string;
    serial: string;
    model: string;
    allowAnyHost: boolean;
    maxNamespaces: number;
    minCntlid: number;
    maxCntlid: number;
    anaReporting: boolean;
  }): Promise<NvmfSubsystem> {
    const err = nqnError(o.nqn);
    if (err !== null) throw new NvmfError(`Unable to create subsystem ${o.nqn}: ${err}`);
    if (this.subsystems.has(o.nqn))
      throw new NvmfError(`Unable to create subsystem ${o.nqn}: already exists`, -17);
    if (o.nqn === DISCOVERY_NQN) throw new NvmfError('the discovery subsystem exists already', -17);
    if (this.subsystems.size >= this.maxSubsystems) throw new NvmfError('too many subsystems', -28);
    if (o.serial.length > 20 || !/^[\x20-\x7e]*$/.test(o.serial))
      throw new NvmfError(`Subsystem ${o.nqn}: invalid serial number ${o.serial}`);
    if (o.model.length > 40 || !/^[\x20-\x7e]*$/.test(o.model))
      throw new NvmfError(`Subsystem ${o.nqn}: invalid model number ${o.model}`);
    if (o.minCntlid < 1 || o.maxCntlid > 0xffef || o.minCntlid > o.maxCntlid)
      throw new NvmfError('invalid cntlid range');
    const s = new NvmfSubsystem({ ...o, subtype: SubsystemType.NVME });
    this.subsystems.set(o.nqn, s);
    // SPDK starts new subsystems right away once the target runs
    if (this.state === TgtState.RUNNING) s.state = SubsystemState.ACTIVE;
    await this.changed(true);
    log.info(`subsystem ${o.nqn} created`);
    return s;
  }

  async deleteSubsystem(nqn: string): Promise<void> {
    if (nqn === DISCOVERY_NQN) throw new NvmfError('the discovery subsystem cannot be deleted');
    const s = this.getSubsystem(nqn);
    s.state = SubsystemState.INACTIVE;
    await this.sync();
    this.subsystems.delete(nqn);
    this.reservations.removeSubsystem(s);
    for (const h of [...s.hostKeys.keys()]) s.setHostKeys(h, null);
    releaseHostPsks(s);
    for (const ns of s.namespaces.values()) releaseNamespaceClaim(ns.bdevName);
    for (const l of s.listeners) await this.releaseListener(l.address, nqn);
    await this.changed(true);
  }

  /**
   * SPDK's pause: new I/O to the subsystem waits in the poll groups (queued, not failed), admin
   * commands go on; resolves once the I/O already handed to bdevs has drained (bounded by
   * `drainTimeoutMs`: past it the subsystem stays paused and the call fails naming the count).
   */
  async pauseSubsystem(nqn: string, drainTimeoutMs = 30_000): Promise<void> {
    if (nqn === DISCOVERY_NQN) throw new NvmfError('the discovery subsystem cannot be paused');
    const s = this.getSubsystem(nqn);
    if (s.state === SubsystemState.INACTIVE) throw new NvmfError(`subsystem ${nqn} is not active`, -16);
    s.state = SubsystemState.PAUSED;
    await this.sync();
    const deadline = Date.now() + drainTimeoutMs;
    for (;;) {
      const n = await this.subsystemOutstanding(nqn);
      if (n === 0) break;
      if (Date.now() > deadline)
        throw new NvmfError(`subsystem ${nqn} paused but ${n} I/O still outstanding`, -110);
      await new Promise((r) => setTimeout(r, 5));
    }
    log.info(`subsystem ${nqn} paused`);
  }

  async resumeSubsystem(nqn: string): Promise<void> {
    const s = this.getSubsystem(nqn);
    if (s.state !== SubsystemState.PAUSED) throw new NvmfError(`subsystem ${nqn} is not paused`, -16);
    s.state = SubsystemState.ACTIVE;
    await this.sync();
    log.info(`subsystem ${nqn} resumed`);
  }

  /** bdev I/O in flight on every poll group for subsystem `nqn`. */
  async subsystemOutstanding(nqn: string): Promise<number> {
    const r = await new Promise<{ ctx: OutstandingWalk; status: number }>((resolve) =>
      forEachChannel(NVMF_TGT_DEVICE, overPollGroups.subsystemOutstanding, { nqn, outstanding: 0 }, resolve),
    );
    return r.ctx.outstanding;
  }

  async setSubsystemState(nqn: string, state: SubsystemState): Promise<void> {
    const s = this.getSubsystem(nqn);
    s.state = state;
    await this.sync();
  }

  async addNamespace(nqn: string, o: Parameters<NvmfSubsystem['addNamespace']>[0]): Promise<number> {
    const s = this.getSubsystem(nqn);
    if (s.subtype !== SubsystemType.NVME) throw new NvmfError('namespaces belong to NVM subsystems only');
    const bdev = bdevGetReplica(o.bdevName);
    if (bdev === undefined) throw new NvmfError(`bdev ${o.bdevName} cannot be opened, error=-19`, -19);
    // as SPDK: the namespace takes the bdev's UUID unless one is given
    if (o.uuid === undefined && o.nguid === undefined && bdev.uuid) o = { ...o, uuid: bdev.uuid };
    let ns: ReturnType<NvmfSubsystem['addNamespace']>;
    // as SPDK: an exported bdev is claimed, so it cannot be exported twice or stacked on
    try {
      bdevClaimByName(o.bdevName, NVMF_CLAIM_OWNER);
    } catch (e) {
      throw new NvmfError(`Unable to add namespace: ${(e as Error).message}`, -16);
    }
    try {
      ns = s.addNamespace(o);
    } catch (e) {
      bdevReleaseClaimByName(o.bdevName);
      throw new NvmfError((e as Error).message);
    }
    try {
      // its reservation, restored from the PTPL file (SPDK keys the file by the bdev's UUID)
      await this.reservations.addNamespace(s, ns.nsid, ns.ptplFile, bdev.uuid ?? ns.uuid);
    } catch (e) {
      s.namespaces.delete(ns.nsid);
      bdevReleaseClaimByName(o.bdevName);
      throw e;
    }
    await this.sync();
    log.info(`namespace ${ns.nsid} (bdev ${ns.bdevName}) added to ${nqn}`);
    return ns.nsid;
  }

  async removeNamespace(nqn: string, nsid: number): Promise<void> {
    const s = this.getSubsystem(nqn);
    const ns = s.namespaces.get(nsid);
    if (ns === undefined || !s.namespaces.delete(nsid)) {
      throw new NvmfError(`Invalid parameters: no namespace ${nsid} in ${nqn}`);
    }
    releaseNamespaceClaim(ns.bdevName);
    this.reservations.removeNamespace(s, nsid);
    await this.sync();
  }

  /**
   * nvmf_ns_add_host / nvmf_ns_remove_host (SPDK's nvmf_ns_visible): namespace `nsid`, added
   * with no_auto_visible, becomes visible (or not) to the controllers of `host`; the live ones
   * get a Namespace Attribute Changed notice when the snapshot reaches their poll group.
   * Adding a host already there (or removing one that is not) changes nothing, as in SPDK.
   */
  async setNamespaceVisible(nqn: string, nsid: number, host: string, visible: boolean): Promise<void> {
    const s = this.getSubsystem(nqn);
    const what = `${visible ? 'add' : 'remove'} host ${host} ${visible ? 'to' : 'from'} namespace ${nsid} of ${nqn}`;
    const err = nqnError(host);
    if (err !== null) throw new NvmfError(`Unable to ${what}: invalid host NQN: ${err}`, -32602);
    if (nsid < 1 || nsid > s.maxNamespaces)
      throw new NvmfError(`Unable to ${what}: NSID must be 1..${s.maxNamespaces}`, -32602);
    const ns = s.namespaces.get(nsid);
    if (ns === undefined) throw new NvmfError(`Unable to ${what}: no such namespace`, -32602);
    if (!ns.noAutoVisible)
      throw new NvmfError(
        `Unable to ${what}: the namespace is visible to every host (added without no_auto_visible)`,
        -32602,
      );
    const i = ns.hosts.indexOf(host);
    if (visible && i < 0) ns.hosts.push(host);
    else if (!visible && i >= 0) ns.hosts.splice(i, 1);
    else return;
    await this.sync();
    log.info(`namespace ${nsid} of ${nqn} ${visible ? 'visible to' : 'hidden from'} host ${host}`);
  }

  /**
   * Allow `host`. `o.psk`: the keyring name of the host's TLS PSK for this subsystem (SPDK's
   * `psk`); `o.keys`: DH-HMAC-CHAP keys (the subsystem then owns the references), the host must
   * then authenticate.
   */
  async addHost(nqn: string, host: string, o: { psk?: string; keys?: HostKeys } = {}): Promise<void> {
    const s = this.getSubsystem(nqn);
    const err = nqnError(host);
    if (err !== null) throw new NvmfError(`invalid host NQN: ${err}`);
    // SPDK refuses a host already on the list (-EINVAL); we name it
    if (s.hosts.has(host)) throw new NvmfError(`Unable to add host ${host}: already on the list of ${nqn}`);
    if (o.keys !== undefined) checkHostKeys(o.keys);
    const psk: HostPsk | null = o.psk === undefined ? null : loadHostPsk(o.psk, host, nqn);
    s.hosts.add(host);
    if (psk !== null) s.hostPsks.set(host, psk);
    if (o.keys !== undefined) s.setHostKeys(host, o.keys);
    await this.changed(true);
  }

  /**
   * nvmf_subsystem_set_keys: a listed host's keys become `keys` (null members: none), used from
   * its next authentication on; the subsystem owns the new references, the old ones are released.
   */
  async setHostKeys(nqn: string, host: string, keys: HostKeys): Promise<void> {
    const s = this.getSubsystem(nqn);
    if (!s.hosts.has(host))
      throw new NvmfError(`Unable to set keys: host ${host} is not on the list of ${nqn}`);
    checkHostKeys(keys);
    s.setHostKeys(host, keys);
    await this.sync();
  }

  /** nvmf_set_config: the DH-HMAC-CHAP digests and DH groups (SPDK's names) the target allows. */
  async setDhchapConfig(digests: string[] | undefined, dhgroups: string[] | undefined): Promise<void> {
    for (const d of digests ?? [])
      if (dhchapHashId(d) === undefined) throw new NvmfError(`unknown DH-HMAC-CHAP digest '${d}'`);
    for (const g of dhgroups ?? [])
      if (dhGroupId(g) === undefined) throw new NvmfError(`unknown DH-HMAC-CHAP DH group '${g}'`);
    if (digests !== undefined) this.config.dhchap_digests = [...digests];
    if (dhgroups !== undefined) this.config.dhchap_dhgroups = [...dhgroups];
    if (this.pollGroups.length > 0) await this.sync();
  }

  async removeHost(nqn: string, host: string): Promise<void> {
    const s = this.getSubsystem(nqn);
    // SPDK fails a host that is not on the list too (-ENOENT); we name it
    if (!s.hosts.delete(host))
      throw new NvmfError(`Unable to remove host ${host}: not on the list of ${nqn}`, -2);
    s.setHostKeys(host, null);
    s.hostPsks.get(host)?.ref.put();
    s.hostPsks.delete(host);
    await this.changed(true);
  }

  async allowAnyHost(nqn: string, allow: boolean): Promise<void> {
    const s = this.getSubsystem(nqn);
    s.allowAnyHost = allow;
    await this.changed(true);
  }

  // ------------------------------------------------------------ listeners

  async addListener(
    nqn: string,
    address: TransportAddress,
    anaState = 'optimized',
    secureChannel = false,
  ): Promise<void> {
    const s = this.getSubsystem(nqn);
    const plugin = getTransport(address.trtype);
    const opts = this.transports.get(address.trtype.toUpperCase());
    if (plugin === undefined || opts === undefined) {
      throw new NvmfError(
        `Unable to find ${address.trtype} transport. The transport must be created first also make sure it is properly registered.`,
      );
    }
    if (s.findListener(address) !== undefined) throw new NvmfError(`Listener already exists`, -17);
    // an IP port out of range is a bad parameter, not an address in use (Node would say EADDRINUSE)
    if (address.adrfam === 'IPv4' || address.adrfam === 'IPv6') {
      const port = Number(address.trsvcid);
      if (!/^\d+$/.test(address.trsvcid) || port < 1 || port > 65535)
        throw new NvmfError(`Invalid port ${address.trsvcid}: a ${address.trtype} port is 1 to 65535`, -22);
    }
    // as SPDK: TLS admits the hosts that have a PSK, which "any host" contradicts
    if (secureChannel && s.allowAnyHost)
      throw new NvmfError("Cannot establish secure channel, when 'allow_any_host' is set", -32603);
    const key = addrKey(address);
    let entry = this.listeners.get(key);
    if (entry !== undefined && entry.secureChannel !== secureChannel) {
      // a port either does TLS first or not: one subsystem cannot change it for the others
      throw new NvmfError(
        `Listener ${address.traddr}:${address.trsvcid} exists ${entry.secureChannel ? 'with' : 'without'} a secure channel (used by ${[...entry.users].join(', ')})`,
      );
    }
    if (entry === undefined) {
      if (secureChannel) {
        if (plugin.checkSecureChannel === undefined)
          throw new NvmfError(`transport ${address.trtype} has no secure channel`, -95);
        try {
          await plugin.checkSecureChannel();
        } catch (e) {
          throw new NvmfError(`Unable to listen with a secure channel: ${(e as Error).message}`, -95);
        }
      }
      let handle: TransportListener;
      try {
        handle = await plugin.listen(
          address,
          opts,
          (sock) => this.accept(sock, address, secureChannel),
          (conn) => this.acceptConnection(conn, address),
        );
      } catch (e) {
        throw new NvmfError(
          `Unable to listen on address ${address.traddr}:${address.trsvcid}: ${(e as Error).message}`,
          -98,
        );
      }
      entry = { address: { ...address }, handle, users: new Set(), secureChannel };
      this.listeners.set(key, entry);
      log.notice(
        `*** NVMe/${address.trtype.toUpperCase()} Target Listening on ${address.traddr} port ${address.trsvcid}${secureChannel ? ' (secure channel: TLS 1.3)' : ''} ***`,
      );
    }
    entry.users.add(nqn);
    s.listeners.push({ address: { ...address }, anaState, secureChannel });
    await this.changed(true);
    log.notice(`host command: ${hostCommand(nqn, address, secureChannel)}`);
  }

  async removeListener(nqn: string, address: TransportAddress): Promise<void> {
    const s = this.getSubsystem(nqn);
    const i = s.listeners.findIndex((l) => sameAddress(l.address, address));
    if (i < 0) throw new NvmfError('Unable to find listener.', -2);
    s.listeners.splice(i, 1);
    // poll groups first disconnect the queues that came through it (SPDK does), then it closes
    await this.changed(true);
    await this.releaseListener(address, nqn);
  }

  private async releaseListener(address: TransportAddress, nqn: string): Promise<void> {
    const key = addrKey(address);
    const entry = this.listeners.get(key);
    if (entry === undefined) return;
    entry.users.delete(nqn);
    if (entry.users.size === 0) {
      this.listeners.delete(key);
      // the port stops accepting at once; a net.Server's close callback also waits for its
      // connections (some moved to other realms, where it never sees them end): bound the wait
      await Promise.race([
        entry.handle.close().catch(() => {}),
        new Promise((r) => setTimeout(r, 500).unref()),
      ]);
    }
  }

  private accept(socket: Socket, address: TransportAddress, secureChannel: boolean): void {
    if (this.pollGroups.length === 0) {
      socket.destroy();
      return;
    }
    const ref = this.leastLoadedPollGroup();
    // moved, not copied, when the poll group lives in another realm; TLS starts there
    sendMsg(
      ref,
      toPollGroup.addSocket,
      { socket, listenAddr: { ...address }, secureChannel },
      ref.reactor === this.appThread.reactor ? undefined : [socket as never],
    );
  }

  /**
   * Where a new connection goes: the poll group serving the fewest I/O queues (admin queues
   * do not count: they carry little), ties taken in turn. Whether the connection will be an
   * admin or an I/O queue is only known at its Connect, so the count is of the queues admitted
   * so far (each controller's record), which a host connecting its queues one after another
   * has updated before its next connection arrives.
   */
  private leastLoadedPollGroup(): ThreadRef {
    const groups = this.pollGroups;
    const load = new Array<number>(groups.length).fill(0);
    for (const c of this.ctrlrs.values()) {
      for (const ref of c.ioQueues.values()) {
        const i = groups.findIndex((g) => g.id === ref.id);
        if (i >= 0) load[i]++;
      }
    }
    let best = -1;
    for (let k = 0; k < groups.length; k++) {
      const i = (this.rr + k) % groups.length;
      if (best < 0 || load[i] < load[best]) best = i;
    }
    this.rr = best + 1;
    return groups[best];
  }

  /** A connection of a transport without sockets: placed like sockets, as plain data. */
  private acceptConnection(conn: unknown, address: TransportAddress): void {
    if (this.pollGroups.length === 0) return;
    const ref = this.leastLoadedPollGroup();
    sendMsg(ref, toPollGroup.addConnection, { conn, listenAddr: { ...address } });
  }

  // ------------------------------------------------------------ referrals

  async addReferral(r: Referral): Promise<void> {
    if (this.referrals.some((x) => sameAddress(x.address, r.address) && x.subnqn === r.subnqn)) {
      throw new NvmfError('Referral already exists', -17);
    }
    this.referrals.push(r);
    await this.changed(true);
  }

  async removeReferral(address: TransportAddress, subnqn: string): Promise<void> {
    const i = this.referrals.findIndex((x) => sameAddress(x.address, address) && x.subnqn === subnqn);
    if (i < 0) throw new NvmfError('Referral not found', -2);
    this.referrals.splice(i, 1);
    await this.changed(true);
  }

  async setAnaState(nqn: string, address: TransportAddress, state: string): Promise<void> {
    const s = this.getSubsystem(nqn);
    const l = s.findListener(address);
    if (l === undefined) throw new NvmfError('Unable to find listener.', -2);
    if (l.anaState === state) return;
    l.anaState = state;
    s.anaChangeCount++;
    await this.sync();
  }

  async setDiscoveryFilter(f: string): Promise<void> {
    this.config.discovery_filter = f;
    await this.sync();
  }

  // ------------------------------------------------------------ controllers (messages from poll groups)

  adminConnect(m: AdminConnectRequest): void {
    const cntlid = admitAdminConnect(this.ctrlrs, this.subsystems.get(m.subnqn), this.nextCntlid, m);
    if (cntlid > 0) this.nextCntlid = cntlid + 1;
    sendMsg(m.pg, toPollGroup.adminConnectDone, { token: m.token, cntlid });
  }

  ioConnect(m: IoConnectRequest): void {
    sendMsg(m.pg, toPollGroup.ioConnectDone, admitIoConnect(this.ctrlrs, m));
  }

  ctrlrEnabled(m: ControllerId): void {
    const c = this.ctrlrs.get(m.cntlid);
    if (c !== undefined) c.enabled = true;
  }

  ctrlrDisabled(m: ControllerId): void {
    const c = this.ctrlrs.get(m.cntlid);
    if (c === undefined) return;
    // a controller reset ends its I/O queues; new ones need CC.EN = 1 again
    c.enabled = false;
    this.tellIoQueueGroups(c, m.cntlid);
  }

  ctrlrGone(m: ControllerId): void {
    const c = this.ctrlrs.get(m.cntlid);
    if (c === undefined) return;
    this.ctrlrs.delete(m.cntlid);
    // every poll group: those with its queues drop them, and any that served one forgets
    // what the closed ones did (before the cntlid can be given again: messages keep order)
    for (const ref of this.pollGroups) sendMsg(ref, toPollGroup.ctrlrGone, { cntlid: m.cntlid });
  }

  /** Each poll group serving an I/O queue of the reset controller `c` (once each) drops them. */
  private tellIoQueueGroups(c: CtrlrRecord, cntlid: number): void {
    const seen = new Set<string>();
    for (const ref of c.ioQueues.values()) {
      const k = `${ref.reactor}/${ref.id}`;
      if (seen.has(k)) continue;
      seen.add(k);
      sendMsg(ref, toPollGroup.ctrlrReset, { cntlid });
    }
  }

  ioQueueGone(m: IoQueueId): void {
    this.ctrlrs.get(m.cntlid)?.ioQueues.delete(m.qid);
  }

  /** Abort asked by a controller: the poll group serving queue `sqid` looks for the command. */
  abort(m: AbortRequest): void {
    const owner = this.ctrlrs.get(m.cntlid)?.ioQueues.get(m.sqid);
    if (owner === undefined) sendMsg(m.replyTo, toPollGroup.abortDone, { token: m.token, aborted: false });
    else sendMsg(owner, toPollGroup.abortQueued, m);
  }

  /** DH-HMAC-CHAP: a poll group starts an authentication and needs the host's keys, read now. */
  dhchapKeys(m: DhchapKeysRequest): void {
    const keys = this.subsystems.get(m.subnqn)?.hostKeys.get(m.hostnqn);
    sendMsg(m.pg, toPollGroup.dhchapKeysDone, {
      token: m.token,
      key: readDhchapKey(keys?.dhchapKey ?? null),
      ctrlrKey: readDhchapKey(keys?.dhchapCtrlrKey ?? null),
    });
  }

  bdevRemoved(m: BdevRemoved): void {
    const s = this.subsystems.get(m.nqn);
    const ns = s?.namespaces.get(m.nsid);
    if (s === undefined || ns === undefined || ns.bdevName !== m.bdevName) return;
    s.namespaces.delete(m.nsid);
    this.reservations.removeNamespace(s, m.nsid);
    log.notice(`bdev ${m.bdevName} removed: namespace ${m.nsid} of ${m.nqn} removed`);
    void this.sync();
  }

  // ------------------------------------------------------------ reservations (reservation-owner.ts)

  reservation(m: ResvCommand): void {
    const s = this.subsystems.get(m.subnqn);
    const done = s
      ? this.reservations.execute(s, m)
      : Promise.resolve({ token: m.token, sc: GenericStatus.INVALID_NAMESPACE_OR_FORMAT, report: null });
    done.then(
      (r) => sendMsg(m.pg, toPollGroup.reservationDone, r),
      (e) => {
        log.error(`reservation command on ${m.subnqn} nsid ${m.nsid} failed: ${(e as Error).stack ?? e}`);
        sendMsg(m.pg, toPollGroup.reservationDone, {
          token: m.token,
          sc: GenericStatus.INTERNAL_DEVICE_ERROR,
          report: null,
        });
      },
    );
  }

  pushViews(): Promise<void> {
    return this.sync();
  }

  notifyHost(nqn: string, nsid: number, hostId: string, type: ResvNotifyType): void {
    for (const c of this.ctrlrs.values()) {
      if (c.subnqn === nqn && c.hostid === hostId)
        sendMsg(c.owner, toPollGroup.reservationNotice, { cntlid: c.cntlid, nsid, type });
    }
  }

  async abortPreempted(nqn: string, nsid: number, hostIds: string[]): Promise<boolean> {
    const token = this.nextPreemptToken++;
    const first = await new Promise<{ ctx: PreemptAbortWalk; status: number }>((resolve) =>
      forEachChannel(
        NVMF_TGT_DEVICE,
        overPollGroups.preemptAbort,
        { token, nqn, nsid, hostIds, aborted: 0, waiting: 0 },
        resolve,
      ),
    );
    log.notice(
      `preempt and abort on ${nqn} nsid ${nsid}: ${first.ctx.aborted} waiting command(s) aborted, ${first.ctx.waiting} at the bdevs`,
    );
    const waiting = (done: boolean) =>
      new Promise<number>((resolve) =>
        forEachChannel(
          NVMF_TGT_DEVICE,
          overPollGroups.preemptWaiting,
          { token, done, waiting: 0 } as PreemptWaitWalk,
          (r) => resolve(r.ctx.waiting),
        ),
      );
    if (first.ctx.waiting === 0) return true;
    const deadline = Date.now() + PREEMPT_WAIT_MS;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, PREEMPT_CHECK_MS));
      if ((await waiting(false)) === 0) return true;
    }
    await waiting(true);
    return false;
  }

  async stats(): Promise<PgStats[]> {
    const r = await new Promise<{ ctx: StatsWalk; status: number }>((resolve) =>
      forEachChannel(NVMF_TGT_DEVICE, overPollGroups.stats, { groups: [] as PgStats[] }, resolve),
    );
    return r.ctx.groups;
  }

  /** Every poll group's I/O counters, host events and queues (io-stats.ts), gathered by one walk. */
  async ioStats(): Promise<PgIoSnapshot[]> {
    const r = await new Promise<{ ctx: IoWalk; status: number }>((resolve) =>
      forEachChannel(NVMF_TGT_DEVICE, overPollGroups.io, { groups: [] as PgIoSnapshot[] }, resolve),
    );
    return r.ctx.groups;
  }

  async qpairs(nqn: string): Promise<QpairInfo[]> {
    this.getSubsystem(nqn);
    const r = await new Promise<{ ctx: QpairsWalk; status: number }>((resolve) =>
      forEachChannel(NVMF_TGT_DEVICE, overPollGroups.qpairs, { nqn, qpairs: [] as QpairInfo[] }, resolve),
    );
    return r.ctx.qpairs;
  }
}

/** SPDK: a controller key only with a host key. */
function checkHostKeys(keys: HostKeys): void {
  if (keys.dhchapCtrlrKey !== null && keys.dhchapKey === null)
    throw new NvmfError('DH-HMAC-CHAP controller key requires host key to be set');
}

/** A key's secret, read from the keyring now; null (logged, by name only) when it cannot be used. */
function readDhchapKey(ref: KeyRef | null): DhchapSecret | null {
  if (ref === null) return null;
  try {
    return parseDhchapSecret(ref.read());
  } catch (e) {
    log.error(`DH-HMAC-CHAP key '${ref.name}' cannot be used: ${(e as Error).message}`);
    return null;
  }
}

/** The nvme-cli line a user types to reach `nqn` through `a` (`--tls`: a secure channel). */
export function hostCommand(nqn: string, a: TransportAddress, secureChannel = false): string {
  const base = `-t ${a.trtype.toLowerCase()}${secureChannel ? ' --tls' : ''} -a ${a.traddr} -s ${a.trsvcid}`;
  return nqn === DISCOVERY_NQN ? `nvme discover ${base}` : `nvme connect ${base} -n ${nqn}`;
}

// ------------------------------------------------------------ the app thread's target

let target: NvmfTarget | null = null;

export function getTarget(): NvmfTarget {
  if (target === null) throw new NvmfError('the nvmf target is not running', -1);
  return target;
}

/** The app thread's target (null: none), which also receives the poll groups' messages. */
export function setTarget(t: NvmfTarget | null): void {
  target = t;
  setTargetInbox(t);
}
