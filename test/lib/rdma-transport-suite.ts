// The NVMe/RDMA target transport over the fake verbs layer (test/lib/fake-rdma.ts), as a
// suite the test files run with the shared receive queue (rdma-transport.test.ts) and
// with a receive queue per queue pair (rdma-transport-no-srq.test.ts):
// the real NvmfTarget, one real NvmfPollGroup and a malloc bdev in the deterministic
// thread harness, a test host that speaks the binding with the same verbs calls a
// real host makes (CM connect with the binding's private data, SEND of capsules from
// registered memory, keyed SGLs over its own memory region, responses in posted
// receives). Covers the connect request checks and their reject statuses, admin and
// I/O queues, in-capsule data, RDMA READ of write data and RDMA WRITE of read data
// across several data chunks, SEND_WITH_INV, and bad input: a capsule shorter than an
// SQE, an RDMA READ with a wrong rkey, a host gone while its data is being read.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { describeDiscoveryEntry } from '../../src/apps/cli/decode.ts';
import { createMallocBdev } from '../../src/modules/bdev/malloc/malloc.ts';
import { NvmeController } from '../../src/nvme/index.ts';
import {
  decideConnectRequest,
  RDMA_DEFAULT_OPTIONS,
  rdmaOptionsError,
  rdmaTransportPlugin,
} from '../../src/nvmf/rdma/index.ts';
import { type NvmfTarget, setTarget } from '../../src/nvmf/target.ts';
import type { TransportAddress } from '../../src/nvmf/transport.ts';
import {
  Access,
  type CmEvent,
  CmEventType,
  completionField,
  completionId,
  resetRdmaRealm,
  SendFlags,
  setSge,
  setWorkRequest,
  substituteRdmaAddon,
  WcOpcode,
  WcStatus,
  WorkCompletion,
  WorkRequest,
  WrOpcode,
} from '../../src/rdma/index.ts';
import * as T from '../../src/thread/testing.ts';
import {
  DISCOVERY_LOG_ENTRY_SIZE,
  DISCOVERY_LOG_HEADER_SIZE,
  decodeDiscoveryEntry,
  decodeRdmaTsas,
  RDMA_CMS_RDMA_CM,
  RDMA_PRTYPE_NONE,
  RDMA_QPTYPE_RELIABLE_CONNECTED,
  writeDiscoveryEntry,
} from '../../src/wire/discovery.ts';
import {
  ConnectData,
  writeConnectCommand,
  writeConnectData,
  writePropertySet,
} from '../../src/wire/fabrics.ts';
import {
  AdminOpcode,
  ControllerRegister,
  Cqe,
  GenericStatus,
  NvmOpcode,
  SQE_SIZE,
  Sqe,
  StatusCodeType,
  setSqeSgl,
  statusOf,
  writeRwCommand,
} from '../../src/wire/nvme.ts';
import {
  RdmaRejectStatus,
  readRdmaAccept,
  readRdmaReject,
  setSqeKeyedSgl,
  setSqeNoData,
  writeRdmaConnectRequest,
} from '../../src/wire/rdma.ts';
import { settle, until } from '../unit/bdev/harness.ts';
import { CC_ENABLE } from '../unit/nvmf/fake-ctrlr.ts';
import { type FakeCmId, FakeRdma } from './fake-rdma.ts';
import { startInProcessTarget } from './in-process-target.ts';
import { pattern } from './pattern.ts';

