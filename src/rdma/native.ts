// The RDMA addon (native/rdma: N-API over librdmacm and libibverbs) as this project
// sees it: its JavaScript API, typed, and the loader. The addon is thin on purpose:
// CM events, verbs objects, memory registration, post and poll; every protocol
// decision is made in TypeScript. Each realm (the main thread, each worker) loads
// its own instance; objects belong to the realm that made them, except a CmId,
// which CmId.transfer / RdmaAddon.adoptCmId hand from one realm to another.
//
// When the addon is not built (no libibverbs-dev / librdmacm-dev at install time) or
// cannot load, loadRdmaAddon throws an RdmaUnavailableError whose message says what
// is missing; nothing else in the project needs RDMA to run.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NvmfTsError } from '../util/errors.ts';

/** An address as the CM reports it. */
export type SocketAddress = { address: string; port: number; family: 'IPv4' | 'IPv6' };

/** An rdma_cm event (control path: one object per event). */
export type CmEvent = {
  /** CmEventType */
  type: number;
  /** e.g. "RDMA_CM_EVENT_CONNECT_REQUEST" */
  name: string;
  /** 0, or an errno / the CM's reason (a REJECTED event: 28 for a consumer reject) */
  status: number;
  /** the id the event is about (a connect request's is new, strongly held until destroy()) */
  id: CmId | null;
  /** a connect request's listening id */
  listenId: CmId | null;
  /** a copy of the peer's private data (connect request, established, rejected) */
  privateData: Buffer | null;
  responderResources: number;
  initiatorDepth: number;
  flowControl: number;
  retryCount: number;
  rnrRetryCount: number;
  srq: number;
  qpNum: number;
};

/** rdma_conn_param for connect / accept. */
export type ConnectionParams = {
  /** at most 56 bytes on connect and 196 on accept over RoCE/IB */
  privateData?: Uint8Array;
  responderResources?: number;
  initiatorDepth?: number;
  /** default 1 */
  flowControl?: number;
  /** default 7 (connect only) */
  retryCount?: number;
  /** default 7 */
  rnrRetryCount?: number;
};

export interface CmEventChannel {
  readonly fd: number;
  /** names this channel across realms, for CmId.transfer */
  readonly token: number;
  /** Watches the fd with libuv; the callback gets each event, already acknowledged. */
  start(callback: (event: CmEvent) => void): void;
  stop(): void;
  ref(): void;
  unref(): void;
  /** A new id (RDMA_PS_TCP) whose events arrive here. */
  createId(): CmId;
  /** Throws while ids still deliver events here. */
  destroy(): void;
}

export interface CmId {
  bind(address: string, port: number): void;
  listen(backlog?: number): void;
  /** → ADDR_RESOLVED / ADDR_ERROR */
  resolveAddr(address: string, port: number, timeoutMs?: number, sourceAddress?: string): void;
  /** → ROUTE_RESOLVED / ROUTE_ERROR */
  resolveRoute(timeoutMs?: number): void;
  /** → ESTABLISHED (with the accept's private data) / REJECTED / UNREACHABLE / CONNECT_ERROR */
  connect(params?: ConnectionParams): void;
  /** → ESTABLISHED */
  accept(params?: ConnectionParams): void;
  reject(privateData?: Uint8Array): void;
  /** → DISCONNECTED on both sides */
  disconnect(): void;
  /** An RC queue pair on this id (on the id's device). */
  createQp(options: QueuePairOptions): QueuePair;
  destroyQp(): void;
  /** Destroys its queue pair, then the id. */
  destroy(): void;
  localAddress(): SocketAddress | null;
  remoteAddress(): SocketAddress | null;
  /** The device the id is bound to (after bind to a device address, resolveAddr or a connect request). */
  device(): Device | null;
  readonly portNum: number;
  /** Moves its events to another channel of this realm. */
  migrate(channel: CmEventChannel): void;
  /**
   * Hands the id to another realm: its events move to the channel with that token,
   * this object stops being usable, and the returned token is what the receiver passes
   * to adoptCmId (in the realm owning that channel). Refused while it has a queue pair.
   */
  transfer(channelToken: number): number;
}

export type DeviceAttributes = {
  fwVer: string;
  maxMrSize: number;
  pageSizeCap: number;
  vendorId: number;
  vendorPartId: number;
  maxQp: number;
  maxQpWr: number;
  deviceCapFlags: number;
  maxSge: number;
  maxSgeRd: number;
  maxCq: number;
  maxCqe: number;
  maxMr: number;
  maxPd: number;
  maxQpRdAtom: number;
  maxQpInitRdAtom: number;
  maxSrq: number;
  maxSrqWr: number;
  maxSrqSge: number;
  physPortCnt: number;
};

export type PortAttributes = {
  state: number;
  stateName: string;
  /** bytes */
  maxMtu: number;
  activeMtu: number;
  gidTblLen: number;
  linkLayer: number;
  linkLayerName: 'Ethernet' | 'InfiniBand' | 'unspecified';
  maxMsgSz: number;
};

