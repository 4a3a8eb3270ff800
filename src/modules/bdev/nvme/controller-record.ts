// bdev_nvme: the target as a gateway. Each namespace of a remote NVMe-oF
// controller becomes a bdev (NAMEn<nsid>) that this target can export again.
// This file is the module (nvmeModule) and its record side; each realm's
// replica (backend.ts) sends I/O on its own I/O queue.
//
// The record side (app thread): one NvmeCtrlr per attached
// controller holds the admin connection (keep-alive at KATO/2 by the host
// library), registers one bdev per active namespace, and owns reconnection:
// on a lost admin queue the shared state says RESETTING (realms hold I/O),
// reconnects are tried every reconnect_delay_sec, fast_io_fail_timeout_sec
// turns waiting into failing, and ctrlr_loss_timeout_sec deletes the
// controller and hot-removes its bdevs. A successful reconnect publishes the
// new cntlid and bumps the generation; every realm then reconnects its queue.
//
// Multipath (-x multipath or failover with a name already attached): the new
// path is an NvmeCtrlr of its own (own admin queue, reconnects and loss
// timeout, index into the bdevs' ANA state arrays) owned by the first one; its
// namespaces must be the same (NSID, block size, UUID) and its multipath_opts
// those of the first. The realms add a queue per path to each replica
// (backend.ts), which chooses a path per I/O by the bdev's policy. Each path
// reads its ANA log page at connect, on an ANA change event and when a realm
// saw an ANA error, and writes each namespace's state for the realms. A path
// whose ctrlr_loss_timeout_sec passes goes away; the bdevs stay while a path
// is left.

import { randomUUID } from 'node:crypto';
import { dhchapHashName, dhGroupName } from '../../../auth/index.ts';
import type { Bdev, BdevBackend, BdevDescriptor, BdevModule } from '../../../bdev/module.ts';
import {
  BdevError,
  bdevGetRecord,
  bdevModuleDescriptor,
  bdevNotifyResize,
  bdevRegister,
  bdevUnregister,
  newBdevDescriptor,
} from '../../../bdev/module.ts';
import {
  AsyncEventType,
  type DhchapHostConfig,
  type NamespaceInfo,
  NoticeInfo,
  NvmeController,
  type TransportId,
} from '../../../nvme/index.ts';
import { currentThread, realmReactorCount } from '../../../thread/index.ts';
import { InvalidStateError, NvmfTsError } from '../../../util/errors.ts';
import { logger } from '../../../util/log.ts';
import { decodeIdentifyController, IDENTIFY_SIZE } from '../../../wire/identify.ts';
import { AnaState, decodeAnaLog, LogPage } from '../../../wire/log.ts';
import {
  changeRealmPaths,
  disconnectRealmQueues,
  NvmeBdevBackend,
  onAnaError,
  type PathParams,
  setRealmKeys,
  setRealmMultipath,
  setRealmPreferredPath,
} from './backend.ts';
import { multipathOptsJson, nvmeOptions, nvmeOptionsConfigJson } from './options.ts';
import {
  CtrlrState,
  DEFAULT_MULTIPATH,
  MAX_PATHS,
  type MultipathConfig,
  type NvmeBdevParams,
  newAnaStates,
  newSharedState,
  Shared,
} from './shared.ts';

const log = logger('bdev_nvme');

/** Largest I/O queue we ask for (the remote may allow more). */
const MAX_IO_QUEUE_SIZE = 128;

/** The largest ANA log page read (a header, a descriptor per group, an NSID per namespace). */
const MAX_ANA_LOG = 256 * 1024;

export interface AttachOptions {
  name: string;
  trid: TransportId;
  adrfam: 'IPv4' | 'IPv6';
  hostaddr?: string;
  hostsvcid?: string;
  /** -1 = reconnect forever; 0 = one immediate reconnect attempt, then delete (SPDK's default) */
  ctrlrLossTimeoutSec: number;
  /** 0 only with ctrlrLossTimeoutSec 0 */
  reconnectDelaySec: number;
  /** 0 = I/O waits until reconnected or deleted */
  fastIoFailTimeoutSec: number;
  /** Fabrics Connect timeout (0 = the library's 10 s) */
  fabricsConnectTimeoutUs: number;
  /** KATO sent in Connect (the library ends a connection whose Keep Alive goes unanswered that long); 0 disables keep alive */
  keepAliveTimeoutMs: number;
  /** the keyring name of the TLS PSK (its text is in trid.tlsKey), for save_config */
  pskName?: string;
  /** SPDK's -x: with a name already attached, 'multipath' or 'failover' adds this as another path */
  multipath?: 'disable' | 'failover' | 'multipath';
  /** DH-HMAC-CHAP: the secrets (read from the keyring at attach) and their keyring names (save_config) */
  dhchap?: DhchapHostConfig | null;
  dhchapKeyNames?: { dhchap_key?: string; dhchap_ctrlr_key?: string };
  /** multipath_opts (over bdev_nvme_set_options' defaults): the policy this controller's bdevs start with */
  multipathConfig?: MultipathConfig;
}

export type CtrlrStateName = 'enabled' | 'resetting' | 'reconnect_is_delayed' | 'deleting';

