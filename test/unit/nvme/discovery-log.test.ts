// getDiscoveryLog against a scripted discovery controller whose log can change
// while it is read: paging by offset, the header read twice, retries on a
// GENCTR change, a bounded number of attempts, an absurd NUMREC refused.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { NvmeController } from '../../../src/nvme/index.ts';
import { buildDiscoveryLog, DiscLogHdr, type DiscoveryEntry } from '../../../src/wire/discovery.ts';
import { readPropertyCommand } from '../../../src/wire/fabrics.ts';
import { CntrlType, IdCtrl } from '../../../src/wire/identify.ts';
import { decodeGetLog } from '../../../src/wire/log.ts';
import {
  AdminOpcode,
  ControllerRegister,
  Cqe,
  FABRICS_OPCODE,
  FabricsCommandType,
  SQE_SIZE,
  Sqe,
} from '../../../src/wire/nvme.ts';
import {
  CapsuleResp,
  Ch,
  capsuleRespCqe,
  DataPdu,
  IcReq,
  IcResp,
  joinPdu,
  PduFlags,
  PduType,
  readCapsuleCmdSqe,
  writeC2HData,
  writeCapsuleResp,
  writeIcResp,
} from '../../../src/wire/tcp.ts';

const configHome = mkdtempSync(join(tmpdir(), 'nvmf-ts-xdg-'));
process.env.XDG_CONFIG_HOME = configHome;
after(() => rmSync(configHome, { recursive: true, force: true }));

interface LogRead {
  offset: number;
  length: number;
}

/**
 * A discovery controller that answers just what the host sends: Connect,
 * Property Get/Set, Identify, Get Log Page 0x70. `genctrFor(headerReads)`
 * gives the generation for each read of the header.
 */
async function scriptedDiscovery(
  entries: number,
  genctrFor: (headerReads: number) => number,
  numrec?: number,
) {
  const reads: LogRead[] = [];
  let headerReads = 0;
  let enabled = false;
  const list: DiscoveryEntry[] = [];
  for (let i = 0; i < entries; i++)
    list.push({
      trtype: 'TCP',
      adrfam: 'IPv4',
      subtype: 2,
      portid: 1,
      cntlid: 0xffff,
      asqsz: 128,
      eflags: 0,
      trsvcid: '4420',
      subnqn: `nqn.2016-06.io.test:sub${i}`,
      traddr: '127.0.0.1',
    });
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    let icDone = false;
    const respond = (cid: number, dw0 = 0, dw1 = 0) => {
      const r = Buffer.alloc(CapsuleResp.HDR_SIZE);
      const cqe = capsuleRespCqe(r);
      cqe.writeUInt32LE(dw0, Cqe.DW0);
      cqe.writeUInt32LE(dw1, Cqe.DW1);
      cqe.writeUInt16LE(cid, Cqe.CID);
      writeCapsuleResp(r, false);
      socket.write(r);
    };
    const sendData = (cid: number, data: Buffer) => {
      const h = Buffer.alloc(DataPdu.HDR_SIZE);
      const flags = PduFlags.DATA_LAST | PduFlags.DATA_SUCCESS;
      const pdo = writeC2HData(h, cid, 0, data.length, flags, false, false, 4);
      socket.write(joinPdu(h, pdo, data, false));
    };
    const onCapsule = (pdu: Buffer) => {
      const sqe = Buffer.alloc(SQE_SIZE);
      readCapsuleCmdSqe(pdu, sqe);
      const opcode = sqe[Sqe.OPCODE];
      const cid = sqe.readUInt16LE(Sqe.CID);
      const length = sqe.readUInt32LE(Sqe.SGL_LENGTH);
      if (opcode === FABRICS_OPCODE) {
        const fctype = sqe[Sqe.FCTYPE];
        const prop = readPropertyCommand(sqe);
        if (fctype === FabricsCommandType.CONNECT)
          respond(cid, 1); // Connect: cntlid 1
        else if (fctype === FabricsCommandType.PROPERTY_GET) {
          if (prop.offset === ControllerRegister.CAP)
            respond(cid, 127 | (1 << 24), 0); // CAP: MQES 127, TO 1
          else if (prop.offset === ControllerRegister.CSTS) respond(cid, enabled ? 1 : 0);
          else respond(cid);
        } else {
          if (prop.offset === ControllerRegister.CC) enabled = (prop.value & 1n) === 1n;
          respond(cid);
        }
        return;
      }
      if (opcode === AdminOpcode.IDENTIFY) {
        const id = Buffer.alloc(length);
        id[IdCtrl.CNTRLTYPE] = CntrlType.DISCOVERY;
        sendData(cid, id);
        return;
      }
      if (opcode === AdminOpcode.GET_LOG_PAGE) {
        const { offset } = decodeGetLog(sqe);
        if (offset === 0) headerReads++;
        reads.push({ offset, length });
        const page = buildDiscoveryLog(genctrFor(headerReads), list);
        if (numrec !== undefined) page.writeUInt32LE(numrec, DiscLogHdr.NUMREC);
        const data = Buffer.alloc(length);
        page.copy(data, 0, Math.min(offset, page.length));
        sendData(cid, data);
        return;
      }
      respond(cid);
    };
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!icDone && buf.length >= IcReq.SIZE) {
        icDone = true;
        buf = buf.subarray(IcReq.SIZE);
        const ic = Buffer.alloc(IcResp.SIZE);
        writeIcResp(ic, { pfv: 0, cpda: 0, dgst: 0, maxh2cdata: 131072 });
        socket.write(ic);
      }
      while (icDone && buf.length >= Ch.SIZE && buf.length >= buf.readUInt32LE(Ch.PLEN)) {
        const plen = buf.readUInt32LE(Ch.PLEN);
        const pdu = buf.subarray(0, plen);
        buf = buf.subarray(plen);
        if (pdu[Ch.TYPE] === PduType.CAPSULE_CMD) onCapsule(pdu);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return { server, port, reads };
}

