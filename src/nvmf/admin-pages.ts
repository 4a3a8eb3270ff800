// The data the admin commands that return a page build from the controller's
// state: Identify (every CNS the target answers) and the log pages of an NVM
// controller (the discovery log's entries come from discovery-log.ts). Read
// only: the controller (target-controller.ts) checks the command, asks for
// the page here, copies it out and clears what reading a log page resets. The
// byte layouts are the wire layer's (src/wire/identify.ts, src/wire/log.ts).
import {
  buildActiveNsList,
  buildCsIndependentNamespace,
  buildIdentifyController,
  buildIdentifyNamespace,
  buildIoCommandSetList,
  buildNsDescriptorList,
  Cns,
  CntrlType,
  Csi,
  eui64ToBytes,
  IDENTIFY_SIZE,
  identifyCntid,
  identifyCsi,
  nguidToBytes,
  Oncs,
  uuidToBytes,
} from '../wire/identify.ts';
import {
  AnaState,
  buildAnaLog,
  buildChangedNsList,
  buildCommandEffectsLog,
  buildFirmwareSlotLog,
  buildHealthLog,
  buildSupportedLogPages,
  ERROR_LOG_ENTRY_SIZE,
  type ErrorLogEntry,
  type GetLogParams,
  LogPage,
  paramLoc,
  writeErrorLogEntry,
} from '../wire/log.ts';
import { AdminOpcode, GenericStatus, NvmOpcode, Sqe } from '../wire/nvme.ts';
import { RESCAP_ALL_TYPES, Rescap } from '../wire/reservation.ts';
import { nsVisibleTo, type PgNamespace, type PgSubsystem } from './poll-group-subsystem.ts';
import type { TransportAddress, TransportOptions } from './transport.ts';

/** VS and Identify VER: NVMe 2.0, as SPDK v26.05 reports (CAP.CRWMS and CRTO go with it) */
export const NVMF_VERSION = 0x00020000;
export const FIRMWARE_REVISION = '26.05';
/** Keep-alive granularity reported in KAS (ms), as SPDK does. */
export const KAS_MS = 10_000;
/** Entries the error log keeps (ELPE + 1) */
export const ERROR_LOG_ENTRIES = 128;

/** An Identify the controller refuses: Generic status `sc` (DNR), `loc` the field at fault. */
export interface Refusal {
  sc: number;
  loc: number;
}

/** What Identify reads of a controller (NvmfCtrlr). */
export interface IdentifySource {
  readonly cntlid: number;
  readonly isDiscovery: boolean;
  readonly opts: TransportOptions;
  /** its host: the namespaces it sees (masking) */
  readonly hostnqn: string;
}

/** RESCAP of a namespace: every type and IEKEY; PTPL where a PTPL file is configured. */
export function namespaceRescap(ns: PgNamespace): number {
  return RESCAP_ALL_TYPES | (ns.config.ptplFile !== null ? Rescap.PTPL : 0);
}

/** NSID 0, above the subsystem's maximum, or 0xffffffff (no namespace management): refused. */
function badNsid(nsid: number, maxNamespaces: number): Refusal | null {
  return nsid === 0 || nsid > maxNamespaces
    ? { sc: GenericStatus.INVALID_NAMESPACE_OR_FORMAT, loc: paramLoc(Sqe.NSID) }
    : null;
}

/** Fill `out` (4 KiB, zeroed where nothing is reported) with the Identify data `cmd` asks of
 * controller `c` in subsystem `sub`; or say why the command is refused. */