export class NvmeCtrlr {
  readonly opts: AttachOptions;
  readonly attachId = randomUUID();
  readonly sharedBuf = newSharedState();
  readonly shared = new Int32Array(this.sharedBuf);
  ctrlr: NvmeController | null = null;
  state: CtrlrStateName = 'enabled';
  /** bdevs made from its namespaces, in NSID order */
  readonly bdevNames: string[] = [];
  /** attach still registering bdevs: destroyRecord must not tear the controller down */
  attaching = true;
  /** a namespace went away: its bdev goes, the controller stays even when it was the last */
  keepWhenEmpty = false;
  /** multipath: the first path, when this record is a further path of it */
  owner: NvmeCtrlr | null = null;
  /** multipath: the further paths, in attach order (on the first path's record) */
  readonly paths: NvmeCtrlr[] = [];
  /** this path's index into the bdevs' ANA state arrays (0: the first path) */
  pathIndex = 0;
  /** the remote reports ANA states (Identify Controller CMIC bit 3) */
  anaReporting = false;
  /** ANA state by NSID, from this path's last ANA log page */
  readonly anaStates = new Map<number, number>();
  private anaReading: Promise<void> | null = null;
  private anaAgain = false;
  /** the first path's record: each bdev's multipath policy (bdev_nvme_set_multipath_policy) */
  readonly bdevMultipath = new Map<string, MultipathConfig>();
  private policyUpdating = new Set<string>();
  private syncing: Promise<void> = Promise.resolve();
  private lossTimer: ReturnType<typeof setTimeout> | null = null;
  private fastFailTimer: ReturnType<typeof setTimeout> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private deletion: Promise<void> | null = null;
  /** bdev_nvme_reset_controller calls waiting for the reconnect */
  private resetWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(opts: AttachOptions) {
    this.opts = opts;
  }

  get name(): string {
    return this.opts.name;
  }

  /** The policy this controller's bdevs start with (multipath_opts of its first attach). */
  get multipathConfig(): MultipathConfig {
    return this.opts.multipathConfig ?? DEFAULT_MULTIPATH;
  }

  get connectTimeoutMs(): number | undefined {
    const us = this.opts.fabricsConnectTimeoutUs;
    return us > 0 ? Math.max(1, Math.ceil(us / 1000)) : undefined;
  }

  /** Connect the admin queue and publish it (cntlid, queue limits) to the realms. */
  async connectAdmin(): Promise<NvmeController> {
    const dhchap = this.opts.dhchap ?? null;
    const c = await NvmeController.connect(this.opts.trid, {
      ...(dhchap !== null
        ? {
            dhchapSecret: dhchap.secret,
            ...(dhchap.ctrlrSecret !== null ? { dhchapCtrlrSecret: dhchap.ctrlrSecret } : {}),
            // what bdev_nvme_set_options allows, for the admin queue as for the realms' queues
            dhchapDigests: dhchap.digests.map((id) => dhchapHashName(id) ?? String(id)),
            dhchapDhgroups: dhchap.dhgroups.map((id) => dhGroupName(id) ?? String(id)),
          }
        : {}),
      kato: this.opts.keepAliveTimeoutMs,
      connectTimeoutMs: this.connectTimeoutMs,
      // one I/O queue per reactor (qid = reactor + 1)
      numIoQueues: realmReactorCount(),
      asyncEvents: true,
    });
    if (this.deletion !== null || c.failed) {
      // deleted while connecting, or the connection already dropped: publish nothing
      await c.disconnect().catch(() => undefined);
      throw new InvalidStateError(
        this.deletion !== null ? 'controller deleted meanwhile' : 'connection lost while connecting',
      );
    }
    Atomics.store(this.shared, Shared.CNTLID, c.cntlid);
    Atomics.store(this.shared, Shared.IN_CAPSULE, c.ioInCapsuleDataSize);
    Atomics.store(this.shared, Shared.QUEUE_SIZE, Math.max(2, Math.min(MAX_IO_QUEUE_SIZE, c.maxQueueSize)));
    Atomics.store(this.shared, Shared.QUEUES_GRANTED, c.ioQueuesGranted);
    if (c.ioQueuesGranted > 0 && c.ioQueuesGranted < realmReactorCount()) {
      log.warn(
        `controller ${this.name}: the remote grants ${c.ioQueuesGranted} I/O queues for ${realmReactorCount()} reactors; I/O from reactors ${c.ioQueuesGranted} and up fails`,
      );
    }
    this.ctrlr = c;
    c.onConnectionLost = (reason) => this.adminLost(c, reason);
    c.onAsyncEvent = (ev) => {
      if (this.ctrlr !== c) return;
      // the library already re-read the namespaces (c.namespaces)
      if (ev.changedNamespaces !== undefined) this.syncNamespaces(c).catch(() => undefined);
      if (ev.type === AsyncEventType.NOTICE && ev.info === NoticeInfo.ANA_CHANGE) void this.refreshAna();
    };
    // the ANA states before the realms use this connection
    await this.refreshAna();
    Atomics.add(this.shared, Shared.GENERATION, 1);
    Atomics.store(this.shared, Shared.STATE, CtrlrState.ENABLED);
    this.state = 'enabled';
    return c;
  }