async function connect(port: number): Promise<NvmeController> {
  return NvmeController.connect(`trtype:tcp traddr:127.0.0.1 trsvcid:${port}`, { kato: 0 });
}

test('the log is read in pages by offset and the header is checked again', async () => {
  const t = await scriptedDiscovery(10, () => 7);
  try {
    const c = await connect(t.port);
    assert.equal(c.isDiscovery, true);
    const log = await c.getDiscoveryLog();
    assert.equal(log.genctr, 7n);
    assert.equal(log.entries.length, 10);
    assert.deepEqual(
      log.entries.map((e) => e.subnqn),
      Array.from({ length: 10 }, (_, i) => `nqn.2016-06.io.test:sub${i}`),
    );
    assert.deepEqual(t.reads, [
      { offset: 0, length: 1024 },
      { offset: 1024, length: 4096 },
      { offset: 5120, length: 4096 },
      { offset: 9216, length: 2048 },
      { offset: 0, length: 1024 },
    ]);
    await c.disconnect();
  } finally {
    t.server.close();
  }
});

test('a generation change during the read makes the host read the log again', async () => {
  // header reads 1 and 2 see different generations; from read 2 on it is stable
  const t = await scriptedDiscovery(3, (n) => (n === 1 ? 1 : 2));
  try {
    const c = await connect(t.port);
    const log = await c.getDiscoveryLog({ chunkSize: 1024 });
    assert.equal(log.genctr, 2n);
    assert.equal(log.entries.length, 3);
    assert.equal(t.reads.filter((r) => r.offset === 0).length, 4, 'two attempts of two header reads');
    assert.equal(t.reads.length, 10, 'each attempt reads three 1 KiB entries');
    await c.disconnect();
  } finally {
    t.server.close();
  }
});

test('a log that never settles is given up after the retry limit; absurd NUMREC is refused', async () => {
  const t = await scriptedDiscovery(2, (n) => n);
  try {
    const c = await connect(t.port);
    await assert.rejects(c.getDiscoveryLog({ maxRetries: 2 }), /kept changing \(GENCTR\) over 3 reads/);
    assert.equal(t.reads.filter((r) => r.offset === 0).length, 6);
    await c.disconnect();
  } finally {
    t.server.close();
  }
  const t2 = await scriptedDiscovery(1, () => 1, 1_000_000);
  try {
    const c = await connect(t2.port);
    await assert.rejects(c.getDiscoveryLog(), /1000000 entries, more than the limit of 4096/);
    await c.disconnect();
  } finally {
    t2.server.close();
  }
});
