// Helpers of the command-level bad-input tests (cmd-*.test.ts, limits-*.test.ts):
// raw SQEs through the host library or a raw NVMe/TCP queue, the controller's
// Error Information log, and a verified write + read that proves a queue still works.

import assert from 'node:assert/strict';
import type { NvmeController, NvmeIoQpair } from '../../../src/nvme/index.ts';
import { Cqe, SQE_SIZE, statusOf } from '../../../src/wire/nvme.ts';
import { PduType } from '../../../src/wire/tcp.ts';
import { capsuleCmd, connectCmd, icReq, pattern, RawConnection, waitForValue } from '../../lib/index.ts';

/** Anything with the host library's raw `submit` (an NvmeTcpQpair or an NvmeIoQpair). */
export interface RawSubmitter {
  submit(cmd: Buffer, data: Buffer | null, isRead: boolean, cb: (cpl: Buffer) => void): boolean;
}

export interface RawResult {
  /** (sct << 8) | sc */
  status: number;
  dnr: boolean;
  dw0: number;
  /** the CID the host library gave the command */
  cid: number;
  cpl: Buffer;
}

/** A fresh zeroed SQE with opcode and NSID (CID and SGL are filled by the host library). */
export function sqe(opcode: number, nsid = 0): Buffer {
  const cmd = Buffer.alloc(SQE_SIZE);
  cmd[0] = opcode;
  cmd.writeUInt32LE(nsid >>> 0, 4);
  return cmd;
}

/** A read/write-style SQE: SLBA as two halves (any 64-bit value), NLB 0's based in CDW12. */
export function rwSqe(opcode: number, nsid: number, slbaLo: number, slbaHi: number, nlb0: number): Buffer {
  const cmd = sqe(opcode, nsid);
  cmd.writeUInt32LE(slbaLo >>> 0, 40);
  cmd.writeUInt32LE(slbaHi >>> 0, 44);
  cmd.writeUInt32LE(nlb0 & 0xffff, 48);
  return cmd;
}