  /**
   * Read this path's ANA log page and publish each namespace's state to the bdevs' ANA
   * arrays (every realm reads them when it chooses a path). Calls while a read runs make it
   * read once more after; a failed read leaves the states as they were.
   */
  refreshAna(): Promise<void> {
    if (this.anaReading !== null) {
      this.anaAgain = true;
      return this.anaReading;
    }
    this.anaReading = (async () => {
      do {
        this.anaAgain = false;
        const c = this.ctrlr;
        if (c === null || this.deletion !== null) break;
        try {
          await this.readAna(c);
        } catch (e) {
          log.warn(`controller ${this.name}: path ${this.pathName}: ANA log page: ${(e as Error).message}`);
        }
        this.publishAna();
      } while (this.anaAgain);
    })().finally(() => {
      this.anaReading = null;
    });
    return this.anaReading;
  }

  private async readAna(c: NvmeController): Promise<void> {
    const id = decodeIdentifyController(c.cdata ?? Buffer.alloc(IDENTIFY_SIZE));
    this.anaReporting = (id.cmic & 0x8) !== 0;
    this.anaStates.clear();
    if (!this.anaReporting) return;
    // a header, a descriptor per ANA group and an NSID per namespace (SPDK sizes it the same way)
    const size = Math.min(16 + 32 * id.nanagrpid + 4 * id.nn, MAX_ANA_LOG, c.maxTransferSize);
    const page = decodeAnaLog(await c.getLogPage(LogPage.ANA, Buffer.alloc(size & ~3)));
    for (const g of page.groups) for (const nsid of g.nsids) this.anaStates.set(nsid, g.state);
  }

  /** This path's ANA state of namespace `nsid` (optimized when the remote reports none for it). */
  anaStateOf(nsid: number): number {
    return this.anaStates.get(nsid) ?? AnaState.optimized;
  }

  /** Write this path's states into the ANA arrays of the controller's bdevs. */
  private publishAna(): void {
    for (const name of (this.owner ?? this).bdevNames) {
      const desc = bdevModuleDescriptor(nvmeModule, name);
      if (desc === undefined) continue;
      Atomics.store(new Uint8Array(desc.params.ana), this.pathIndex, this.anaStateOf(desc.params.nsid));
    }
  }

  /** Every path of the controller (on the first path's record), the first first. */
  get allPaths(): NvmeCtrlr[] {
    return [this, ...this.paths];
  }

  /**
   * bdev_nvme_set_multipath_policy for one of this controller's bdevs: every realm's
   * replica uses `m` from now on. -EBUSY while another change of that bdev runs.
   */
  async setMultipath(bdev: string, m: MultipathConfig): Promise<void> {
    if (this.policyUpdating.has(bdev))
      throw new NvmeAttachError(-16, `bdev ${bdev}: multipath configuration update in progress`);
    this.policyUpdating.add(bdev);
    try {
      this.bdevMultipath.set(bdev, m);
      await setRealmMultipath(bdev, m);
    } finally {
      this.policyUpdating.delete(bdev);
    }
  }

  /** bdev_nvme_set_preferred_path: the path with controller ID `cntlid` first for bdev `bdev`. */
  async setPreferredPath(bdev: string, cntlid: number): Promise<void> {
    const path = this.allPaths.find((p) => Atomics.load(p.shared, Shared.CNTLID) === cntlid);
    if (path === undefined)
      throw new NvmeAttachError(-19, `bdev ${bdev} does not have namespace to controller ${cntlid}`);
    await setRealmPreferredPath(bdev, path.attachId);
  }

  /**
   * bdev_nvme_set_keys: new DH-HMAC-CHAP secrets for every path (`dhchap` null: none) and,
   * with a host secret, a re-authentication of each path's admin queue, then of its queue
   * in every realm, as SPDK does. The secrets stay for the next connects even when an
   * authentication fails (which rejects: -EACCES with what failed, never a key).
   */
  async setKeys(
    dhchap: DhchapHostConfig | null,
    names: { dhchap_key?: string; dhchap_ctrlr_key?: string },
  ): Promise<void> {
    if (this.deletion !== null) throw new NvmeAttachError(-19, `controller ${this.name} is being deleted`);
    for (const p of this.allPaths) {
      p.opts.dhchap = dhchap;
      p.opts.dhchapKeyNames = { ...names };
      const c = p.ctrlr;
      let reauth = false;
      if (c !== null && !c.failed) {
        c.setDhchapSecrets(
          dhchap === null
            ? {}
            : {
                dhchapSecret: dhchap.secret,
                ...(dhchap.ctrlrSecret !== null ? { dhchapCtrlrSecret: dhchap.ctrlrSecret } : {}),
                dhchapDigests: dhchap.digests.map((id) => dhchapHashName(id) ?? String(id)),
                dhchapDhgroups: dhchap.dhgroups.map((id) => dhGroupName(id) ?? String(id)),
              },
        );
        if (dhchap !== null) {
          try {
            await c.reauthenticate();
            reauth = true;
          } catch (e) {
            // the realms' queues still take the secrets for their next connect
            await setRealmKeys(p.attachId, dhchap, false);
            throw new NvmeAttachError(
              -13,
              `controller ${this.name}: path ${p.pathName}: admin queue re-authentication failed: ${(e as Error).message}`,
            );
          }
        }
      }
      const failed = await setRealmKeys(p.attachId, dhchap, reauth);
      if (failed !== null)
        throw new NvmeAttachError(-13, `controller ${this.name}: path ${p.pathName}: ${failed}`);
      if (reauth) log.notice(`controller ${this.name}: path ${p.pathName} re-authenticated with new keys`);
    }
  }

