// Helpers of the command-level bad-input tests (cmd-*.test.ts, limits-*.test.ts):
// raw SQEs through the host library or a raw NVMe/TCP queue, the controller's
// Error Information log, and a verified write + read that proves a queue still works.

import assert from 'node:assert/strict';
import type { NvmeController, NvmeIoQpair } from '../../../src/nvme/index.ts';
import { ConnectRsp } from '../../../src/wire/fabrics.ts';
import { decodeErrorLogEntry, ERROR_LOG_ENTRY_SIZE, LogPage } from '../../../src/wire/log.ts';
import { Cqe, getDnr, Sqe, statusFromField, statusOf } from '../../../src/wire/nvme.ts';
import { CapsuleResp, Ch, capsuleRespCqe, IcResp, PduType, readCommonHeader } from '../../../src/wire/tcp.ts';
import {
  capsuleCmd,
  connectCmd,
  cqeAt,
  icReq,
  pattern,
  RawConnection,
  rawSqe,
  waitForValue,
} from '../../lib/index.ts';

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
  return rawSqe(opcode, nsid);
}

/** A read/write-style SQE: SLBA as two halves (any 64-bit value), NLB 0's based in CDW12. */
export function rwSqe(opcode: number, nsid: number, slbaLo: number, slbaHi: number, nlb0: number): Buffer {
  const cmd = sqe(opcode, nsid);
  cmd.writeUInt32LE(slbaLo >>> 0, Sqe.SLBA_LO);
  cmd.writeUInt32LE(slbaHi >>> 0, Sqe.SLBA_HI);
  cmd.writeUInt32LE(nlb0 & 0xffff, Sqe.NLB);
  return cmd;
}

/** What a test reads from a CQE. */
function completionOf(cpl: Buffer): RawResult {
  return {
    status: statusOf(cpl),
    dnr: getDnr(cpl),
    dw0: cpl.readUInt32LE(Cqe.DW0),
    cid: cpl.readUInt16LE(Cqe.CID),
    cpl,
  };
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
      resolve(completionOf(Buffer.from(cpl)));
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
  const page = await c.getLogPage(LogPage.ERROR, Buffer.alloc(n * ERROR_LOG_ENTRY_SIZE));
  const out: ErrorLogView[] = [];
  for (let off = 0; off + ERROR_LOG_ENTRY_SIZE <= page.length; off += ERROR_LOG_ENTRY_SIZE) {
    const e = decodeErrorLogEntry(page, off);
    if (e.error_count === 0) break;
    out.push({
      errorCount: Number(e.error_count),
      sqid: e.sqid,
      cid: e.cmdid,
      status: statusFromField(e.status_field),
      lba: Number(e.lba),
      nsid: e.nsid,
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
    let buf = await this.conn.waitBytes(this.offset + Ch.SIZE, timeoutMs);
    if (buf.length < this.offset + Ch.SIZE) return null;
    const plen = buf.readUInt32LE(this.offset + Ch.PLEN);
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
    const cid = cmd.readUInt16LE(Sqe.CID);
    await this.conn.write(capsuleCmd(cmd, data));
    const parts: Buffer[] = [];
    for (;;) {
      const pdu = await this.nextPdu(timeoutMs);
      if (pdu === null) throw new Error(`no answer for cid ${cid} (closed: ${this.conn.closed})`);
      const { type, pdo } = readCommonHeader(pdu);
      if (type === PduType.C2H_DATA) {
        // no digests on this queue: the data runs from PDO to the end
        parts.push(Buffer.from(pdu.subarray(pdo)));
        continue;
      }
      if (type !== PduType.CAPSULE_RESP) throw new Error(`unexpected PDU type ${type} for cid ${cid}`);
      const cpl = Buffer.from(capsuleRespCqe(pdu));
      if (cpl.readUInt16LE(Cqe.CID) !== cid) continue;
      return { ...completionOf(cpl), cid, c2h: Buffer.concat(parts) };
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
    cmd.writeUInt32LE(p.dataBytes, Sqe.SGL_LENGTH);
  }
  await conn.write(capsuleCmd(cmd, sent));
  const end = IcResp.SIZE + CapsuleResp.HDR_SIZE;
  const got = await conn.waitBytes(end);
  if (got.length < end || got[IcResp.SIZE + Ch.TYPE] !== PduType.CAPSULE_RESP) {
    conn.destroy();
    throw new Error(`no Connect answer (closed: ${conn.closed}): ${got.subarray(0, 160).toString('hex')}`);
  }
  const cpl = Buffer.from(cqeAt(got, IcResp.SIZE));
  const r = completionOf(cpl);
  return {
    ...r,
    iattr: cpl[Cqe.DW0 + ConnectRsp.IATTR],
    ipo: cpl.readUInt16LE(Cqe.DW0 + ConnectRsp.IPO),
    conn,
    offset: end,
  };
}
