// The reservation state of one namespace (NVMe base spec 2.0 §8.19) and the rules
// that change it: Register / Acquire / Release / Report, the command-permission
// table every I/O command is checked against, and the Persist Through Power Loss
// file (SPDK's JSON format, so a file SPDK wrote loads here and back).
//
// Pure and synchronous: the owning thread (the app thread, which owns
// subsystems) calls these methods one command at a time and then does the
// side effects the outcome lists (push views to the poll groups, write the PTPL
// file, send notices, wait for preempted hosts' I/O). Where SPDK and Linux's
// nvmet differ, the comment says which rule was taken and why.

import { FileFormatError, InvalidArgumentError } from '../util/errors.ts';
import { GenericStatus, NvmOpcode } from '../wire/nvme.ts';
import {
  AcquireAction,
  AcquireData,
  Cptpl,
  decodeResvCdw10,
  ResvNotifyType as NotifyType,
  REPORT_EDS,
  RegisterAction,
  RegisterData,
  ReleaseAction,
  ReleaseData,
  type ResvNotifyType,
  ResvStatus,
  type ResvStatusData,
  ResvType,
  writeResvReportExtended,
} from '../wire/reservation.ts';

/** Registrants one namespace keeps (SPDK keeps 16; clusters of more nodes exist). */
export const MAX_REGISTRANTS = 64;

export interface Registrant {
  /** 128-bit Host Identifier as 32 lowercase hex digits */
  hostId: string;
  rkey: bigint;
}

/** Who sent a reservation command: the controller's host. */
export interface ResvRequester {
  hostId: string;
}

export interface ResvNotice {
  hostId: string;
  type: ResvNotifyType;
}

export interface ResvOutcome {
  /** generic status code (SCT 0); SUCCESS, RESERVATION_CONFLICT, INVALID_FIELD… */
  sc: number;
  /** the state changed: views must be pushed, the PTPL file rewritten */
  changed: boolean;
  /** notices for every controller of each host (Reservation Notification log + AEN) */
  notices: ResvNotice[];
  /** Preempt and Abort: hosts whose outstanding commands on the namespace end before completion */
  abortHosts: string[];
}

/** What a poll group needs to check I/O against the reservation (structured-cloneable). */
export interface ResvView {
  rtype: number;
  /** the holder's host ID; null when none or when every registrant holds (all-registrants types) */
  holder: string | null;
  registrants: readonly string[];
  /** Persist Through Power Loss is activated (Get Features 83h) */
  ptpl: boolean;
}

export const NO_RESERVATION: ResvView = Object.freeze({
  rtype: ResvType.NONE,
  holder: null,
  registrants: Object.freeze([]),
  ptpl: false,
});

/** SPDK's persist file (`nvmf_subsystem_add_ns --ptpl-file`). */
export interface PtplFile {
  ptpl: boolean;
  rtype: number;
  crkey: bigint;
  bdev_uuid: string;
  holder_uuid: string;
  registrants: { rkey: bigint; host_uuid: string }[];
}

function isAllRegistrantsType(rtype: number): boolean {
  return rtype === ResvType.WRITE_EXCLUSIVE_ALL_REGS || rtype === ResvType.EXCLUSIVE_ACCESS_ALL_REGS;
}

function isRegistrantsOnlyType(rtype: number): boolean {
  return rtype === ResvType.WRITE_EXCLUSIVE_REG_ONLY || rtype === ResvType.EXCLUSIVE_ACCESS_REG_ONLY;
}

function outcome(sc: number, changed = false): ResvOutcome {
  return { sc, changed, notices: [], abortHosts: [] };
}

/** A copy of one namespace's reservation state, to undo a change that could not be persisted. */
export interface ResvSaved {
  readonly registrants: readonly Registrant[];
  /** index of the holder in `registrants`, -1 when none */
  readonly holder: number;
  readonly rtype: number;
  readonly generation: number;
  readonly ptplActivated: boolean;
}

export class NsReservation {
  readonly registrants: Registrant[] = [];
  /** holder of a one-holder reservation; null with none or with an all-registrants type */
  holder: Registrant | null = null;
  rtype: number = ResvType.NONE;
  generation = 0;
  ptplActivated = false;
  /** a PTPL file is configured: CPTPL = persist is accepted */
  readonly ptplCapable: boolean;

