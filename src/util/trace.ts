// Tracepoints: every node:diagnostics_channel channel the project publishes,
// named and typed in this one module (undici's lib/core/diagnostics.js is the
// model). A publisher checks `hasSubscribers` first and builds its payload
// only then, so a channel nobody listens to costs one getter call. Payloads
// are plain data (numbers, strings), built fresh for each event: a
// subscriber may keep them. Channels belong to a realm: a subscriber sees
// what its own thread (main thread = reactor 0, or one worker reactor)
// publishes. docs/tracing.md lists them with their payloads.
import diagnosticsChannel, { type Channel } from 'node:diagnostics_channel';

/** A listen or peer address, as the transport reports it. */
export interface TraceAddress {
  trtype: string;
  adrfam: string;
  traddr: string;
  trsvcid: string;
}

/** `nvmf-ts:nvmf:command:start`: a command reached the target core (poll-group thread). */
export interface CommandStartEvent {
  /** queue ID: 0 admin, else I/O (for a Connect, the queue it sets up) */
  qid: number;
  /** controller of the queue; -1 before its Connect completed (the Connect itself) */
  cntlid: number;
  cid: number;
  opcode: number;
  /** Fabrics command type when opcode is 0x7f, else -1 */
  fctype: number;
  nsid: number;
  /** data bytes the command's SGL describes */
  length: number;
}

/** `nvmf-ts:nvmf:command:complete`: the core handed the command back to its transport. */
export interface CommandCompleteEvent extends CommandStartEvent {
  /** NVMe status packed as (SCT << 8) | SC; 0 is success */
  status: number;
  /** from the command's start event to this one, in microseconds */
  latencyUs: number;
}

/** `nvmf-ts:nvmf:qpair:connected` (a Fabrics Connect attached the queue) and `:disconnected`. */
export interface QpairEvent {
  trtype: string;
  qid: number;
  /** -1 on a disconnected queue that never completed a Connect */
  cntlid: number;
  /** null on a disconnected queue that never completed a Connect */
  subnqn: string | null;
  hostnqn: string | null;
  listenAddress: TraceAddress;
  peerAddress: TraceAddress;
  /** the poll-group thread serving the queue */
  thread: string;
}

/** `nvmf-ts:nvmf:controller:created` / `:destroyed` / `:keep-alive-expired`. */
export interface ControllerEvent {
  cntlid: number;
  subnqn: string;
  hostnqn: string;
  /** keep-alive timeout in ms (0: none) */
  kato: number;
  /** the poll-group thread owning the controller (its admin queue) */
  thread: string;
}

/** `nvmf-ts:rpc:call:start`: a JSON-RPC method is about to run (socket or --json replay). */
export interface RpcCallStartEvent {
  method: string;
}

/** `nvmf-ts:rpc:call:complete`: the method answered. */
export interface RpcCallCompleteEvent {
  method: string;
  durationUs: number;
  /** 0 on success, else the JSON-RPC error code the caller gets */
  errorCode: number;
}

/** A channel whose `publish` takes one payload type. */
export interface TraceChannel<T> extends Channel {
  publish(message: T): void;
}

function channel<T>(name: string): TraceChannel<T> {
  return diagnosticsChannel.channel(name) as TraceChannel<T>;
}

/** Every channel, by what it reports. Subscribe with `diagnosticsChannel.subscribe(name, fn)`. */
export const traceChannels = {
  commandStart: channel<CommandStartEvent>('nvmf-ts:nvmf:command:start'),
  commandComplete: channel<CommandCompleteEvent>('nvmf-ts:nvmf:command:complete'),
  qpairConnected: channel<QpairEvent>('nvmf-ts:nvmf:qpair:connected'),
  qpairDisconnected: channel<QpairEvent>('nvmf-ts:nvmf:qpair:disconnected'),
  controllerCreated: channel<ControllerEvent>('nvmf-ts:nvmf:controller:created'),
  controllerDestroyed: channel<ControllerEvent>('nvmf-ts:nvmf:controller:destroyed'),
  keepAliveExpired: channel<ControllerEvent>('nvmf-ts:nvmf:controller:keep-alive-expired'),
  rpcCallStart: channel<RpcCallStartEvent>('nvmf-ts:rpc:call:start'),
  rpcCallComplete: channel<RpcCallCompleteEvent>('nvmf-ts:rpc:call:complete'),
} as const;
