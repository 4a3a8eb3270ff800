// The target's own CPU cost per I/O, in one process and without the kernel:
// the real target (NvmfTarget, one NvmfPollGroup, the TCP transport's poll
// group, qpair and PDU receiver) over a null bdev, on the thread test harness,
// fed by a host that lives in the same loop and talks through a fake socket
// (no syscalls: what the target writes is parsed in place, what it reads is
// prebuilt PDUs). Keeps --depth commands outstanding on one I/O queue and
// reports user + system CPU microseconds per I/O over --ios I/Os after a
// warm-up; the host's share is small and the same for every checkout, so two
// checkouts compare by running this file from each. Never gates CI.
//
//   node bench/target-inprocess.ts [--rw read,write,write-r2t] [--depth 32] [--ios 300000]
//     [--warmup N] [--subscribe] [--json]
//
// CPU time on a shared machine wanders by tens of percent from run to run. For a steady
// figure count instructions instead: run it under valgrind twice with the same --warmup and
// two --ios, and divide the difference of the two "I refs" by the difference of the --ios
// (V8's --predictable runs the JIT and the GC on this thread in a fixed order, and
// --predictable-gc-schedule fixes V8's heap growing and reducing, which otherwise follow rates
// it measures in wall time; with fixed seeds two runs of one tree then differ by about 1 %, a
// few % on the R2T write):
//
//   valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//     node --predictable --predictable-gc-schedule --hash-seed=1 --random-seed=1 \
//     bench/target-inprocess.ts --rw read --warmup 30000 --ios 10000
//
// write: 4 KiB of in-capsule data (what a host sends when in_capsule_data_size ≥ 4096);
// write-r2t: a transport SGL, so R2T then H2CData.

import diagnosticsChannel from 'node:diagnostics_channel';
import type net from 'node:net';
import { parseArgs } from 'node:util';
import { registerBdevModule } from '../src/bdev/module.ts';
import { createNullBdev, nullModule } from '../src/modules/bdev/null/null.ts';
import { TCP_DEFAULT_OPTIONS, type TcpPollGroup } from '../src/nvmf/tcp/index.ts';
import * as T from '../src/thread/testing.ts';
import { writePropertySet } from '../src/wire/fabrics.ts';
import { ControllerRegister, Cqe, NvmOpcode, SQE_SIZE, Sqe } from '../src/wire/nvme.ts';
import { CapsuleCmd, CapsuleResp, Ch, DataPdu, PduType, R2t } from '../src/wire/tcp.ts';
import {
  SocketWithoutKernel,
  startInProcessTarget,
  TCP_LISTEN,
  tcpWithoutListener,
} from '../test/lib/in-process-target.ts';
import { capsuleCmd, connectCmd, h2cData, icReq, ioSqe } from '../test/lib/raw-pdu.ts';
import { CC_ENABLE } from '../test/unit/nvmf/fake-ctrlr.ts';

