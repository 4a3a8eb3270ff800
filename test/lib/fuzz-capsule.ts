// Property-based fuzzing of the capsule decoder and command dispatch of a real
// nvmf_tgt: mutated SQEs (from templates of every command family, bytes
// flipped, SGLs and in-capsule data varied) sent on a raw admin queue (its own
// controller) or a raw I/O queue of a fuzz controller, on a subsystem of its
// own (so no mutated write can reach the good host's namespace). Property:
// every command gets a CapsuleResp, or the connection ends with a C2HTermReq
// (or closes after a Fabrics Disconnect the fuzzer sent); nothing hangs.
// R2Ts are answered with the data they ask for, as a host would.

import fc from 'fast-check';
import { NvmeController } from '../../src/nvme/index.ts';
import {
  AdminOpcode,
  FABRICS_OPCODE,
  FabricsCommandType,
  initSqe,
  SQE_SIZE,
  Sqe,
  SqeFlags,
  setSqeSgl,
} from '../../src/wire/nvme.ts';
import {
  Ch,
  capsuleRespCid,
  DataPdu,
  DIGEST_SIZE,
  joinPdu,
  newDataPduHeader,
  newR2tFields,
  PduFlags,
  PduType,
  readDataPduHeader,
  readR2t,
  writeH2CData,
} from '../../src/wire/tcp.ts';
import { HOST_ACCEPTS, PduReceiver } from '../../src/wire/tcp-receiver.ts';
import { type ChildTarget, startChildTarget, TEST_BDEV, TEST_NQN } from './child-target.ts';
import { capsuleCmd, type RawConnection, rawQueue } from './raw-pdu.ts';

export const FUZZ_NQN = 'nqn.2016-06.io.spdk:fuzz';
export const FUZZ_BDEV = 'FuzzDisk';
const FUZZ_IO_QUEUES = 32;

/** Target config: cnode1/Malloc0 for the good host, the fuzz subsystem on its own bdev. */
export function capsuleFuzzConfig(): unknown {
  const listen = (nqn: string) => ({
    method: 'nvmf_subsystem_add_listener',
    params: { nqn, listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '$PORT' } },
  });
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_malloc_create', params: { name: TEST_BDEV, num_blocks: 32768, block_size: 512 } },
          { method: 'bdev_malloc_create', params: { name: FUZZ_BDEV, num_blocks: 8192, block_size: 512 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: TEST_NQN, allow_any_host: true } },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: TEST_NQN, namespace: { nsid: 1, bdev_name: TEST_BDEV } },
          },
          { method: 'nvmf_create_subsystem', params: { nqn: FUZZ_NQN, allow_any_host: true } },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: FUZZ_NQN, namespace: { nsid: 1, bdev_name: FUZZ_BDEV } },
          },
          listen(TEST_NQN),
          listen(FUZZ_NQN),
        ],
      },
    ],
  };
}

export interface CapsuleFuzzContext {
  target: ChildTarget;
  /** the enabled controller whose I/O queues the fuzzer opens raw */
  owner: NvmeController;
  nextQid: number;
  /** figures: commands sent / answered, connections terminated by TermReq */
  stats: { cases: number; commands: number; answered: number; termReqs: number; disconnects: number };
}

export async function startCapsuleFuzz(): Promise<CapsuleFuzzContext> {
  const target = await startChildTarget({ config: capsuleFuzzConfig() });
  try {
    // kato 0: the fuzz controller must not expire while the fuzzer works on I/O queues
    const owner = await NvmeController.connect(
      { traddr: '127.0.0.1', trsvcid: target.port, subnqn: FUZZ_NQN },
      { kato: 0 },
    );
    await owner.setNumQueues(FUZZ_IO_QUEUES);
    return {
      target,
      owner,
      nextQid: 0,
      stats: { cases: 0, commands: 0, answered: 0, termReqs: 0, disconnects: 0 },
    };
  } catch (e) {
    await target.stop();
    throw e;
  }
}

export async function stopCapsuleFuzz(ctx: CapsuleFuzzContext): Promise<void> {
  await ctx.owner.disconnect().catch(() => {});
}

/**
 * SQE templates of the command families: opcode, data length (0 = none) and dword fields
 * as [byte offset, 32-bit value]; Fabrics ones set the fctype at byte 4.
 */
