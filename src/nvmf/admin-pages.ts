// The data the admin commands that return a page build from the controller's
// state: Identify (every CNS the target answers) and the log pages of an NVM
// controller (the discovery log's entries come from discovery-log.ts). Read
// only: the controller (target-controller.ts) checks the command, asks for
// the page here, copies it out and clears what reading a log page resets. The
// byte layouts are the wire layer's (src/wire/identify.ts, src/wire/log.ts).
import {
  buildActiveNsList,
  buildIdentifyController,
  buildIdentifyNamespace,
  buildNsDescriptorList,
  Cns,
  CntrlType,
  eui64ToBytes,
  IDENTIFY_SIZE,
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
import type { QueueIoTotals } from './io-stats.ts';
import type { PgSubsystem } from './poll-group-subsystem.ts';
import type { TransportAddress, TransportOptions } from './transport.ts';

export const NVMF_VERSION = 0x00010300; // 1.3
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
        oncs: c.isDiscovery ? 0 : Oncs.COMPARE | Oncs.DSM | Oncs.WRITE_ZEROES,
        volatileWriteCache: sub.volatileWriteCache(),
        anaReporting: view.anaReporting,
      });
      return null;
    case Cns.NAMESPACE: {
      // 0, above the subsystem's max NSID, and 0xffffffff (no namespace management) are invalid
      if (nsid === 0 || nsid > view.maxNamespaces) {
        return { sc: GenericStatus.INVALID_NAMESPACE_OR_FORMAT, loc: paramLoc(Sqe.NSID) };
      }
      const ns = sub.ns.get(nsid);
      if (ns === undefined) {
        out.fill(0); // inactive namespace: zeroed data
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
      });
      return null;
    }
    case Cns.ACTIVE_NS_LIST:
      if (nsid >= 0xfffffffe) {
        return { sc: GenericStatus.INVALID_NAMESPACE_OR_FORMAT, loc: paramLoc(Sqe.NSID) };
      }
      buildActiveNsList(out, [...sub.ns.keys()], nsid);
      return null;
    case Cns.NS_DESCRIPTOR_LIST: {
      const ns = sub.ns.get(nsid);
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
      if (cmd[Sqe.CDW11 + 3] !== 0)
        out.fill(0); // a command set other than NVM has no namespaces
      else buildActiveNsList(out, [...sub.ns.keys()], nsid);
      return null;
    case Cns.CSI_CONTROLLER:
    case Cns.CSI_NAMESPACE:
      if (cmd[Sqe.CDW11 + 3] !== 0) return { sc: GenericStatus.INVALID_FIELD, loc: paramLoc(Sqe.CDW11 + 3) };
      out.fill(0); // the NVM command set has no I/O-command-set-specific data we report
      return null;
    case Cns.IO_COMMAND_SET:
      out.fill(0);
      out.writeUInt32LE(1, 0); // NVM command set only
      return null;
    default:
      return { sc: GenericStatus.INVALID_FIELD, loc: paramLoc(Sqe.CDW10) };
  }
}

/** What the log pages of an NVM controller read (NvmfCtrlr). */
export interface LogSource {
  readonly errorLog: readonly ErrorLogEntry[];
  readonly errorCount: number;
  /** what the controller's I/O queues did, gathered from every poll group when the page is read */
  readonly ioTotals: QueueIoTotals;
  /** namespaces changed since the Changed Namespace List was last read */
  readonly changedNs: ReadonlySet<number>;
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
      buildSupportedLogPages(page, sub.view.anaReporting ? [0, 1, 2, 3, 4, 5, 0x0c] : [0, 1, 2, 3, 4, 5]);
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
      const t = c.ioTotals;
      // data units are thousands of 512-byte units, rounded up; busy time whole minutes, rounded up
      buildHealthLog(page, {
        dataUnitsRead: Math.ceil(t.bytesRead / 512_000),
        dataUnitsWritten: Math.ceil(t.bytesWritten / 512_000),
        hostReads: t.hostReads,
        hostWrites: t.hostWrites,
        errors: c.errorCount,
        busyMinutes: Math.ceil(t.busyUs / 60_000_000),
        // the target's uptime: it is the device the host sees
        powerOnHours: Math.floor(process.uptime() / 3600),
      });
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
      return sub.view.anaReporting ? anaLog(sub, via, cmd) : null;
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
        ],
        [NvmOpcode.FLUSH, NvmOpcode.WRITE, NvmOpcode.WRITE_ZEROES, NvmOpcode.DATASET_MANAGEMENT],
      );
      return page;
    }
    default:
      return null;
  }
}

/** One ANA group per namespace (SPDK's default), in the state of the listener the host came through. */
function anaLog(sub: PgSubsystem, via: TransportAddress, cmd: Buffer): Buffer {
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
