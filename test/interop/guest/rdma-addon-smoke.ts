// Runs inside the bookworm guest over soft-RoCE (rxe0), from the repository shared by
// run-guest -P (test/interop/guest/rdma-addon-checks.sh starts it): proves the RDMA addon
// (native/rdma, src/rdma) against a peer we did not write and between threads of ours.
//
//  - against the kernel's nvmet-rdma target on GUEST_IP:4420: connect requests with wrong
//    NVMe/RDMA private data are rejected with the binding's status; a good one is
//    accepted (accept private data), a Fabrics Connect capsule is SENT whose data the
//    target fetches from our registered SharedArrayBuffer with RDMA READ (keyed SGL), the
//    response capsule arrives in a posted receive; Property Set / Get enable the
//    controller; Identify Controller lands in our memory by the target's RDMA WRITE;
//    disconnect;
//  - between threads of this process: the main thread listens and hands each connect
//    request (CmId.transfer) to a worker playing a poll group, which adopts it, receives
//    through an SRQ and accepts; another worker is the host. The poll group sleeps
//    while it waits (thread CPU), is woken by its completion channel, RDMA READs the
//    host's buffer into a SharedArrayBuffer the main thread sees too, RDMA WRITEs an
//    answer back; bad SGEs and a bad rkey fail as they should; a worker terminated with
//    live resources is cleaned up without taking the process down.
//
// Prints one "CHECK <name> PASS|FAIL <why>" line per check (harness.ts parses them).
// Env: GUEST_IP, RDMA_NQN (the nvmet subsystem), RDMA_HOSTNQN (our host NQN), RDMA_PORT
// (our own listener).
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import {
  Access,
  type CmEvent,
  type CmEventChannel,
  CmEventType,
  type CmId,
  type CompletionChannel,
  type CompletionQueue,
  completionField,
  completionId,
  type Device,
  loadRdmaAddon,
  type MemoryRegion,
  type ProtectionDomain,
  QpState,
  type QueuePair,
  type RdmaAddon,
  SendFlags,
  setRemote,
  setSge,
  setWorkRequest,
  splitAddress,
  WcOpcode,
  WcStatus,
  WorkCompletion,
  WorkRequest,
  WrOpcode,
} from '../../../src/rdma/index.ts';
import {
  writeConnectCommand,
  writeConnectData,
  writePropertyGet,
  writePropertySet,
} from '../../../src/wire/fabrics.ts';
import { Cns, decodeIdentifyController, writeIdentifyCommand } from '../../../src/wire/identify.ts';
import {
  CcBits,
  ControllerRegister,
  Cqe,
  CstsBits,
  Sqe,
  statusFromField,
  statusSc,
  statusSct,
  statusToString,
} from '../../../src/wire/nvme.ts';
import {
  RDMA_CM_RECFMT,
  RdmaRejectStatus,
  readRdmaAccept,
  readRdmaConnectRequest,
  readRdmaReject,
  setSqeKeyedSgl,
  setSqeNoData,
  writeRdmaAccept,
  writeRdmaConnectRequest,
} from '../../../src/wire/rdma.ts';

const GUEST_IP = process.env.GUEST_IP ?? '10.0.2.15';
const NVMET_PORT = 4420;
const OWN_PORT = Number(process.env.RDMA_PORT ?? 4791);
const NQN = process.env.RDMA_NQN ?? 'nqn.2016-06.io.nvmf-ts:rdma-addon';
const HOSTNQN =
  process.env.RDMA_HOSTNQN ?? 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000000';
const WAIT_MS = 15_000;
/** Bytes the host asks the poll group to READ, transform and WRITE back (many rxe packets at MTU 1024). */
const TRANSFER = 64 * 1024;
/** rdma_cm's status of a REJECTED event when the peer's consumer rejected (IB_CM_REJ_CONSUMER_DEFINED). */
const CONSUMER_REJECT = 28;

const rdma: RdmaAddon = loadRdmaAddon();
const role: string = isMainThread ? 'main' : (workerData as { role: string }).role;

function check(name: string, pass: boolean, why: string): void {
  console.log(pass ? `CHECK ${name} PASS` : `CHECK ${name} FAIL ${why}`);
}

function log(message: string): void {
  console.log(`  [${role}] ${message}`);
}

