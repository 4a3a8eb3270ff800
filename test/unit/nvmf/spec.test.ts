// Identify / log / discovery builders and NQN rules, checked at fixed offsets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nqnError } from '../../../src/nvmf/subsystem.ts';
import { buildDiscoveryLog, DISCOVERY_NQN, SubType } from '../../../src/wire/discovery.ts';
import {
  buildActiveNsList,
  buildIdentifyController,
  buildIdentifyNamespace,
  buildNsDescriptorList,
  CntrlType,
  mdtsFor,
  uuidToBytes,
} from '../../../src/wire/identify.ts';
import { AnaState, buildAnaLog, buildChangedNsList, decodeGetLog } from '../../../src/wire/log.ts';

test('identify controller: strings, MDTS, IOCCSZ, SGLS, VWC, NN, SUBNQN', () => {
  const b = Buffer.alloc(4096, 0xee);
  buildIdentifyController(b, {
    cntlid: 7,
    controllerType: CntrlType.IO,
    serial: 'SPDK00000000000001',
    model: 'SPDK bdev Controller',
    firmware: '26.05',
    subnqn: 'nqn.2016-06.io.spdk:cnode1',
    version: 0x10300,
    maxIoSize: 131072,
    maxQueueDepth: 128,
    maxNamespaces: 32,
    inCapsuleDataSize: 8192,
    kasMs: 10000,
    oncs: 0x0d,
    volatileWriteCache: true,
    anaReporting: false,
  });
  assert.equal(b.readUInt16LE(0), 0x8086);
  assert.equal(b.toString('latin1', 4, 24), 'SPDK00000000000001  ');
  assert.equal(b.toString('latin1', 24, 64), 'SPDK bdev Controller'.padEnd(40));
  assert.equal(b.toString('latin1', 64, 72), '26.05   ');
  assert.equal(b[76], 0x3, 'CMIC multi-port, multi-controller');
  assert.equal(b[77], 5, 'MDTS 2^5 pages');
  assert.equal(b.readUInt16LE(78), 7);
  assert.equal(b.readUInt32LE(80), 0x10300);
  assert.equal(b[111], 1, 'I/O controller');
  assert.equal(b.readUInt16LE(320), 100, 'KAS in 100 ms units');
  assert.equal(b[512], 0x66);
  assert.equal(b[513], 0x44);
  assert.equal(b.readUInt16LE(514), 128);
  assert.equal(b.readUInt32LE(516), 32);
  assert.equal(b.readUInt16LE(520), 0x0d);
  assert.equal(b[525] & 1, 1, 'VWC present');
  assert.equal(b.readUInt32LE(536) & 0x3, 1, 'SGLs supported');
  assert.equal(b.toString('latin1', 768, 768 + 26), 'nqn.2016-06.io.spdk:cnode1');
  assert.equal(b[768 + 26], 0);
  assert.equal(b.readUInt32LE(1792), (8192 + 64) / 16);
  assert.equal(b.readUInt32LE(1796), 1);
  assert.equal(b[1803], 1, 'MSDBD');
  assert.equal(b[4095], 0, 'rest zeroed');
});

test('MDTS from max I/O size', () => {
  assert.equal(mdtsFor(131072), 5);
  assert.equal(mdtsFor(4096), 0);
  assert.equal(mdtsFor(1 << 20), 8);
});

test('identify namespace: sizes, LBA format, NGUID, thin provisioning', () => {
  const b = Buffer.alloc(4096);
  const nguid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  buildIdentifyNamespace(b, {
    numBlocks: 2 ** 33 + 5,
    blockSize: 4096,
    thinProvisioned: true,
    optimalIoBoundary: 0,
    nguid,
    eui64: null,
    anaGroupId: 0,
  });
  assert.equal(b.readUInt32LE(0), 5);
  assert.equal(b.readUInt32LE(4), 2);
  assert.equal(b[24] & 1, 1);
  assert.equal((b.readUInt32LE(128) >> 16) & 0xff, 12);
  assert.ok(b.subarray(104, 120).equals(nguid));
  assert.equal(b[33], 0x09, 'deallocated reads zeroes, write zeroes may deallocate');
});

test('active namespace list starts after the given NSID', () => {
  const b = Buffer.alloc(4096, 1);
  buildActiveNsList(b, [5, 1, 3], 1);
  assert.deepEqual([b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8)], [3, 5, 0]);
});

test('namespace descriptor list: NGUID, UUID, CSI', () => {
  const b = Buffer.alloc(4096);
  const uuid = uuidToBytes('c0a29d07-c8c5-4f22-a418-86807a8a456a');
  assert.ok(uuid);
  buildNsDescriptorList(b, { eui64: null, nguid: Buffer.alloc(16, 0xaa), uuid });
  assert.deepEqual([b[0], b[1]], [2, 16]);
  assert.deepEqual([b[20], b[21]], [3, 16]);
  assert.ok(b.subarray(24, 40).equals(uuid));
  assert.deepEqual([b[40], b[41], b[44]], [4, 1, 0]);
});