  /**
   * bdev_nvme_reset_controller: drop the connection and reconnect (the
   * realms' queues follow the new generation); resolves once reconnected.
   */
  reset(): Promise<void> {
    if (this.deletion !== null)
      return Promise.reject(new NvmeAttachError(-19, `controller ${this.name} is being deleted`));
    const done = new Promise<void>((resolve, reject) => this.resetWaiters.push({ resolve, reject }));
    const c = this.ctrlr;
    if (c !== null) c.admin.fatal('reset requested'); // → adminLost → reconnect
    return done;
  }

  private settleResets(err: Error | null): void {
    const waiters = this.resetWaiters;
    this.resetWaiters = [];
    for (const w of waiters) {
      if (err === null) w.resolve();
      else w.reject(err);
    }
  }

  private adminLost(c: NvmeController, reason: string): void {
    if (this.ctrlr !== c || this.deletion !== null) return;
    this.ctrlr = null;
    void c.disconnect().catch(() => undefined); // stops its keep-alive timer and the other queues
    log.warn(`controller ${this.name}: connection lost (${reason}), resetting`);
    this.state = 'resetting';
    Atomics.store(this.shared, Shared.STATE, CtrlrState.RESETTING);
    for (const name of (this.owner ?? this).bdevNames) disconnectRealmQueues(name, this.attachId);
    const o = this.opts;
    if (o.ctrlrLossTimeoutSec > 0) {
      this.lossTimer = setTimeout(() => this.lossTimeout(), o.ctrlrLossTimeoutSec * 1000);
    }
    if (o.fastIoFailTimeoutSec > 0) {
      this.fastFailTimer = setTimeout(() => {
        this.fastFailTimer = null;
        if (this.ctrlr === null && this.deletion === null) {
          log.warn(`controller ${this.name}: fast_io_fail_timeout_sec passed, failing I/O`);
          Atomics.store(this.shared, Shared.STATE, CtrlrState.FAIL_FAST);
        }
      }, o.fastIoFailTimeoutSec * 1000);
    }
    void this.reconnect();
  }

  private lossTimeout(): void {
    this.lossTimer = null;
    if (this.ctrlr !== null || this.deletion !== null) return;
    log.warn(`controller ${this.name}: path ${this.pathName} not reconnected within ctrlr_loss_timeout_sec`);
    void this.giveUp();
  }

  /** Stop trying: a path of a multipath controller goes alone; a lone controller is deleted with its bdevs. */
  private giveUp(): Promise<void> {
    if (this.owner !== null) return this.delete(); // doDelete retires a further path
    // the first path of a multipath controller stops but stays: a detach still removes it all
    if (this.paths.length > 0) return this.retirePath();
    return this.delete();
  }

  get pathName(): string {
    return `${this.opts.trid.traddr}:${this.opts.trid.trsvcid}`;
  }

  /**
   * Multipath: this path stops (no more reconnects, its queues fail over); a
   * further path leaves its owner's list, the first path stays listed as
   * deleted (its queue anchors the replicas) while the others serve.
   */
  private async retirePath(): Promise<void> {
    this.clearTimers();
    this.state = 'deleting';
    Atomics.store(this.shared, Shared.STATE, CtrlrState.DELETED);
    const c = this.ctrlr;
    this.ctrlr = null;
    if (c !== null) await c.disconnect().catch(() => undefined);
    const owner = this.owner;
    if (owner !== null) {
      const i = owner.paths.indexOf(this);
      if (i >= 0) owner.paths.splice(i, 1);
      await changeRealmPaths({ primary: owner.attachId, remove: this.attachId });
    }
  }

  /** bdev_nvme_detach_controller with a path filter naming a further path: that path alone goes. */
  async detachPath(path: NvmeCtrlr): Promise<void> {
    path.deletion ??= path.retirePath();
    await path.deletion;
  }

  /** What a realm needs to add this path to the replicas. */
  pathParams(): PathParams {
    const c = this.ctrlr;
    const id = decodeIdentifyController(c?.cdata ?? Buffer.alloc(IDENTIFY_SIZE));
    return {
      attachId: this.attachId,
      trid: { ...this.opts.trid },
      hostidHex: c?.hostid.toString('hex') ?? '',
      dhchap: this.opts.dhchap ?? null,
      retryDelayMs: this.opts.reconnectDelaySec > 0 ? this.opts.reconnectDelaySec * 1000 : 1000,
      connectTimeoutMs: this.connectTimeoutMs ?? 10000,
      shared: this.sharedBuf,
      pathIndex: this.pathIndex,
      ctrlrData: {
        cntlid: c?.cntlid ?? 0,
        vendorId: id.vid,
        model: id.mn.trimStart(),
        serial: id.sn.trimStart(),
        firmware: id.fr.trimStart(),
        subnqn: id.subnqn.trimStart(),
        anaReporting: this.anaReporting,
      },
    };
  }

