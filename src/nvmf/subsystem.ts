// Subsystems as the app thread keeps them (the registry of record), the
// structured-cloneable view every poll group receives, and NQN rules.

import { randomUUID } from 'node:crypto';
import type { KeyRef } from '../keyring/index.ts';
import { DISCOVERY_NQN } from '../wire/discovery.ts';
import { NvmfError } from './errors.ts';
import type { HostPsk } from './host-psk.ts';
import { NO_RESERVATION, type ResvView } from './reservation.ts';
import type { TransportAddress } from './transport.ts';

export const SubsystemState = {
  INACTIVE: 'inactive',
  ACTIVE: 'active',
  PAUSED: 'paused',
} as const;
export type SubsystemState = (typeof SubsystemState)[keyof typeof SubsystemState];

export const SubsystemType = { NVME: 'NVMe', DISCOVERY: 'Discovery' } as const;
export type SubsystemType = (typeof SubsystemType)[keyof typeof SubsystemType];

export interface NamespaceConfig {
  nsid: number;
  bdevName: string;
  /** 32 hex digits, upper case, as SPDK prints it */
  nguid: string;
  uuid: string;
  eui64: string | null;
  anaGroupId: number;
  /** visible only to the hosts in `hosts` (nvmf_subsystem_add_ns --no-auto-visible) */
  noAutoVisible: boolean;
  /** host NQNs that see a namespace added with noAutoVisible (nvmf_ns_add_host) */
  hosts: string[];
  /** SPDK's --ptpl-file: where the reservation persists through power loss; null: no PTPL */
  ptplFile: string | null;
}

/** A namespace as poll groups see it: its configuration and its reservation now. */
export interface NamespaceView extends NamespaceConfig {
  resv: ResvView;
}

export interface ListenerConfig {
  address: TransportAddress;
  anaState: string; // 'optimized' | 'non_optimized' | 'inaccessible'
  secureChannel: boolean;
}

/** DH-HMAC-CHAP keys of an allowed host (keyring references; the bytes are read at each use). */
export interface HostKeys {
  dhchapKey: KeyRef | null;
  dhchapCtrlrKey: KeyRef | null;
}

/** What a poll group knows of a subsystem (structured-cloneable). */
export interface SubsystemView {
  nqn: string;
  subtype: SubsystemType;
  state: SubsystemState;
  serial: string;
  model: string;
  allowAnyHost: boolean;
  hosts: string[];
  /** DH-HMAC-CHAP: the hosts that must authenticate (a key is configured for them) */
  authHosts: string[];
  namespaces: NamespaceView[];
  listeners: TransportAddress[];
  /** ANA state of each listener, same order */
  listenerAnaStates: string[];
  /** whether each listener requires a secure channel (TLS), same order */
  listenerSecureChannels?: boolean[];
  /** bumped on every ANA state change (ANA log change count) */
  anaChangeCount: number;
  maxNamespaces: number;
  anaReporting: boolean;
}

