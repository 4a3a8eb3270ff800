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
import { buildDiscoveryLog, type DiscoveryEntry } from '../../../src/wire/discovery.ts';
import { CapsuleResp, DataPdu, PduFlags, PduType, writeCommonHeader } from '../../../src/wire/tcp.ts';

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
      writeCommonHeader(r, PduType.CAPSULE_RESP, 0, 24, 0, 24);
      r.writeUInt32LE(dw0, 8);
      r.writeUInt32LE(dw1, 12);
      r.writeUInt16LE(cid, 8 + 12);
      socket.write(r);
    };
    const sendData = (cid: number, data: Buffer) => {
      const h = Buffer.alloc(DataPdu.HDR_SIZE);
      writeCommonHeader(
        h,
        PduType.C2H_DATA,
        PduFlags.DATA_LAST | PduFlags.DATA_SUCCESS,
        24,
        24,
        24 + data.length,
      );
      h.writeUInt16LE(cid, DataPdu.CCCID);
      h.writeUInt32LE(0, DataPdu.DATAO);
      h.writeUInt32LE(data.length, DataPdu.DATAL);
      socket.write(Buffer.concat([h, data]));
    };
    const onCapsule = (pdu: Buffer) => {
      const sqe = pdu.subarray(8, 72);
      const opcode = sqe[0];
      const cid = sqe.readUInt16LE(2);
      const length = sqe.readUInt32LE(24 + 8); // SGL length
      if (opcode === 0x7f) {
        const fctype = sqe[4];
        if (fctype === 0x01)
          respond(cid, 1); // Connect: cntlid 1
        else if (fctype === 0x04) {
          const off = sqe.readUInt32LE(44);
          if (off === 0x00)
            respond(cid, 127 | (1 << 24), 0); // CAP: MQES 127, TO 1
          else if (off === 0x1c) respond(cid, enabled ? 1 : 0);
          else respond(cid);
        } else {
          if (sqe.readUInt32LE(44) === 0x14) enabled = (sqe.readUInt32LE(48) & 1) === 1;
          respond(cid);
        }
        return;
      }
      if (opcode === 0x06) {
        const id = Buffer.alloc(length);
        id[111] = 2; // CNTRLTYPE discovery
        sendData(cid, id);
        return;
      }
      if (opcode === 0x02) {
        const offset = sqe.readUInt32LE(48);
        if (offset === 0) headerReads++;
        reads.push({ offset, length });
        const page = buildDiscoveryLog(genctrFor(headerReads), list);
        if (numrec !== undefined) page.writeUInt32LE(numrec, 8);
        const data = Buffer.alloc(length);
        page.copy(data, 0, Math.min(offset, page.length));
        sendData(cid, data);
        return;
      }
      respond(cid);
    };
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!icDone && buf.length >= 128) {
        icDone = true;
        buf = buf.subarray(128);
        const ic = Buffer.alloc(128);
        writeCommonHeader(ic, PduType.IC_RESP, 0, 128, 0, 128);
        ic.writeUInt32LE(131072, 12);
        socket.write(ic);
      }
      while (icDone && buf.length >= 8 && buf.length >= buf.readUInt32LE(4)) {
        const plen = buf.readUInt32LE(4);
        const pdu = buf.subarray(0, plen);
        buf = buf.subarray(plen);
        if (pdu[0] === PduType.CAPSULE_CMD) onCapsule(pdu);
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