interface Template {
  admin: boolean;
  opcode: number;
  len: number;
  fctype?: number;
  dwords?: Array<[number, number]>;
}
const TEMPLATES: Template[] = [
  // NVM I/O: read 8 blocks, writes of 8 and 32 blocks, flush, write zeroes, DSM, compare
  { admin: false, opcode: 0x02, len: 4096, dwords: [[Sqe.CDW12, 7]] },
  { admin: false, opcode: 0x01, len: 4096, dwords: [[Sqe.CDW12, 7]] },
  { admin: false, opcode: 0x01, len: 16384, dwords: [[Sqe.CDW12, 31]] },
  { admin: false, opcode: 0x00, len: 0 },
  { admin: false, opcode: 0x08, len: 0, dwords: [[Sqe.CDW12, 3]] },
  { admin: false, opcode: 0x09, len: 16, dwords: [[Sqe.CDW11, 4]] },
  { admin: false, opcode: 0x05, len: 512 },
  // admin: identify controller / namespace, get log page, get/set features, keep alive, abort
  { admin: true, opcode: 0x06, len: 4096, dwords: [[Sqe.CDW10, 1]] },
  { admin: true, opcode: 0x06, len: 4096, dwords: [[Sqe.CDW10, 0]] },
  { admin: true, opcode: 0x02, len: 512, dwords: [[Sqe.CDW10, 0x007f0002]] },
  { admin: true, opcode: 0x0a, len: 0, dwords: [[Sqe.CDW10, 0x07]] },
  {
    admin: true,
    opcode: 0x09,
    len: 0,
    dwords: [
      [Sqe.CDW10, 0x0b],
      [Sqe.CDW11, 0x100],
    ],
  },
  { admin: true, opcode: 0x18, len: 0 },
  { admin: true, opcode: 0x08, len: 0, dwords: [[Sqe.CDW10, 0x10001]] },
  // Fabrics: property get CAP (8 bytes), property set CC (EN, IOSQES 6, IOCQES 4)
  {
    admin: true,
    opcode: 0x7f,
    fctype: 0x04,
    len: 0,
    dwords: [
      [Sqe.CDW10, 1],
      [Sqe.CDW11, 0],
    ],
  },
  {
    admin: true,
    opcode: 0x7f,
    fctype: 0x00,
    len: 0,
    dwords: [
      [Sqe.CDW11, 0x14],
      [Sqe.CDW12, 0x460001],
    ],
  },
];