/** The tests, on a target whose RDMA transport has `no_srq` = `variant.noSrq`. */
export function rdmaTransportSuite(variant: { noSrq: boolean }): void {
  const NQN = 'nqn.2016-06.io.spdk:cnode1';
  const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:rdma-unit-host';
  const LISTEN: TransportAddress = { trtype: 'RDMA', adrfam: 'IPv4', traddr: '10.0.0.1', trsvcid: '4420' };
  const BS = 512;
  /** small data chunks, so one command's data spans several of them (and several READ SGEs) */
  const IO_UNIT = 8192;

  const fabric = new FakeRdma({ maxSgeRd: 4, maxSge: 4 });
  let tgt: NvmfTarget;

  before(async () => {
    T.useFakeClock(1_000_000);
    resetRdmaRealm();
    substituteRdmaAddon(fabric);
    tgt = await startInProcessTarget(settle, rdmaTransportPlugin, {
      ...RDMA_DEFAULT_OPTIONS,
      io_unit_size: IO_UNIT,
      max_queue_depth: 32,
      max_aq_depth: 32,
      no_srq: variant.noSrq,
    });
    const bdev = await settle(createMallocBdev({ name: 'Malloc0', numBlocks: 2048, blockSize: BS }));
    await settle(
      tgt.createSubsystem({
        nqn: NQN,
        serial: 'SN-RDMA-UNIT',
        model: 'rdma-unit',
        allowAnyHost: true,
        maxNamespaces: 8,
        minCntlid: 1,
        maxCntlid: 0xffef,
        anaReporting: false,
      }),
    );
    await settle(tgt.addNamespace(NQN, { bdevName: bdev, nsid: 1 }));
    await settle(tgt.addListener(NQN, LISTEN));
  });

  after(async () => {
    await settle(tgt.stop());
    setTarget(null);
    substituteRdmaAddon(null);
    resetRdmaRealm();
  });

  /** Host memory: capsules, responses and data, one region the target may read and write. */
  const CAPSULE_AT = 0;
  const RSP_AT = 16 * 1024;
  const RSP_SLOTS = 64;
  const DATA_AT = 64 * 1024;
  const HOST_MEMORY = DATA_AT + 256 * 1024;

  /** A host queue: what Linux's nvme-rdma does, in the fewest verbs calls. */
  class TestHost {
    readonly channel = fabric.createEventChannel();
    readonly id = this.channel.createId() as unknown as FakeCmId;
    readonly events: CmEvent[] = [];
    readonly memory = Buffer.from(new SharedArrayBuffer(HOST_MEMORY));
    readonly pd = fabric.device.allocPd();
    readonly mr = this.pd.registerMemory(
      new Uint8Array(this.memory.buffer),
      Access.LOCAL_WRITE | Access.REMOTE_READ | Access.REMOTE_WRITE,
    );
    readonly cq = fabric.device.createCq(256);
    readonly wrs = new Uint32Array(WorkRequest.WORDS * RSP_SLOTS);
    readonly wcs = new Uint32Array(WorkCompletion.WORDS * 16);
    readonly responses: Buffer[] = [];
    readonly sendErrors: number[] = [];
    nextCid = 1;

    constructor() {
      this.channel.start((e) => this.events.push(e));
    }

    /** Connect with this private data (the binding's, unless a test breaks it); resolves on the answer. */
    async cmConnect(fields: {
      qid: number;
      hsqsize: number;
      hrqsize: number;
      recfmt?: number;
    }): Promise<CmEvent> {
      this.id.resolveAddr(LISTEN.traddr, Number(LISTEN.trsvcid));
      this.id.resolveRoute();
      this.id.createQp({
        pd: this.pd,
        sendCq: this.cq,
        recvCq: this.cq,
        maxSendWr: 64,
        maxRecvWr: RSP_SLOTS,
      });
      for (let i = 0; i < RSP_SLOTS; i++) this.postResponseRecv(i);
      const data = Buffer.alloc(32);
      writeRdmaConnectRequest(data, { recfmt: fields.recfmt ?? 0, cntlid: 0, ...fields });
      this.id.connect({ privateData: data, responderResources: 16, initiatorDepth: 16 });
      return this.waitEvent(
        (e) => e.type !== CmEventType.ADDR_RESOLVED && e.type !== CmEventType.ROUTE_RESOLVED,
      );
    }

    async waitEvent(match: (e: CmEvent) => boolean): Promise<CmEvent> {
      let found: CmEvent | undefined;
      await until(() => {
        found = this.events.find(match);
        return found !== undefined;
      });
      this.events.splice(this.events.indexOf(found as CmEvent), 1);
      return found as CmEvent;
    }

    private postResponseRecv(slot: number): void {
      setWorkRequest(this.wrs, 0, 0, 0, 1000 + slot, 1);
      setSge(this.wrs, 0, 0, this.mr.index, RSP_AT + slot * 16, 16);
      assert.equal(this.id.qp?.postRecv(this.wrs, 1), 1);
    }

    /** SEND `bytes` bytes of the capsule area (the SQE, then in-capsule data). */
    sendCapsule(sqe: Buffer, inCapsule?: Buffer, bytes = SQE_SIZE + (inCapsule?.length ?? 0)): number {
      const cid = this.nextCid++;
      sqe.writeUInt16LE(cid, Sqe.CID);
      sqe.copy(this.memory, CAPSULE_AT);
      inCapsule?.copy(this.memory, CAPSULE_AT + SQE_SIZE);
      setWorkRequest(this.wrs, 0, WrOpcode.SEND, SendFlags.SIGNALED, 1, 1);
      setSge(this.wrs, 0, 0, this.mr.index, CAPSULE_AT, bytes);
      assert.equal(this.id.qp?.postSend(this.wrs, 1), 1);
      return cid;
    }

    /** Keyed SGL over `length` bytes of the data area at `offset`. */
    keyed(sqe: Buffer, offset: number, length: number, invalidate = false, key = this.mr.rkey): Buffer {
      const address = this.mr.address + BigInt(DATA_AT + offset);
      setSqeKeyedSgl(sqe, Number(address & 0xffff_ffffn), Number(address >> 32n), length, key, invalidate);
      return sqe;
    }

    /** Poll our CQ once: responses into `responses`, failed sends into `sendErrors`. */
    pollCq(): void {
      const n = this.cq.poll(this.wcs, 16);
      for (let i = 0; i < n; i++) {
        const status = completionField(this.wcs, i, WorkCompletion.STATUS);
        const opcode = completionField(this.wcs, i, WorkCompletion.OPCODE);
        if (opcode !== WcOpcode.RECV) {
          if (status !== WcStatus.SUCCESS) this.sendErrors.push(status);
          continue;
        }
        if (status !== WcStatus.SUCCESS) continue;
        const slot = completionId(this.wcs, i) - 1000;
        const at = RSP_AT + slot * 16;
        this.responses.push(Buffer.from(this.memory.subarray(at, at + 16)));
        this.postResponseRecv(slot);
      }
    }

    /** The response to command `cid`. */
    async response(cid: number): Promise<Buffer> {
      let rsp: Buffer | undefined;
      await until(() => {
        this.pollCq();
        rsp = this.responses.find((r) => r.readUInt16LE(Cqe.CID) === cid);
        return rsp !== undefined;
      });
      this.responses.splice(this.responses.indexOf(rsp as Buffer), 1);
      return rsp as Buffer;
    }

    async command(sqe: Buffer, inCapsule?: Buffer): Promise<Buffer> {
      return this.response(this.sendCapsule(sqe, inCapsule));
    }

    data(offset: number, length: number): Buffer {
      return this.memory.subarray(DATA_AT + offset, DATA_AT + offset + length);
    }

    close(): void {
      try {
        this.id.disconnect();
      } catch {
        // not connected
      }
      this.id.destroy();
    }
  }

  function connectCapsule(host: TestHost, qid: number, cntlid: number): Buffer {
    const sqe = Buffer.alloc(SQE_SIZE);
    writeConnectCommand(sqe, { recfmt: 0, qid, sqsize: 31, cattr: 0, kato: 0 });
    const data = host.data(0, ConnectData.SIZE);
    writeConnectData(data, { hostid: Buffer.alloc(16, 0x22), cntlid, subnqn: NQN, hostnqn: HOSTNQN });
    // Connect data fetched by RDMA READ, as the kernel's admin queue sends it
    return host.keyed(sqe, 0, ConnectData.SIZE);
  }

  /** CM connect + Fabrics Connect; an admin queue is enabled too. */
  async function openQueue(qid: number, cntlid = 0xffff): Promise<{ host: TestHost; cntlid: number }> {
    const host = new TestHost();
    const ev = await host.cmConnect({ qid, hsqsize: 31, hrqsize: 32 });
    assert.equal(ev.type, CmEventType.ESTABLISHED, `queue ${qid} established`);
    const rsp = await host.command(connectCapsule(host, qid, cntlid));
    assert.equal(statusOf(rsp), 0, `Fabrics Connect of queue ${qid} succeeds`);
    const id = qid === 0 ? rsp.readUInt16LE(Cqe.DW0) : cntlid;
    if (qid === 0) {
      const sqe = Buffer.alloc(SQE_SIZE);
      writePropertySet(sqe, ControllerRegister.CC, CC_ENABLE, 4);
      setSqeNoData(sqe);
      assert.equal(statusOf(await host.command(sqe)), 0, 'Property Set CC.EN = 1');
    }
    return { host, cntlid: id };
  }

  function rw(opcode: number, lba: number, blocks: number): Buffer {
    const sqe = Buffer.alloc(SQE_SIZE);
    writeRwCommand(sqe, opcode, 1, lba, blocks, 0);
    return sqe;
  }

  async function rdmaQpairs(): Promise<number> {
    const [pg] = await settle(tgt.stats());
    return (
      (pg.transports as Array<{ trtype: string; qpairs: number }>).find((t) => t.trtype === 'RDMA')?.qpairs ??
      0
    );
  }

  test('options: SPDK defaults, and the checks nvmf_create_transport -t RDMA makes', () => {
    const d = rdmaTransportPlugin.defaults();
    assert.equal(d.trtype, 'RDMA');
    assert.equal(d.max_queue_depth, 128);
    assert.equal(d.in_capsule_data_size, 4096);
    assert.equal(d.max_io_size, 131072);
    assert.equal(d.io_unit_size, 131072);
    assert.equal(d.max_srq_depth, 4096);
    assert.equal(d.num_shared_buffers, 4095);
    assert.equal(d.acceptor_backlog, 100);
    assert.equal(d.no_srq, false);
    assert.equal(rdmaOptionsError(d), null);
    assert.match(rdmaOptionsError({ ...d, io_unit_size: 4096 }) ?? '', /max_io_size 131072/);
    assert.equal(
      rdmaTransportPlugin.unavailable?.(),
      null,
      'the substituted verbs layer counts as available',
    );
  });

  test('connect request decision: every field of the private data checked, depths negotiated', () => {
    const limits = { max_queue_depth: 128, max_aq_depth: 32, max_io_qpairs_per_ctrlr: 4 };
    const device = { maxQpWr: 64, maxQpInitRdAtom: 8 };
    const pd = (f: { recfmt?: number; qid: number; hsqsize: number; hrqsize: number }) => {
      const b = Buffer.alloc(56);
      writeRdmaConnectRequest(b, { recfmt: 0, cntlid: 0, ...f });
      return b;
    };
    const ok = decideConnectRequest(pd({ qid: 1, hsqsize: 127, hrqsize: 128 }), 16, limits, device);
    assert.deepEqual(ok, { accept: true, qid: 1, depth: 64, readDepth: 8, hrqsize: 128, hsqsize: 127 });
    const admin = decideConnectRequest(pd({ qid: 0, hsqsize: 63, hrqsize: 64 }), 4, limits, device);
    assert.equal(admin.accept && admin.depth, 32, 'an admin queue is held to max_aq_depth');
    assert.equal(admin.accept && admin.readDepth, 4, 'no more RDMA READs than the host allows');
    const status = (d: ReturnType<typeof decideConnectRequest>) => (d.accept ? -1 : d.status);
    assert.equal(
      status(decideConnectRequest(Buffer.alloc(16), 16, limits, device)),
      RdmaRejectStatus.INVALID_PRIVATE_DATA_LENGTH,
    );
    assert.equal(
      status(decideConnectRequest(null, 16, limits, device)),
      RdmaRejectStatus.INVALID_PRIVATE_DATA_LENGTH,
    );
    assert.equal(
      status(decideConnectRequest(pd({ recfmt: 1, qid: 0, hsqsize: 31, hrqsize: 32 }), 16, limits, device)),
      RdmaRejectStatus.INVALID_RECFMT,
    );
    assert.equal(
      status(decideConnectRequest(pd({ qid: 5, hsqsize: 31, hrqsize: 32 }), 16, limits, device)),
      RdmaRejectStatus.INVALID_QID,
    );
    assert.equal(
      status(decideConnectRequest(pd({ qid: 1, hsqsize: 0, hrqsize: 32 }), 16, limits, device)),
      RdmaRejectStatus.INVALID_HSQSIZE,
    );
    assert.equal(
      status(decideConnectRequest(pd({ qid: 1, hsqsize: 31, hrqsize: 16 }), 16, limits, device)),
      RdmaRejectStatus.INVALID_HRQSIZE,
    );
    assert.equal(
      status(decideConnectRequest(pd({ qid: 1, hsqsize: 31, hrqsize: 32 }), 0, limits, device)),
      RdmaRejectStatus.INVALID_IRD,
    );
  });

  test('discovery: an RDMA entry carries reliable connected, no provider type, rdma_cm', () => {
    const buf = Buffer.alloc(DISCOVERY_LOG_HEADER_SIZE + DISCOVERY_LOG_ENTRY_SIZE);
    writeDiscoveryEntry(buf, DISCOVERY_LOG_HEADER_SIZE, {
      trtype: 'RDMA',
      adrfam: 'IPv4',
      subtype: 2,
      portid: 1,
      cntlid: 0xffff,
      asqsz: 128,
      eflags: 0,
      trsvcid: '4420',
      subnqn: NQN,
      traddr: '10.0.0.1',
    });
    assert.equal(buf[DISCOVERY_LOG_HEADER_SIZE], 1, 'trtype RDMA');
    assert.deepEqual(decodeRdmaTsas(buf, DISCOVERY_LOG_HEADER_SIZE), {
      qptype: RDMA_QPTYPE_RELIABLE_CONNECTED,
      prtype: RDMA_PRTYPE_NONE,
      cms: RDMA_CMS_RDMA_CM,
    });
    const entry = decodeDiscoveryEntry(buf, DISCOVERY_LOG_HEADER_SIZE);
    const shown = describeDiscoveryEntry(entry);
    assert.equal(shown.trtype, 'rdma');
    assert.equal(shown.rdma_qptype, 'connected', "nvme-cli's words, as nvmf discover prints them");
    assert.equal(shown.rdma_prtype, 'not specified');
    assert.equal(shown.rdma_cms, 'rdma-cm');
    assert.equal(shown.sectype, undefined, 'no TCP security type on an RDMA entry');
  });

  test('wrong private data: the connect request is rejected with the binding status, the target goes on', async () => {
    const cases: Array<[{ qid: number; hsqsize: number; hrqsize: number; recfmt?: number }, number]> = [
      [{ recfmt: 1, qid: 0, hsqsize: 31, hrqsize: 32 }, RdmaRejectStatus.INVALID_RECFMT],
      [{ qid: 200, hsqsize: 31, hrqsize: 32 }, RdmaRejectStatus.INVALID_QID],
      [{ qid: 1, hsqsize: 0, hrqsize: 32 }, RdmaRejectStatus.INVALID_HSQSIZE],
      [{ qid: 1, hsqsize: 31, hrqsize: 8 }, RdmaRejectStatus.INVALID_HRQSIZE],
    ];
    for (const [fields, status] of cases) {
      const host = new TestHost();
      const ev = await host.cmConnect(fields);
      assert.equal(ev.type, CmEventType.REJECTED, `${JSON.stringify(fields)} is rejected`);
      assert.deepEqual(readRdmaReject(ev.privateData as Buffer), { recfmt: 0, status });
      host.id.destroy();
    }
    assert.equal(await rdmaQpairs(), 0, 'no queue pair was made for them');
    const { host } = await openQueue(0);
    assert.equal(await rdmaQpairs(), 1, 'a good connect request still works');
    host.close();
    await until(() => fabric.liveQps().length === 0);
  });

  test('admin and I/O queues: accept crqsize, identify by RDMA WRITE, writes in-capsule and by RDMA READ, reads back', async () => {
    const admin = new TestHost();
    const est = await admin.cmConnect({ qid: 0, hsqsize: 31, hrqsize: 32 });
    assert.equal(est.type, CmEventType.ESTABLISHED);
    assert.deepEqual(
      readRdmaAccept(est.privateData as Buffer),
      { recfmt: 0, crqsize: 32 },
      'accept says crqsize',
    );
    const c = await admin.command(connectCapsule(admin, 0, 0xffff));
    assert.equal(statusOf(c), 0, 'admin Connect (its data fetched by RDMA READ)');
    const cntlid = c.readUInt16LE(Cqe.DW0);
    const cc = Buffer.alloc(SQE_SIZE);
    writePropertySet(cc, ControllerRegister.CC, CC_ENABLE, 4);
    setSqeNoData(cc);
    assert.equal(statusOf(await admin.command(cc)), 0);

    const id = Buffer.alloc(SQE_SIZE);
    id[Sqe.OPCODE] = AdminOpcode.IDENTIFY;
    id.writeUInt32LE(1, Sqe.CDW10); // CNS 1: controller
    admin.data(0, 4096).fill(0xee);
    assert.equal(statusOf(await admin.command(admin.keyed(id, 0, 4096))), 0, 'Identify Controller');
    const subnqn = admin.data(768, 256).toString('latin1').replace(/\0.*$/s, '');
    assert.equal(subnqn, NQN, 'Identify data written into host memory by RDMA WRITE');
    assert.equal(admin.data(0, 2).readUInt16LE(0) !== 0xeeee, true);

    const { host: io } = await openQueue(1, cntlid);
    assert.equal(await rdmaQpairs(), 2);

    // in-capsule: 4 KiB (the transport's in_capsule_data_size)
    const small = pattern(8 * BS, 1);
    const w1 = rw(NvmOpcode.WRITE, 0, 8);
    setSqeSgl(w1, small.length, true);
    assert.equal(statusOf(await io.command(w1, small)), 0, 'in-capsule write');

    // keyed SGL: 40 KiB over 5 chunks of 8 KiB, RDMA READ in two work requests of up to 4 SGEs
    const big = pattern(80 * BS, 2);
    big.copy(io.data(0, big.length));
    assert.equal(statusOf(await io.command(io.keyed(rw(NvmOpcode.WRITE, 100, 80), 0, big.length))), 0);

    io.data(0, 128 * 1024).fill(0);
    assert.equal(statusOf(await io.command(io.keyed(rw(NvmOpcode.READ, 0, 8), 0, small.length))), 0);
    assert.deepEqual(Buffer.from(io.data(0, small.length)), small, 'in-capsule data read back by RDMA WRITE');
    assert.equal(
      statusOf(await io.command(io.keyed(rw(NvmOpcode.READ, 100, 80), 8192, big.length, true))),
      0,
    );
    assert.deepEqual(Buffer.from(io.data(8192, big.length)), big, '40 KiB read back across chunks');
    const ioQp = io.id.peer?.qp;
    assert.ok(ioQp, 'the target side queue pair');
    assert.equal(ioQp.srq === null, variant.noSrq, 'receives on the SRQ unless no_srq');
    assert.deepEqual(
      ioQp.invalidated,
      [io.mr.rkey],
      'the response to the invalidate-key SGL was a SEND_WITH_INV',
    );

    // status, not transfer: a read past the end is answered without touching host memory
    io.data(0, 4).fill(0x5a);
    const past = await io.command(io.keyed(rw(NvmOpcode.READ, 2040, 16), 0, 16 * BS));
    assert.equal(statusOf(past), (StatusCodeType.GENERIC << 8) | GenericStatus.LBA_OUT_OF_RANGE);
    assert.equal(io.data(0, 4).readUInt32LE(0), 0x5a5a5a5a, 'no data written for a failed read');
    // above max_io_size: Data SGL Length Invalid, and the queue goes on
    const huge = await io.command(io.keyed(rw(NvmOpcode.READ, 0, 257), 0, 257 * BS));
    assert.equal(statusOf(huge), (StatusCodeType.GENERIC << 8) | GenericStatus.DATA_SGL_LENGTH_INVALID);
    assert.equal(statusOf(await io.command(io.keyed(rw(NvmOpcode.READ, 0, 8), 0, 8 * BS))), 0);

    io.close();
    await until(() => tgt.ctrlrs.get(cntlid)?.ioQueues.has(1) === false);
    admin.close();
    await until(() => !tgt.ctrlrs.has(cntlid));
    assert.equal(await rdmaQpairs(), 0, 'both queue pairs gone');
  });

  test('a capsule shorter than an SQE ends its queue; the controller and other queues go on', async () => {
    const { host: admin, cntlid } = await openQueue(0);
    const { host: io } = await openQueue(1, cntlid);
    io.sendCapsule(rw(NvmOpcode.READ, 0, 1), undefined, 32);
    const ev = await io.waitEvent((e) => e.type === CmEventType.DISCONNECTED);
    assert.equal(ev.type, CmEventType.DISCONNECTED, 'the target disconnected the queue');
    await until(() => tgt.ctrlrs.get(cntlid)?.ioQueues.has(1) === false);
    const kat = Buffer.alloc(SQE_SIZE);
    kat[Sqe.OPCODE] = AdminOpcode.KEEP_ALIVE;
    setSqeNoData(kat);
    assert.equal(statusOf(await admin.command(kat)), 0, 'the admin queue still answers');
    const { host: io2 } = await openQueue(1, cntlid);
    assert.equal(
      statusOf(await io2.command(io2.keyed(rw(NvmOpcode.READ, 0, 1), 0, BS))),
      0,
      'a new queue 1 works',
    );
    io.id.destroy();
    io2.close();
    admin.close();
    await until(() => !tgt.ctrlrs.has(cntlid));
  });

  test('an RDMA READ under a wrong rkey fails: that queue ends, the target takes new ones', async () => {
    const { host: admin, cntlid } = await openQueue(0);
    const { host: io } = await openQueue(1, cntlid);
    const sqe = io.keyed(rw(NvmOpcode.WRITE, 0, 8), 0, 8 * BS, false, 0xbad);
    io.sendCapsule(sqe);
    await io.waitEvent((e) => e.type === CmEventType.DISCONNECTED);
    await until(() => tgt.ctrlrs.get(cntlid)?.ioQueues.has(1) === false);
    io.pollCq();
    assert.equal(io.responses.length, 0, 'no response for a command whose data never arrived');
    const { host: io2 } = await openQueue(1, cntlid);
    assert.equal(statusOf(await io2.command(io2.keyed(rw(NvmOpcode.READ, 0, 8), 0, 8 * BS))), 0);
    io.id.destroy();
    io2.close();
    admin.close();
    await until(() => !tgt.ctrlrs.has(cntlid));
    assert.equal(await rdmaQpairs(), 0);
  });

  test('a host that disconnects while its write data is being read: the queue is cleaned up, nothing leaks', async () => {
    const { host: admin, cntlid } = await openQueue(0);
    const { host: io } = await openQueue(1, cntlid);
    fabric.holdReads = true;
    const data = pattern(64 * BS, 9);
    data.copy(io.data(0, data.length));
    io.sendCapsule(io.keyed(rw(NvmOpcode.WRITE, 300, 64), 0, data.length));
    await until(() => fabric.heldReads.length > 0);
    io.id.disconnect();
    fabric.holdReads = false;
    fabric.releaseReads(); // the reads now find the queue pair in error: flushed
    await until(() => tgt.ctrlrs.get(cntlid)?.ioQueues.has(1) === false);
    assert.equal(await rdmaQpairs(), 1, 'only the admin queue is left');
    // the chunks went back: a full-size write on a new queue still gets its buffers
    const { host: io2 } = await openQueue(1, cntlid);
    const again = pattern(256 * BS, 10);
    again.copy(io2.data(0, again.length));
    assert.equal(statusOf(await io2.command(io2.keyed(rw(NvmOpcode.WRITE, 300, 256), 0, again.length))), 0);
    io2.data(0, again.length).fill(0);
    assert.equal(statusOf(await io2.command(io2.keyed(rw(NvmOpcode.READ, 300, 256), 0, again.length))), 0);
    assert.deepEqual(Buffer.from(io2.data(0, again.length)), again, '128 KiB (16 chunks) round trip');
    io.id.destroy();
    io2.close();
    admin.close();
    await until(() => !tgt.ctrlrs.has(cntlid));
  });

  test('a lost ESTABLISHED (RTU): the first command makes the queue live', async () => {
    fabric.dropEstablished = true;
    try {
      const { host, cntlid } = await openQueue(0);
      // openQueue checked the Connect's and the Property Set's statuses
      await until(() => tgt.ctrlrs.get(cntlid)?.enabled === true);
      const kat = Buffer.alloc(SQE_SIZE);
      kat[Sqe.OPCODE] = AdminOpcode.KEEP_ALIVE;
      setSqeNoData(kat);
      assert.equal(statusOf(await host.command(kat)), 0, 'served without ESTABLISHED');
      host.close();
      await until(() => !tgt.ctrlrs.has(cntlid));
    } finally {
      fabric.dropEstablished = false;
    }
    assert.equal(await rdmaQpairs(), 0);
  });

  test('our host library over NVMe/RDMA (trtype:rdma) against this target: identify, two I/O queues, 4 KiB to 256 KiB', async () => {
    const ctrlr = await settle(
      NvmeController.connect(
        `trtype:rdma adrfam:ipv4 traddr:${LISTEN.traddr} trsvcid:${LISTEN.trsvcid} subnqn:${NQN}`,
        {
          kato: 0,
        },
      ),
    );
    try {
      assert.equal(
        ctrlr.cdata?.subarray(768, 768 + NQN.length).toString('latin1'),
        NQN,
        'Identify Controller read over RDMA',
      );
      assert.equal(ctrlr.namespaces.get(1)?.blockSize, BS, 'Identify Namespace too');
      const queues = await settle(ctrlr.createIoQpairs(2, 32));
      assert.equal(queues.length, 2);
      for (const [i, size] of [4096, 40 * 1024, 256 * 1024].entries()) {
        const q = queues[i % 2];
        const data = pattern(size, 30 + i);
        await settle(q.writeAsync(1, 1000, size / BS, data));
        const back = Buffer.alloc(size);
        await settle(q.readAsync(1, 1000, size / BS, back));
        assert.deepEqual(back, data, `${size} bytes round trip`);
      }
    } finally {
      await settle(ctrlr.disconnect());
    }
    await until(() => fabric.liveQps().length === 0);
    let left = await rdmaQpairs();
    for (let i = 0; i < 100 && left > 0; i++) left = await rdmaQpairs();
    assert.equal(left, 0, 'the target closed every queue');
  });

  test('a listener removed at run time: connect requests find nobody; added again, they are served', async () => {
    await settle(tgt.removeListener(NQN, LISTEN));
    assert.equal(fabric.listeners.size, 0, 'the listening CM id is destroyed');
    const stranger = new TestHost();
    const ev = await stranger.cmConnect({ qid: 0, hsqsize: 31, hrqsize: 32 });
    assert.equal(ev.type, CmEventType.REJECTED, 'no listener: the CM rejects');
    stranger.id.destroy();
    await settle(tgt.addListener(NQN, LISTEN));
    const { host, cntlid } = await openQueue(0);
    host.close();
    await until(() => !tgt.ctrlrs.has(cntlid));
  });
}