  private async reconnect(): Promise<void> {
    this.reconnectTimer = null;
    if (this.deletion !== null) return;
    this.state = 'resetting';
    try {
      const c = await this.connectAdmin();
      this.clearTimers();
      log.notice(`controller ${this.name}: reconnected (cntlid ${c.cntlid})`);
      await this.syncNamespaces(c).catch(() => undefined);
      this.settleResets(null);
    } catch (e) {
      if (this.deletion !== null) return;
      log.info(`controller ${this.name}: reconnect failed: ${(e as Error).message}`);
      if (this.opts.ctrlrLossTimeoutSec === 0) {
        // SPDK's default: no reconnect retries
        void this.giveUp();
        return;
      }
      this.state = 'reconnect_is_delayed';
      this.reconnectTimer = setTimeout(() => void this.reconnect(), this.opts.reconnectDelaySec * 1000);
    }
  }

  private clearTimers(): void {
    for (const t of [this.lossTimer, this.fastFailTimer, this.reconnectTimer])
      if (t !== null) clearTimeout(t);
    this.lossTimer = null;
    this.fastFailTimer = null;
    this.reconnectTimer = null;
  }

  /** Detach: fail waiting I/O, hot-remove the bdevs, disconnect. Idempotent. */
  delete(): Promise<void> {
    this.deletion ??= this.doDelete();
    return this.deletion;
  }

  private async doDelete(): Promise<void> {
    if (this.owner !== null) return this.retirePath(); // a further path: its bdevs are the first path's
    for (const p of [...this.paths]) await this.detachPath(p);
    this.state = 'deleting';
    this.clearTimers();
    this.settleResets(new NvmeAttachError(-19, `controller ${this.name} was deleted`));
    Atomics.store(this.shared, Shared.STATE, CtrlrState.DELETED);
    for (const name of [...this.bdevNames].reverse()) {
      if (bdevGetRecord(name) === undefined) continue;
      await bdevUnregister(name).catch((e: Error) => log.warn(`controller ${this.name}: ${e.message}`));
    }
    const c = this.ctrlr;
    this.ctrlr = null;
    if (c !== null) await c.disconnect().catch(() => undefined);
    if (controllers.get(this.name) === this) controllers.delete(this.name);
  }

  /**
   * Make the bdevs match the remote's namespaces (after attach, a reconnect,
   * or a namespace-changed event): a namespace that is gone (or changed its
   * block size) takes its bdev with it, a new size is passed on (resize), a
   * new namespace becomes a new bdev. Runs one at a time.
   */
  syncNamespaces(c: NvmeController): Promise<void> {
    const run = this.syncing.then(() => this.doSync(c));
    this.syncing = run.catch((e: Error) => {
      log.warn(`controller ${this.name}: namespace update failed: ${e.message}`);
    });
    return run; // attach wants the error; the others ignore it (logged above)
  }

  private async doSync(c: NvmeController): Promise<void> {
    // a further path's namespaces are the first path's bdevs: only the first path adds and removes them
    if (this.ctrlr !== c || this.deletion !== null || this.owner !== null) return;
    const now = usableNamespaces(c);
    for (const name of [...this.bdevNames]) {
      const desc = bdevModuleDescriptor(nvmeModule, name);
      if (desc === undefined) continue;
      const nsid = desc.params.nsid;
      const ns = now.get(nsid);
      if (ns === undefined || ns.blockSize !== desc.blockSize) {
        log.notice(`controller ${this.name}: namespace ${nsid} is gone, removing ${name}`);
        this.keepWhenEmpty = true;
        try {
          await bdevUnregister(name);
        } finally {
          this.keepWhenEmpty = false;
        }
      } else if (ns.numBlocks !== desc.numBlocks) {
        log.notice(`controller ${this.name}: namespace ${nsid} now has ${ns.numBlocks} blocks`);
        await bdevNotifyResize(name, ns.numBlocks);
      }
    }
    for (const ns of now.values()) {
      if (this.ctrlr !== c || this.deletion !== null) return;
      const name = `${this.name}n${ns.nsid}`;
      if (this.bdevNames.includes(name)) continue;
      await registerNamespace(this, c, ns);
      if (!this.attaching) log.notice(`controller ${this.name}: namespace ${ns.nsid} added as ${name}`);
    }
  }

