// The record side of bdev_nvme (app thread): one NvmeCtrlr per attached
// controller holds the admin connection (keep-alive at KATO/2 by the host
// library), registers one bdev per active namespace, and owns reconnection:
// on a lost admin queue the shared state says RESETTING (realms hold I/O),
// reconnects are tried every reconnect_delay_sec, fast_io_fail_timeout_sec
// turns waiting into failing, and ctrlr_loss_timeout_sec deletes the
// controller and hot-removes its bdevs. A successful reconnect publishes the
// new cntlid and bumps the generation; every realm then reconnects its queue.

import { randomUUID } from 'node:crypto';
import type { BdevDescriptor } from '../../../bdev/index.ts';
import {
  BdevError,
  bdevGetRecord,
  bdevNotifyResize,
  bdevRegister,
  bdevUnregister,
  newBdevDescriptor,
} from '../../../bdev/index.ts';
import { NvmeController, type TransportId } from '../../../nvme/index.ts';
import { Cns, IdCtrl, IdNs, NsIdType } from '../../../spec/identify.ts';
import { realmReactorCount } from '../../../thread/index.ts';
import { logger } from '../../../util/log.ts';
import { disconnectRealmQueues } from './backend.ts';
import { CtrlrState, type NvmeBdevParams, newSharedState, Shared } from './shared.ts';

const log = logger('bdev_nvme');

/** Largest I/O queue we ask for (the remote may allow more). */
const MAX_IO_QUEUE_SIZE = 128;

