import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { NvmeController, type NvmeStatusError } from '../../../src/nvme/index.ts';
import { NvmeTcpQpair } from '../../../src/nvme/tcp-qpair.ts';
import { GenericStatus, getStatusCode, initSqe, NvmOpcode, SQE_SIZE, Sqe } from '../../../src/wire/nvme.ts';
import {
  CapsuleCmd,
  Ch,
  IcReq,
  IcResp,
  PduType,
  R2t,
  TermReq,
  TermReqFes,
  writeIcResp,
  writeR2t,
  writeTermReq,
} from '../../../src/wire/tcp.ts';
import { startFakeTarget } from '../../lib/fake-core.ts';
import { countKeepAlives } from '../../lib/probe.ts';
import { waitFor } from '../../lib/wait.ts';

// connect() reads or creates the default host identity: keep it in a temp dir
const configHome = mkdtempSync(join(tmpdir(), 'nvmf-ts-xdg-'));
process.env.XDG_CONFIG_HOME = configHome;
after(() => rmSync(configHome, { recursive: true, force: true }));

/** A scripted controller: answers the ICReq with `icresp`, then runs `onCapsule` for each 72-byte capsule. */
async function scriptedTarget(icresp: Buffer, onCapsule?: (socket: net.Socket, capsule: Buffer) => void) {
  const got: Buffer[] = [];
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    let icDone = false;
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!icDone && buf.length >= IcReq.SIZE) {
        icDone = true;
        buf = buf.subarray(IcReq.SIZE);
        socket.write(icresp);
      }
      while (icDone && buf.length >= Ch.SIZE && buf.length >= buf.readUInt32LE(Ch.PLEN)) {
        const plen = buf.readUInt32LE(Ch.PLEN);
        const pdu = buf.subarray(0, plen);
        got.push(Buffer.from(pdu));
        buf = buf.subarray(plen);
        if (pdu[Ch.TYPE] === PduType.CAPSULE_CMD) onCapsule?.(socket, pdu);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return { server, port, got };
}

function goodIcResp(maxh2c = 131072, cpda = 0, dgst = 0): Buffer {
  const b = Buffer.alloc(IcResp.SIZE);
  writeIcResp(b, { pfv: 0, cpda, dgst, maxh2cdata: maxh2c });
  return b;
}

test('an ICResp the Linux host would refuse is refused (cpda, maxh2cdata, digests)', async () => {
  for (const bad of [goodIcResp(131072, 1), goodIcResp(0xffff), goodIcResp(2048), goodIcResp(131072, 0, 1)]) {
    const t = await scriptedTarget(bad);
    await assert.rejects(
      NvmeTcpQpair.connect({
        traddr: '127.0.0.1',
        trsvcid: String(t.port),
        queueSize: 4,
        inCapsuleDataSize: 4096,
      }),
      /bad ICResp/,
    );
    t.server.close();
  }
});

test('a bad R2T or a C2HTermReq fails outstanding commands with ABORTED_SQ_DELETION', async () => {
  const t = await scriptedTarget(goodIcResp(), (socket, capsule) => {
    const cid = capsule.readUInt16LE(CapsuleCmd.SQE + Sqe.CID);
    const r2t = Buffer.alloc(R2t.HDR_SIZE);
    writeR2t(r2t, cid, 0, 0, 1 << 20, false); // past the transfer
    socket.write(r2t);
  });
  const q = await NvmeTcpQpair.connect({
    traddr: '127.0.0.1',
    trsvcid: String(t.port),
    queueSize: 4,
    inCapsuleDataSize: 0,
  });
  const sqe = initSqe(Buffer.alloc(SQE_SIZE), NvmOpcode.WRITE);
  const sc = await new Promise<number>((resolve) => {
    assert.ok(q.submit(sqe, Buffer.alloc(8192), false, (cpl) => resolve(getStatusCode(cpl))));
  });
  assert.equal(sc, GenericStatus.ABORTED_SQ_DELETION);
  assert.match(q.closeReason ?? '', /bad R2T/);
  assert.equal(
    q.submit(sqe, null, false, () => {}),
    false,
  );
  t.server.close();

  const t2 = await scriptedTarget(goodIcResp(), (socket) => {
    const term = Buffer.alloc(TermReq.HDR_SIZE);
    writeTermReq(term, PduType.C2H_TERM_REQ, TermReqFes.PDU_SEQUENCE_ERROR, 0, null);
    socket.write(term);
  });
  const q2 = await NvmeTcpQpair.connect({
    traddr: '127.0.0.1',
    trsvcid: String(t2.port),
    queueSize: 4,
    inCapsuleDataSize: 0,
  });
  await new Promise<void>((resolve) => {
    q2.submit(Buffer.alloc(64), null, false, () => resolve());
  });
  assert.match(q2.closeReason ?? '', /C2HTermReq fes 2/);
  t2.server.close();
});

