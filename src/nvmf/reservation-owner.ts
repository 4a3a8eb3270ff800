// The owner of every namespace's reservation: the app thread (SPDK's subsystem
// thread, lib/nvmf/subsystem.c nvmf_ns_reservation_*). Poll groups send it the
// reservation commands of their I/O queues (messages.ts ResvCommand); it runs
// them one at a time per namespace on the rules of reservation.ts, and a
// command that changed something completes only after, in this order: the PTPL
// file is on disk (written durably, so a SIGKILL right after the completion
// loses nothing), every poll group checks I/O against the new state, the
// notices went to the controllers of the hosts concerned, and for Preempt and
// Abort the preempted hosts' commands on the namespace have ended.

import { open, readFile, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { logger } from '../util/log.ts';
import { GenericStatus, NvmOpcode } from '../wire/nvme.ts';
import { AcquireAction, decodeResvCdw10, type ResvNotifyType } from '../wire/reservation.ts';
import { NvmfError } from './errors.ts';
import type { ResvCommand, ResvReply } from './messages.ts';
import { formatPtpl, NsReservation, parsePtpl } from './reservation.ts';
import type { NvmfSubsystem } from './subsystem.ts';

const log = logger('nvmf');

/** What the owner asks of the target to make a change take effect everywhere. */
export interface ReservationEffects {
  /** push every subsystem's state (the reservation views included) to every poll group */
  pushViews(): Promise<void>;
  /** a notice for every controller of host `hostId` in subsystem `nqn` */
  notifyHost(nqn: string, nsid: number, hostId: string, type: ResvNotifyType): void;
  /** end the commands of `hostIds` on the namespace: false when some were still running after
   * the limit (SPDK waits 10 s, then answers Command Interrupted) */
  abortPreempted(nqn: string, nsid: number, hostIds: string[]): Promise<boolean>;
}

interface NsState {
  readonly sub: NvmfSubsystem;
  readonly nsid: number;
  readonly resv: NsReservation;
  readonly ptplFile: string | null;
  readonly bdevUuid: string;
  /** the command running or last queued: the next one starts when it settles */
  tail: Promise<void>;
}

/**
 * Write `text` to `path` so that it survives a crash once this resolves: a temporary file in
 * the same folder, flushed, renamed over the file, then the folder flushed (the rename itself).
 */
export async function writeFileDurably(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const f = await open(tmp, 'w', 0o600);
  try {
    await f.writeFile(text);
    await f.sync();
  } finally {
    await f.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export class ReservationOwner {
  private readonly effects: ReservationEffects;
  private readonly states = new Map<NvmfSubsystem, Map<number, NsState>>();

  constructor(effects: ReservationEffects) {
    this.effects = effects;
  }

  /**
   * A namespace was added: its reservation starts empty, or as its PTPL file left it (SPDK's
   * --ptpl-file; a missing or empty file is "nothing persisted"). A file that cannot be read
   * or belongs to another bdev fails the namespace, as in SPDK.
   */
  async addNamespace(
    sub: NvmfSubsystem,
    nsid: number,
    ptplFile: string | null,
    bdevUuid: string,
  ): Promise<void> {
    const resv = new NsReservation(ptplFile !== null);
    if (ptplFile !== null) {
      let text = '';
      try {
        text = await readFile(ptplFile, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
          throw new NvmfError(`cannot read PTPL file ${ptplFile}: ${(e as Error).message}`);
      }
      try {
        const f = parsePtpl(text);
        if (f !== null) resv.restore(f, bdevUuid);
      } catch (e) {
        throw new NvmfError(`PTPL file ${ptplFile}: ${(e as Error).message}`);
      }
      if (resv.registrants.length > 0)
        log.notice(
          `namespace ${nsid} of ${sub.nqn}: reservation restored from ${ptplFile} (${resv.registrants.length} registrant(s), type ${resv.rtype})`,
        );
    }
    let forSub = this.states.get(sub);
    if (forSub === undefined) {
      forSub = new Map();
      this.states.set(sub, forSub);
    }
    forSub.set(nsid, { sub, nsid, resv, ptplFile, bdevUuid, tail: Promise.resolve() });
    sub.resvViews.set(nsid, resv.view());
  }

  removeNamespace(sub: NvmfSubsystem, nsid: number): void {
    this.states.get(sub)?.delete(nsid);
    sub.resvViews.delete(nsid);
  }

  removeSubsystem(sub: NvmfSubsystem): void {
    this.states.delete(sub);
  }

  /** The state of a namespace (tests, nvmf_get_subsystems). */
  reservationOf(sub: NvmfSubsystem, nsid: number): NsReservation | undefined {
    return this.states.get(sub)?.get(nsid)?.resv;
  }

  /** Run one command; the reply says how it ended. */
  execute(sub: NvmfSubsystem, m: ResvCommand): Promise<ResvReply> {
    const st = this.states.get(sub)?.get(m.nsid);
    if (st === undefined)
      return Promise.resolve({ token: m.token, sc: GenericStatus.INVALID_NAMESPACE_OR_FORMAT, report: null });
    if (m.opcode === NvmOpcode.RESERVATION_REPORT) {
      // read only: the state as it is now, whatever is queued (SPDK does the same)
      const buf = Buffer.alloc(m.reportLength);
      const sc = st.resv.report(m.cdw11, buf);
      return Promise.resolve({ token: m.token, sc, report: sc === GenericStatus.SUCCESS ? buf : null });
    }
    // one at a time per namespace: each change is visible everywhere before the next starts
    const run = st.tail.then(() => this.change(st, m));
    st.tail = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  private async change(st: NsState, m: ResvCommand): Promise<ResvReply> {
    const resv = st.resv;
    const who = { hostId: m.hostId };
    const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length);
    const saved = resv.save();
    const wasPersisted = resv.ptplActivated;
    const out =
      m.opcode === NvmOpcode.RESERVATION_REGISTER
        ? resv.register(who, m.cdw10, data)
        : m.opcode === NvmOpcode.RESERVATION_ACQUIRE
          ? resv.acquire(who, m.cdw10, data)
          : resv.release(who, m.cdw10, data);
    const reply = (sc: number): ResvReply => ({ token: m.token, sc, report: null });
    if (out.sc !== GenericStatus.SUCCESS || !out.changed) return reply(out.sc);
    const nqn = st.sub.nqn;
    if (st.ptplFile !== null && (wasPersisted || resv.ptplActivated)) {
      try {
        await writeFileDurably(st.ptplFile, formatPtpl(resv.toPtpl(st.bdevUuid)));
      } catch (e) {
        // not persisted: the change does not happen (the host may retry)
        resv.restoreSaved(saved);
        log.error(
          `namespace ${st.nsid} of ${nqn}: cannot write PTPL file ${st.ptplFile}: ${(e as Error).message}`,
        );
        return reply(GenericStatus.INTERNAL_DEVICE_ERROR);
      }
    }
    st.sub.resvViews.set(st.nsid, resv.view());
    await this.effects.pushViews();
    for (const n of out.notices) this.effects.notifyHost(nqn, st.nsid, n.hostId, n.type);
    const { action } = decodeResvCdw10(m.cdw10);
    if (
      m.opcode === NvmOpcode.RESERVATION_ACQUIRE &&
      action === AcquireAction.PREEMPT_AND_ABORT &&
      out.abortHosts.length > 0 &&
      !(await this.effects.abortPreempted(nqn, st.nsid, out.abortHosts))
    ) {
      log.error(`namespace ${st.nsid} of ${nqn}: preempted commands still running after the limit`);
      return reply(GenericStatus.COMMAND_INTERRUPTED);
    }
    return reply(GenericStatus.SUCCESS);
  }
}
