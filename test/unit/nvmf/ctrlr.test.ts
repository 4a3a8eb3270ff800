// Controller logic over fake requests: properties and CC enable/shutdown,
// features, AER delivery, log pages, keep-alive expiry, error log.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AsyncEvent, type NvmfCtrlr } from '../../../src/nvmf/target-controller.ts';
import { TCP_DEFAULT_OPTIONS } from '../../../src/nvmf/tcp/index.ts';
import type { NvmfQpair, TransportOptions } from '../../../src/nvmf/transport.ts';
import { statusOf } from '../../../src/wire/nvme.ts';

import { enableDirectly, makeFakeCtrlr, fakeReq as req } from './fake-ctrlr.ts';

/** A controller; `enable` sets CC.EN (as a host does first: admin commands need it). */
function makeCtrlr(discovery = false, enable = true): { c: NvmfCtrlr; enabled: number[]; q: NvmfQpair } {
  const enabled: number[] = [];
  const opts: TransportOptions = { ...TCP_DEFAULT_OPTIONS };
  const { c, q } = makeFakeCtrlr({
    discovery,
    cntlid: 3,
    hostidFill: 7,
    kato: 10000,
    host: {
      discoveryEntries: () =>
        [1, 2].map((i) => ({
          trtype: 'TCP',
          adrfam: 'IPv4',
          subtype: 2,
          portid: 0,
          cntlid: 0xffff,
          asqsz: 128,
          eflags: 0,
          trsvcid: '4420',
          subnqn: `nqn.2016-06.io.spdk:cnode${i}`,
          traddr: '127.0.0.1',
        })),
      discoveryGenctr: () => 9,
      transportOptions: () => opts,
      onCtrlrEnabled: (ctrlr) => enabled.push(ctrlr.cntlid),
    },
  });
  if (enable) enableDirectly(c);
  return { c, enabled, q };
}

test('property get CAP/VS and CC enable sets CSTS.RDY', () => {
  const { c, enabled, q } = makeCtrlr(false, false);
  const cap = req(q, (cmd) => {
    cmd[0] = 0x7f;
    cmd[4] = 0x04;
    cmd[40] = 1;
    cmd.writeUInt32LE(0, 44);
  });
  c.propertyGet(cap);
  assert.equal(cap.done, 1);
  assert.equal(cap.rsp.readUInt16LE(0), 127, 'MQES = depth - 1');
  assert.equal(cap.rsp.readUInt32LE(4) & 0x20, 0x20, 'CSS NVM');
  assert.equal(cap.rsp.readUInt32LE(4) & 0x800, 0, 'CSS bit 6 (I/O command sets) not advertised by default');
  assert.equal(cap.rsp.readUInt32LE(4) & 0x0800_0000, 0x0800_0000, 'CRMS.CRWMS (NVMe 2.0)');
  const vs = req(q, (cmd) => cmd.writeUInt32LE(8, 44));
  c.propertyGet(vs);
  assert.equal(vs.rsp.readUInt32LE(0), 0x20000, 'VS 2.0');
  const bad = req(q, (cmd) => {
    cmd.writeUInt32LE(0x14, 44);
    cmd.writeUInt32LE(1 | (5 << 16) | (4 << 20), 48);
  });
  c.propertySet(bad);
  assert.equal(statusOf(bad.rsp), 0x182, 'IOSQES 5 rejected');
  const en = req(q, (cmd) => {
    cmd.writeUInt32LE(0x14, 44);
    cmd.writeUInt32LE(1 | (6 << 16) | (4 << 20), 48);
  });
  c.propertySet(en);
  assert.equal(statusOf(en.rsp), 0);
  assert.equal(c.csts & 1, 1);
  assert.deepEqual(enabled, [3]);
  const shn = req(q, (cmd) => {
    cmd.writeUInt32LE(0x14, 44);
    cmd.writeUInt32LE(1 | (6 << 16) | (4 << 20) | (1 << 14), 48);
  });
  c.propertySet(shn);
  assert.equal((c.csts >> 2) & 3, 2, 'shutdown complete');
});

test('features: number of queues, KATO, host identifier, unsupported FID', () => {
  const { c, q } = makeCtrlr();
  const nq = req(q, (cmd) => {
    cmd[0] = 0x09;
    cmd[40] = 0x07;
    cmd.writeUInt32LE((3 << 16) | 3, 44);
  });
  c.admin(nq);
  assert.equal(statusOf(nq.rsp), 0);
  assert.equal(nq.rsp.readUInt32LE(0), (126 << 16) | 126);
  const bad = req(q, (cmd) => {
    cmd[0] = 0x09;
    cmd[40] = 0x07;
    cmd.writeUInt32LE(0xffff, 44);
  });
  c.admin(bad);
  assert.equal(statusOf(bad.rsp), 0x02);
  const kato = req(q, (cmd) => {
    cmd[0] = 0x0a;
    cmd[40] = 0x0f;
  });
  c.admin(kato);
  assert.equal(kato.rsp.readUInt32LE(0), 10000);
  const hid = req(
    q,
    (cmd) => {
      cmd[0] = 0x0a;
      cmd[40] = 0x81;
      cmd[44] = 1;
    },
    16,
  );
  c.admin(hid);
  assert.ok(hid.iov[0].equals(Buffer.alloc(16, 7)));
  const unk = req(q, (cmd) => {
    cmd[0] = 0x0a;
    cmd[40] = 0x7e;
  });
  c.admin(unk);
  assert.equal(statusOf(unk.rsp), 0x02);
  const opc = req(q, (cmd) => {
    cmd[0] = 0x80;
  });
  c.admin(opc);
  assert.equal(statusOf(opc.rsp), 0x01, 'format NVM: invalid opcode');
  assert.ok(c.errorCount >= 3, 'errors logged');
  const elog = req(
    q,
    (cmd) => {
      cmd[0] = 0x02;
      cmd.writeUInt32LE(0x01 | (15 << 16), 40);
    },
    64,
  );
  c.admin(elog);
  assert.equal(elog.iov[0].readUInt32LE(0), c.errorCount, 'newest entry first');
});