const commandArb = fc.record({
  template: fc.nat(TEMPLATES.length - 1),
  flips: fc.array(fc.record({ at: fc.nat(63), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 4 }),
  nsid: fc.constantFrom(1, 1, 1, 0, 2, 0xffffffff),
  sgl: fc.constantFrom('transport', 'transport', 'incapsule', 'keep'),
  inCapsule: fc.option(fc.integer({ min: 1, max: 9000 }), { nil: undefined }),
  lba: fc.oneof(fc.nat(8300), fc.constantFrom(0xffffffff, 8191, 8192)),
});

export const capsuleCaseArb = fc.record({
  admin: fc.boolean(),
  hdgst: fc.boolean(),
  ddgst: fc.boolean(),
  commands: fc.array(commandArb, { minLength: 1, maxLength: 6 }),
});

type CapsuleCase = typeof capsuleCaseArb extends fc.Arbitrary<infer T> ? T : never;

function buildCommand(
  c: CapsuleCase['commands'][number],
  cid: number,
  admin: boolean,
): { sqe: Buffer; data: Buffer | null; disconnect: boolean } {
  const t = TEMPLATES[c.template];
  const sqe = initSqe(Buffer.alloc(SQE_SIZE), t.opcode, t.admin ? 0 : c.nsid);
  if (t.fctype !== undefined) sqe[Sqe.FCTYPE] = t.fctype;
  for (const [off, v] of t.dwords ?? []) sqe.writeUInt32LE(v >>> 0, off);
  if (!t.admin) sqe.writeUInt32LE(c.lba >>> 0, Sqe.SLBA_LO);
  sqe[Sqe.FLAGS] = SqeFlags.PSDT_SGL_MPTR_CONTIG; // an SGL even without data, as a host sends it
  let data: Buffer | null = null;
  if (t.len > 0) setSqeSgl(sqe, t.len, false);
  if (c.sgl === 'incapsule' && t.len > 0) {
    data = Buffer.alloc(c.inCapsule ?? t.len, cid);
    setSqeSgl(sqe, data.length, true);
  }
  for (const f of c.flips) sqe[f.at] ^= f.xor;
  if (c.sgl !== 'incapsule' && c.inCapsule !== undefined && c.flips.length > 2)
    data = Buffer.alloc(c.inCapsule, 7);
  sqe[Sqe.FLAGS] &= ~SqeFlags.FUSE_MASK; // no fused commands: a lone FUSE_FIRST legitimately waits for its pair
  sqe.writeUInt16LE(cid, Sqe.CID);
  // an AER legitimately stays outstanding until an event: not a hang to report
  if (admin && sqe[Sqe.OPCODE] === AdminOpcode.ASYNC_EVENT_REQUEST) sqe[Sqe.OPCODE] = AdminOpcode.KEEP_ALIVE;
  const disconnect = sqe[Sqe.OPCODE] === FABRICS_OPCODE && sqe[Sqe.FCTYPE] === FabricsCommandType.DISCONNECT;
  return { sqe, data, disconnect };
}

/** What one raw connection saw: answered CIDs, TermReq, close. */
class Exchange {
  readonly answered = new Set<number>();
  termReq = false;
  icResp = false;
  error: string | null = null;
  private readonly conn: RawConnection;
  private readonly rx: PduReceiver;
  private readonly d: { hdgst: boolean; ddgst: boolean };
  private fed = 0;
  private readonly c2h = newDataPduHeader();
  private readonly r2t = newR2tFields();

  constructor(conn: RawConnection, d: { hdgst: boolean; ddgst: boolean }, skip: number) {
    this.conn = conn;
    this.d = d;
    this.fed = skip;
    this.rx = new PduReceiver(
      {
        onPdu: (pdu) => this.onPdu(pdu),
        onPduError: (fes, fei) => {
          this.error = `the target sent a malformed PDU (fes ${fes} fei ${fei})`;
        },
      },
      HOST_ACCEPTS,
      1 << 21,
    );
    this.rx.headerDigest = d.hdgst;
    this.rx.dataDigest = d.ddgst;
  }

  /** Parse what arrived since the last call. */
  pump(): void {
    const all = this.conn.data;
    if (all.length > this.fed) {
      const chunk = all.subarray(this.fed);
      this.fed = all.length;
      this.rx.push(Buffer.from(chunk));
    }
  }

  private onPdu(pdu: Buffer): void {
    switch (pdu[Ch.TYPE]) {
      case PduType.CAPSULE_RESP:
        this.answered.add(capsuleRespCid(pdu));
        return;
      case PduType.C2H_TERM_REQ:
        this.termReq = true;
        return;
      case PduType.C2H_DATA:
        if (pdu[Ch.FLAGS] & PduFlags.DATA_SUCCESS) this.answered.add(readDataPduHeader(pdu, this.c2h).cccid);
        return;
      case PduType.R2T: {
        // send what was asked for, in one H2CData
        const { cccid, ttag, r2to, r2tl } = readR2t(pdu, this.r2t);
        const hdr = Buffer.alloc(DataPdu.HDR_SIZE + DIGEST_SIZE);
        const pdo = writeH2CData(
          hdr,
          cccid,
          ttag,
          r2to,
          r2tl,
          PduFlags.DATA_LAST,
          this.d.hdgst,
          this.d.ddgst,
        );
        void this.conn.write(joinPdu(hdr, pdo, Buffer.alloc(r2tl, 0x6b), this.d.ddgst));
        return;
      }
      default:
        return;
    }
  }
}

/** Run one case; returns a reason when the property fails, null when it holds. */
export async function capsuleCaseHolds(ctx: CapsuleFuzzContext, c: CapsuleCase): Promise<string | null> {
  ctx.stats.cases++;
  const d = { hdgst: c.hdgst, ddgst: c.ddgst };
  const qid = (ctx.nextQid++ % FUZZ_IO_QUEUES) + 1;
  let q: Awaited<ReturnType<typeof rawQueue>>;
  try {
    q = c.admin
      ? await rawQueue(ctx.target.port, FUZZ_NQN, d)
      : await rawQueue(ctx.target.port, FUZZ_NQN, d, { ctrlr: ctx.owner, qid, sqsize: 32 });
  } catch (e) {
    return `queue set-up failed: ${(e as Error).message}`;
  }
  const ex = new Exchange(q.conn, d, q.offset);
  const cmds = c.commands.map((cmd, i) => buildCommand(cmd, i + 1, c.admin));
  let disconnectSent = false;
  for (const cmd of cmds) {
    await q.conn.write(capsuleCmd(cmd.sqe, cmd.data, d));
    ctx.stats.commands++;
    if (cmd.disconnect) disconnectSent = true;
  }
  const deadline = Date.now() + 15_000;
  for (;;) {
    ex.pump();
    if (ex.error !== null) break;
    if (ex.termReq || ex.answered.size === cmds.length) break;
    if (q.conn.closed) {
      ex.pump();
      break;
    }
    if (Date.now() > deadline) break;
    await q.conn.waitBytes(q.conn.received + 1, 200);
  }
  q.conn.destroy();
  ctx.stats.answered += ex.answered.size;
  if (ex.termReq) ctx.stats.termReqs++;
  if (ex.error !== null) return ex.error;
  if (ex.termReq || ex.answered.size === cmds.length) return null;
  if (q.conn.closed && disconnectSent) {
    ctx.stats.disconnects++;
    return null;
  }
  const missing = cmds.map((_, i) => i + 1).filter((cid) => !ex.answered.has(cid));
  const show = cmds
    .filter((_, i) => missing.includes(i + 1))
    .map((x) => x.sqe.toString('hex', 0, 64))
    .join(' ');
  return `${q.conn.closed ? 'closed without a TermReq' : 'no answer within 15 s'}: CIDs ${missing} unanswered (${c.admin ? 'admin' : 'I/O'} queue): ${show}`;
}

export function capsuleProperty(ctx: CapsuleFuzzContext) {
  return fc.asyncProperty(capsuleCaseArb, async (c) => {
    const why = await capsuleCaseHolds(ctx, c);
    if (why !== null) throw new Error(why);
    if (!ctx.target.alive()) throw new Error('the target died');
  });
}
