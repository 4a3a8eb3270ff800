// One writev of a burst of Buffers straight to a connected socket's libuv
// handle, below Node's Writable stream. Through the stream a burst costs a
// write() per Buffer (a buffered-request entry each), their assembly into one
// writev, and a nextTick for the callback even when the kernel took every byte
// at once: about a tenth of the target's CPU per 4 KiB read. Node's net.Socket
// makes the same handle call (lib/internal/stream_base_commons.js,
// writevGeneric + afterWriteDispatched in Node 26); this does what they do with
// the result and nothing else. A socket written this way is never also written
// through its stream, so the two cannot reorder bytes; end() still works: the
// handle's shutdown waits for queued writes.
//
// The handle call is Node's internal surface and changed shape in the past (it
// took a request object before Node 26), so it is used only on the Node major
// version it was checked on; elsewhere, and for sockets without a libuv handle,
// handleWritev returns null and the caller writes through the stream.

import type net from 'node:net';
import tls from 'node:tls';
import { getSystemErrorName } from 'node:util';

/** Node 26's stream handle: writev answers a number (done, 0 or a libuv error) or a request. */
interface StreamHandle {
  writev(req: null, chunks: readonly Buffer[], allBuffers: true): number | AsyncWrite;
}

/** The request of a write the kernel did not take at once; Node calls `oncomplete` on it. */
interface AsyncWrite {
  oncomplete: ((this: AsyncWrite, status: number) => void) | null;
  /** set when the write completed inside the writev call, before oncomplete was attached */
  writeStatus?: number | null;
  /** the Buffers being written, kept reachable until the write completes */
  buffer: unknown;
  writer: HandleWriter;
  done: (() => void) | null;
}

/** Node's shared write-result slots: why an asynchronous write failed to start. */
interface StreamBaseState {
  streamBaseState: Int32Array;
  kLastWriteErr: number;
}

/** The Node major version whose handle.writev this was checked against. */
const CHECKED_NODE_MAJOR = 26;

let streamBase: StreamBaseState | null | undefined;

function streamBaseState(): StreamBaseState | null {
  if (streamBase !== undefined) return streamBase;
  streamBase = null;
  if (Number(process.versions.node.split('.')[0]) !== CHECKED_NODE_MAJOR) return null;
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding('stream_wrap') as
      | Partial<StreamBaseState>
      | undefined;
    if (binding?.streamBaseState instanceof Int32Array && typeof binding.kLastWriteErr === 'number')
      streamBase = { streamBaseState: binding.streamBaseState, kLastWriteErr: binding.kLastWriteErr };
  } catch {
    // no binding: the stream it is
  }
  return streamBase;
}

/** Writes bursts to one socket's handle. */
export class HandleWriter {
  private readonly socket: net.Socket;
  private readonly state: StreamBaseState;

  private constructor(socket: net.Socket, state: StreamBaseState) {
    this.socket = socket;
    this.state = state;
  }

  /**
   * A writer for `socket`, or null when its bursts must go through the stream (another Node
   * version, or a socket with no libuv stream handle).
   */
  static for(socket: net.Socket): HandleWriter | null {
    const state = streamBaseState();
    const handle = (socket as unknown as { _handle: Partial<StreamHandle> | null })._handle;
    // a TLS socket's handle encrypts what it is given: its bursts stay with its stream
    if (socket instanceof tls.TLSSocket) return null;
    if (state === null || handle === null || typeof handle?.writev !== 'function') return null;
    return new HandleWriter(socket, state);
  }

  /**
   * Write `bufs` in order as one writev. `done` runs once every byte is with the kernel: before
   * this returns when the kernel took them at once, else when libuv has written the rest. A
   * failed write destroys the socket (its 'error' and 'close' follow) and runs `done` too. A
   * socket already closed writes nothing and runs nothing.
   */
  write(bufs: readonly Buffer[], done: (() => void) | null): void {
    const handle = (this.socket as unknown as { _handle: StreamHandle | null })._handle;
    if (handle === null) return;
    const ret = handle.writev(null, bufs, true);
    if (typeof ret === 'number') {
      if (ret !== 0) this.fail(ret);
      if (done !== null) done();
      return;
    }
    const err = this.state.streamBaseState[this.state.kLastWriteErr];
    if (err !== 0) {
      this.fail(err);
      if (done !== null) done();
      return;
    }
    // the caller reuses its array: keep a copy of it, so every Buffer stays reachable
    ret.buffer = bufs.slice();
    ret.writer = this;
    ret.done = done;
    ret.oncomplete = asyncWriteDone;
    const status = ret.writeStatus;
    if (status !== null && status !== undefined) {
      ret.writeStatus = null;
      ret.oncomplete(status);
    }
  }

  fail(status: number): void {
    const err = Object.assign(new Error(`write ${getSystemErrorName(status)}`), {
      errno: status,
      syscall: 'write',
    });
    this.socket.destroy(err);
  }
}

function asyncWriteDone(this: AsyncWrite, status: number): void {
  this.buffer = null;
  if (status < 0) this.writer.fail(status);
  const done = this.done;
  this.done = null;
  if (done !== null) done();
}

/**
 * Writes a socket's bursts: one writev on its handle where a HandleWriter serves, else the
 * Buffers written in order under a cork (one writev by the stream), `done` with the last one.
 */
export class BurstWriter {
  private readonly socket: net.Socket;
  private readonly handle: HandleWriter | null;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.handle = HandleWriter.for(socket);
  }

  write(bufs: readonly Buffer[], done: (() => void) | null): void {
    if (this.handle !== null) {
      this.handle.write(bufs, done);
      return;
    }
    const s = this.socket;
    s.cork();
    const last = bufs.length - 1;
    for (let i = 0; i < last; i++) s.write(bufs[i]);
    if (done === null) s.write(bufs[last]);
    else s.write(bufs[last], done);
    s.uncork();
  }
}