test('AER: held until an event, enabled notices only, limit of 4', () => {
  const { c, q } = makeCtrlr();
  const aers = [0, 1, 2, 3].map(() => req(q, (cmd) => (cmd[0] = 0x0c)));
  for (const a of aers) c.admin(a);
  assert.equal(
    aers.reduce((n, a) => n + a.done, 0),
    0,
  );
  const fifth = req(q, (cmd) => (cmd[0] = 0x0c));
  c.admin(fifth);
  assert.equal(statusOf(fifth.rsp), 0x105, 'AER limit exceeded');
  c.namespaceChanged(1);
  assert.equal(aers[0].done, 0, 'notices disabled by default');
  c.asyncEventConfig = 0x100;
  c.namespaceChanged(2);
  assert.equal(aers[0].done, 1);
  assert.equal(aers[0].rsp.readUInt32LE(0), AsyncEvent.NS_ATTR_CHANGED);
  c.namespaceChanged(3);
  assert.equal(aers[1].done, 0, 'masked until the log is read');
  const log = req(
    q,
    (cmd) => {
      cmd[0] = 0x02;
      cmd.writeUInt32LE(0x04 | (1023 << 16), 40);
    },
    4096,
  );
  c.admin(log);
  assert.deepEqual(
    [log.iov[0].readUInt32LE(0), log.iov[0].readUInt32LE(4), log.iov[0].readUInt32LE(8)],
    [1, 2, 3],
  );
  c.namespaceChanged(4);
  assert.equal(aers[1].done, 1, 'unmasked after the log was read');
  c.destroy();
  assert.equal(aers[2].done, 1, 'outstanding AERs end with the controller');
});

test('keep alive: expiry after KATO, refreshed by Keep Alive', () => {
  const { c, q } = makeCtrlr();
  const t0 = c.lastKeepAliveUs;
  assert.equal(c.keepAliveExpired(t0 + 9_000_000), false);
  assert.equal(c.keepAliveExpired(t0 + 10_500_000), true);
  const ka = req(q, (cmd) => (cmd[0] = 0x18));
  c.admin(ka);
  assert.equal(ka.done, 1);
  assert.ok(c.lastKeepAliveUs >= t0);
});

test('discovery controller: identify CNS 1 only, discovery log only', () => {
  const { c, q } = makeCtrlr(true);
  const id = req(
    q,
    (cmd) => {
      cmd[0] = 0x06;
      cmd[40] = 1;
    },
    4096,
  );
  c.admin(id);
  assert.equal(statusOf(id.rsp), 0);
  assert.equal(id.iov[0][111], 2, 'discovery controller type');
  const ns = req(q, (cmd) => (cmd[0] = 0x06), 4096);
  c.admin(ns);
  assert.equal(statusOf(ns.rsp), 0x02);
  const smart = req(
    q,
    (cmd) => {
      cmd[0] = 0x02;
      cmd.writeUInt32LE(0x02 | (127 << 16), 40);
    },
    512,
  );
  c.admin(smart);
  assert.equal(statusOf(smart.rsp), 0x109, 'invalid log page');
  const disc = req(
    q,
    (cmd) => {
      cmd[0] = 0x02;
      cmd.writeUInt32LE(0x70 | (255 << 16), 40);
    },
    1024,
  );
  c.admin(disc);
  assert.equal(statusOf(disc.rsp), 0);
  assert.equal(disc.iov[0].readUInt32LE(0), 9, 'genctr');
});

test('discovery log paging: an offset window returns the later entries', () => {
  const { c, q } = makeCtrlr(true);
  const page = req(
    q,
    (cmd) => {
      cmd[0] = 0x02;
      cmd.writeUInt32LE(0x70 | (255 << 16), 40);
      cmd.writeUInt32LE(2048, 48); // skip the header and the first entry
    },
    1024,
  );
  c.admin(page);
  assert.equal(statusOf(page.rsp), 0);
  assert.equal(page.iov[0].toString('latin1', 256, 282), 'nqn.2016-06.io.spdk:cnode2');
  const past = req(
    q,
    (cmd) => {
      cmd[0] = 0x02;
      cmd.writeUInt32LE(0x70 | (255 << 16), 40);
      cmd.writeUInt32LE(8192, 48);
    },
    1024,
  );
  c.admin(past);
  assert.equal(statusOf(past.rsp), 0x02, 'offset beyond the log');
});