  constructor(ptplCapable: boolean) {
    this.ptplCapable = ptplCapable;
  }

  save(): ResvSaved {
    return {
      registrants: this.registrants.map((r) => ({ ...r })),
      holder: this.holder === null ? -1 : this.registrants.indexOf(this.holder),
      rtype: this.rtype,
      generation: this.generation,
      ptplActivated: this.ptplActivated,
    };
  }

  restoreSaved(s: ResvSaved): void {
    this.registrants.length = 0;
    for (const r of s.registrants) this.registrants.push({ ...r });
    this.holder = s.holder >= 0 ? this.registrants[s.holder] : null;
    this.rtype = s.rtype;
    this.generation = s.generation;
    this.ptplActivated = s.ptplActivated;
  }

  find(hostId: string): Registrant | undefined {
    return this.registrants.find((r) => r.hostId === hostId);
  }

  isHolder(reg: Registrant | undefined): boolean {
    if (reg === undefined || this.rtype === ResvType.NONE) return false;
    return isAllRegistrantsType(this.rtype) || this.holder === reg;
  }

  view(): ResvView {
    return {
      rtype: this.rtype,
      holder: this.holder?.hostId ?? null,
      registrants: this.registrants.map((r) => r.hostId),
      ptpl: this.ptplActivated,
    };
  }

  private othersThan(hostId: string): string[] {
    return this.registrants.filter((r) => r.hostId !== hostId).map((r) => r.hostId);
  }

  private releaseReservation(): void {
    this.rtype = ResvType.NONE;
    this.holder = null;
  }

  /** Removes a registrant; a one-holder reservation held by it is released. */
  private remove(reg: Registrant): void {
    this.registrants.splice(this.registrants.indexOf(reg), 1);
    if (isAllRegistrantsType(this.rtype)) {
      // every registrant holds: the reservation ends with the last one
      if (this.registrants.length === 0) this.releaseReservation();
    } else if (this.holder === reg) {
      this.releaseReservation();
    }
  }

  /** Reservation Register. `data` is the 16-byte CRKEY/NRKEY payload. */
  register(who: ResvRequester, cdw10: number, data: Buffer): ResvOutcome {
    if (data.length < RegisterData.SIZE) return outcome(GenericStatus.INVALID_FIELD);
    const f = decodeResvCdw10(cdw10);
    const crkey = data.readBigUInt64LE(RegisterData.CRKEY);
    const nrkey = data.readBigUInt64LE(RegisterData.NRKEY);
    if (f.cptpl === 1) return outcome(GenericStatus.INVALID_FIELD); // reserved value
    if (f.cptpl === Cptpl.PERSIST && !this.ptplCapable) return outcome(GenericStatus.INVALID_FIELD);
    if (f.action > RegisterAction.REPLACE) return outcome(GenericStatus.INVALID_FIELD);
    const reg = this.find(who.hostId);
    const result = outcome(GenericStatus.SUCCESS);
    switch (f.action) {
      case RegisterAction.REGISTER:
        if (reg) {
          // registering again with the key it has is not an error (both SPDK and nvmet)
          if (reg.rkey !== nrkey) return outcome(GenericStatus.RESERVATION_CONFLICT);
          break;
        }
        // as SPDK: a zero key cannot be told from "no key" in reports and PTPL files
        if (nrkey === 0n) return outcome(GenericStatus.INVALID_FIELD);
        if (this.registrants.length >= MAX_REGISTRANTS) return outcome(GenericStatus.INTERNAL_DEVICE_ERROR);
        this.registrants.push({ hostId: who.hostId, rkey: nrkey });
        result.changed = true;
        break;
      case RegisterAction.UNREGISTER: {
        if (!reg || (!f.iekey && reg.rkey !== crkey)) return outcome(GenericStatus.RESERVATION_CONFLICT);
        const rtype = this.rtype;
        const wasHolder = this.isHolder(reg);
        this.remove(reg);
        // a registrants-only reservation ends with its holder's registration: the others hear of it
        if (wasHolder && isRegistrantsOnlyType(rtype) && this.rtype === ResvType.NONE) {
          for (const hostId of this.othersThan(who.hostId))
            result.notices.push({ hostId, type: NotifyType.RESERVATION_RELEASED });
        }
        result.changed = true;
        break;
      }
      case RegisterAction.REPLACE:
        if (nrkey === 0n) return outcome(GenericStatus.INVALID_FIELD);
        if (reg) {
          if (!f.iekey && reg.rkey !== crkey) return outcome(GenericStatus.RESERVATION_CONFLICT);
          reg.rkey = nrkey;
        } else if (f.iekey) {
          // as SPDK: replace with IEKEY by a host not yet registered registers it
          if (this.registrants.length >= MAX_REGISTRANTS) return outcome(GenericStatus.INTERNAL_DEVICE_ERROR);
          this.registrants.push({ hostId: who.hostId, rkey: nrkey });
        } else {
          return outcome(GenericStatus.RESERVATION_CONFLICT);
        }
        result.changed = true;
        break;
    }
    if (f.cptpl === Cptpl.CLEAR && this.ptplActivated) {
      this.ptplActivated = false;
      result.changed = true;
    } else if (f.cptpl === Cptpl.PERSIST && !this.ptplActivated) {
      this.ptplActivated = true;
      result.changed = true;
    }
    // the generation counts every successful Register (spec; nvmet), not only table changes
    this.generation = (this.generation + 1) >>> 0;
    return result;
  }