/** Submit one raw command; resolves with its completion whatever the status. */
export function submitRaw(
  q: RawSubmitter,
  cmd: Buffer,
  data: Buffer | null = null,
  isRead = false,
  timeoutMs = 10_000,
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no completion in ${timeoutMs} ms`)), timeoutMs);
    const ok = q.submit(cmd, data, isRead, (cpl) => {
      clearTimeout(timer);
      const c = Buffer.from(cpl);
      resolve({
        status: statusOf(c),
        dnr: (c.readUInt16LE(Cqe.STATUS) & 0x8000) !== 0,
        dw0: c.readUInt32LE(Cqe.DW0),
        cid: c.readUInt16LE(Cqe.CID),
        cpl: c,
      });
    });
    if (!ok) {
      clearTimeout(timer);
      reject(new Error('submit refused (queue full or closed)'));
    }
  });
}

export interface ErrorLogView {
  errorCount: number;
  sqid: number;
  cid: number;
  /** (sct << 8) | sc, from the status field (bits 15:1 of the entry's bytes 12-13) */
  status: number;
  lba: number;
  nsid: number;
}

/** The newest `n` entries of the controller's Error Information log (LID 01h). */
export async function readErrorLog(c: NvmeController, n = 16): Promise<ErrorLogView[]> {
  const page = await c.getLogPage(0x01, Buffer.alloc(n * 64));
  const out: ErrorLogView[] = [];
  for (let off = 0; off + 64 <= page.length; off += 64) {
    const errorCount = page.readUInt32LE(off) + page.readUInt32LE(off + 4) * 0x1_0000_0000;
    if (errorCount === 0) break;
    const raw = page.readUInt16LE(off + 12);
    out.push({
      errorCount,
      sqid: page.readUInt16LE(off + 8),
      cid: page.readUInt16LE(off + 10),
      status: (((raw >> 9) & 0x7) << 8) | ((raw >> 1) & 0xff),
      lba: page.readUInt32LE(off + 16) + page.readUInt32LE(off + 20) * 0x1_0000_0000,
      nsid: page.readUInt32LE(off + 24),
    });
  }
  return out;
}

/**
 * Assert the error log holds an entry for (sqid, cid) with `status`. I/O errors reach the
 * controller's thread by a message, so the log is read a few times (bounded) before failing.
 */
export async function expectErrorLogged(
  c: NvmeController,
  want: { sqid: number; cid: number; status: number; nsid?: number },
  what: string,
): Promise<ErrorLogView> {
  let last: ErrorLogView[] = [];
  const hit = await waitForValue(
    `${what}: an error log entry sqid ${want.sqid} cid ${want.cid} status 0x${want.status.toString(16)}`,
    async () => {
      last = await readErrorLog(c, 32);
      return last.find((e) => e.sqid === want.sqid && e.cid === want.cid && e.status === want.status);
    },
    { timeoutMs: 5000, intervalMs: 50, detail: () => `newest: ${JSON.stringify(last.slice(0, 4))}` },
  );
  if (want.nsid !== undefined) assert.equal(hit.nsid, want.nsid, `${what}: error log NSID`);
  return hit;
}

/** Write 8 blocks of a pattern at `lba` and read them back through the same queue. */
export async function verifiedIo(q: NvmeIoQpair, lba: number, seed: number, blockSize = 512): Promise<void> {
  const data = pattern(8 * blockSize, seed);
  await q.writeAsync(1, lba, 8, data);
  const back = Buffer.alloc(8 * blockSize);
  await q.readAsync(1, lba, 8, back);
  assert.ok(back.equals(data), `the queue still reads back what it wrote at LBA ${lba}`);
}

/**
 * A raw I/O (or admin) queue over a RawConnection that already did ICReq and Connect: sends
 * capsules as built by the test (any PSDT, SGL type or length) and collects the answer of
 * one command: its C2HData payload and its CQE. No digests.
 */
export class RawQueue {
  readonly conn: RawConnection;
  private offset: number;

  constructor(conn: RawConnection, offset: number) {
    this.conn = conn;
    this.offset = offset;
  }

  /** The next whole PDU the target sent, or null if none came (closed or timed out). */
  async nextPdu(timeoutMs = 5000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    let buf = await this.conn.waitBytes(this.offset + 8, timeoutMs);
    if (buf.length < this.offset + 8) return null;
    const plen = buf.readUInt32LE(this.offset + 4);
    buf = await this.conn.waitBytes(this.offset + plen, Math.max(1, deadline - Date.now()));
    if (buf.length < this.offset + plen) return null;
    const pdu = Buffer.from(buf.subarray(this.offset, this.offset + plen));
    this.offset += plen;
    return pdu;
  }
  /** Send one CapsuleCmd (`data` in-capsule) and wait for the CapsuleResp carrying `cid`. */
  async command(
    cmd: Buffer,
    data: Buffer | null = null,
    timeoutMs = 5000,
  ): Promise<RawResult & { c2h: Buffer }> {
    const cid = cmd.readUInt16LE(2);
    await this.conn.write(capsuleCmd(cmd, data));
    const parts: Buffer[] = [];
    for (;;) {
      const pdu = await this.nextPdu(timeoutMs);
      if (pdu === null) throw new Error(`no answer for cid ${cid} (closed: ${this.conn.closed})`);
      const plen = pdu.length;
      if (pdu[0] === PduType.C2H_DATA) {
        parts.push(Buffer.from(pdu.subarray(pdu[3], plen)));
        continue;
      }
      if (pdu[0] !== PduType.CAPSULE_RESP) throw new Error(`unexpected PDU type ${pdu[0]} for cid ${cid}`);
      const cpl = Buffer.from(pdu.subarray(8, 24));
      if (cpl.readUInt16LE(Cqe.CID) !== cid) continue;
      return {
        status: statusOf(cpl),
        dnr: (cpl.readUInt16LE(Cqe.STATUS) & 0x8000) !== 0,
        dw0: cpl.readUInt32LE(Cqe.DW0),
        cid,
        cpl,
        c2h: Buffer.concat(parts),
      };
    }
  }
}

export interface RawConnectParams {
  qid: number;
  /** queue entries; SQSIZE sent is this − 1 */
  queueSize?: number;
  cntlid?: number;
  subnqn: string;
  hostnqn?: string;
  hostid?: Buffer;
  /** change the SQE or the 1024-byte Connect data before sending */
  mutate?: (sqe: Buffer, data: Buffer) => void;
  /** send only this many bytes of Connect data (SGL length set to match) */
  dataBytes?: number;
}

export interface RawConnectResult extends RawResult {
  /** IATTR (dw0 byte 0) and IPO (dw0 bits 31:16) of a Connect Invalid Parameters answer */
  iattr: number;
  ipo: number;
  conn: RawConnection;
  /** where the next PDU from the target starts in conn.data */
  offset: number;
}

/** ICReq + one Fabrics Connect on a fresh raw connection; the connection is left open. */
export async function rawConnect(port: string, p: RawConnectParams): Promise<RawConnectResult> {
  const conn = await RawConnection.connect(port);
  await conn.write(icReq());
  const { sqe: cmd, data } = connectCmd(
    1,
    p.qid,
    p.queueSize ?? 32,
    p.cntlid ?? 0xffff,
    p.subnqn,
    p.hostnqn,
    p.hostid,
  );
  p.mutate?.(cmd, data);
  let sent = data;
  if (p.dataBytes !== undefined) {
    sent = data.subarray(0, p.dataBytes);
    cmd.writeUInt32LE(p.dataBytes, 32);
  }
  await conn.write(capsuleCmd(cmd, sent));
  const got = await conn.waitBytes(128 + 24);
  if (got.length < 152 || got[128] !== PduType.CAPSULE_RESP) {
    conn.destroy();
    throw new Error(`no Connect answer (closed: ${conn.closed}): ${got.subarray(0, 160).toString('hex')}`);
  }
  const cpl = Buffer.from(got.subarray(136, 152));
  const dw0 = cpl.readUInt32LE(Cqe.DW0);
  return {
    status: statusOf(cpl),
    dnr: (cpl.readUInt16LE(Cqe.STATUS) & 0x8000) !== 0,
    dw0,
    cid: cpl.readUInt16LE(Cqe.CID),
    cpl,
    iattr: dw0 & 0xff,
    ipo: dw0 >>> 16,
    conn,
    offset: 152,
  };
}