/** bdev_nvme_set_options values that take effect here (the others are accepted for SPDK configs). */
export const nvmeOptions = {
  /** keep alive timeout sent in Connect; a Keep Alive unanswered this long resets the controller */
  keep_alive_timeout_ms: 10000,
  /** defaults of the attach parameters of the same names */
  ctrlr_loss_timeout_sec: 0,
  reconnect_delay_sec: 0,
  fast_io_fail_timeout_sec: 0,
};

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
  /** KATO sent in Connect; 0 disables keep alive (and the watchdog) */
  keepAliveTimeoutMs: number;
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
  private lossTimer: ReturnType<typeof setTimeout> | null = null;
  private fastFailTimer: ReturnType<typeof setTimeout> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private watchdog: ReturnType<typeof setInterval> | null = null;
  private deletion: Promise<void> | null = null;
  /** bdev_nvme_reset_controller calls waiting for the reconnect */
  private resetWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(opts: AttachOptions) {
    this.opts = opts;
  }

  get name(): string {
    return this.opts.name;
  }

  get connectTimeoutMs(): number | undefined {
    const us = this.opts.fabricsConnectTimeoutUs;
    return us > 0 ? Math.max(1, Math.ceil(us / 1000)) : undefined;
  }

  /** Connect the admin queue and publish it (cntlid, queue limits) to the realms. */
  async connectAdmin(): Promise<NvmeController> {
    const c = await NvmeController.connect(this.opts.trid, {
      kato: this.opts.keepAliveTimeoutMs,
      connectTimeoutMs: this.connectTimeoutMs,
    });
    // one I/O queue per reactor (qid = reactor + 1); a controller that refuses
    // Set Features still takes the queues it allows
    await c.setNumQueues(realmReactorCount()).catch(() => undefined);
    const mqes = Number(c.cap & 0xffffn) + 1;
    Atomics.store(this.shared, Shared.CNTLID, c.cntlid);
    Atomics.store(this.shared, Shared.IN_CAPSULE, c.ioInCapsuleDataSize);
    Atomics.store(this.shared, Shared.QUEUE_SIZE, Math.max(2, Math.min(MAX_IO_QUEUE_SIZE, mqes)));
    this.ctrlr = c;
    c.admin.onClose = (reason) => this.adminLost(c, reason);
    this.startWatchdog(c);
    Atomics.add(this.shared, Shared.GENERATION, 1);
    Atomics.store(this.shared, Shared.STATE, CtrlrState.ENABLED);
    this.state = 'enabled';
    return c;
  }

  /**
   * The library sends Keep Alive at KATO/2 but does not time it; a remote
   * that stops answering (hung, not closed) would hold I/O forever. Our own
   * Keep Alive unanswered for KATO ends the admin queue, which resets.
   */
  private startWatchdog(c: NvmeController): void {
    const kato = this.opts.keepAliveTimeoutMs;
    if (kato <= 0) return;
    let outstandingSince = 0;
    this.watchdog = setInterval(
      () => {
        if (this.ctrlr !== c) return;
        if (outstandingSince !== 0) {
          if (Date.now() - outstandingSince > kato)
            c.admin.fatal(`keep alive not answered within ${kato} ms`);
          return;
        }
        outstandingSince = Date.now();
        c.keepAlive().then(
          () => {
            outstandingSince = 0;
          },
          () => undefined, // a failed queue reports itself through onClose
        );
      },
      Math.max(100, Math.floor(kato / 4)),
    );
    this.watchdog.unref();
  }

  private stopWatchdog(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
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
    this.stopWatchdog();
    void c.disconnect().catch(() => undefined); // stops its keep-alive timer and the other queues
    log.warn(`controller ${this.name}: connection lost (${reason}), resetting`);
    this.state = 'resetting';
    Atomics.store(this.shared, Shared.STATE, CtrlrState.RESETTING);
    for (const name of this.bdevNames) disconnectRealmQueues(name, this.attachId);
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
    log.warn(`controller ${this.name}: not reconnected within ctrlr_loss_timeout_sec, deleting it`);
    void this.delete();
  }

  private async reconnect(): Promise<void> {
    this.reconnectTimer = null;
    if (this.deletion !== null) return;
    this.state = 'resetting';
    try {
      const c = await this.connectAdmin();
      if (this.deletion !== null) {
        // deleted while this attempt was under way
        this.ctrlr = null;
        await c.disconnect().catch(() => undefined);
        return;
      }
      this.clearTimers();
      log.notice(`controller ${this.name}: reconnected (cntlid ${c.cntlid})`);
      await this.recheckNamespaces(c);
      this.settleResets(null);
    } catch (e) {
      if (this.deletion !== null) return;
      log.info(`controller ${this.name}: reconnect failed: ${(e as Error).message}`);
      if (this.opts.ctrlrLossTimeoutSec === 0) {
        // SPDK's default: no reconnect retries
        void this.delete();
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
    this.state = 'deleting';
    this.clearTimers();
    this.stopWatchdog();
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
   * After a reconnect the remote may have changed: a namespace that is gone
   * takes its bdev with it; a new size is passed on (resize). New namespaces
   * are not added (known gap: that needs the namespace-changed AEN).
   */
  private async recheckNamespaces(c: NvmeController): Promise<void> {
    let now: NamespaceInfo[];
    try {
      now = await readNamespaces(c);
    } catch (e) {
      log.warn(`controller ${this.name}: namespace check after reconnect failed: ${(e as Error).message}`);
      return;
    }
    for (const name of [...this.bdevNames]) {
      const rec = bdevGetRecord(name);
      if (rec === undefined) continue;
      const nsid = (rec.desc.params as unknown as NvmeBdevParams).nsid;
      const ns = now.find((n) => n.nsid === nsid);
      if (ns === undefined || ns.blockSize !== rec.desc.blockSize) {
        log.warn(`controller ${this.name}: namespace ${nsid} is gone after the reconnect, removing ${name}`);
        await bdevUnregister(name).catch(() => undefined);
      } else if (ns.numBlocks !== rec.desc.numBlocks) {
        log.notice(`controller ${this.name}: namespace ${nsid} now has ${ns.numBlocks} blocks`);
        await bdevNotifyResize(name, ns.numBlocks).catch(() => undefined);
      }
    }
  }

  /** The bdev_nvme_attach_controller call that recreates this controller (save_config). */
  configJson(): { method: string; params: Record<string, unknown> } {
    const o = this.opts;
    return {
      method: 'bdev_nvme_attach_controller',
      params: {
        name: o.name,
        trtype: 'TCP',
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
      },
    };
  }

  /** One entry of bdev_nvme_get_controllers' ctrlrs array (SPDK's shape). */
  infoJson(): Record<string, unknown> {
    const o = this.opts;
    return {
      state: this.state,
      trid: {
        trtype: 'TCP',
        adrfam: o.adrfam,
        traddr: o.trid.traddr,
        trsvcid: o.trid.trsvcid,
        subnqn: o.trid.subnqn,
      },
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

/** An attach that failed for a reason SPDK reports with its own errno (EALREADY, EINVAL, ENODEV...). */
export class NvmeAttachError extends Error {
  readonly errno: number;
  constructor(errno: number, message: string) {
    super(message);
    this.name = 'NvmeAttachError';
    this.errno = errno;
  }
}

function asciiTrim(buf: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && buf[end] !== 0) end++;
  return buf.toString('latin1', off, end).trim();
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * 0x1_0000_0000 + buf.readUInt32LE(off);
}

function uuidFromDescriptors(list: Buffer): string | null {
  for (let off = 0; off + 4 <= list.length; ) {
    const type = list[off];
    const len = list[off + 1];
    if (type === 0 || len === 0) break;
    if (type === NsIdType.UUID && len === 16) {
      const h = list.toString('hex', off + 4, off + 20);
      if (/^0+$/.test(h)) return null;
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
    off += 4 + len;
  }
  return null;
}

interface NamespaceInfo {
  nsid: number;
  blockSize: number;
  numBlocks: number;
  uuid: string | null;
  thin: boolean;
}

async function readNamespaces(c: NvmeController): Promise<NamespaceInfo[]> {
  const list = await c.identify(Cns.ACTIVE_NS_LIST, 0);
  const out: NamespaceInfo[] = [];
  for (let i = 0; i < 1024; i++) {
    const nsid = list.readUInt32LE(i * 4);
    if (nsid === 0) break;
    const ns = await c.identify(Cns.NAMESPACE, nsid);
    const numBlocks = readU64(ns, IdNs.NSZE);
    if (numBlocks === 0) continue; // inactive
    const fmt = ns[IdNs.FLBAS] & 0x0f;
    const lbads = (ns.readUInt32LE(IdNs.LBAF0 + fmt * 4) >>> 16) & 0xff;
    const ms = ns.readUInt16LE(IdNs.LBAF0 + fmt * 4);
    if (lbads < 9 || ms !== 0) {
      log.warn(`namespace ${nsid}: LBA format (lbads ${lbads}, metadata ${ms}) not supported, skipped`);
      continue;
    }
    let uuid: string | null = null;
    try {
      uuid = uuidFromDescriptors(await c.identify(Cns.NS_DESCRIPTOR_LIST, nsid));
    } catch {
      // controllers before NVMe 1.3 have no descriptor list
    }
    out.push({ nsid, blockSize: 1 << lbads, numBlocks, uuid, thin: (ns[IdNs.NSFEAT] & 1) !== 0 });
  }
  return out;
}

/** Largest transfer in blocks: MDTS (units of the minimum page size) and the 16-bit NLB field. */
function maxTransferBlocks(c: NvmeController, blockSize: number): number {
  const nlbMax = 65536;
  const mdts = c.cdata?.[IdCtrl.MDTS] ?? 0;
  if (mdts === 0) return nlbMax;
  const mpsmin = Number((c.cap >> 48n) & 0xfn);
  const bytes = 2 ** (12 + mpsmin + mdts);
  return Math.max(1, Math.min(nlbMax, Math.floor(bytes / blockSize)));
}

/**
 * bdev_nvme_attach_controller: connect, then one bdev NAMEn<nsid> per active
 * namespace. Resolves the bdev names; on failure nothing stays behind.
 */
export async function attachController(opts: AttachOptions): Promise<string[]> {
  if (controllers.has(opts.name)) {
    throw new NvmeAttachError(-114, `A controller named ${opts.name} already exists`);
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
    const namespaces = await readNamespaces(c);
    const cd = c.cdata ?? Buffer.alloc(4096);
    const hostidHex = c.hostid.toString('hex');
    for (const ns of namespaces) {
      const params: NvmeBdevParams = {
        ctrlrName: opts.name,
        attachId: rec.attachId,
        nsid: ns.nsid,
        trid: { ...opts.trid },
        hostidHex,
        retryDelayMs: opts.reconnectDelaySec > 0 ? opts.reconnectDelaySec * 1000 : 1000,
        connectTimeoutMs: rec.connectTimeoutMs ?? 10000,
        shared: rec.sharedBuf,
        oncs: cd.readUInt16LE(IdCtrl.ONCS),
        ctrlrData: {
          cntlid: c.cntlid,
          vendorId: cd.readUInt16LE(IdCtrl.VID),
          model: asciiTrim(cd, IdCtrl.MN, 40),
          serial: asciiTrim(cd, IdCtrl.SN, 20),
          firmware: asciiTrim(cd, IdCtrl.FR, 8),
          subnqn: asciiTrim(cd, IdCtrl.SUBNQN, 256),
        },
      };
      const name = `${opts.name}n${ns.nsid}`;
      const vwc = (cd[IdCtrl.VWC] & 1) !== 0;
      await bdevRegister(
        newBdevDescriptor({
          module: 'nvme',
          name,
          blockSize: ns.blockSize,
          numBlocks: ns.numBlocks,
          productName: 'NVMe disk',
          writeCache: vwc,
          maxTransferBlocks: maxTransferBlocks(c, ns.blockSize),
          ...(ns.uuid !== null ? { uuid: ns.uuid } : {}),
          params: params as unknown as Record<string, unknown>,
        }),
      );
      rec.bdevNames.push(name);
    }
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
export function bdevRemoved(desc: BdevDescriptor): void {
  const p = desc.params as unknown as NvmeBdevParams;
  const rec = controllers.get(p.ctrlrName);
  if (rec === undefined || rec.attachId !== p.attachId) return;
  const i = rec.bdevNames.indexOf(desc.name);
  if (i >= 0) rec.bdevNames.splice(i, 1);
  // the last bdev gone by other means (e.g. shutdown): the controller goes with it
  if (rec.bdevNames.length === 0 && !rec.attaching) void rec.delete();
}

/** save_config: one attach call per controller, written with its first bdev. */
export function configFor(desc: BdevDescriptor): { method: string; params: Record<string, unknown> } | null {
  const p = desc.params as unknown as NvmeBdevParams;
  const rec = controllers.get(p.ctrlrName);
  if (rec === undefined || rec.attachId !== p.attachId || rec.bdevNames[0] !== desc.name) return null;
  return rec.configJson();
}

export function newHostNqn(): { hostnqn: string; hostid: string } {
  const id = randomUUID();
  return { hostnqn: `nqn.2014-08.org.nvmexpress:uuid:${id}`, hostid: id };
}