const NQN_MAX = 223;
/** "nqn.yyyy-mm." is the shortest prefix an NQN has */
const NQN_MIN = 11;
const DOMAIN_LABEL_MAX = 63;
const UUID_NQN_PREFIX = 'nqn.2014-08.org.nvmexpress:uuid:';
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const DOMAIN_LABEL_RE = /^[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$/;

/**
 * Null when `nqn` is a valid NQN, else the reason — SPDK's rules (nvmf_nqn_is_valid),
 * so what SPDK refuses is refused here too: the discovery NQN; the UUID form; or
 * "nqn.yyyy-mm.reverse.domain:name" with a non-empty name after the colon and domain
 * labels that start with a letter, hold letters, digits and hyphens, end alphanumeric
 * and are at most 63 characters.
 */
export function nqnError(nqn: string): string | null {
  if (typeof nqn !== 'string' || nqn.length === 0) return 'NQN is empty';
  const bytes = Buffer.byteLength(nqn, 'utf8');
  if (bytes > NQN_MAX) return `NQN "${nqn}" is longer than ${NQN_MAX} bytes`;
  if (bytes < NQN_MIN) return `NQN "${nqn}" is shorter than ${NQN_MIN} bytes`;
  if (nqn === DISCOVERY_NQN) return null;
  if (nqn.startsWith(UUID_NQN_PREFIX)) {
    const u = nqn.slice(UUID_NQN_PREFIX.length);
    return UUID_RE.test(u) ? null : `invalid UUID in NQN "${nqn}"`;
  }
  if (!nqn.startsWith('nqn.')) return `NQN "${nqn}" must begin with "nqn."`;
  if (!/^nqn\.\d{4}-\d{2}\./.test(nqn)) return `invalid date code in NQN "${nqn}" (nqn.yyyy-mm.)`;
  const colon = nqn.indexOf(':');
  if (colon < 0 || colon === nqn.length - 1)
    return `NQN "${nqn}" must contain a name after a ':' (nqn.yyyy-mm.reverse.domain:name)`;
  for (const label of nqn.slice(12, colon).split('.')) {
    if (label.length > DOMAIN_LABEL_MAX) return `invalid domain name in NQN "${nqn}": a label is too long`;
    if (!DOMAIN_LABEL_RE.test(label))
      return `invalid domain name in NQN "${nqn}": labels start with a letter, hold letters, digits and '-', and end alphanumeric`;
  }
  return null;
}

/** A 16-byte NGUID as 32 upper-case hex digits from a UUID. */
export function nguidFromUuid(uuid: string): string {
  return uuid.replace(/-/g, '').toUpperCase();
}

export class NvmfSubsystem {
  readonly nqn: string;
  readonly subtype: SubsystemType;
  state: SubsystemState = SubsystemState.INACTIVE;
  serial: string;
  model: string;
  allowAnyHost: boolean;
  readonly hosts = new Set<string>();
  /** DH-HMAC-CHAP keys of the hosts that have some (nvmf_subsystem_add_host / set_keys) */
  readonly hostKeys = new Map<string, HostKeys>();
  /** the TLS PSKs of the hosts that have one (nvmf_subsystem_add_host --psk) */
  readonly hostPsks = new Map<string, HostPsk>();
  readonly namespaces = new Map<number, NamespaceConfig>();
  /** each namespace's reservation as poll groups check I/O against it (set by its owner) */
  readonly resvViews = new Map<number, ResvView>();
  readonly listeners: ListenerConfig[] = [];
  maxNamespaces: number;
  readonly minCntlid: number;
  readonly maxCntlid: number;
  anaReporting: boolean;
  nextCntlid: number;
  anaChangeCount = 0;

  constructor(o: {
    nqn: string;
    subtype: SubsystemType;
    serial: string;
    model: string;
    allowAnyHost: boolean;
    maxNamespaces: number;
    minCntlid: number;
    maxCntlid: number;
    anaReporting: boolean;
  }) {
    this.nqn = o.nqn;
    this.subtype = o.subtype;
    this.serial = o.serial;
    this.model = o.model;
    this.allowAnyHost = o.allowAnyHost;
    this.maxNamespaces = o.maxNamespaces;
    this.minCntlid = o.minCntlid;
    this.maxCntlid = o.maxCntlid;
    this.anaReporting = o.anaReporting;
    this.nextCntlid = o.minCntlid;
  }

  hostAllowed(hostnqn: string): boolean {
    return this.allowAnyHost || this.hosts.has(hostnqn);
  }

  /** First free NSID (1-based), 0 if the subsystem is full. */
  freeNsid(): number {
    for (let nsid = 1; nsid <= this.maxNamespaces; nsid++) if (!this.namespaces.has(nsid)) return nsid;
    return 0;
  }

  addNamespace(o: {
    bdevName: string;
    nsid?: number;
    uuid?: string;
    nguid?: string;
    eui64?: string;
    anaGroupId?: number;
    noAutoVisible?: boolean;
    ptplFile?: string;
  }): NamespaceConfig {
    const nsid = o.nsid && o.nsid > 0 ? o.nsid : this.freeNsid();
    if (nsid === 0) throw new NvmfError(`subsystem ${this.nqn} has no free namespace ID`);
    if (nsid > this.maxNamespaces)
      throw new NvmfError(`NSID ${nsid} exceeds max_namespaces ${this.maxNamespaces}`);
    if (this.namespaces.has(nsid)) throw new NvmfError(`NSID ${nsid} is already in use in ${this.nqn}`);
    for (const ns of this.namespaces.values()) {
      if (ns.bdevName === o.bdevName)
        throw new NvmfError(`bdev ${o.bdevName} is already namespace ${ns.nsid} of ${this.nqn}`);
    }
    const uuid = o.uuid ?? randomUUID();
    const ns: NamespaceConfig = {
      nsid,
      bdevName: o.bdevName,
      uuid,
      nguid: (o.nguid ?? nguidFromUuid(uuid)).replace(/-/g, '').toUpperCase(),
      eui64: o.eui64 ?? null,
      anaGroupId: o.anaGroupId ?? nsid,
      noAutoVisible: o.noAutoVisible ?? false,
      hosts: [],
      ptplFile: o.ptplFile ?? null,
    };
    this.namespaces.set(nsid, ns);
    return ns;
  }

  /** Replace a host's keys (null: none); the references it held are released. */
  setHostKeys(host: string, keys: HostKeys | null): void {
    const old = this.hostKeys.get(host);
    old?.dhchapKey?.put();
    old?.dhchapCtrlrKey?.put();
    if (keys === null || (keys.dhchapKey === null && keys.dhchapCtrlrKey === null))
      this.hostKeys.delete(host);
    else this.hostKeys.set(host, keys);
  }

  findListener(a: TransportAddress): ListenerConfig | undefined {
    return this.listeners.find((l) => sameAddress(l.address, a));
  }

  view(): SubsystemView {
    return {
      nqn: this.nqn,
      subtype: this.subtype,
      state: this.state,
      serial: this.serial,
      model: this.model,
      allowAnyHost: this.allowAnyHost,
      hosts: [...this.hosts],
      authHosts: [...this.hostKeys].filter(([, k]) => k.dhchapKey !== null).map(([h]) => h),
      namespaces: [...this.namespaces.values()].map((n) => ({
        ...n,
        hosts: [...n.hosts],
        resv: this.resvViews.get(n.nsid) ?? NO_RESERVATION,
      })),
      listeners: this.listeners.map((l) => ({ ...l.address })),
      listenerAnaStates: this.listeners.map((l) => l.anaState),
      listenerSecureChannels: this.listeners.map((l) => l.secureChannel),
      anaChangeCount: this.anaChangeCount,
      maxNamespaces: this.maxNamespaces,
      anaReporting: this.anaReporting,
    };
  }
}

export function sameAddress(a: TransportAddress, b: TransportAddress): boolean {
  return (
    a.trtype.toUpperCase() === b.trtype.toUpperCase() &&
    a.traddr === b.traddr &&
    a.trsvcid === b.trsvcid &&
    a.adrfam.toUpperCase() === b.adrfam.toUpperCase()
  );
}