  /** Reservation Acquire. `data` is the 16-byte CRKEY/PRKEY payload. */
  acquire(who: ResvRequester, cdw10: number, data: Buffer): ResvOutcome {
    if (data.length < AcquireData.SIZE) return outcome(GenericStatus.INVALID_FIELD);
    const f = decodeResvCdw10(cdw10);
    const crkey = data.readBigUInt64LE(AcquireData.CRKEY);
    const prkey = data.readBigUInt64LE(AcquireData.PRKEY);
    if (f.iekey || f.rtype < ResvType.WRITE_EXCLUSIVE || f.rtype > ResvType.EXCLUSIVE_ACCESS_ALL_REGS)
      return outcome(GenericStatus.INVALID_FIELD);
    if (f.action > AcquireAction.PREEMPT_AND_ABORT) return outcome(GenericStatus.INVALID_FIELD);
    const reg = this.find(who.hostId);
    if (!reg || reg.rkey !== crkey) return outcome(GenericStatus.RESERVATION_CONFLICT);

    if (f.action === AcquireAction.ACQUIRE) {
      if (this.rtype === ResvType.NONE) {
        this.rtype = f.rtype;
        this.holder = isAllRegistrantsType(f.rtype) ? null : reg;
        return outcome(GenericStatus.SUCCESS, true);
      }
      // the holder acquiring the type it holds is not an error; anything else conflicts
      if (this.isHolder(reg) && this.rtype === f.rtype) return outcome(GenericStatus.SUCCESS);
      return outcome(GenericStatus.RESERVATION_CONFLICT);
    }

    const before = this.othersThan(who.hostId);
    const result = outcome(GenericStatus.SUCCESS, true);
    const oldType = this.rtype;
    if (this.rtype === ResvType.NONE) {
      // no reservation: preempting removes the registrations holding PRKEY
      if (!this.removeByKey(prkey, null)) return outcome(GenericStatus.RESERVATION_CONFLICT);
    } else if (isAllRegistrantsType(this.rtype)) {
      if (prkey === 0n) {
        // take the reservation alone (new type), every other registration goes
        for (const r of [...this.registrants]) if (r !== reg) this.remove(r);
        this.rtype = f.rtype;
        this.holder = isAllRegistrantsType(f.rtype) ? null : reg;
      } else if (!this.removeByKey(prkey, null)) {
        return outcome(GenericStatus.RESERVATION_CONFLICT);
      }
    } else if (this.holder === reg && prkey === reg.rkey) {
      // the holder preempting itself changes the type (others with its key also go)
      this.removeByKey(prkey, reg);
      this.rtype = f.rtype;
      this.holder = isAllRegistrantsType(f.rtype) ? null : reg;
    } else if (this.holder !== null && prkey === this.holder.rkey) {
      // preempt the holder: its registration (and any with the same key) goes, the requester holds
      this.removeByKey(prkey, reg);
      this.rtype = f.rtype;
      this.holder = isAllRegistrantsType(f.rtype) ? null : reg;
    } else if (prkey !== 0n) {
      // not the holder's key: only those registrations go, the reservation stays
      if (!this.removeByKey(prkey, null)) return outcome(GenericStatus.RESERVATION_CONFLICT);
    } else {
      // PRKEY 0 that is not the holder's key (spec, nvmet: Invalid Field; SPDK answers Conflict)
      return outcome(GenericStatus.INVALID_FIELD);
    }
    const after = new Set(this.othersThan(who.hostId));
    const preempted = before.filter((h) => !after.has(h));
    for (const hostId of preempted) result.notices.push({ hostId, type: NotifyType.REGISTRATION_PREEMPTED });
    // the remaining registrants learn that the reservation they knew was replaced
    if (oldType !== ResvType.NONE && (oldType !== this.rtype || this.rtype === ResvType.NONE)) {
      for (const hostId of after) result.notices.push({ hostId, type: NotifyType.RESERVATION_RELEASED });
    }
    if (f.action === AcquireAction.PREEMPT_AND_ABORT) result.abortHosts = preempted;
    this.generation = (this.generation + 1) >>> 0;
    return result;
  }