function withTimeout<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A CM event channel whose events can be awaited (control path). */
class Events {
  readonly channel: CmEventChannel;
  private readonly queue: CmEvent[] = [];
  private waiters: Array<() => void> = [];
  constructor() {
    this.channel = rdma.createEventChannel();
    this.channel.start((event) => {
      log(`cm event ${event.name} status ${event.status}`);
      this.queue.push(event);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }
  /** The first queued event matching `want`, waiting for it. */
  async next(want: (event: CmEvent) => boolean, what: string): Promise<CmEvent> {
    const find = async (): Promise<CmEvent> => {
      for (;;) {
        const i = this.queue.findIndex(want);
        if (i >= 0) return this.queue.splice(i, 1)[0];
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    };
    return withTimeout(find(), what);
  }
  async on(id: CmId, type: number): Promise<CmEvent> {
    return this.next((e) => e.id === id && e.type === type, rdma.cmEventString(type));
  }
  close(): void {
    this.channel.stop();
    this.channel.destroy();
  }
}

type Completion = { id: number; status: number; opcode: number; byteLen: number };

/** A CQ on a completion channel: completions are awaited by sleeping until the channel fires. */
class Completions {
  readonly channel: CompletionChannel;
  readonly cq: CompletionQueue;
  wakeups = 0;
  /** the last wait, from going to sleep to the channel's callback: wall time and this thread's CPU */
  lastSleep = { wallMs: 0, cpuMs: 0 };
  private sleepStart: { t: number; cpu: NodeJS.CpuUsage } | null = null;
  private readonly wcs = new Uint32Array(WorkCompletion.WORDS * 32);
  private readonly pending: Completion[] = [];
  private wake: (() => void) | null = null;
  constructor(device: Device, entries: number) {
    this.channel = device.createCompChannel();
    this.cq = device.createCq(entries, this.channel);
    this.channel.start(() => {
      this.wakeups++;
      if (this.sleepStart) {
        const cpu = process.threadCpuUsage(this.sleepStart.cpu);
        this.lastSleep = {
          wallMs: performance.now() - this.sleepStart.t,
          cpuMs: (cpu.user + cpu.system) / 1000,
        };
        this.sleepStart = null;
      }
      this.wake?.();
    });
    this.cq.requestNotify();
  }
  private drain(): void {
    const n = this.cq.poll(this.wcs, 32);
    if (n < 0) throw new Error(`ibv_poll_cq failed: ${n}`);
    for (let i = 0; i < n; i++) {
      this.pending.push({
        id: completionId(this.wcs, i),
        status: completionField(this.wcs, i, WorkCompletion.STATUS),
        opcode: completionField(this.wcs, i, WorkCompletion.OPCODE),
        byteLen: completionField(this.wcs, i, WorkCompletion.BYTE_LEN),
      });
    }
  }
  /** The next `count` completions. */
  async take(count: number, what: string): Promise<Completion[]> {
    const wait = async (): Promise<Completion[]> => {
      for (;;) {
        this.drain();
        if (this.pending.length >= count) return this.pending.splice(0, count);
        // arm, then look again: a completion between the poll and the arming raises no event
        this.cq.requestNotify();
        this.drain();
        if (this.pending.length >= count) return this.pending.splice(0, count);
        this.sleepStart = { t: performance.now(), cpu: process.threadCpuUsage() };
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = null;
      }
    };
    return withTimeout(wait(), what);
  }
  close(): void {
    this.channel.stop();
    this.cq.destroy();
    this.channel.destroy();
  }
}

function wcName(status: number): string {
  return `${rdma.wcStatusString(status)} (${status})`;
}

function rxeDevice(): Device {
  const device = rdma.devices().find((d) => d.name === 'rxe0');
  if (!device) throw new Error(`no rxe0 among the RDMA devices (${rdma.devices().map((d) => d.name)})`);
  return device;
}

/** Resolves address and route of a new id to host:port on `events`' channel. */
async function resolve(events: Events, port: number): Promise<CmId> {
  const id = events.channel.createId();
  id.resolveAddr(GUEST_IP, port, 5000);
  const addr = await events.next(
    (e) => e.id === id && e.type !== CmEventType.CONNECT_REQUEST,
    'address resolution',
  );
  if (addr.type !== CmEventType.ADDR_RESOLVED)
    throw new Error(`resolveAddr: ${addr.name} status ${addr.status}`);
  id.resolveRoute(5000);
  const route = await events.next((e) => e.id === id, 'route resolution');
  if (route.type !== CmEventType.ROUTE_RESOLVED)
    throw new Error(`resolveRoute: ${route.name} status ${route.status}`);
  return id;
}

// ---------------------------------------------------------------------------
// The kernel's nvmet-rdma target as the peer

/** One NVMe/RDMA admin queue to nvmet, driven by hand: SEND a capsule, receive the response. */
class KernelTargetQueue {
  readonly memory = new Uint8Array(new SharedArrayBuffer(16 * 1024));
  readonly buf = Buffer.from(this.memory.buffer);
  readonly sqe = this.buf.subarray(0, 64);
  readonly connectData = this.buf.subarray(1024, 2048);
  readonly identify = this.buf.subarray(4096, 8192);
  readonly recvOffset = 8192;
  readonly wrs = new Uint32Array(WorkRequest.WORDS * 4);
  readonly mr: MemoryRegion;
  readonly completions: Completions;
  cid = 0;
  constructor(pd: ProtectionDomain, completions: Completions) {
    this.mr = pd.registerMemory(this.memory, Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE);
    this.completions = completions;
  }
  /** Keyed SGL over `length` bytes at `offset` of our memory. */
  keyed(offset: number, length: number): void {
    const { lo, hi } = splitAddress(this.mr.address + BigInt(offset));
    setSqeKeyedSgl(this.sqe, lo, hi, length, this.mr.rkey, false);
  }
  /** SENDs the SQE (its CID set here) and returns the response CQE's status, DW0, DW1. */
  async submit(qp: QueuePair, what: string) {
    const cid = ++this.cid;
    this.sqe.writeUInt16LE(cid, Sqe.CID);
    setWorkRequest(this.wrs, 0, WrOpcode.SEND, SendFlags.SIGNALED, cid, 1);
    setSge(this.wrs, 0, 0, this.mr.index, 0, 64);
    if (qp.postSend(this.wrs, 1) !== 1) throw new Error(`${what}: postSend refused`);
    const done = await this.completions.take(2, `${what} SEND and response`);
    const send = done.find((c) => c.opcode === WcOpcode.SEND);
    const recv = done.find((c) => c.opcode === WcOpcode.RECV);
    if (!send || !recv) throw new Error(`${what}: completions ${JSON.stringify(done)}`);
    if (send.status !== WcStatus.SUCCESS) throw new Error(`${what}: SEND ${wcName(send.status)}`);
    if (recv.status !== WcStatus.SUCCESS) throw new Error(`${what}: RECV ${wcName(recv.status)}`);
    const slot = recv.id - 1000;
    const cqe = this.buf.subarray(this.recvOffset + slot * 64, this.recvOffset + slot * 64 + 16);
    const result = {
      byteLen: recv.byteLen,
      cid: cqe.readUInt16LE(Cqe.CID),
      status: statusFromField(cqe.readUInt16LE(Cqe.STATUS)),
      dw0: cqe.readUInt32LE(Cqe.DW0),
      dw1: cqe.readUInt32LE(Cqe.DW1),
    };
    // give the receive back
    setWorkRequest(this.wrs, 1, 0, 0, recv.id, 1);
    setSge(this.wrs, 1, 0, this.mr.index, this.recvOffset + slot * 64, 64);
    if (qp.postRecv(this.wrs.subarray(WorkRequest.WORDS), 1) !== 1)
      throw new Error(`${what}: postRecv refused`);
    if (result.cid !== cid) throw new Error(`${what}: response for CID ${result.cid}, sent ${cid}`);
    return result;
  }
}

async function connectRequestPrivateData(
  events: Events,
  pd: ProtectionDomain,
  completions: Completions,
  privateData: Buffer,
): Promise<{ id: CmId; event: CmEvent }> {
  const id = await resolve(events, NVMET_PORT);
  id.createQp({ pd, sendCq: completions.cq, recvCq: completions.cq, maxSendWr: 8, maxRecvWr: 8 });
  id.connect({ privateData, responderResources: 16, initiatorDepth: 0, retryCount: 7, rnrRetryCount: 7 });
  const event = await events.next(
    (e) => e.id === id && e.type !== CmEventType.ADDR_RESOLVED && e.type !== CmEventType.ROUTE_RESOLVED,
    'the answer to the connect request',
  );
  return { id, event };
}

async function againstKernelTarget(device: Device): Promise<void> {
  const events = new Events();
  const pd = device.allocPd();
  const completions = new Completions(device, 64);
  const request = Buffer.alloc(32);

  // wrong private data: the binding's reject status comes back in the reject's private data
  let rejects = '';
  try {
    const cases = [
      {
        what: 'recfmt 1',
        fields: { recfmt: 1, qid: 0, hrqsize: 32, hsqsize: 31, cntlid: 0xffff },
        want: RdmaRejectStatus.INVALID_RECFMT,
      },
      {
        what: 'admin hsqsize 63',
        fields: { recfmt: 0, qid: 0, hrqsize: 64, hsqsize: 63, cntlid: 0xffff },
        want: RdmaRejectStatus.INVALID_HSQSIZE,
      },
    ];
    let ok = true;
    for (const c of cases) {
      writeRdmaConnectRequest(request, c.fields);
      const { id, event } = await connectRequestPrivateData(events, pd, completions, request);
      const reject = event.privateData ? readRdmaReject(event.privateData) : null;
      rejects += `${c.what}: ${event.name} status ${event.status} reject ${JSON.stringify(reject)}; `;
      ok &&=
        event.type === CmEventType.REJECTED &&
        event.status === CONSUMER_REJECT &&
        reject?.recfmt === RDMA_CM_RECFMT &&
        reject.status === c.want;
      id.destroy();
    }
    log(rejects);
    check('nvmet-rejects-bad-private-data', ok, rejects);
  } catch (error) {
    check('nvmet-rejects-bad-private-data', false, `${(error as Error).message}; ${rejects}`);
  }

  // the admin queue: hrqsize 32, hsqsize 31, as a Linux host asks
  let queue: KernelTargetQueue | null = null;
  let id: CmId | null = null;
  const unreported = [
    'nvmet-cm-established',
    'nvmet-fabrics-connect',
    'nvmet-identify-by-rdma-write',
    'nvmet-disconnect',
  ];
  const report = (name: string, pass: boolean, why: string) => {
    unreported.splice(unreported.indexOf(name), 1);
    check(name, pass, why);
  };
  try {
    id = await resolve(events, NVMET_PORT);
    const qp = id.createQp({
      pd,
      sendCq: completions.cq,
      recvCq: completions.cq,
      maxSendWr: 16,
      maxRecvWr: 16,
    });
    queue = new KernelTargetQueue(pd, completions);
    for (let i = 0; i < 8; i++) {
      setWorkRequest(queue.wrs, 0, 0, 0, 1000 + i, 1);
      setSge(queue.wrs, 0, 0, queue.mr.index, queue.recvOffset + i * 64, 64);
      if (qp.postRecv(queue.wrs, 1) !== 1) throw new Error(`postRecv refused (errno ${qp.lastError})`);
    }
    writeRdmaConnectRequest(request, { recfmt: 0, qid: 0, hrqsize: 32, hsqsize: 31, cntlid: 0xffff });
    id.connect({ privateData: request, responderResources: 16, initiatorDepth: 0 });
    const established = await events.next((e) => e.id === id, 'ESTABLISHED');
    const accept = established.privateData ? readRdmaAccept(established.privateData) : null;
    const ok = established.type === CmEventType.ESTABLISHED && accept?.recfmt === 0 && accept.crqsize === 32;
    report('nvmet-cm-established', ok, `${established.name}, accept private data ${JSON.stringify(accept)}`);
    if (established.type !== CmEventType.ESTABLISHED) throw new Error('not connected');

    // Fabrics Connect: its 1024 bytes of data stay in our memory; nvmet RDMA READs them
    writeConnectCommand(queue.sqe, { recfmt: 0, qid: 0, sqsize: 31, cattr: 0, kato: 0 });
    writeConnectData(queue.connectData, {
      hostid: randomBytes(16),
      cntlid: 0xffff,
      subnqn: NQN,
      hostnqn: HOSTNQN,
    });
    queue.keyed(1024, 1024);
    const connect = await queue.submit(qp, 'Connect');
    const cntlid = connect.dw0 & 0xffff;
    log(
      `Connect: ${statusToString(statusSct(connect.status), statusSc(connect.status))}, cntlid ${cntlid}, response ${connect.byteLen} bytes`,
    );
    report(
      'nvmet-fabrics-connect',
      connect.status === 0 && cntlid !== 0xffff && connect.byteLen === 16,
      `status ${statusToString(statusSct(connect.status), statusSc(connect.status))}, cntlid ${cntlid}, ${connect.byteLen} bytes`,
    );

    // enable the controller, then Identify Controller lands in our memory by RDMA WRITE
    writePropertySet(
      queue.sqe,
      ControllerRegister.CC,
      CcBits.EN | (6 << CcBits.IOSQES_SHIFT) | (4 << CcBits.IOCQES_SHIFT),
      4,
    );
    setSqeNoData(queue.sqe);
    const enable = await queue.submit(qp, 'Property Set CC');
    let ready = false;
    for (let tries = 0; tries < 50 && !ready; tries++) {
      writePropertyGet(queue.sqe, ControllerRegister.CSTS, 4);
      setSqeNoData(queue.sqe);
      const csts = await queue.submit(qp, 'Property Get CSTS');
      ready = csts.status === 0 && (csts.dw0 & CstsBits.RDY) !== 0;
      if (!ready) await new Promise((resolvePromise) => setTimeout(resolvePromise, 100));
    }
    queue.identify.fill(0);
    writeIdentifyCommand(queue.sqe, Cns.CONTROLLER, 0);
    queue.keyed(4096, 4096);
    const identify = await queue.submit(qp, 'Identify');
    const ctrl = decodeIdentifyController(queue.identify);
    log(`Identify: status ${identify.status}, mn "${ctrl.mn}", subnqn ${ctrl.subnqn}, cntlid ${ctrl.cntlid}`);
    report(
      'nvmet-identify-by-rdma-write',
      enable.status === 0 &&
        ready &&
        identify.status === 0 &&
        ctrl.subnqn === NQN &&
        ctrl.mn.startsWith('Linux') &&
        ctrl.cntlid === cntlid,
      `CC.EN status ${enable.status}, ready ${ready}, identify status ${identify.status}, mn "${ctrl.mn}", subnqn "${ctrl.subnqn}", cntlid ${ctrl.cntlid}`,
    );

    id.disconnect();
    const gone = await events.on(id, CmEventType.DISCONNECTED);
    report('nvmet-disconnect', gone.type === CmEventType.DISCONNECTED, gone.name);
  } catch (error) {
    for (const name of unreported.splice(0)) check(name, false, (error as Error).message);
  } finally {
    id?.destroy();
    queue?.mr.deregister();
    completions.close();
    pd.dealloc();
    events.close();
  }
}

// ---------------------------------------------------------------------------
// Our own endpoints, across threads

type ToMain =
  | { kind: 'ready'; channelToken: number }
  | { kind: 'report'; name: string; pass: boolean; why: string }
  /** what the main thread verifies itself: where the READ landed, what the host lent */
  | { kind: 'info'; name: 'read-offset' | 'source-head'; value: string }
  | { kind: 'done' };

/** The poll group: adopts the connection the main thread hands over, serves one request. */
async function pollGroup(): Promise<void> {
  const port = parentPort!;
  const shared = (workerData as { shared: SharedArrayBuffer }).shared;
  const device = rxeDevice();
  const events = new Events();
  const pd = device.allocPd();
  const completions = new Completions(device, 256);
  const srq = pd.createSrq({ maxWr: 64, maxSge: 1 });
  const memory = new Uint8Array(shared);
  const mr = pd.registerMemory(memory, Access.LOCAL_WRITE);
  const buf = Buffer.from(shared);
  const wrs = new Uint32Array(WorkRequest.WORDS * 8);
  const report = (name: string, pass: boolean, why: string) =>
    port.postMessage({ kind: 'report', name, pass, why } satisfies ToMain);
  // receives: 4 x 256 bytes at the start of the shared memory
  for (let i = 0; i < 4; i++) {
    setWorkRequest(wrs, i, 0, 0, 100 + i, 1);
    setSge(wrs, i, 0, mr.index, i * 256, 256);
  }
  if (srq.postRecv(wrs, 4) !== 4) throw new Error(`SRQ postRecv: errno ${srq.lastError}`);
  const token: number = await new Promise((resolvePromise) => {
    port.once('message', (m: { adopt: number }) => resolvePromise(m.adopt));
    port.postMessage({ kind: 'ready', channelToken: events.channel.token } satisfies ToMain);
  });
  const id = rdma.adoptCmId(token);
  const qp = id.createQp({
    pd,
    sendCq: completions.cq,
    recvCq: completions.cq,
    srq,
    maxSendWr: 32,
    maxSendSge: 2,
  });
  const acceptData = Buffer.alloc(32);
  writeRdmaAccept(acceptData, 64);
  id.accept({ privateData: acceptData, responderResources: 0, initiatorDepth: 4 });
  await events.on(id, CmEventType.ESTABLISHED);
  report('cross-thread-accept', true, '');

  // idle: nothing to do until the host SENDs (it waits 2.5 s first); the thread must sleep.
  // For scale, the same thread asleep in a plain timer first (the guest's CPU accounting
  // samples 4 ms ticks, and under TCG on a loaded host it charges idle threads a little).
  const controlStart = process.threadCpuUsage();
  const controlT0 = performance.now();
  await new Promise((resolvePromise) => setTimeout(resolvePromise, 800));
  const control = process.threadCpuUsage(controlStart);
  const controlWallMs = performance.now() - controlT0;
  const controlCpuMs = (control.user + control.system) / 1000;
  const wakeupsBefore = completions.wakeups;
  const [request] = await completions.take(1, 'the host request');
  const { wallMs, cpuMs } = completions.lastSleep;
  const woken = completions.wakeups - wakeupsBefore;
  // a reactor that polled instead of sleeping would use about all of the wall time
  report(
    'idle-poll-group-sleeps',
    wallMs >= 1000 && cpuMs <= wallMs * 0.25 && woken >= 1,
    `slept ${wallMs.toFixed(0)} ms using ${cpuMs.toFixed(1)} ms of thread CPU (a plain ${controlWallMs.toFixed(0)} ms timer: ${controlCpuMs.toFixed(1)} ms), completion-channel wakeups ${woken}`,
  );
  console.log(
    `  [pollGroup] slept ${wallMs.toFixed(0)} ms waiting for the host, thread CPU meanwhile ${cpuMs.toFixed(1)} ms, woken ${woken}x by the completion channel; a plain ${controlWallMs.toFixed(0)} ms timer cost ${controlCpuMs.toFixed(1)} ms`,
  );
  const slot = request.id - 100;
  const message = buf.subarray(slot * 256, slot * 256 + 32);
  report(
    'cross-thread-send-recv',
    request.status === WcStatus.SUCCESS && request.opcode === WcOpcode.RECV && request.byteLen === 32,
    `${wcName(request.status)}, opcode ${request.opcode}, ${request.byteLen} bytes`,
  );
  const srcLo = message.readUInt32LE(0);
  const srcHi = message.readUInt32LE(4);
  const srcKey = message.readUInt32LE(8);
  const length = message.readUInt32LE(12);
  const dstLo = message.readUInt32LE(16);
  const dstHi = message.readUInt32LE(20);
  const dstKey = message.readUInt32LE(24);

  // RDMA READ the host's buffer into [4096, 4096 + length) of the shared memory, two SGEs
  const readAt = 4096;
  const half = length / 2;
  setWorkRequest(wrs, 0, WrOpcode.RDMA_READ, SendFlags.SIGNALED, 1, 2);
  setSge(wrs, 0, 0, mr.index, readAt, half);
  setSge(wrs, 0, 1, mr.index, readAt + half, half);
  setRemote(wrs, 0, srcLo, srcHi, srcKey);
  if (qp.postSend(wrs, 1) !== 1) throw new Error(`RDMA READ refused: errno ${qp.lastError}`);
  const [read] = await completions.take(1, 'the RDMA READ');
  report(
    'rdma-read',
    read.status === WcStatus.SUCCESS && read.opcode === WcOpcode.RDMA_READ && read.byteLen === length,
    `${wcName(read.status)}, ${read.byteLen} bytes`,
  );
  port.postMessage({ kind: 'info', name: 'read-offset', value: String(readAt) } satisfies ToMain);

  // the answer: each byte inverted, RDMA WRITE (unsignaled) then SEND (signaled); RC keeps the order
  const writeAt = readAt + length;
  for (let i = 0; i < length; i++) memory[writeAt + i] = memory[readAt + i] ^ 0xff;
  setWorkRequest(wrs, 0, WrOpcode.RDMA_WRITE, 0, 2, 1);
  setSge(wrs, 0, 0, mr.index, writeAt, length);
  setRemote(wrs, 0, dstLo, dstHi, dstKey);
  buf.write('done', 2048);
  setWorkRequest(wrs, 1, WrOpcode.SEND, SendFlags.SIGNALED | SendFlags.INLINE, 3, 1);
  setSge(wrs, 1, 0, mr.index, 2048, 4);
  const posted = qp.postSend(wrs, 2);
  const [answer] = await completions.take(1, 'the answer SEND');
  report(
    'rdma-write-then-send',
    posted === 2 && answer.status === WcStatus.SUCCESS && answer.id === 3,
    `posted ${posted}, ${wcName(answer.status)} id ${answer.id}`,
  );

  // malformed work requests are refused before they reach the device
  setWorkRequest(wrs, 0, WrOpcode.SEND, SendFlags.SIGNALED, 4, 1);
  setSge(wrs, 0, 0, mr.index, memory.length - 8, 64);
  const beyond = qp.postSend(wrs, 1);
  const beyondError = qp.lastError;
  setSge(wrs, 0, 0, 999, 0, 64);
  const noMr = qp.postSend(wrs, 1);
  const noMrError = qp.lastError;
  report(
    'bad-sge-refused',
    beyond === 0 && beyondError === 22 && noMr === 0 && noMrError === 22,
    `past the end: posted ${beyond} errno ${beyondError}; unknown MR: posted ${noMr} errno ${noMrError}`,
  );

  // a wrong rkey: the RDMA READ completes with a remote access error and the QP is in error
  setWorkRequest(wrs, 0, WrOpcode.RDMA_READ, SendFlags.SIGNALED, 5, 1);
  setSge(wrs, 0, 0, mr.index, readAt, 64);
  setRemote(wrs, 0, srcLo, srcHi, (srcKey ^ 0x00ff_ff00) >>> 0);
  qp.postSend(wrs, 1);
  const [bad] = await completions.take(1, 'the bad-rkey RDMA READ');
  const state = qp.state();
  report(
    'bad-rkey-remote-access-error',
    bad.status === WcStatus.REM_ACCESS_ERR && state === QpState.ERR,
    `${wcName(bad.status)}, QP state ${state}`,
  );

  const disconnected = await events.on(id, CmEventType.DISCONNECTED).catch(() => null);
  id.destroy();
  srq.destroy();
  mr.deregister();
  completions.close();
  pd.dealloc();
  events.close();
  report('cross-thread-teardown', disconnected !== null, disconnected ? '' : 'no DISCONNECTED');
  port.postMessage({ kind: 'done' } satisfies ToMain);
}

/** The host: connects, lends two buffers, asks the poll group to READ one and WRITE the other. */
async function host(): Promise<void> {
  const port = parentPort!;
  const device = rxeDevice();
  const events = new Events();
  const pd = device.allocPd();
  const completions = new Completions(device, 64);
  const memory = new Uint8Array(new SharedArrayBuffer(4096 + 2 * TRANSFER));
  const buf = Buffer.from(memory.buffer);
  const mr = pd.registerMemory(memory, Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE);
  const wrs = new Uint32Array(WorkRequest.WORDS * 2);
  const report = (name: string, pass: boolean, why: string) =>
    port.postMessage({ kind: 'report', name, pass, why } satisfies ToMain);
  const id = await resolve(events, OWN_PORT);
  const qp = id.createQp({ pd, sendCq: completions.cq, recvCq: completions.cq, maxSendWr: 8, maxRecvWr: 8 });
  setWorkRequest(wrs, 0, 0, 0, 7, 1);
  setSge(wrs, 0, 0, mr.index, 0, 256);
  qp.postRecv(wrs, 1);
  const request = Buffer.alloc(32);
  writeRdmaConnectRequest(request, { recfmt: 0, qid: 1, hrqsize: 8, hsqsize: 7, cntlid: 1 });
  id.connect({ privateData: request, responderResources: 4, initiatorDepth: 0 });
  const established = await events.next((e) => e.id === id, 'ESTABLISHED');
  const accept = established.privateData ? readRdmaAccept(established.privateData) : null;
  report(
    'cross-thread-established',
    established.type === CmEventType.ESTABLISHED && accept?.crqsize === 64,
    `${established.name}, accept ${JSON.stringify(accept)}`,
  );
  const source = buf.subarray(4096, 4096 + TRANSFER);
  randomBytes(TRANSFER).copy(source);
  const target = buf.subarray(4096 + TRANSFER, 4096 + 2 * TRANSFER);
  // the request names both buffers by address and rkey, as a keyed SGL would
  const src = splitAddress(mr.address + 4096n);
  const dst = splitAddress(mr.address + BigInt(4096 + TRANSFER));
  const message = buf.subarray(512, 544);
  message.writeUInt32LE(src.lo, 0);
  message.writeUInt32LE(src.hi, 4);
  message.writeUInt32LE(mr.rkey, 8);
  message.writeUInt32LE(TRANSFER, 12);
  message.writeUInt32LE(dst.lo, 16);
  message.writeUInt32LE(dst.hi, 20);
  message.writeUInt32LE(mr.rkey, 24);
  port.postMessage({
    kind: 'info',
    name: 'source-head',
    value: source.toString('base64', 0, 48),
  } satisfies ToMain);
  // the poll group's idle window
  await new Promise((resolvePromise) => setTimeout(resolvePromise, 2500));
  setWorkRequest(wrs, 0, WrOpcode.SEND, SendFlags.SIGNALED, 8, 1);
  setSge(wrs, 0, 0, mr.index, 512, 32);
  qp.postSend(wrs, 1);
  const done = await completions.take(2, 'the request SEND and the answer');
  const answer = done.find((c) => c.opcode === WcOpcode.RECV);
  let inverted =
    answer !== undefined && answer.status === WcStatus.SUCCESS && buf.toString('utf8', 0, 4) === 'done';
  for (let i = 0; inverted && i < TRANSFER; i++) inverted = target[i] === (source[i] ^ 0xff);
  report(
    'host-sees-rdma-write',
    inverted,
    `answer ${answer ? wcName(answer.status) : 'none'} "${buf.toString('utf8', 0, 4)}"`,
  );
  // let the poll group try its bad rkey before going away
  await new Promise<void>((resolvePromise) => port.once('message', () => resolvePromise()));
  id.disconnect();
  await events.on(id, CmEventType.DISCONNECTED).catch(() => null);
  id.destroy();
  mr.deregister();
  completions.close();
  pd.dealloc();
  events.close();
  port.postMessage({ kind: 'done' } satisfies ToMain);
}

/** Holds live resources of every kind until the main thread terminates it. */
function abandoned(): void {
  const device = rxeDevice();
  const events = new Events();
  const listener = events.channel.createId();
  listener.bind(GUEST_IP, OWN_PORT + 1);
  listener.listen(4);
  const pd = device.allocPd();
  const completions = new Completions(device, 16);
  const mr = pd.registerMemory(new Uint8Array(new SharedArrayBuffer(65536)), Access.LOCAL_WRITE);
  const srq = pd.createSrq({ maxWr: 16 });
  const bound = events.channel.createId();
  bound.bind(GUEST_IP, 0);
  const qp = bound.createQp({ pd, sendCq: completions.cq, recvCq: completions.cq, srq });
  device.watchAsyncEvents(() => {});
  log(`holding channel, listener on ${OWN_PORT + 1}, PD, CQ, MR ${mr.index}, SRQ, QP ${qp.qpNum}`);
  parentPort!.postMessage({ kind: 'ready', channelToken: events.channel.token } satisfies ToMain);
}

function startWorker(workerRole: string, data: object, onMessage: (m: ToMain) => void): Worker {
  const worker = new Worker(new URL(import.meta.url), { workerData: { role: workerRole, ...data } });
  worker.on('message', onMessage);
  worker.on('error', (error: Error) => {
    console.log(`  [${workerRole}] error: ${error.stack ?? error}`);
    check(`${workerRole}-worker`, false, String(error));
  });
  return worker;
}

async function acrossThreads(): Promise<void> {
  const shared = new SharedArrayBuffer(4096 + 2 * TRANSFER);
  const events = new Events();
  const listener = events.channel.createId();
  listener.bind(GUEST_IP, OWN_PORT);
  listener.listen(8);
  let readAt = -1;
  let sourceHead = '';
  const expected = [
    'cross-thread-accept',
    'cross-thread-established',
    'idle-poll-group-sleeps',
    'cross-thread-send-recv',
    'rdma-read',
    'rdma-write-then-send',
    'host-sees-rdma-write',
    'bad-sge-refused',
    'bad-rkey-remote-access-error',
    'cross-thread-teardown',
  ];
  const seen = new Set<string>();
  let doneCount = 0;
  let allDone: () => void = () => {};
  const finished = new Promise<void>((resolvePromise) => {
    allDone = resolvePromise;
  });
  let pgToken = 0;
  let pgReady: () => void = () => {};
  const pgIsReady = new Promise<void>((resolvePromise) => {
    pgReady = resolvePromise;
  });
  let hostWorker: Worker | null = null;
  const onMessage = (m: ToMain) => {
    if (m.kind === 'ready') {
      pgToken = m.channelToken;
      pgReady();
    } else if (m.kind === 'info') {
      if (m.name === 'read-offset') readAt = Number(m.value);
      else sourceHead = m.value;
    } else if (m.kind === 'report') {
      seen.add(m.name);
      check(m.name, m.pass, m.why);
      if (m.name === 'bad-rkey-remote-access-error') hostWorker?.postMessage('go');
    } else if (++doneCount === 2) {
      allDone();
    }
  };
  const pg = startWorker('pollGroup', { shared }, onMessage);
  await withTimeout(pgIsReady, 'the poll group');
  hostWorker = startWorker('host', {}, onMessage);
  // the acceptor: check the private data, hand the request to the poll group
  const request = await events.next((e) => e.type === CmEventType.CONNECT_REQUEST, 'the connect request');
  const fields = request.privateData ? readRdmaConnectRequest(request.privateData) : null;
  const fromHere =
    request.listenId === listener && fields?.recfmt === 0 && fields.qid === 1 && fields.hsqsize === 7;
  let handed = false;
  if (fromHere && request.id) {
    const token = request.id.transfer(pgToken);
    pg.postMessage({ adopt: token });
    handed = true;
    let stale = '';
    try {
      request.id.localAddress();
    } catch (error) {
      stale = (error as Error).message;
    }
    log(
      `connect request ${JSON.stringify(fields)} handed to the poll group (token ${token}); here: "${stale}"`,
    );
  }
  check(
    'acceptor-transfers-request',
    handed,
    `private data ${JSON.stringify(fields)}, listenId matches ${request.listenId === listener}`,
  );
  await withTimeout(finished, 'the poll group and the host to finish', 60_000);
  const missing = expected.filter((name) => !seen.has(name));
  if (missing.length > 0) check('cross-thread-reports', false, `no report of ${missing.join(', ')}`);
  // the poll group's RDMA READ landed in memory this thread shares
  const head = readAt >= 0 ? Buffer.from(shared, readAt, 48).toString('base64') : '';
  check(
    'shared-memory-seen-by-main',
    readAt >= 0 && head === sourceHead,
    `at ${readAt}: ${head} vs ${sourceHead}`,
  );
  // with every resource released, nothing keeps the workers' loops alive
  const exits = await withTimeout(
    Promise.all([exitOf(pg), exitOf(hostWorker)]),
    'the workers to exit',
    20_000,
  ).catch((error: Error) => error.message);
  check(
    'workers-exit-on-their-own',
    Array.isArray(exits) && exits.every((c) => c === 0),
    `exit codes ${exits}`,
  );
  listener.destroy();
  events.close();

  // a worker that ends with live resources (listener, QP, SRQ, MR, started channels)
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((resolvePromise) => {
    resolveReady = resolvePromise;
  });
  const abandonedWorker = startWorker('abandoned', {}, (m) => {
    if (m.kind === 'ready') resolveReady();
  });
  await withTimeout(ready, 'the abandoned worker');
  const exitCode = await abandonedWorker.terminate();
  // its listener's port is free again only if its environment's cleanup destroyed the id
  const again = new Events();
  const relisten = again.channel.createId();
  let rebound = '';
  try {
    relisten.bind(GUEST_IP, OWN_PORT + 1);
    relisten.listen(1);
    rebound = 'ok';
  } catch (error) {
    rebound = (error as Error).message;
  }
  relisten.destroy();
  again.close();
  check(
    'terminated-worker-cleaned-up',
    rebound === 'ok',
    `worker exit ${exitCode}; binding its port again: ${rebound}`,
  );
}

function exitOf(worker: Worker): Promise<number> {
  return new Promise((resolvePromise) => worker.once('exit', resolvePromise));
}

/**
 * Every kind of object made and destroyed many times, wrappers dropped and collected in
 * between (devices() hands out wrappers the addon recreates after a collection): nothing
 * throws, nothing crashes, and what is left works.
 */
function churn(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const t0 = performance.now();
  let done = 0;
  try {
    for (let i = 0; i < 60; i++) {
      const events = rdma.createEventChannel();
      events.start(() => {});
      const id = events.createId();
      id.bind(GUEST_IP, 0);
      const device = id.device();
      if (!device) throw new Error('a bound id has no device');
      const pd = device.allocPd();
      const mr = pd.registerMemory(new Uint8Array(new SharedArrayBuffer(8192)), Access.LOCAL_WRITE);
      const channel = device.createCompChannel();
      channel.start(() => {});
      const cq = device.createCq(16, channel);
      const srq = i % 2 === 0 ? pd.createSrq({ maxWr: 8 }) : null;
      id.createQp({ pd, sendCq: cq, recvCq: cq, srq });
      if (i % 3 !== 0) id.destroyQp(); // else destroy() takes the QP with it
      id.destroy();
      srq?.destroy();
      cq.destroy();
      channel.stop();
      channel.destroy();
      mr.deregister();
      pd.dealloc();
      events.stop();
      events.destroy();
      for (let k = 0; k < 4; k++) rdma.devices();
      if (i % 10 === 0) gc();
      done++;
    }
    gc();
    const name = rdma.devices()[0]?.name;
    log(`churn: ${done} rounds in ${(performance.now() - t0).toFixed(0)} ms, then ${name}`);
    check('object-churn-with-gc', done === 60 && name === 'rxe0', `${done} rounds, device ${name}`);
  } catch (error) {
    check('object-churn-with-gc', false, `round ${done}: ${(error as Error).message}`);
  }
}

async function main(): Promise<void> {
  let device: Device;
  try {
    device = rxeDevice();
    const port = device.queryPort(1);
    const attrs = device.query();
    log(
      `${device.name} guid ${device.guid}: port ${port.stateName}, active MTU ${port.activeMtu}, ${port.linkLayerName}; max_qp_wr ${attrs.maxQpWr}, max_sge ${attrs.maxSge}, max_qp_rd_atom ${attrs.maxQpRdAtom}, max_srq_wr ${attrs.maxSrqWr}`,
    );
    check('addon-loads-in-guest', port.state === 4, `port state ${port.stateName}`);
  } catch (error) {
    check('addon-loads-in-guest', false, (error as Error).message);
    return;
  }
  const pd = device.allocPd();
  try {
    pd.registerMemory(new Uint8Array(4096), Access.LOCAL_WRITE);
    check('plain-arraybuffer-refused', false, 'registerMemory took a detachable ArrayBuffer');
  } catch (error) {
    check('plain-arraybuffer-refused', error instanceof TypeError, (error as Error).message);
  }
  pd.dealloc();
  churn();
  await againstKernelTarget(device);
  await acrossThreads();
}

if (role === 'main') {
  await main();
  log('main done');
} else if (role === 'pollGroup') {
  await pollGroup();
} else if (role === 'host') {
  await host();
} else if (role === 'abandoned') {
  abandoned();
}
