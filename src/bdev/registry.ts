// The registry of record (app thread, reactor 0): names, aliases, UUIDs,
// claims, registration order. Every change is broadcast to one thread per
// realm, which builds/drops/resizes its replica and acknowledges; the call
// resolves when every realm has answered.

import { currentThread, defineHandler, sendMsg, type ThreadRef } from '../thread/index.ts';
import { NotRegisteredError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { type Bdev, type BdevDesc, type BdevModule, submitAfterQos } from './bdev.ts';
import { BdevError } from './errors.ts';
import { BdevQos, createQosState, type QosLimits, qosEnabled } from './qos.ts';
import { addReplica, realmLookup, removeReplica, resizeReplica } from './replicas.ts';
import type { BdevIoStatsSnapshot } from './stats.ts';
import { type BdevDescriptor, isUuid } from './types.ts';

// ---- per-realm module table (filled by the bdev subsystem's realmInit in every realm) ----
const log = logger('bdev');
const modules = new Map<string, BdevModule>();

export function registerBdevModule(m: BdevModule): void {
  if (modules.has(m.name)) return; // realmInit may run twice in one realm (tests)
  modules.set(m.name, m);
}

export function getBdevModule(name: string): BdevModule | undefined {
  return modules.get(name);
}

// ---- realm threads (one per reactor) ----
let realmThreads: ThreadRef[] | null = null;

/** Set by the bdev subsystem: one thread per reactor that hosts the replicas' control messages. */
export function bdevSetRealmThreads(refs: ThreadRef[]): void {
  realmThreads = refs;
}

function realms(): ThreadRef[] {
  if (realmThreads === null) realmThreads = [currentThread().ref];
  return realmThreads;
}

// ---- records (meaningful on the app thread only) ----
export interface BdevRecord {
  desc: BdevDescriptor;
  claimedBy: string | null;
  qos: { limits: QosLimits; state: SharedArrayBuffer } | null;
  histogram: boolean;
  /** set while the bdev is being unregistered */
  removal?: Promise<void>;
}

const records = new Map<string, BdevRecord>(); // by name, registration order
const byAliasOrUuid = new Map<string, string>(); // alias / uuid → name

export function bdevGetRecord(nameOrAlias: string): BdevRecord | undefined {
  return records.get(nameOrAlias) ?? records.get(byAliasOrUuid.get(nameOrAlias) ?? '');
}

/**
 * The descriptor of bdev `nameOrAlias` if `module` registered it, with its
 * params typed as that module's; undefined when there is no such bdev or it
 * belongs to another module.
 */
export function bdevModuleDescriptor<P extends object>(
  module: BdevModule<P>,
  nameOrAlias: string,
): BdevDescriptor<P> | undefined {
  const rec = bdevGetRecord(nameOrAlias);
  if (rec === undefined || rec.desc.module !== module.name) return undefined;
  // a module's descriptors carry its params (newBdevDescriptor typed them when it registered)
  return rec.desc as BdevDescriptor<P>;
}

export function bdevListRecords(): BdevRecord[] {
  return [...records.values()];
}

// ---- broadcast machinery ----
interface Pending {
  remaining: number;
  errors: string[];
  results: unknown[];
  resolve: (r: { errors: string[]; results: unknown[] }) => void;
}
const pending = new Map<number, Pending>();
let nextToken = 1;

interface Reply {
  token: number;
  error?: string;
  result?: unknown;
}

const ack = defineHandler<Reply>('bdev.realmAck', (r) => {
  const p = pending.get(r.token);
  if (p === undefined) return;
  if (r.error !== undefined) p.errors.push(r.error);
  if (r.result !== undefined) p.results.push(r.result);
  if (--p.remaining === 0) {
    pending.delete(r.token);
    p.resolve({ errors: p.errors, results: p.results });
  }
});

type Op =
  | { op: 'register'; desc: BdevDescriptor }
  | { op: 'unregister'; name: string }
  | { op: 'resize'; name: string; numBlocks: number }
  | { op: 'qos'; name: string; limits: QosLimits | null; state: SharedArrayBuffer | null }
  | { op: 'histogram'; name: string; enable: boolean }
  | { op: 'stats'; name: string; reset: boolean };

interface RealmMsg {
  token: number;
  replyTo: ThreadRef;
  body: Op;
}

function reply(m: RealmMsg, error?: string, result?: unknown): void {
  sendMsg(m.replyTo, ack, { token: m.token, error, result });
}

const realmOp = defineHandler<RealmMsg>('bdev.realmOp', (m) => {
  const b = m.body;
  try {
    switch (b.op) {
      case 'register': {
        const mod = modules.get(b.desc.module);
        if (mod === undefined) throw new NotRegisteredError(`bdev module ${b.desc.module} is not loaded`);
        addReplica(b.desc, mod);
        reply(m);
        return;
      }
      case 'unregister':
        removeReplica(b.name, () => reply(m));
        return;
      case 'resize':
        resizeReplica(b.name, b.numBlocks);
        reply(m);
        return;
      case 'qos': {
        const bdev = realmLookup(b.name);
        if (bdev !== undefined) {
          const old = bdev.qos;
          bdev.qos =
            b.limits !== null && b.state !== null
              ? new BdevQos(b.state, b.limits, bdev.name, submitAfterQos)
              : null;
          old?.release();
        }
        reply(m);
        return;
      }
      case 'histogram': {
        const bdev = realmLookup(b.name);
        if (bdev !== undefined) {
          bdev.histogramEnabled = b.enable;
          for (const ch of bdev.channels) ch.stats.histogram = b.enable ? new Float64Array(48) : null;
          bdev.retiredStats.histogram = b.enable ? new Float64Array(48) : null;
        }
        reply(m);
        return;
      }
      case 'stats': {
        const bdev = realmLookup(b.name);
        if (bdev === undefined) {
          reply(m);
          return;
        }
        // channels live on several threads of this realm; they are plain objects in one heap,
        // so the realm thread reads them directly (counters are only ever written by their thread)
        const snaps: BdevIoStatsSnapshot[] = [bdev.retiredStats.snapshot()];
        for (const ch of bdev.channels) snaps.push({ ...ch.stats.snapshot(), threadId: ch.thread.ref.id });
        if (b.reset) {
          bdev.retiredStats.reset();
          for (const ch of bdev.channels) ch.stats.reset();
        }
        reply(m, undefined, snaps);
        return;
      }
    }
  } catch (e) {
    reply(m, (e as Error).message);
  }
});

/** Send one op to every realm; resolves with the errors and results of all. */
export function broadcast(body: Op): Promise<{ errors: string[]; results: unknown[] }> {
  const targets = realms();
  const token = nextToken++;
  const replyTo = currentThread().ref;
  return new Promise((resolve) => {
    pending.set(token, { remaining: targets.length, errors: [], results: [], resolve });
    for (const t of targets) sendMsg(t, realmOp, { token, replyTo, body });
  });
}

// ---- the registry's operations (app thread) ----

/** Register a bdev: record it, build a replica in every realm. */
export async function bdevRegister<P extends object>(desc: BdevDescriptor<P>): Promise<void> {
  if (typeof desc.name !== 'string' || desc.name.length === 0)
    throw new BdevError('EINVAL', 'bdev name is empty');
  if (!isUuid(desc.uuid)) throw new BdevError('EINVAL', `uuid ${desc.uuid} is not a valid UUID`);
  for (const n of [desc.name, ...desc.aliases, desc.uuid]) {
    if (bdevGetRecord(n) !== undefined) throw new BdevError('EEXIST', `bdev name ${n} already exists`);
  }
  if (!modules.has(desc.module)) throw new BdevError('EINVAL', `bdev module ${desc.module} is not loaded`);
  const rec: BdevRecord = { desc, claimedBy: null, qos: null, histogram: false };
  records.set(desc.name, rec);
  for (const a of desc.aliases) byAliasOrUuid.set(a, desc.name);
  byAliasOrUuid.set(desc.uuid, desc.name);
  if (log.debugEnabled()) {
    log.debug(
      `register ${desc.name} (${desc.module}, ${desc.numBlocks} blocks of ${desc.blockSize} bytes) in every realm`,
    );
  }
  const r = await broadcast({ op: 'register', desc });
  if (r.errors.length > 0) {
    await broadcast({ op: 'unregister', name: desc.name });
    dropRecord(rec);
    throw new BdevError('EINVAL', r.errors[0]);
  }
}

function dropRecord(rec: BdevRecord): void {
  records.delete(rec.desc.name);
  for (const a of rec.desc.aliases) byAliasOrUuid.delete(a);
  byAliasOrUuid.delete(rec.desc.uuid);
}

/**
 * Unregister: bdevs stacked on this one go first; every realm tells its open
 * descriptors ('remove') and waits for them to close; then the module frees it.
 */
export function bdevUnregister(name: string): Promise<void> {
  const rec = bdevGetRecord(name);
  if (rec === undefined) return Promise.reject(new BdevError('ENODEV', `bdev ${name} does not exist`));
  if (log.debugEnabled()) log.debug(`unregister ${name}${rec.removal ? ' (already under way)' : ''}`);
  // a second delete while the first waits for descriptors joins it
  rec.removal ??= unregisterRecord(rec);
  return rec.removal;
}

async function unregisterRecord(rec: BdevRecord): Promise<void> {
  for (const other of [...records.values()].reverse()) {
    if (other.desc.baseBdevs.includes(rec.desc.name) && records.has(other.desc.name)) {
      await bdevUnregister(other.desc.name);
    }
  }
  if (!records.has(rec.desc.name)) return;
  await broadcast({ op: 'unregister', name: rec.desc.name });
  dropRecord(rec);
  for (const base of rec.desc.baseBdevs) {
    const b = records.get(base);
    if (b !== undefined && b.claimedBy === `${rec.desc.module}:${rec.desc.name}`) b.claimedBy = null;
  }
  await modules.get(rec.desc.module)?.destroyRecord?.(rec.desc);
}

export async function bdevNotifyResize(name: string, numBlocks: number): Promise<void> {
  const rec = bdevGetRecord(name);
  if (rec === undefined) throw new BdevError('ENODEV', `bdev ${name} does not exist`);
  if (!Number.isInteger(numBlocks) || numBlocks <= 0) throw new BdevError('EINVAL', 'size must be positive');
  rec.desc.numBlocks = numBlocks;
  await broadcast({ op: 'resize', name: rec.desc.name, numBlocks });
}

/** Claim for exclusive use (a namespace, a stacked bdev). Throws if claimed already. */
export function bdevClaimByName(name: string, owner: string): void {
  const rec = bdevGetRecord(name);
  if (rec === undefined) throw new BdevError('ENODEV', `bdev ${name} does not exist`);
  if (rec.claimedBy !== null) {
    throw new BdevError(
      'EBUSY',
      `bdev ${rec.desc.name} already claimed: type exclusive_write by module ${rec.claimedBy}`,
    );
  }
  rec.claimedBy = owner;
}

export function bdevReleaseClaimByName(name: string): void {
  const rec = bdevGetRecord(name);
  if (rec !== undefined) rec.claimedBy = null;
}

/** App thread: claim the bdev of a descriptor opened on it. */
export function bdevClaim(desc: BdevDesc, owner: string): void {
  bdevClaimByName(desc.bdev.name, owner);
  const name = desc.bdev.name;
  desc.onClose = () => {
    const rec = records.get(name);
    if (rec !== undefined && rec.claimedBy === owner) rec.claimedBy = null;
  };
}

export function bdevReleaseClaim(desc: BdevDesc): void {
  bdevReleaseClaimByName(desc.bdev.name);
  desc.onClose = null;
}

export async function bdevSetQos(name: string, limits: QosLimits): Promise<void> {
  const rec = bdevGetRecord(name);
  if (rec === undefined) throw new BdevError('ENODEV', `bdev ${name} does not exist`);
  if (qosEnabled(limits)) {
    const state = rec.qos?.state ?? createQosState();
    rec.qos = { limits, state };
    await broadcast({ op: 'qos', name: rec.desc.name, limits, state });
  } else {
    rec.qos = null;
    await broadcast({ op: 'qos', name: rec.desc.name, limits: null, state: null });
  }
}

export async function bdevSetHistogram(name: string, enable: boolean): Promise<void> {
  const rec = bdevGetRecord(name);
  if (rec === undefined) throw new BdevError('ENODEV', `bdev ${name} does not exist`);
  rec.histogram = enable;
  await broadcast({ op: 'histogram', name: rec.desc.name, enable });
}

/** Stats of one bdev summed over every channel of every realm. */
export async function bdevCollectStats(name: string, reset = false): Promise<BdevIoStatsSnapshot[]> {
  const rec = bdevGetRecord(name);
  if (rec === undefined) throw new BdevError('ENODEV', `bdev ${name} does not exist`);
  const r = await broadcast({ op: 'stats', name: rec.desc.name, reset });
  return (r.results as BdevIoStatsSnapshot[][]).flat();
}

/** This realm's replica (for tests and modules). */
export function bdevGetReplica(name: string): Bdev | undefined {
  return realmLookup(name);
}