test('the queue refuses more commands than its size', async () => {
  const t = await scriptedTarget(goodIcResp());
  const q = await NvmeTcpQpair.connect({
    traddr: '127.0.0.1',
    trsvcid: String(t.port),
    queueSize: 2,
    inCapsuleDataSize: 0,
  });
  assert.equal(
    q.submit(Buffer.alloc(64), null, false, () => {}),
    true,
  );
  assert.equal(
    q.submit(Buffer.alloc(64), null, false, () => {}),
    true,
  );
  assert.equal(
    q.submit(Buffer.alloc(64), null, false, () => {}),
    false,
  );
  assert.equal(q.outstanding, 2);
  q.close();
  assert.equal(q.outstanding, 0);
  t.server.close();
});

test('callback I/O API, status errors, admin helpers against the fake core', async () => {
  const target = await startFakeTarget(256);
  try {
    const ctrlr = await NvmeController.connect(
      { traddr: '127.0.0.1', trsvcid: String(target.port), subnqn: 'nqn.x' },
      { kato: 200 },
    );
    // keep alive runs at kato/2 on its own
    const before = target.core.requests;
    const keepAlives = countKeepAlives(ctrlr);
    await waitFor('two Keep Alives answered', () => keepAlives.answered >= 2, { timeoutMs: 2000 });
    assert.ok(target.core.requests >= before + 2, 'keep alive commands were sent');
    await assert.rejects(
      ctrlr.getFeatures(0x81),
      (e: NvmeStatusError) => e.sc === GenericStatus.INVALID_OPCODE,
    );
    const io = await ctrlr.createIoQpair(4);
    const data = Buffer.alloc(1024, 0xab);
    const statuses = await new Promise<number[]>((resolve) => {
      const out: number[] = [];
      const cb = (status: number) => {
        out.push(status);
        if (out.length === 2) resolve(out);
      };
      assert.ok(io.write(1, 4, 2, data, cb));
      assert.ok(io.write(1, 255, 2, data, cb));
    });
    assert.deepEqual(statuses.sort(), [0, GenericStatus.LBA_OUT_OF_RANGE]);
    await ctrlr.disconnect();
  } finally {
    await target.close();
  }
});

test('discovery log page is read and parsed', async () => {
  const target = await startFakeTarget(16);
  try {
    const ctrlr = await NvmeController.connect(
      { traddr: '127.0.0.1', trsvcid: String(target.port), subnqn: 'nqn.2014-08.org.nvmexpress.discovery' },
      { kato: 0 },
    );
    const log = await ctrlr.getDiscoveryLog();
    assert.equal(log.genctr, 5n);
    assert.equal(log.entries.length, 1);
    assert.deepEqual(
      [
        log.entries[0].trtype,
        log.entries[0].subtype,
        log.entries[0].trsvcid,
        log.entries[0].traddr,
        log.entries[0].subnqn,
      ],
      [3, 2, '4420', '127.0.0.1', 'nqn.2016-06.io.spdk:cnode1'],
    );
    await ctrlr.disconnect();
  } finally {
    await target.close();
  }
});