  /** The bdev_nvme_attach_controller call that recreates this controller (save_config). */
  configJson(): { method: string; params: Record<string, unknown> } {
    const o = this.opts;
    return {
      method: 'bdev_nvme_attach_controller',
      params: {
        name: o.name,
        trtype: o.trid.trtype?.toLowerCase() === 'rdma' ? 'RDMA' : 'TCP',
        adrfam: o.adrfam,
        traddr: o.trid.traddr,
        trsvcid: o.trid.trsvcid,
        subnqn: o.trid.subnqn,
        prchk_reftag: false,
        prchk_guard: false,
        ctrlr_loss_timeout_sec: o.ctrlrLossTimeoutSec,
        reconnect_delay_sec: o.reconnectDelaySec,
        fast_io_fail_timeout_sec: o.fastIoFailTimeoutSec,
        hostnqn: o.trid.hostnqn,
        hdgst: o.trid.hdgst === true,
        ddgst: o.trid.ddgst === true,
        ...(o.hostaddr !== undefined ? { hostaddr: o.hostaddr } : {}),
        ...(o.hostsvcid !== undefined ? { hostsvcid: o.hostsvcid } : {}),
        fabrics_connect_timeout_us: o.fabricsConnectTimeoutUs,
        ...o.dhchapKeyNames,
        ...(o.pskName !== undefined ? { psk: o.pskName } : {}),
        ...(this.owner !== null || this.paths.length > 0 ? { multipath: 'multipath' } : {}),
        multipath_opts: multipathOptsJson(this.multipathConfig),
      },
    };
  }

  /** This path's transport ID as SPDK's RPCs show it (get_controllers, get_path_iostat). */
  tridJson(): Record<string, string> {
    const o = this.opts;
    return {
      trtype: o.trid.trtype?.toLowerCase() === 'rdma' ? 'RDMA' : 'TCP',
      adrfam: o.adrfam,
      traddr: o.trid.traddr,
      trsvcid: o.trid.trsvcid,
      subnqn: o.trid.subnqn,
    };
  }

  /** One entry of bdev_nvme_get_controllers' ctrlrs array (SPDK's shape). */
  infoJson(): Record<string, unknown> {
    const o = this.opts;
    return {
      state: this.state,
      trid: this.tridJson(),
      cntlid: Atomics.load(this.shared, Shared.CNTLID),
      host: {
        nqn: o.trid.hostnqn,
        addr: o.hostaddr ?? '',
        svcid: o.hostsvcid ?? '',
        no_shn_notification: false,
      },
    };
  }
}

// ---- the controllers (app thread)

const controllers = new Map<string, NvmeCtrlr>();

export function getController(name: string): NvmeCtrlr | undefined {
  return controllers.get(name);
}

export function listControllers(): NvmeCtrlr[] {
  return [...controllers.values()];
}

/** SPDK's constraints between the three reconnect settings; returns the problem or null. */
export function checkResiliencyParams(loss: number, delay: number, fastFail: number): string | null {
  if (loss < -1) return "ctrlr_loss_timeout_sec can't be less than -1";
  if (loss === -1) {
    if (delay === 0) return "reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0";
    if (fastFail !== 0 && fastFail < delay)
      return "reconnect_delay_sec can't be more than fast_io_fail_timeout_sec";
  } else if (loss !== 0) {
    if (delay === 0) return "reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0";
    if (delay > loss) return "reconnect_delay_sec can't be more than ctrlr_loss_timeout_sec";
    if (fastFail !== 0) {
      if (fastFail < delay) return "reconnect_delay_sec can't be more than fast_io_fail_timeout_sec";
      if (fastFail > loss) return "fast_io_fail_timeout_sec can't be more than ctrlr_loss_timeout_sec";
    }
  } else if (delay !== 0 || fastFail !== 0) {
    return 'Both reconnect_delay_sec and fast_io_fail_timeout_sec must be 0 if ctrlr_loss_timeout_sec is 0';
  }
  return null;
}

/**
 * A bdev_nvme controller operation (attach, detach, reset) that failed for a reason SPDK
 * reports with its own errno (EALREADY, EIO, ENODEV...): `errno` is the RPC's JSON-RPC code.
 */
export class NvmeAttachError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_BDEV_NVME';
  readonly errno: number;
  constructor(errno: number, message: string) {
    super('NVMF_ERR_BDEV_NVME', message);
    this.errno = errno;
  }
}

/** The namespaces a bdev can stand for: plain LBA formats of 512 bytes or more, no metadata. */
function usableNamespaces(c: NvmeController): Map<number, NamespaceInfo> {
  const out = new Map<number, NamespaceInfo>();
  for (const [nsid, ns] of c.namespaces) {
    if (ns.lbads < 9 || ns.metadataSize !== 0 || ns.numBlocks === 0) continue;
    out.set(nsid, ns);
  }
  return out;
}

/** Largest transfer in blocks: MDTS and the 16-bit NLB field. */
function maxTransferBlocks(c: NvmeController, blockSize: number): number {
  const nlbMax = 65536;
  const bytes = c.maxTransferSize;
  if (!Number.isFinite(bytes)) return nlbMax;
  return Math.max(1, Math.min(nlbMax, Math.floor(bytes / blockSize)));
}