  /** Removes every registration whose key is `key` except `keep`; false when none matched. */
  private removeByKey(key: bigint, keep: Registrant | null): boolean {
    let found = false;
    for (const r of [...this.registrants]) {
      if (r.rkey !== key) continue;
      found = true;
      if (r !== keep) this.remove(r);
    }
    return found;
  }

  /** Reservation Release. `data` is the 8-byte CRKEY payload. */
  release(who: ResvRequester, cdw10: number, data: Buffer): ResvOutcome {
    if (data.length < ReleaseData.SIZE) return outcome(GenericStatus.INVALID_FIELD);
    const f = decodeResvCdw10(cdw10);
    const crkey = data.readBigUInt64LE(ReleaseData.CRKEY);
    if (f.iekey) return outcome(GenericStatus.INVALID_FIELD);
    if (f.action > ReleaseAction.CLEAR) return outcome(GenericStatus.INVALID_FIELD);
    const reg = this.find(who.hostId);
    if (!reg || reg.rkey !== crkey) return outcome(GenericStatus.RESERVATION_CONFLICT);
    const others = this.othersThan(who.hostId);
    if (f.action === ReleaseAction.CLEAR) {
      this.registrants.length = 0;
      this.releaseReservation();
      const result = outcome(GenericStatus.SUCCESS, true);
      for (const hostId of others) result.notices.push({ hostId, type: NotifyType.RESERVATION_PREEMPTED });
      this.generation = (this.generation + 1) >>> 0;
      return result;
    }
    // releasing what one does not hold (or when nothing is held) succeeds and changes nothing
    if (this.rtype === ResvType.NONE || !this.isHolder(reg)) return outcome(GenericStatus.SUCCESS);
    // spec and SPDK: a type that does not match the reservation is an invalid field
    if (f.rtype !== this.rtype) return outcome(GenericStatus.INVALID_FIELD);
    const rtype = this.rtype;
    this.releaseReservation();
    const result = outcome(GenericStatus.SUCCESS, true);
    // registrants of a registrants-only or all-registrants reservation lose access rights they had
    if (rtype !== ResvType.WRITE_EXCLUSIVE && rtype !== ResvType.EXCLUSIVE_ACCESS) {
      for (const hostId of others) result.notices.push({ hostId, type: NotifyType.RESERVATION_RELEASED });
    }
    return result;
  }

  /**
   * Reservation Report into `buf` (NUMD+1 dwords). Only the extended structure
   * (128-bit host IDs): NVMe-oF hosts are identified by 128-bit IDs, so EDS = 0 is
   * Host Identifier Inconsistent Format (as SPDK and nvmet answer).
   */
  report(cdw11: number, buf: Buffer): number {
    if ((cdw11 & REPORT_EDS) === 0) return GenericStatus.HOSTID_INCONSISTENT_FORMAT;
    if (buf.length < ResvStatus.EXTENDED_SIZE) return GenericStatus.INVALID_FIELD;
    writeResvReportExtended(buf, this.statusData());
    return GenericStatus.SUCCESS;
  }