const { values } = parseArgs({
  options: {
    rw: { type: 'string', default: 'read,write,write-r2t' },
    depth: { type: 'string', default: '32' },
    ios: { type: 'string', default: '300000' },
    warmup: { type: 'string' },
    subscribe: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

const NQN = 'nqn.2016-06.io.spdk:inprocess';
const BS = 4096;
const NUM_BLOCKS = 262144;
const DEPTH = Number(values.depth);
const IOS = Number(values.ios);
const WARMUP = values.warmup === undefined ? Math.min(100_000, IOS) : Number(values.warmup);

// ---- the thread harness, the target, a null bdev

const app = T.createThread('app');
T.setCurrent(app);

/** Run the threads (and the promises they resolve) until `p` settles. */
async function settle<X>(p: Promise<X>): Promise<X> {
  let done = false;
  let failed = false;
  let value: X | undefined;
  let error: unknown;
  p.then(
    (v) => {
      done = true;
      value = v;
    },
    (e) => {
      done = true;
      failed = true;
      error = e;
    },
  );
  for (let i = 0; !done; i++) {
    T.pollOnce();
    T.setCurrent(app);
    await new Promise((r) => setImmediate(r));
    if (i > 100000) throw new Error('never settled');
  }
  if (failed) throw error;
  return value as X;
}

function pollIdle(): void {
  T.pollUntilIdle();
  T.setCurrent(app);
}

const groups: TcpPollGroup[] = [];
registerBdevModule(nullModule);
// no reactor to wake: the loop below polls
const tgt = await startInProcessTarget(settle, tcpWithoutListener(groups), { ...TCP_DEFAULT_OPTIONS });
await settle(createNullBdev({ name: 'Null0', numBlocks: NUM_BLOCKS, blockSize: BS }));
await settle(
  tgt.createSubsystem({
    nqn: NQN,
    serial: 'SN-BENCH',
    model: 'bench',
    allowAnyHost: true,
    maxNamespaces: 8,
    minCntlid: 1,
    maxCntlid: 0xffef,
    anaReporting: false,
  }),
);
await settle(tgt.addNamespace(NQN, { bdevName: 'Null0', nsid: 1 }));
await settle(tgt.addListener(NQN, TCP_LISTEN));
const group = groups[0];

// ---- a socket with no kernel behind it

/** What the target writes, seen one PDU at a time (header buffers; data buffers skipped). */
type PduSeen = (type: number, hdr: Buffer) => void;

class FakeSocket extends SocketWithoutKernel {
  onPdu: PduSeen = () => {};
  /** write callbacks, called after the poll as libuv would */
  private callbacks: (() => void)[] = [];
  /** bytes of the current PDU still to skip (data, digests) */
  private skip = 0;

  write(buf: Buffer, cb?: () => void): boolean {
    if (this.skip > 0) this.skip -= buf.length;
    else {
      this.skip = buf.readUInt32LE(Ch.PLEN) - buf.length;
      this.onPdu(buf[Ch.TYPE], buf);
    }
    if (cb !== undefined) this.callbacks.push(cb);
    return true;
  }
  /** The host sends these bytes. */
  send(buf: Buffer): void {
    this.emit('data', buf);
  }
  runCallbacks(): void {
    const cbs = this.callbacks;
    this.callbacks = [];
    for (const cb of cbs) cb();
  }
}

/** Connect a queue: ICReq, then Connect (qid, cntlid); returns the socket and the CNTLID. */
function openQueue(qid: number, cntlid: number): { sock: FakeSocket; cntlid: number } {
  const sock = new FakeSocket();
  group.addSocket(sock as unknown as net.Socket, TCP_LISTEN);
  sock.send(icReq());
  pollIdle();
  let got = -1;
  sock.onPdu = (type, hdr) => {
    if (type === PduType.CAPSULE_RESP) got = hdr.readUInt16LE(CapsuleResp.CQE + Cqe.DW0);
  };
  const c = connectCmd(1, qid, DEPTH * 2, cntlid, NQN);
  sock.send(capsuleCmd(c.sqe, c.data));
  pollIdle();
  if (got < 0) throw new Error(`Connect of qid ${qid} got no answer`);
  return { sock, cntlid: got };
}

const admin = openQueue(0, 0xffff);
const enable = Buffer.alloc(SQE_SIZE);
writePropertySet(enable, ControllerRegister.CC, CC_ENABLE, 4);
enable.writeUInt16LE(2, Sqe.CID);
admin.sock.send(capsuleCmd(enable));
pollIdle();
const io = openQueue(1, admin.cntlid).sock;

// ---- the I/O loop

if (values.subscribe) {
  for (const name of ['nvmf-ts:nvmf:command:start', 'nvmf-ts:nvmf:command:complete'])
    diagnosticsChannel.subscribe(name, () => {});
}

/** Run `count` I/Os of `rw` keeping DEPTH outstanding; CPU µs per I/O, of the process and of
 * this thread alone (without the JIT's and the GC's helper threads). */
function runIos(rw: string, count: number): { process: number; thread: number } {
  const data = Buffer.alloc(BS, 0x5a);
  // one prebuilt capsule per CID (the CID is the slot; the LBA moves with each use)
  const capsules: Buffer[] = [];
  const h2c: Buffer[] = [];
  for (let cid = 0; cid < DEPTH; cid++) {
    const opcode = rw === 'read' ? NvmOpcode.READ : NvmOpcode.WRITE;
    const inCapsule = rw === 'write';
    const sqe = ioSqe(opcode, cid, 1, cid, 1, BS, inCapsule);
    capsules.push(capsuleCmd(sqe, inCapsule ? data : null));
    h2c.push(h2cData({ cccid: cid, ttag: 0, datao: 0 }, data));
  }
  let submitted = 0;
  let completed = 0;
  let failed = 0;
  let dataPdus = 0;
  let lba = 0;
  const ready: number[] = [];
  const h2cReady: number[] = [];
  for (let cid = 0; cid < DEPTH; cid++) ready.push(cid);
  io.onPdu = (type, hdr) => {
    if (type === PduType.CAPSULE_RESP) {
      completed++;
      if (hdr.readUInt16LE(CapsuleResp.CQE + Cqe.STATUS) >> 1 !== 0) failed++;
      ready.push(hdr.readUInt16LE(CapsuleResp.CQE + Cqe.CID));
    } else if (type === PduType.C2H_DATA) {
      dataPdus++;
    } else if (type === PduType.R2T) {
      const cid = hdr.readUInt16LE(R2t.CCCID);
      h2c[cid].writeUInt16LE(hdr.readUInt16LE(R2t.TTAG), DataPdu.TTAG);
      h2cReady.push(cid);
    }
  };
  const start = process.cpuUsage();
  const startThread = process.threadCpuUsage();
  while (completed < count) {
    for (const cid of h2cReady) io.send(h2c[cid]);
    h2cReady.length = 0;
    while (ready.length > 0 && submitted < count) {
      const cid = ready.pop() as number;
      const cap = capsules[cid];
      // SLBA (low 32 bits) in place in the capsule's SQE
      cap.writeUInt32LE(lba, CapsuleCmd.SQE + Sqe.CDW10);
      lba = (lba + 7919) % NUM_BLOCKS;
      io.send(cap);
      submitted++;
    }
    T.pollUntilIdle();
    io.runCallbacks();
  }
  const cpu = process.cpuUsage(start);
  const thread = process.threadCpuUsage(startThread);
  if (failed > 0) throw new Error(`${rw}: ${failed} of ${count} commands failed`);
  if (rw === 'read' && dataPdus !== count) throw new Error(`read: ${dataPdus} C2HData for ${count} reads`);
  return { process: (cpu.user + cpu.system) / count, thread: (thread.user + thread.system) / count };
}

const rows = [];
for (const rw of (values.rw ?? 'read').split(',')) {
  if (WARMUP > 0) runIos(rw, WARMUP); // the JIT settles
  const us = runIos(rw, IOS);
  rows.push({
    workload: `4k ${rw} QD${DEPTH}`,
    ios: IOS,
    us_cpu_per_io: Number(us.process.toFixed(3)),
    us_thread_cpu_per_io: Number(us.thread.toFixed(3)),
  });
  if (!values.json)
    console.log(
      `4k ${rw.padEnd(9)} QD${DEPTH}: ${us.process.toFixed(3)} us CPU per I/O (main thread ${us.thread.toFixed(3)}) over ${IOS} I/Os`,
    );
}
if (values.json) console.log(JSON.stringify(rows));
process.exit(0);