/** Register the bdev NAMEn<nsid> of one namespace. */
async function registerNamespace(rec: NvmeCtrlr, c: NvmeController, ns: NamespaceInfo): Promise<string> {
  const opts = rec.opts;
  const id = decodeIdentifyController(c.cdata ?? Buffer.alloc(IDENTIFY_SIZE));
  const params: NvmeBdevParams = {
    ctrlrName: opts.name,
    attachId: rec.attachId,
    nsid: ns.nsid,
    trid: { ...opts.trid },
    hostidHex: c.hostid.toString('hex'),
    dhchap: opts.dhchap ?? null,
    retryDelayMs: opts.reconnectDelaySec > 0 ? opts.reconnectDelaySec * 1000 : 1000,
    connectTimeoutMs: rec.connectTimeoutMs ?? 10000,
    shared: rec.sharedBuf,
    pathIndex: 0,
    ana: newAnaStates(),
    multipath: rec.multipathConfig,
    autoFailback: !nvmeOptions.disable_auto_failback,
    ioPathStat: nvmeOptions.io_path_stat,
    recordThread: currentThread().ref,
    oncs: id.oncs,
    fuses: id.fuses,
    // leading blanks trimmed too, as SPDK's bdev_nvme shows these strings
    ctrlrData: {
      cntlid: c.cntlid,
      vendorId: id.vid,
      model: id.mn.trimStart(),
      serial: id.sn.trimStart(),
      firmware: id.fr.trimStart(),
      subnqn: id.subnqn.trimStart(),
      anaReporting: rec.anaReporting,
    },
  };
  // this namespace's ANA state through each path, as each last read it
  const ana = new Uint8Array(params.ana);
  for (const p of rec.allPaths) ana[p.pathIndex] = p.anaStateOf(ns.nsid);
  const name = `${opts.name}n${ns.nsid}`;
  await bdevRegister(
    newBdevDescriptor({
      module: 'nvme',
      name,
      blockSize: ns.blockSize,
      numBlocks: ns.numBlocks,
      productName: 'NVMe disk',
      writeCache: (id.vwc & 1) !== 0,
      maxTransferBlocks: maxTransferBlocks(c, ns.blockSize),
      ...(ns.uuid !== null ? { uuid: ns.uuid } : {}),
      params,
    }),
  );
  rec.bdevNames.push(name);
  rec.bdevMultipath.set(name, params.multipath);
  return name;
}

/**
 * Multipath: connect another path to the controller `first` stands for (same
 * subsystem, same namespaces) and have every realm add it to the replicas.
 * Resolves the bdev names (the same as the first attach's).
 */
async function addPath(first: NvmeCtrlr, opts: AttachOptions): Promise<string[]> {
  const t = opts.trid;
  if (t.subnqn !== first.opts.trid.subnqn) {
    throw new NvmeAttachError(
      -22,
      `controller ${opts.name} is subsystem ${first.opts.trid.subnqn}: a path to ${t.subnqn} cannot join it`,
    );
  }
  for (const p of [first, ...first.paths]) {
    if (p.opts.trid.traddr === t.traddr && p.opts.trid.trsvcid === t.trsvcid) {
      throw new NvmeAttachError(-114, `controller ${opts.name} already has the path ${p.pathName}`);
    }
  }
  // SPDK: every path of a controller has the same multipath_opts
  const mine = multipathOptsJson(opts.multipathConfig ?? DEFAULT_MULTIPATH);
  const theirs = multipathOptsJson(first.multipathConfig);
  if (JSON.stringify(mine) !== JSON.stringify(theirs)) {
    throw new NvmeAttachError(
      -22,
      `Multipath opts mismatch for controller ${opts.name}: existing ${JSON.stringify(theirs)}, new ${JSON.stringify(mine)}`,
    );
  }
  const used = new Set(first.allPaths.map((p) => p.pathIndex));
  let index = 1;
  while (used.has(index)) index++;
  if (index >= MAX_PATHS) {
    throw new NvmeAttachError(-22, `controller ${opts.name} has ${MAX_PATHS} paths, the most it can have`);
  }
  const rec = new NvmeCtrlr(opts);
  rec.owner = first;
  rec.pathIndex = index;
  let c: NvmeController;
  try {
    c = await rec.connectAdmin();
  } catch (e) {
    throw new NvmeAttachError(
      -19,
      `cannot add the path ${rec.pathName} to controller ${opts.name}: ${(e as Error).message}`,
    );
  }
  const now = usableNamespaces(c);
  for (const name of first.bdevNames) {
    const desc = bdevModuleDescriptor(nvmeModule, name);
    if (desc === undefined) continue;
    const ns = now.get(desc.params.nsid);
    const why =
      ns === undefined
        ? 'is not there'
        : ns.blockSize !== desc.blockSize
          ? `has ${ns.blockSize}-byte blocks, not ${desc.blockSize}`
          : ns.uuid !== null && ns.uuid !== desc.uuid
            ? `has UUID ${ns.uuid}, not ${desc.uuid}`
            : null;
    if (why !== null) {
      await c.disconnect().catch(() => undefined);
      throw new NvmeAttachError(
        -22,
        `path ${rec.pathName} is not the same controller: namespace ${desc.params.nsid} ${why}`,
      );
    }
  }
  rec.attaching = false;
  // (connectAdmin wrote its ANA states into the bdevs' arrays before any realm uses the path)
  first.paths.push(rec);
  await changeRealmPaths({ primary: first.attachId, add: rec.pathParams() });
  log.notice(`controller ${opts.name}: path ${rec.pathName} added (${first.paths.length + 1} paths)`);
  return [...first.bdevNames];
}

/**
 * bdev_nvme_attach_controller: connect, then one bdev NAMEn<nsid> per active
 * namespace. Resolves the bdev names; on failure nothing stays behind.
 */
