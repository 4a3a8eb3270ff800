// The target's tracepoints (channels in util/trace.ts): the payloads, built
// from the core's objects only when a channel has subscribers. A command's
// start is traced by the poll group when a transport hands it over
// (poll-group.ts onRequest), its completion by the transport when the core
// hands it back (its `complete()`), which is where every completion passes.
import {
  type CommandStartEvent,
  type ControllerEvent,
  type QpairEvent,
  type TraceChannel,
  traceChannels,
} from '../util/trace.ts';
import { FabricsSqe } from '../wire/fabrics.ts';
import { FABRICS_OPCODE, FabricsCommandType, Sqe, statusOf } from '../wire/nvme.ts';
import type { NvmfQpair, NvmfRequest } from './transport.ts';

/** Whether a command arriving now should carry a start time (someone listens to either end). */
export function isCommandTraced(): boolean {
  return traceChannels.commandStart.hasSubscribers || traceChannels.commandComplete.hasSubscribers;
}

function commandFields(req: NvmfRequest): CommandStartEvent {
  const cmd = req.cmd;
  const opcode = cmd[Sqe.OPCODE];
  const fctype = opcode === FABRICS_OPCODE ? cmd[Sqe.FCTYPE] : -1;
  return {
    // a Connect names the queue it sets up; the queue has its ID only once it succeeded
    qid: fctype === FabricsCommandType.CONNECT ? cmd.readUInt16LE(FabricsSqe.CONNECT_QID) : req.qpair.qid,
    cntlid: req.qpair.context?.cntlid ?? -1,
    cid: cmd.readUInt16LE(Sqe.CID),
    opcode,
    fctype,
    nsid: cmd.readUInt32LE(Sqe.NSID),
    length: req.length,
  };
}

/** A command reached the core: note its start time and publish `command:start`. */
export function traceCommandStart(req: NvmfRequest): void {
  // performance.now() is never 0 past start-up; 0 stays the "not traced" mark
  req.traceStart = performance.now() || Number.MIN_VALUE;
  const ch = traceChannels.commandStart;
  if (ch.hasSubscribers) ch.publish(commandFields(req));
}

/** The core handed back a command traced at its start: publish `command:complete`. */
export function traceCommandComplete(req: NvmfRequest): void {
  const start = req.traceStart;
  req.traceStart = 0;
  const ch = traceChannels.commandComplete;
  if (!ch.hasSubscribers) return;
  const e = commandFields(req);
  ch.publish({ ...e, status: statusOf(req.rsp), latencyUs: (performance.now() - start) * 1000 });
}

/** `qpair:connected` / `qpair:disconnected` for queue `q` (cntlid -1 and NQNs null: no Connect). */
export function traceQpair(
  ch: TraceChannel<QpairEvent>,
  q: NvmfQpair,
  cntlid: number,
  subnqn: string | null,
  hostnqn: string | null,
  thread: string,
): void {
  if (!ch.hasSubscribers) return;
  ch.publish({
    trtype: q.trtype,
    qid: q.qid,
    cntlid,
    subnqn,
    hostnqn,
    listenAddress: { ...q.listenAddr },
    peerAddress: { ...q.peerAddr },
    thread,
  });
}

/** `controller:created` / `:destroyed` / `:keep-alive-expired`. */
export function traceController(
  ch: TraceChannel<ControllerEvent>,
  c: { cntlid: number; hostnqn: string; kato: number },
  subnqn: string,
  thread: string,
): void {
  if (!ch.hasSubscribers) return;
  ch.publish({ cntlid: c.cntlid, subnqn, hostnqn: c.hostnqn, kato: c.kato, thread });
}