export type AsyncEvent = { type: number; name: string; qpNum?: number; portNum?: number };

export interface Device {
  readonly name: string;
  /** hex */
  readonly guid: string;
  query(): DeviceAttributes;
  queryPort(port?: number): PortAttributes;
  allocPd(): ProtectionDomain;
  createCompChannel(): CompletionChannel;
  createCq(entries: number, channel?: CompletionChannel | null, vector?: number): CompletionQueue;
  /** The device's asynchronous events (QP fatal, port down, …); one realm should watch them. */
  watchAsyncEvents(callback: (event: AsyncEvent) => void): void;
  stopAsyncEvents(): void;
}

export interface ProtectionDomain {
  /**
   * Registers the bytes of `view`, which must lie in a SharedArrayBuffer (one that
   * cannot be detached; the region keeps it alive until deregistered). `access` is
   * Access flags.
   */
  registerMemory(view: Uint8Array, access: number): MemoryRegion;
  createSrq(options?: { maxWr?: number; maxSge?: number; srqLimit?: number }): SharedReceiveQueue;
  dealloc(): void;
}

export interface MemoryRegion {
  /** what an SGE names (setSge); unique among this realm's live regions */
  readonly index: number;
  readonly lkey: number;
  readonly rkey: number;
  readonly length: number;
  /** the first byte's address, for a peer's RDMA READ / WRITE */
  readonly address: bigint;
  deregister(): void;
}

export interface CompletionChannel {
  readonly fd: number;
  /** Watches the fd with libuv: after CQ events the callback runs once; poll, then requestNotify. */
  start(callback: () => void): void;
  stop(): void;
  ref(): void;
  unref(): void;
  destroy(): void;
}

export interface CompletionQueue {
  /** Up to `max` completions into `out` (WorkCompletion.WORDS each); their count, or -errno. */
  poll(out: Uint32Array, max: number): number;
  /** Arms the completion channel for the next completion (only solicited ones if asked). */
  requestNotify(solicitedOnly?: boolean): void;
  readonly entries: number;
  destroy(): void;
}

export interface SharedReceiveQueue {
  /** Posts `count` receive requests from `wrs`; returns how many were posted (see lastError). */
  postRecv(wrs: Uint32Array, count: number): number;
  /** errno of the last post that stopped short (EINVAL: a record names no MR of this PD or overruns it) */
  readonly lastError: number;
  readonly maxWr: number;
  readonly maxSge: number;
  destroy(): void;
}

export type QueuePairOptions = {
  pd: ProtectionDomain;
  sendCq: CompletionQueue;
  recvCq: CompletionQueue;
  srq?: SharedReceiveQueue | null;
  maxSendWr?: number;
  maxRecvWr?: number;
  maxSendSge?: number;
  maxRecvSge?: number;
  maxInlineData?: number;
};

export type QueuePairCaps = {
  maxSendWr: number;
  maxRecvWr: number;
  maxSendSge: number;
  maxRecvSge: number;
  maxInlineData: number;
};

export interface QueuePair {
  readonly qpNum: number;
  /** what the device granted */
  readonly caps: QueuePairCaps;
  /** Posts `count` send-queue requests (SEND, SEND_WITH_INV, RDMA WRITE / READ); how many were posted. */
  postSend(wrs: Uint32Array, count: number): number;
  /** Posts receive requests (not with an SRQ); how many were posted. */
  postRecv(wrs: Uint32Array, count: number): number;
  readonly lastError: number;
  /** QpState */
  state(): number;
  /** Moves the QP to the error state: outstanding requests complete with WR_FLUSH_ERR. */
  toError(): void;
}

export interface RdmaAddon {
  devices(): Device[];
  createEventChannel(): CmEventChannel;
  /** Takes over a CmId another realm handed over with transfer(); call it in the realm owning the channel. */
  adoptCmId(token: number): CmId;
  wcStatusString(status: number): string;
  cmEventString(type: number): string;
  /** the layout and libibverbs values work-request.ts mirrors */
  readonly constants: Readonly<Record<string, number>>;
}

/** What loadRdmaAddon throws when RDMA cannot be used here. */
export class RdmaUnavailableError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_RDMA_UNAVAILABLE';
  /** Debian packages (or tools) whose absence is the reason; empty when it is something else */
  readonly missing: string[];
  constructor(message: string, missing: string[]) {
    super('NVMF_ERR_RDMA_UNAVAILABLE', message);
    this.missing = missing;
  }
}

const ADDON_DIR = fileURLToPath(new URL('../../native/rdma/', import.meta.url));

/** Where the loader looks, overridable for tests. */
export type AddonLocation = {
  /** the .node file (default native/rdma/build/Release/nvmf_rdma.node, or $NVMF_TS_RDMA_ADDON) */
  addonPath: string;
  /** what native/rdma/build.mjs wrote at install */
  statusPath: string;
  /** where the development headers are looked for when no build was attempted */
  includeDir: string;
};