export async function attachController(opts: AttachOptions): Promise<string[]> {
  onAnaError(anaErrorSeen);
  const existing = controllers.get(opts.name);
  if (existing !== undefined) {
    if (opts.multipath === 'multipath' || opts.multipath === 'failover') return addPath(existing, opts);
    throw new NvmeAttachError(
      -114,
      `A controller named ${opts.name} already exists and multipath is disabled`,
    );
  }
  const rec = new NvmeCtrlr(opts);
  controllers.set(opts.name, rec);
  let c: NvmeController;
  try {
    c = await rec.connectAdmin();
  } catch (e) {
    controllers.delete(opts.name);
    throw new NvmeAttachError(
      -19,
      `cannot attach controller ${opts.name} (traddr ${opts.trid.traddr} trsvcid ${opts.trid.trsvcid} subnqn ${opts.trid.subnqn}): ${(e as Error).message}`,
    );
  }
  try {
    // through the same queue as namespace-changed events, so an event during the attach cannot race it
    await rec.syncNamespaces(c);
  } catch (e) {
    rec.attaching = false;
    await rec.delete();
    if (e instanceof BdevError) throw e;
    throw new NvmeAttachError(-5, `controller ${opts.name}: ${(e as Error).message}`);
  }
  rec.attaching = false;
  log.notice(`controller ${opts.name} attached: ${rec.bdevNames.join(', ') || 'no namespaces'}`);
  return [...rec.bdevNames];
}

export async function detachController(name: string): Promise<void> {
  const rec = controllers.get(name);
  if (rec === undefined) throw new NvmeAttachError(-19, `Controller ${name} does not exist`);
  await rec.delete();
}

/** The module's destroyRecord: a bdev of the controller is gone (detach, shutdown, bdev removal). */
function bdevRemoved(desc: BdevDescriptor<NvmeBdevParams>): void {
  const p = desc.params;
  const rec = controllers.get(p.ctrlrName);
  if (rec === undefined || rec.attachId !== p.attachId) return;
  const i = rec.bdevNames.indexOf(desc.name);
  if (i >= 0) rec.bdevNames.splice(i, 1);
  rec.bdevMultipath.delete(desc.name);
  // the last bdev gone by other means (e.g. shutdown): the controller goes with it
  if (rec.bdevNames.length === 0 && !rec.attaching && !rec.keepWhenEmpty) void rec.delete();
}

/** save_config: one attach call per controller, written with its first bdev. */
function configFor(
  desc: BdevDescriptor<NvmeBdevParams>,
): { method: string; params: Record<string, unknown> } | null {
  const p = desc.params;
  const rec = controllers.get(p.ctrlrName);
  if (rec === undefined || rec.attachId !== p.attachId || rec.bdevNames[0] !== desc.name) return null;
  return rec.configJson();
}

/**
 * save_config, right after the bdev's own entry: a multipath controller's further paths
 * (after its first attach), then the bdev's multipath policy when it is not SPDK's default
 * (SPDK writes bdev_nvme_set_multipath_policy the same way).
 */
function pathsConfigFor(
  desc: BdevDescriptor<NvmeBdevParams>,
): Array<{ method: string; params: Record<string, unknown> }> {
  const rec = controllers.get(desc.params.ctrlrName);
  if (rec === undefined || rec.attachId !== desc.params.attachId) return [];
  const out = rec.bdevNames[0] === desc.name ? rec.paths.map((p) => p.configJson()) : [];
  const m = rec.bdevMultipath.get(desc.name);
  if (
    m !== undefined &&
    JSON.stringify(multipathOptsJson(m)) !== JSON.stringify(multipathOptsJson(DEFAULT_MULTIPATH))
  ) {
    const { policy, selector, min_io } = multipathOptsJson(m);
    out.push({
      method: 'bdev_nvme_set_multipath_policy',
      params: {
        name: desc.name,
        policy,
        ...(selector !== undefined ? { selector } : {}),
        ...(min_io !== undefined ? { rr_min_io: min_io } : {}),
      },
    });
  }
  return out;
}

/** save_config: the module's options (bdev_nvme_set_options, set_hotplug), before any attach, as SPDK writes them. */
function moduleConfig(): Array<{ method: string; params: Record<string, unknown> }> {
  return [
    nvmeOptionsConfigJson(),
    { method: 'bdev_nvme_set_hotplug', params: { period_us: 100000, enable: false } },
  ];
}

/** A realm saw an ANA status on a path: read that path's ANA log page again. */
function anaErrorSeen(n: { ctrlrName: string; attachId: string }): void {
  // a path that is down reads its log when it reconnects
  void controllers
    .get(n.ctrlrName)
    ?.allPaths.find((p) => p.attachId === n.attachId)
    ?.refreshAna();
}

export const nvmeModule: BdevModule<NvmeBdevParams> = {
  name: 'nvme',
  createReplica(desc: BdevDescriptor<NvmeBdevParams>, _bdev: Bdev): BdevBackend {
    return new NvmeBdevBackend(desc);
  },
  configJson: moduleConfig,
  writeConfigJson: configFor,
  extraConfigJson: pathsConfigFor,
  destroyRecord: bdevRemoved,
};