export function identifyData(
  c: IdentifySource,
  sub: PgSubsystem,
  cmd: Buffer,
  length: number,
  out: Buffer,
): Refusal | null {
  const cns = cmd.readUInt32LE(Sqe.CDW10) & 0xff;
  const nsid = cmd.readUInt32LE(Sqe.NSID);
  const view = sub.view;
  if (c.isDiscovery && cns !== Cns.CONTROLLER) {
    return { sc: GenericStatus.INVALID_FIELD, loc: paramLoc(Sqe.CDW10) };
  }
  if (length < IDENTIFY_SIZE) {
    // Identify always returns 4 KiB (SPDK nvmf_ctrlr_identify)
    return { sc: GenericStatus.INVALID_FIELD, loc: paramLoc(Sqe.SGL_LENGTH) };
  }
  switch (cns) {
    case Cns.CONTROLLER:
      buildIdentifyController(out, {
        cntlid: c.cntlid,
        controllerType: c.isDiscovery ? CntrlType.DISCOVERY : CntrlType.IO,
        serial: view.serial,
        model: view.model,
        firmware: FIRMWARE_REVISION,
        subnqn: view.nqn,
        version: NVMF_VERSION,
        maxIoSize: c.opts.max_io_size,
        maxQueueDepth: c.opts.max_queue_depth,
        maxNamespaces: view.maxNamespaces,
        inCapsuleDataSize: c.opts.in_capsule_data_size,
        kasMs: KAS_MS,
        oncs: c.isDiscovery ? 0 : Oncs.COMPARE | Oncs.DSM | Oncs.WRITE_ZEROES | Oncs.RESERVATIONS,
        volatileWriteCache: sub.volatileWriteCache(),
        anaReporting: view.anaReporting,
      });
      return null;
    case Cns.NAMESPACE: {
      const refused = badNsid(nsid, view.maxNamespaces);
      if (refused !== null) return refused;
      const ns = sub.visibleNs(nsid, c.hostnqn);
      if (ns === undefined) {
        out.fill(0); // inactive (or not visible to this host): zeroed data
        return null;
      }
      buildIdentifyNamespace(out, {
        numBlocks: ns.desc.bdev.numBlocks,
        blockSize: ns.desc.bdev.blockSize,
        thinProvisioned: ns.unmapSupported,
        optimalIoBoundary: ns.desc.bdev.optimalIoBoundary,
        nguid: nguidToBytes(ns.config.nguid),
        eui64: ns.config.eui64 ? eui64ToBytes(ns.config.eui64) : null,
        anaGroupId: view.anaReporting ? ns.config.anaGroupId : 0,
        rescap: namespaceRescap(ns),
      });
      return null;
    }
    case Cns.ACTIVE_NS_LIST:
      if (nsid >= 0xfffffffe) {
        return { sc: GenericStatus.INVALID_NAMESPACE_OR_FORMAT, loc: paramLoc(Sqe.NSID) };
      }
      buildActiveNsList(out, sub.activeNsids(c.hostnqn), nsid);
      return null;
    case Cns.NS_DESCRIPTOR_LIST: {
      const ns = sub.visibleNs(nsid, c.hostnqn);
      if (ns === undefined) {
        return { sc: GenericStatus.INVALID_NAMESPACE_OR_FORMAT, loc: paramLoc(Sqe.NSID) };
      }
      buildNsDescriptorList(out, {
        eui64: ns.config.eui64 ? eui64ToBytes(ns.config.eui64) : null,
        nguid: nguidToBytes(ns.config.nguid),
        uuid: uuidToBytes(ns.config.uuid),
      });
      return null;
    }
    case Cns.CSI_ACTIVE_NS_LIST:
      if (identifyCsi(cmd) !== Csi.NVM)
        out.fill(0); // a command set other than NVM has no namespaces
      else buildActiveNsList(out, sub.activeNsids(c.hostnqn), nsid);
      return null;
    case Cns.CSI_NAMESPACE: {
      if (identifyCsi(cmd) !== Csi.NVM)
        return { sc: GenericStatus.INVALID_FIELD, loc: paramLoc(Sqe.CDW11 + 3) };
      const refused = badNsid(nsid, view.maxNamespaces);
      if (refused !== null) return refused;
      out.fill(0); // the NVM command set's own namespace data (protection, storage tags): none here
      return null;
    }
    case Cns.CSI_CONTROLLER:
      if (identifyCsi(cmd) !== Csi.NVM)
        return { sc: GenericStatus.INVALID_FIELD, loc: paramLoc(Sqe.CDW11 + 3) };
      out.fill(0); // NVM limits (VSL, WZSL, WUSL, DMRL, DMRSL, DMSL): 0, none beyond MDTS
      return null;
    case Cns.CS_INDEPENDENT_NAMESPACE: {
      const refused = badNsid(nsid, view.maxNamespaces);
      if (refused !== null) return refused;
      const ns = sub.visibleNs(nsid, c.hostnqn);
      if (ns === undefined) out.fill(0);
      else
        buildCsIndependentNamespace(out, {
          thinProvisioned: ns.unmapSupported,
          rescap: namespaceRescap(ns),
          anaGroupId: view.anaReporting ? ns.config.anaGroupId : 0,
        });
      return null;
    }
    case Cns.IO_COMMAND_SET: {
      // the controller's own combinations only: CNTID FFFFh or its own ID (as SPDK)
      const cntid = identifyCntid(cmd);
      if (cntid !== 0xffff && cntid !== c.cntlid)
        return { sc: GenericStatus.INVALID_FIELD, loc: paramLoc(Sqe.CDW10 + 2) };
      buildIoCommandSetList(out);
      return null;
    }
    default:
      return { sc: GenericStatus.INVALID_FIELD, loc: paramLoc(Sqe.CDW10) };
  }
}

/** What the log pages of an NVM controller read (NvmfCtrlr). */
export interface LogSource {
  readonly errorLog: readonly ErrorLogEntry[];
  readonly errorCount: number;
  readonly stats: { dataUnitsRead: number; dataUnitsWritten: number; hostReads: number; hostWrites: number };
  /** namespaces changed since the Changed Namespace List was last read */
  readonly changedNs: ReadonlySet<number>;
  /** its host: the namespaces it sees (masking) */
  readonly hostnqn: string;
}

