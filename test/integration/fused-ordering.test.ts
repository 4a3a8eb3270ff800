// Fused Compare and Write kept together when an earlier write's data arrives
// between the two halves (spdk/spdk GitHub issue #2428). With raw PDUs on one I/O
// queue: several writes larger than the in-capsule size (their data waits for an
// R2T), then the first half (Compare, data in the capsule), then the writes'
// H2CData, then after a delay the second half (Write). Before the transport kept
// pairs in arrival order, each write's data reached the core between the halves
// and the Compare came back ABORTED - MISSING FUSED. The delay is swept, and the
// writes' data is placed before, between and after the halves.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController, type NvmeIoQpair } from '../../src/nvme/index.ts';
import { Cqe, NvmOpcode, Sqe, SqeFlags, statusOf } from '../../src/wire/nvme.ts';
import { newR2tFields, PduType, readR2t } from '../../src/wire/tcp.ts';
import { ChildTarget, TEST_BLOCK_SIZE, TEST_NQN } from '../lib/child-target.ts';
import { pattern } from '../lib/pattern.ts';
import { capsuleCmd, cqeAt, h2cData, ioSqe, type RawConnection, rawQueue } from '../lib/raw-pdu.ts';

const WRITES = 3;
/** 8 KiB: twice the in-capsule size, so each write's data follows an R2T */
const WRITE_BLOCKS = 16;
const ITERATIONS = 48;
const BS = TEST_BLOCK_SIZE;

let target: ChildTarget;
let ctrlr: NvmeController;
let io: NvmeIoQpair;

before(async () => {
  target = await ChildTarget.start({ cores: '0x1' });
  ctrlr = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: target.port, subnqn: TEST_NQN });
  io = await ctrlr.createIoQpair(8); // qid 1, to read the results back; the raw queue is qid 2
});

after(async () => {
  await ctrlr?.disconnect();
  await target?.dispose();
});

/** Reads the PDUs of a raw queue as they come: R2Ts by command ID, completions by command ID. */
class Replies {
  private offset: number;
  readonly r2ts = new Map<number, { ttag: number; length: number }>();
  readonly completions = new Map<number, number>();
  private readonly r2t = newR2tFields();
  private readonly conn: RawConnection;
  constructor(conn: RawConnection, offset: number) {
    this.conn = conn;
    this.offset = offset;
  }

  private parse(): void {
    const data = this.conn.data;
    while (this.offset + 8 <= data.length) {
      const plen = data.readUInt32LE(this.offset + 4);
      if (this.offset + plen > data.length) break;
      const pdu = data.subarray(this.offset, this.offset + plen);
      if (pdu[0] === PduType.R2T) {
        const f = readR2t(pdu, this.r2t);
        this.r2ts.set(f.cccid, { ttag: f.ttag, length: f.r2tl });
      } else if (pdu[0] === PduType.CAPSULE_RESP) {
        const cqe = cqeAt(data, this.offset);
        this.completions.set(cqe.readUInt16LE(Cqe.CID), statusOf(cqe));
      } else throw new Error(`unexpected PDU type ${pdu[0]} from the target`);
      this.offset += plen;
    }
  }

  async until(what: string, done: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.parse();
      if (done()) return;
      if (this.conn.closed) throw new Error(`connection closed while waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await this.conn.waitBytes(this.conn.received + 1, Math.max(1, deadline - Date.now()));
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a fused Compare and Write stays a pair when R2T writes get their data between the halves (delay swept)', async () => {
  const { conn, offset } = await rawQueue(target.port, TEST_NQN, {}, { ctrlr, qid: 2, sqsize: 64 });
  const replies = new Replies(conn, offset);
  const failures: string[] = [];
  try {
    let cid = 100;
    for (let i = 0; i < ITERATIONS; i++) {
      const delayMs = i % 8; // 0..7 ms between the writes' data and the second half
      const placement = Math.floor(i / 8) % 3; // writes' data: 0 between, 1 before, 2 after the halves
      const base = 1000 + i * 64;
      // the writes: transport SGL, so the target answers each with an R2T
      const writes: { cid: number; data: Buffer }[] = [];
      for (let w = 0; w < WRITES; w++) {
        const wcid = cid++;
        const data = pattern(WRITE_BLOCKS * BS, i * 16 + w);
        writes.push({ cid: wcid, data });
        await conn.write(
          capsuleCmd(ioSqe(NvmOpcode.WRITE, wcid, 1, base + 8 + w * WRITE_BLOCKS, WRITE_BLOCKS, data.length)),
        );
      }
      await replies.until('the R2Ts of the writes', () => writes.every((w) => replies.r2ts.has(w.cid)));
      const sendWriteData = async () => {
        for (const w of writes) {
          const r2t = replies.r2ts.get(w.cid);
          assert.ok(r2t);
          await conn.write(h2cData({ cccid: w.cid, ttag: r2t.ttag, datao: 0 }, w.data));
        }
      };
      // the pair: Compare against what block `base` holds (zeros), then Write a pattern there
      const cmpCid = cid++;
      const wrCid = cid++;
      const cmp = ioSqe(NvmOpcode.COMPARE, cmpCid, 1, base, 1, BS, true);
      cmp[Sqe.FLAGS] |= SqeFlags.FUSE_FIRST;
      const wr = ioSqe(NvmOpcode.WRITE, wrCid, 1, base, 1, BS, true);
      wr[Sqe.FLAGS] |= SqeFlags.FUSE_SECOND;
      const newBlock = pattern(BS, 7000 + i);
      if (placement === 1) await sendWriteData();
      await conn.write(capsuleCmd(cmp, Buffer.alloc(BS)));
      if (placement === 0) await sendWriteData();
      if (delayMs > 0) await sleep(delayMs);
      await conn.write(capsuleCmd(wr, newBlock));
      if (placement === 2) await sendWriteData();
      const cids = [...writes.map((w) => w.cid), cmpCid, wrCid];
      await replies.until('every completion', () => cids.every((c) => replies.completions.has(c)));
      const got = cids.map((c) => replies.completions.get(c));
      if (got.some((s) => s !== 0))
        failures.push(
          `iteration ${i} (delay ${delayMs} ms, data ${['between', 'before', 'after'][placement]} the halves): ` +
            `writes ${got.slice(0, WRITES).map((s) => `0x${s?.toString(16)}`)}, ` +
            `compare 0x${got[WRITES]?.toString(16)}, write 0x${got[WRITES + 1]?.toString(16)}`,
        );
      // the pair wrote its block, the plain writes theirs
      const back = Buffer.alloc(BS);
      await io.readAsync(1, base, 1, back);
      if (!back.equals(newBlock)) failures.push(`iteration ${i}: the fused write's block was not written`);
    }
  } finally {
    conn.destroy();
  }
  assert.deepEqual(failures, [], `fused pairs broken:\n${failures.join('\n')}`);
});