export function defaultAddonLocation(): AddonLocation {
  return {
    addonPath: process.env.NVMF_TS_RDMA_ADDON ?? `${ADDON_DIR}build/Release/nvmf_rdma.node`,
    statusPath: `${ADDON_DIR}build/status.json`,
    includeDir: '/usr/include',
  };
}

const BUILD_COMMAND = 'node native/rdma/build.mjs';
const DEV_PACKAGES = [
  ['infiniband/verbs.h', 'libibverbs-dev'],
  ['rdma/rdma_cma.h', 'librdmacm-dev'],
] as const;

function listWords(items: string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

function aptNames(missing: string[]): string[] {
  return [...new Set(missing.map((m) => (/build-essential/.test(m) ? 'build-essential' : m.split(' ')[0])))];
}

type BuildStatus = { built?: boolean; skipped?: boolean; missing?: string[]; failed?: string };

/** Why the addon at `location` is not there to load; null when the file exists. */
export function explainMissingAddon(location: AddonLocation): RdmaUnavailableError | null {
  if (existsSync(location.addonPath)) return null;
  let status: BuildStatus | null = null;
  try {
    status = JSON.parse(readFileSync(location.statusPath, 'utf8')) as BuildStatus;
  } catch {
    status = null;
  }
  const prefix = 'RDMA is unavailable: the RDMA addon (native/rdma) is not built';
  if (status?.skipped) {
    return new RdmaUnavailableError(
      `${prefix}: NVMF_TS_SKIP_RDMA_BUILD was set when it was installed; run "${BUILD_COMMAND}"`,
      [],
    );
  }
  if (status?.failed) {
    return new RdmaUnavailableError(
      `${prefix}: its build failed (${status.failed}); run "${BUILD_COMMAND}"`,
      [],
    );
  }
  const missing =
    status?.missing && status.missing.length > 0
      ? status.missing
      : DEV_PACKAGES.filter(([header]) => !existsSync(`${location.includeDir}/${header}`)).map(
          ([, pkg]) => pkg,
        );
  if (missing.length > 0) {
    const verb = missing.length === 1 ? 'is' : 'are';
    return new RdmaUnavailableError(
      `${prefix}: ${listWords(missing)} ${verb} not installed (Debian: apt-get install ${aptNames(missing).join(' ')}), then run "${BUILD_COMMAND}" or npm ci`,
      missing,
    );
  }
  return new RdmaUnavailableError(`${prefix} yet: run "${BUILD_COMMAND}" (or npm ci)`, []);
}

/** The sentence for an addon file that exists but would not load. */
export function explainLoadFailure(error: unknown): RdmaUnavailableError {
  const message = error instanceof Error ? error.message : String(error);
  const runtime: string[] = [];
  if (/libibverbs\.so/.test(message)) runtime.push('libibverbs1');
  if (/librdmacm\.so/.test(message)) runtime.push('librdmacm1');
  if (runtime.length > 0) {
    return new RdmaUnavailableError(
      `RDMA is unavailable: the RDMA addon cannot load because ${listWords(runtime)} ${runtime.length === 1 ? 'is' : 'are'} not installed (Debian: apt-get install ${runtime.join(' ')}): ${message}`,
      runtime,
    );
  }
  return new RdmaUnavailableError(`RDMA is unavailable: the RDMA addon cannot load: ${message}`, []);
}

let loaded: { path: string; addon: RdmaAddon } | null = null;
let substitute: RdmaAddon | null = null;

/**
 * Makes loadRdmaAddon return `addon` in this realm (an implementation of the same API, e.g.
 * the fake verbs layer of the unit tests, which run where no RDMA device exists); null
 * goes back to the real addon.
 */
export function substituteRdmaAddon(addon: RdmaAddon | null): void {
  substitute = addon;
}

/** The addon of this realm (loaded once); throws RdmaUnavailableError saying what is missing. */
export function loadRdmaAddon(location: AddonLocation = defaultAddonLocation()): RdmaAddon {
  if (substitute !== null) return substitute;
  if (loaded && loaded.path === location.addonPath) return loaded.addon;
  const missing = explainMissingAddon(location);
  if (missing) throw missing;
  let addon: RdmaAddon;
  try {
    addon = createRequire(import.meta.url)(location.addonPath) as RdmaAddon;
  } catch (error) {
    throw explainLoadFailure(error);
  }
  loaded = { path: location.addonPath, addon };
  return addon;
}

/** Whether RDMA can be used here, and if not, why (the sentence loadRdmaAddon would throw). */
export function rdmaAvailability(
  location: AddonLocation = defaultAddonLocation(),
): { available: true } | { available: false; reason: string; missing: string[] } {
  try {
    loadRdmaAddon(location);
    return { available: true };
  } catch (error) {
    if (error instanceof RdmaUnavailableError) {
      return { available: false, reason: error.message, missing: error.missing };
    }
    throw error;
  }
}