  statusData(): ResvStatusData {
    return {
      generation: this.generation,
      rtype: this.rtype,
      ptpls: this.ptplActivated,
      regctl: this.registrants.length,
      // dynamic controller model: the registrant is a host, not one controller (CNTLID FFFFh)
      registrants: this.registrants.map((r) => ({
        cntlid: 0xffff,
        holder: this.isHolder(r),
        rkey: r.rkey,
        hostId: r.hostId,
      })),
    };
  }

  /** The PTPL file's content; only meaningful while PTPL is activated. */
  toPtpl(bdevUuid: string): PtplFile {
    return {
      ptpl: this.ptplActivated,
      rtype: this.rtype,
      crkey: this.holder?.rkey ?? (isAllRegistrantsType(this.rtype) ? (this.registrants[0]?.rkey ?? 0n) : 0n),
      bdev_uuid: bdevUuid,
      holder_uuid: this.holder ? hostIdToUuid(this.holder.hostId) : '',
      registrants: this.registrants.map((r) => ({ rkey: r.rkey, host_uuid: hostIdToUuid(r.hostId) })),
    };
  }

  /** Restores registrations and the holder from a PTPL file; throws naming what is wrong. */
  restore(f: PtplFile, bdevUuid: string): void {
    if (!f.ptpl) return;
    if (f.bdev_uuid.toLowerCase() !== bdevUuid.toLowerCase())
      throw new FileFormatError(`PTPL file belongs to bdev ${f.bdev_uuid}, not ${bdevUuid}`);
    // persisted with no registrant (registered with CPTPL, then unregistered): PTPL stays on
    if (f.registrants.length === 0) {
      this.ptplActivated = true;
      return;
    }
    if (f.registrants.length > MAX_REGISTRANTS)
      throw new FileFormatError(`PTPL file lists more than ${MAX_REGISTRANTS} registrants`);
    if (f.rtype < ResvType.NONE || f.rtype > ResvType.EXCLUSIVE_ACCESS_ALL_REGS)
      throw new FileFormatError(`PTPL file has an invalid rtype ${f.rtype}`);
    this.registrants.length = 0;
    for (const r of f.registrants) this.registrants.push({ hostId: uuidToHostId(r.host_uuid), rkey: r.rkey });
    this.ptplActivated = true;
    this.rtype = f.rtype;
    this.holder = null;
    if (f.rtype !== ResvType.NONE && !isAllRegistrantsType(f.rtype)) {
      const holderId = f.holder_uuid ? uuidToHostId(f.holder_uuid) : '';
      this.holder = this.registrants.find((r) => r.hostId === holderId && r.rkey === f.crkey) ?? null;
      if (this.holder === null)
        throw new FileFormatError('PTPL file names a holder that is not a registrant with its key');
    }
  }
}

// ---- the command-permission table (NVM command set spec, "Command Behavior in the
// Presence of a Reservation"). Reservation commands are checked when they execute.

/** Read command group: Read, Compare, Verify. */
function isReadGroup(opcode: number): boolean {
  return opcode === NvmOpcode.READ || opcode === NvmOpcode.COMPARE || opcode === NvmOpcode.VERIFY;
}

/** Write command group: Write, Write Uncorrectable, Write Zeroes, Dataset Management, Flush, Copy. */
function isWriteGroup(opcode: number): boolean {
  return (
    opcode === NvmOpcode.WRITE ||
    opcode === NvmOpcode.WRITE_UNCORRECTABLE ||
    opcode === NvmOpcode.WRITE_ZEROES ||
    opcode === NvmOpcode.DATASET_MANAGEMENT ||
    opcode === NvmOpcode.FLUSH ||
    opcode === NvmOpcode.COPY
  );
}

/**
 * Whether `hostId` may run an I/O command of `opcode` on a namespace with this
 * reservation: SUCCESS or RESERVATION_CONFLICT (generic status codes).
 */