test('discovery log: header and 1024-byte entries', () => {
  const log = buildDiscoveryLog(2 ** 32 + 3, [
    {
      trtype: 'TCP',
      adrfam: 'IPv4',
      subtype: SubType.NVME,
      portid: 1,
      cntlid: 0xffff,
      asqsz: 128,
      eflags: 0,
      trsvcid: '4420',
      subnqn: 'nqn.2016-06.io.spdk:cnode1',
      traddr: '127.0.0.1',
    },
  ]);
  assert.equal(log.length, 2048);
  assert.equal(log.readUInt32LE(0), 3);
  assert.equal(log.readUInt32LE(4), 1);
  assert.equal(log.readUInt32LE(8), 1);
  assert.equal(log[1024], 3);
  assert.equal(log[1025], 1);
  assert.equal(log[1026], 2);
  assert.equal(log.readUInt16LE(1024 + 6), 0xffff);
  assert.equal(log.readUInt16LE(1024 + 8), 128);
  assert.equal(log.toString('latin1', 1024 + 32, 1024 + 64).trimEnd(), '4420');
  assert.equal(log.toString('latin1', 1024 + 256, 1024 + 282), 'nqn.2016-06.io.spdk:cnode1');
  assert.equal(log.toString('latin1', 1024 + 512, 1024 + 768).trimEnd(), '127.0.0.1');
});

test('Get Log Page decoding: NUMD from two halves, 64-bit offset, RAE', () => {
  const cmd = Buffer.alloc(64);
  cmd.writeUInt32LE(0x70 | (1 << 15) | (0x3ff << 16), 40);
  cmd.writeUInt32LE(1, 44);
  cmd.writeUInt32LE(1024, 48);
  cmd.writeUInt32LE(1, 52);
  const p = decodeGetLog(cmd);
  assert.equal(p.lid, 0x70);
  assert.equal(p.rae, true);
  assert.equal(p.length, (0x10000 + 0x3ff + 1) * 4);
  assert.equal(p.offset, 2 ** 32 + 1024);
});

test('changed namespace list overflows to 0xFFFFFFFF', () => {
  const b = Buffer.alloc(4096);
  buildChangedNsList(
    b,
    Array.from({ length: 1025 }, (_, i) => i + 1),
  );
  assert.equal(b.readUInt32LE(0), 0xffffffff);
  buildChangedNsList(b, [4, 9]);
  assert.deepEqual([b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8)], [4, 9, 0]);
});

test('NQN validation', () => {
  assert.equal(nqnError('nqn.2016-06.io.spdk:cnode1'), null);
  assert.equal(nqnError(DISCOVERY_NQN), null);
  assert.equal(nqnError('nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555'), null);
  assert.match(nqnError('nqn.2014-08.org.nvmexpress:uuid:xyz') ?? '', /UUID/);
  assert.match(nqnError('iqn.2016-06.io.spdk:x') ?? '', /nqn\./);
  // SPDK's rules: a ':name' part is required, labels start with a letter, at most 63 long
  assert.match(nqnError('nqn.2016-06.io.spdk') ?? '', /must contain a name after a ':'/);
  assert.match(nqnError('nqn.2016-06.io.spdk:') ?? '', /must contain a name after a ':'/);
  assert.match(nqnError('nqn.2016-06.-bad-.io:x') ?? '', /domain/);
  assert.match(nqnError('nqn.2016-06.1io.spdk:x') ?? '', /labels start with a letter/);
  assert.match(nqnError(`nqn.2016-06.${'a'.repeat(64)}.io:x`) ?? '', /too long/);
  assert.match(nqnError('nqn.20x6-06.io.spdk:x') ?? '', /date code/);
  assert.match(nqnError('nqn.2016') ?? '', /shorter/);
  assert.match(nqnError(`nqn.2016-06.io.spdk:${'x'.repeat(300)}`) ?? '', /longer/);
  assert.match(nqnError('') ?? '', /empty/);
});

test('ANA log: header, group descriptors, NSIDs unless RGO', () => {
  const log = buildAnaLog(
    5,
    [
      { grpid: 1, state: AnaState.optimized, nsids: [1] },
      { grpid: 2, state: AnaState.inaccessible, nsids: [2, 3] },
    ],
    false,
  );
  assert.equal(log.length, 16 + 32 + 4 + 32 + 8);
  assert.equal(log.readUInt32LE(0), 5);
  assert.equal(log.readUInt16LE(8), 2);
  assert.equal(log.readUInt32LE(16), 1);
  assert.equal(log.readUInt32LE(20), 1);
  assert.equal(log[32], 1);
  assert.equal(log.readUInt32LE(48), 1);
  assert.equal(log.readUInt32LE(52), 2);
  assert.equal(log[52 + 16], 3);
  assert.deepEqual([log.readUInt32LE(84), log.readUInt32LE(88)], [2, 3]);
  assert.equal(buildAnaLog(5, [{ grpid: 1, state: 1, nsids: [1, 2] }], true).length, 48);
});