/**
 * Log page `p.lid` of NVM controller `c` in subsystem `sub`, whole (the caller copies from
 * the offset asked); null when it is not a page this controller has. `via` is the listener
 * the host came through (its ANA state is the one reported).
 */
export function nvmLogPage(
  c: LogSource,
  sub: PgSubsystem,
  via: TransportAddress,
  p: GetLogParams,
  cmd: Buffer,
): Buffer | null {
  switch (p.lid) {
    case LogPage.SUPPORTED_LOG_PAGES: {
      const page = Buffer.alloc(1024);
      const lids: number[] = [
        LogPage.SUPPORTED_LOG_PAGES,
        LogPage.ERROR,
        LogPage.HEALTH,
        LogPage.FIRMWARE_SLOT,
        LogPage.CHANGED_NS_LIST,
        LogPage.COMMAND_EFFECTS,
      ];
      if (sub.view.anaReporting) lids.push(LogPage.ANA);
      lids.push(LogPage.RESERVATION_NOTIFICATION);
      buildSupportedLogPages(page, lids);
      return page;
    }
    case LogPage.ERROR: {
      // ELPE + 1 entries, newest first; only the entries the host asks for are built
      const page = Buffer.alloc(ERROR_LOG_ENTRIES * ERROR_LOG_ENTRY_SIZE);
      const end = Math.min(page.length, p.offset + p.length);
      for (let i = 0; i < c.errorLog.length && i * ERROR_LOG_ENTRY_SIZE < end; i++) {
        writeErrorLogEntry(page, i * ERROR_LOG_ENTRY_SIZE, c.errorLog[i]);
      }
      return page;
    }
    case LogPage.HEALTH: {
      const page = Buffer.alloc(512);
      buildHealthLog(page, { ...c.stats, errors: c.errorCount });
      return page;
    }
    case LogPage.FIRMWARE_SLOT: {
      const page = Buffer.alloc(512);
      buildFirmwareSlotLog(page, FIRMWARE_REVISION);
      return page;
    }
    case LogPage.CHANGED_NS_LIST: {
      const page = Buffer.alloc(4096);
      buildChangedNsList(
        page,
        [...c.changedNs].sort((a, b) => a - b),
      );
      return page;
    }
    case LogPage.ANA:
      return sub.view.anaReporting ? anaLog(sub, c.hostnqn, via, cmd) : null;
    case LogPage.COMMAND_EFFECTS: {
      const page = Buffer.alloc(4096);
      buildCommandEffectsLog(
        page,
        [
          AdminOpcode.GET_LOG_PAGE,
          AdminOpcode.IDENTIFY,
          AdminOpcode.ABORT,
          AdminOpcode.SET_FEATURES,
          AdminOpcode.GET_FEATURES,
          AdminOpcode.ASYNC_EVENT_REQUEST,
          AdminOpcode.KEEP_ALIVE,
        ],
        [
          NvmOpcode.FLUSH,
          NvmOpcode.WRITE,
          NvmOpcode.READ,
          NvmOpcode.COMPARE,
          NvmOpcode.WRITE_ZEROES,
          NvmOpcode.DATASET_MANAGEMENT,
          NvmOpcode.RESERVATION_REGISTER,
          NvmOpcode.RESERVATION_REPORT,
          NvmOpcode.RESERVATION_ACQUIRE,
          NvmOpcode.RESERVATION_RELEASE,
        ],
        [NvmOpcode.FLUSH, NvmOpcode.WRITE, NvmOpcode.WRITE_ZEROES, NvmOpcode.DATASET_MANAGEMENT],
      );
      return page;
    }
    default:
      return null;
  }
}

/** One ANA group per namespace (SPDK's default), in the state of the listener the host came through;
 * the namespaces the host sees only. */
function anaLog(sub: PgSubsystem, hostnqn: string, via: TransportAddress, cmd: Buffer): Buffer {
  const view = sub.view;
  const li = view.listeners.findIndex(
    (l) =>
      l.traddr === via.traddr &&
      l.trsvcid === via.trsvcid &&
      l.trtype.toUpperCase() === via.trtype.toUpperCase(),
  );
  const stateName = (li >= 0 ? view.listenerAnaStates[li] : 'optimized') as keyof typeof AnaState;
  const state = AnaState[stateName] ?? AnaState.optimized;
  const groups = new Map<number, number[]>();
  for (const ns of sub.ns.values()) {
    if (!nsVisibleTo(ns, hostnqn)) continue;
    const g = groups.get(ns.config.anaGroupId) ?? [];
    g.push(ns.nsid);
    groups.set(ns.config.anaGroupId, g);
  }
  const rgo = (cmd[Sqe.CDW10 + 1] & 0x1) !== 0; // LSP bit 0: return groups only
  return buildAnaLog(
    view.anaChangeCount,
    [...groups].sort((a, b) => a[0] - b[0]).map(([grpid, nsids]) => ({ grpid, state, nsids })),
    rgo,
  );
}