export function reservationAccess(v: ResvView, hostId: string, opcode: number): number {
  const rtype = v.rtype;
  if (rtype === ResvType.NONE) return GenericStatus.SUCCESS;
  const read = isReadGroup(opcode);
  if (!read && !isWriteGroup(opcode)) return GenericStatus.SUCCESS;
  if (v.holder === hostId) return GenericStatus.SUCCESS;
  const registrant = v.registrants.includes(hostId);
  if (registrant && isAllRegistrantsType(rtype)) return GenericStatus.SUCCESS; // every registrant holds
  switch (rtype) {
    case ResvType.WRITE_EXCLUSIVE:
      return read ? GenericStatus.SUCCESS : GenericStatus.RESERVATION_CONFLICT;
    case ResvType.EXCLUSIVE_ACCESS:
      return GenericStatus.RESERVATION_CONFLICT;
    case ResvType.WRITE_EXCLUSIVE_REG_ONLY:
    case ResvType.WRITE_EXCLUSIVE_ALL_REGS:
      return read || registrant ? GenericStatus.SUCCESS : GenericStatus.RESERVATION_CONFLICT;
    default: // the exclusive-access registrants-only and all-registrants types
      return registrant ? GenericStatus.SUCCESS : GenericStatus.RESERVATION_CONFLICT;
  }
}

// ---- PTPL file (SPDK's JSON; keys are 64-bit, so written and read without Number)

/** '0123…ef' (32 hex) → '01234567-89ab-cdef-…' (SPDK writes host IDs as lowercase UUIDs). */
export function hostIdToUuid(hostId: string): string {
  const h = hostId.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function uuidToHostId(uuid: string): string {
  const hex = uuid.replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new InvalidArgumentError(`'${uuid}' is not a UUID`);
  return hex;
}

/** The file's text, SPDK's field order, 64-bit keys as exact integers. */
export function formatPtpl(f: PtplFile): string {
  // SPDK empties the file when PTPL is not activated
  if (!f.ptpl) return '';
  const regs = f.registrants.map(
    (r) => `    {\n      "rkey": ${r.rkey},\n      "host_uuid": ${JSON.stringify(r.host_uuid)}\n    }`,
  );
  return (
    '{\n' +
    `  "ptpl": true,\n  "rtype": ${f.rtype},\n  "crkey": ${f.crkey},\n` +
    `  "bdev_uuid": ${JSON.stringify(f.bdev_uuid)},\n  "holder_uuid": ${JSON.stringify(f.holder_uuid)},\n` +
    `  "registrants": [${regs.length ? `\n${regs.join(',\n')}\n  ` : ''}]\n}\n`
  );
}

/** Parses a PTPL file; an empty file is "nothing persisted" (null). Throws naming the problem. */
export function parsePtpl(text: string): PtplFile | null {
  if (text.trim() === '') return null;
  // JSON.parse's reviver sees each number's source text: 64-bit keys stay exact
  const raw: unknown = JSON.parse(text, (key, value, context?: { source?: string }) =>
    (key === 'rkey' || key === 'crkey') && typeof value === 'number' && context?.source !== undefined
      ? BigInt(context.source)
      : value,
  );
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new FileFormatError('PTPL file is not a JSON object');
  const o = raw as Record<string, unknown>;
  const regs = o.registrants;
  if (typeof o.bdev_uuid !== 'string') throw new FileFormatError('PTPL file has no bdev_uuid');
  if (!Array.isArray(regs)) throw new FileFormatError('PTPL file has no registrants array');
  const registrants = regs.map((r, i) => {
    const e = r as Record<string, unknown>;
    if (typeof e?.rkey !== 'bigint' || typeof e.host_uuid !== 'string')
      throw new FileFormatError(`PTPL registrant ${i} needs rkey (integer) and host_uuid (string)`);
    return { rkey: BigInt.asUintN(64, e.rkey), host_uuid: e.host_uuid };
  });
  const crkey = o.crkey === undefined ? 0n : o.crkey;
  if (typeof crkey !== 'bigint') throw new FileFormatError('PTPL crkey must be an integer');
  return {
    ptpl: o.ptpl === true,
    rtype: typeof o.rtype === 'number' ? o.rtype : 0,
    crkey: BigInt.asUintN(64, crkey),
    bdev_uuid: o.bdev_uuid,
    holder_uuid: typeof o.holder_uuid === 'string' ? o.holder_uuid : '',
    registrants,
  };
}
