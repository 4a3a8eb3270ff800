// The admin structures of the wire layer: what the target builds decodes back
// to what it was built from, with the decoders the host library and the CLI
// use (one offset table each); what the host encodes (Connect, Property
// Get/Set, Identify, Get Log Page) decodes the way the target reads it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildDiscoveryLog,
  DISCOVERY_LOG_ENTRY_SIZE,
  DISCOVERY_LOG_HEADER_SIZE,
  DiscLogEntry,
  decodeDiscoveryEntry,
  decodeDiscoveryLogHeader,
  SubType,
  TcpSecType,
  TreqSecureChannel,
  TrType,
} from '../../../src/wire/discovery.ts';
import {
  CONNECT_CATTR_DISABLE_SQFLOW,
  ConnectData,
  connectNqnTerminated,
  connectResponseCntlid,
  FabricsSqe,
  PropertySize,
  propertyValue,
  readConnectCommand,
  readConnectData,
  readPropertyCommand,
  setConnectInvalidParameter,
  setConnectResponseCntlid,
  setPropertyValue,
  writeConnectCommand,
  writeConnectData,
  writePropertyGet,
  writePropertySet,
} from '../../../src/wire/fabrics.ts';
import { readCounter, readPaddedString, readU64, writePadded, writeU64 } from '../../../src/wire/fields.ts';
import {
  buildActiveNsList,
  buildIdentifyController,
  buildIdentifyNamespace,
  buildNsDescriptorList,
  Cns,
  CntrlType,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeNsDescriptorList,
  decodeNsidList,
  IDENTIFY_SIZE,
  IdCtrl,
  IdNs,
  ioInCapsuleDataSize,
  LbaFormat,
  lbaFormatIndex,
  NsIdType,
  namespaceSizes,
  writeIdentifyCommand,
} from '../../../src/wire/identify.ts';
import {
  AnaLog,
  AnaState,
  AsyncEventType,
  asyncEventDw0,
  buildAnaLog,
  buildChangedNsList,
  buildHealthLog,
  decodeAnaLog,
  decodeAsyncEvent,
  decodeErrorLogEntry,
  decodeGetLog,
  decodeHealthLog,
  ERROR_LOG_ENTRY_SIZE,
  ErrorLogEntry,
  HEALTH_LOG_SIZE,
  HealthLog,
  LogPage,
  NoticeInfo,
  writeErrorLogEntry,
  writeGetLogPage,
} from '../../../src/wire/log.ts';
import {
  AdminOpcode,
  ControllerRegister,
  CQE_SIZE,
  Cqe,
  decodeCap,
  decodeNumberOfQueues,
  FABRICS_OPCODE,
  FabricsCommandType,
  GenericStatus,
  numberOfQueuesValue,
  packedStatusToString,
  packStatus,
  SQE_SIZE,
  Sqe,
  StatusCodeType,
  setSqeSgl,
  statusName,
  statusSc,
  statusSct,
  writeRwCommand,
} from '../../../src/wire/nvme.ts';

test('structure sizes and the last field of each table fit', () => {
  assert.equal(ConnectData.SIZE, 1024);
  assert.equal(ConnectData.HOSTNQN + ConnectData.NQN_LEN, 768);
  assert.equal(FabricsSqe.CONNECT_KATO + 4, 52);
  assert.equal(IdCtrl.OFCS + 2, 1806);
  assert.equal(IdCtrl.SUBNQN + 256, 1024);
  assert.ok(IdNs.LBAF0 + 64 * LbaFormat.SIZE <= 384);
  assert.equal(ERROR_LOG_ENTRY_SIZE, 64);
  assert.equal(ErrorLogEntry.TRTYPE_SPEC_INFO + 2, 42);
  assert.equal(HealthLog.TEMP_SENSORS + 16, 216);
  assert.ok(HEALTH_LOG_SIZE >= 512);
  assert.equal(AnaLog.HDR_SIZE, 16);
  assert.equal(AnaLog.GRP_SIZE, 32);
  assert.equal(DiscLogEntry.TSAS + DiscLogEntry.TSAS_SIZE, DISCOVERY_LOG_ENTRY_SIZE);
  assert.equal(DISCOVERY_LOG_HEADER_SIZE, 1024);
});

test('field helpers: padded strings, 64-bit numbers, wide counters', () => {
  const b = Buffer.alloc(32, 0xff);
  writePadded(b, 0, 8, 'ab');
  assert.equal(b.toString('latin1', 0, 8), 'ab      ');
  assert.equal(readPaddedString(b, 0, 8), 'ab');
  b.fill(0, 8, 16);
  b.write('x\0y', 8, 'latin1');
  assert.equal(readPaddedString(b, 8, 8), 'x', 'stops at NUL');
  writeU64(b, 16, 2 ** 40 + 5);
  assert.equal(readU64(b, 16), 2 ** 40 + 5);
  assert.equal(b.readBigUInt64LE(16), 2n ** 40n + 5n);
  const wide = Buffer.alloc(16);
  wide.writeBigUInt64LE(1n, 8);
  assert.equal(readCounter(wide, 0, 16), (1n << 64n).toString());
  assert.equal(readCounter(wide, 0, 8), 0);
});

test('Connect: the host encoding is what the target decodes', () => {
  const sqe = Buffer.alloc(SQE_SIZE, 0xee);
  const cmd = { recfmt: 0, qid: 3, sqsize: 127, cattr: CONNECT_CATTR_DISABLE_SQFLOW, kato: 15000 };
  writeConnectCommand(sqe, cmd);
  assert.equal(sqe[Sqe.OPCODE], FABRICS_OPCODE);
  assert.equal(sqe[Sqe.FCTYPE], FabricsCommandType.CONNECT);
  assert.equal(sqe.subarray(40, 52).toString('hex'), '000003007f000400983a0000');
  assert.ok(sqe.subarray(52).every((x) => x === 0));
  assert.deepEqual(readConnectCommand(sqe), cmd);

  const data = Buffer.alloc(ConnectData.SIZE, 0xee);
  const fields = {
    hostid: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
    cntlid: 0xffff,
    subnqn: 'nqn.2016-06.io.spdk:cnode1',
    hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427',
  };
  writeConnectData(data, fields);
  assert.equal(data.readUInt16LE(16), 0xffff);
  assert.equal(data.toString('latin1', 256, 256 + fields.subnqn.length), fields.subnqn);
  assert.equal(data[256 + fields.subnqn.length], 0);
  assert.equal(data.toString('latin1', 512, 512 + fields.hostnqn.length), fields.hostnqn);
  assert.deepEqual(readConnectData(data), fields);
  // a 256-byte NQN is cut to 255 so a NUL always ends the field
  writeConnectData(data, { ...fields, subnqn: 'n'.repeat(300) });
  assert.equal(readConnectData(data).subnqn.length, 255);
  assert.equal(connectResponseCntlid(0xabcd0007), 7);

  // the target's completion fields: CNTLID in DW0 15:0; Invalid Parameters' IATTR byte 0, IPO bytes 2..3
  const cqe = Buffer.alloc(CQE_SIZE);
  setConnectResponseCntlid(cqe, 0x1234);
  assert.equal(connectResponseCntlid(cqe.readUInt32LE(Cqe.DW0)), 0x1234);
  cqe.fill(0);
  setConnectInvalidParameter(cqe, 1, ConnectData.HOSTNQN);
  assert.equal(cqe.toString('hex', 0, 4), '01000002');

  // the target refuses an NQN field with no NUL in its first 224 bytes
  data.fill(0x41, ConnectData.SUBNQN, ConnectData.SUBNQN + ConnectData.NQN_LEN);
  assert.equal(connectNqnTerminated(data, ConnectData.SUBNQN), false);
  data[ConnectData.SUBNQN + 223] = 0;
  assert.equal(connectNqnTerminated(data, ConnectData.SUBNQN), true);
  data[ConnectData.SUBNQN + 223] = 0x41;
  data[ConnectData.SUBNQN + 224] = 0;
  assert.equal(connectNqnTerminated(data, ConnectData.SUBNQN), false);
});

test('Property Get / Set round trip; a Property Get value joins DW0 and DW1', () => {
  const sqe = Buffer.alloc(SQE_SIZE, 0xee);
  writePropertyGet(sqe, ControllerRegister.CAP, 8);
  assert.deepEqual(readPropertyCommand(sqe), {
    fctype: FabricsCommandType.PROPERTY_GET,
    sizeCode: PropertySize.EIGHT_BYTES,
    offset: 0,
    value: 0n,
  });
  writePropertySet(sqe, ControllerRegister.CC, 0x460001, 4);
  assert.equal(sqe.subarray(40, 56).toString('hex'), '000000001400000001004600' + '00000000');
  assert.deepEqual(readPropertyCommand(sqe), {
    fctype: FabricsCommandType.PROPERTY_SET,
    sizeCode: PropertySize.FOUR_BYTES,
    offset: 0x14,
    value: 0x460001n,
  });
  writePropertySet(sqe, ControllerRegister.ASQ, 2 ** 40, 8);
  assert.equal(readPropertyCommand(sqe).value, 2n ** 40n);
  assert.equal(propertyValue(0x0000ffff, 0x01), 0x1_0000_ffffn);
  const cqe = Buffer.alloc(CQE_SIZE);
  setPropertyValue(cqe, 0xff0000ff, 0x20);
  assert.equal(propertyValue(cqe.readUInt32LE(Cqe.DW0), cqe.readUInt32LE(Cqe.DW1)), 0x20_ff0000ffn);
});

test('SQE helpers: transport or in-capsule SGL, read/write fields', () => {
  const sqe = Buffer.alloc(SQE_SIZE, 0xff);
  writeRwCommand(sqe, 0x02, 1, 2 ** 33 + 1, 8, 1 << 30);
  assert.equal(sqe[Sqe.OPCODE], 2);
  assert.equal(sqe.readUInt32LE(Sqe.NSID), 1);
  assert.equal(sqe.readBigUInt64LE(Sqe.SLBA_LO), 2n ** 33n + 1n);
  assert.equal(sqe.readUInt32LE(Sqe.CDW12), (1 << 30) | 7);
  setSqeSgl(sqe, 4096, false);
  assert.equal(sqe[Sqe.FLAGS], 0x40);
  assert.equal(sqe.subarray(24, 40).toString('hex'), `${'00'.repeat(8)}00100000${'00'.repeat(3)}5a`);
  setSqeSgl(sqe, 512, true);
  assert.equal(sqe[Sqe.SGL_TYPE], 0x01);
  assert.equal(sqe.readUInt32LE(Sqe.SGL_LENGTH), 512);
});

test('status: packed form, names, the one table', () => {
  const s = packStatus(StatusCodeType.COMMAND_SPECIFIC, 0x82);
  assert.equal(s, 0x182);
  assert.equal(statusSct(s), 1);
  assert.equal(statusSc(s), 0x82);
  assert.equal(statusName(1, 0x82), 'INVALID_PARAM');
  assert.equal(statusName(0, GenericStatus.LBA_OUT_OF_RANGE), 'LBA_OUT_OF_RANGE');
  assert.equal(statusName(7, 1), 'UNKNOWN');
  assert.equal(packedStatusToString(0x371), 'ABORTED_BY_HOST (sct 0x3, sc 0x71)');
  assert.deepEqual(decodeCap(0x0010_0000_0f01_007fn), { mqes: 127, to: 15, mpsmin: 0, css: 0, crwms: false });
  // SPDK's NVMe 2.0 CAP: CSS NVM (bit 37) and CRWMS (bit 59)
  assert.deepEqual(decodeCap(0x0800_0020_1e01_007fn), { mqes: 127, to: 30, mpsmin: 0, css: 1, crwms: true });
  assert.equal(numberOfQueuesValue(64, 64), 0x003f003f);
  assert.deepEqual(decodeNumberOfQueues(0x0001_0003), { sq: 4, cq: 2 });
});

test('Identify Controller: what the target builds, the CLI and host decode', () => {
  const d = Buffer.alloc(IDENTIFY_SIZE, 0xee);
  buildIdentifyController(d, {
    cntlid: 0x21,
    controllerType: CntrlType.IO,
    serial: 'SN42',
    model: 'nvmf-ts test',
    firmware: '26.01',
    subnqn: 'nqn.2016-06.io.spdk:cnode1',
    version: 0x00010400,
    maxIoSize: 131072,
    maxQueueDepth: 128,
    maxNamespaces: 32,
    inCapsuleDataSize: 4096,
    kasMs: 10000,
    oncs: 0x5d,
    volatileWriteCache: true,
    anaReporting: true,
  });
  const id = decodeIdentifyController(d);
  assert.equal(id.cntlid, 0x21);
  assert.equal(id.cntrltype, CntrlType.IO);
  assert.equal(id.sn, 'SN42');
  assert.equal(id.mn, 'nvmf-ts test');
  assert.equal(id.fr, '26.01');
  assert.equal(id.subnqn, 'nqn.2016-06.io.spdk:cnode1');
  assert.equal(id.ver, 0x00010400);
  assert.equal(id.mdts, 5);
  assert.equal(id.maxcmd, 128);
  assert.equal(id.nn, 32);
  assert.equal(id.kas, 100);
  assert.equal(id.oncs, 0x5d);
  assert.equal(id.vwc, 0x05);
  assert.equal(id.cmic & 0x8, 0x8);
  assert.equal(id.ieee, 0x5cd2e4);
  assert.equal(id.ioccsz, (64 + 4096) / 16);
  assert.equal(ioInCapsuleDataSize(d), 4096);
  assert.equal(Object.keys(id).length, 63);
  const sqe = Buffer.alloc(SQE_SIZE, 0xee);
  writeIdentifyCommand(sqe, Cns.CONTROLLER, 0);
  assert.equal(sqe[Sqe.OPCODE], AdminOpcode.IDENTIFY);
  assert.equal(sqe.readUInt32LE(Sqe.CDW10), Cns.CONTROLLER);
});

test('Identify Namespace, descriptor list and active namespace list round trip', () => {
  const d = Buffer.alloc(IDENTIFY_SIZE, 0xee);
  const nguid = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
  buildIdentifyNamespace(d, {
    numBlocks: 2 ** 36,
    blockSize: 4096,
    thinProvisioned: true,
    optimalIoBoundary: 64,
    nguid,
    eui64: null,
    anaGroupId: 2,
  });
  const ns = decodeIdentifyNamespace(d);
  assert.equal(ns.nsze, 2 ** 36);
  assert.deepEqual(namespaceSizes(d), { nsze: 2 ** 36, ncap: 2 ** 36, nuse: 2 ** 36 });
  assert.equal(ns.noiob, 64);
  assert.equal(ns.anagrpid, 2);
  assert.equal(ns.nguid, nguid.toString('hex'));
  assert.equal(ns.eui64, '0000000000000000');
  assert.deepEqual(ns.lbafs, [{ ms: 0, ds: 12, rp: 0 }]);
  assert.equal(lbaFormatIndex(ns.flbas, ns.nlbaf), 0);
  assert.equal(lbaFormatIndex(0x25, 20), 0x15, 'bits 6:5 extend the index past 16 formats');
  assert.equal(lbaFormatIndex(0x25, 3), 0x5, 'and are reserved below');

  const list = Buffer.alloc(IDENTIFY_SIZE, 0xee);
  const uuid = Buffer.from('1b4e28ba2fa111d2883f0016d3cca427', 'hex');
  buildNsDescriptorList(list, { eui64: null, nguid, uuid });
  assert.deepEqual(
    decodeNsDescriptorList(list).map((x) => [x.type, x.value.toString('hex')]),
    [
      [NsIdType.NGUID, nguid.toString('hex')],
      [NsIdType.UUID, uuid.toString('hex')],
      [NsIdType.CSI, '00'],
    ],
  );
  buildActiveNsList(list, [7, 1, 3], 1);
  assert.deepEqual(decodeNsidList(list), [3, 7]);
});

test('log pages: Get Log Page encoding, error log, health, changed namespaces, ANA, AER', () => {
  const sqe = Buffer.alloc(SQE_SIZE, 0xee);
  writeGetLogPage(sqe, LogPage.DISCOVERY, 0, 256 * 1024, 2 ** 32 + 1024);
  assert.equal(sqe[Sqe.OPCODE], AdminOpcode.GET_LOG_PAGE);
  assert.deepEqual(decodeGetLog(sqe), {
    lid: LogPage.DISCOVERY,
    rae: false,
    length: 256 * 1024,
    offset: 2 ** 32 + 1024,
  });

  const page = Buffer.alloc(2 * ERROR_LOG_ENTRY_SIZE, 0xee);
  writeErrorLogEntry(page, ERROR_LOG_ENTRY_SIZE, {
    errorCount: 2 ** 35,
    sqid: 1,
    cid: 0x77,
    status: packStatus(0, GenericStatus.LBA_OUT_OF_RANGE),
    lba: 2 ** 40,
    nsid: 1,
    paramLoc: 40,
  });
  assert.deepEqual(decodeErrorLogEntry(page, ERROR_LOG_ENTRY_SIZE), {
    error_count: 2 ** 35,
    sqid: 1,
    cmdid: 0x77,
    status_field: 0x80 << 1,
    parm_error_location: 40,
    lba: 2 ** 40,
    nsid: 1,
    vs: 0,
    trtype: TrType.TCP,
    cs: 0,
    trtype_spec_info: 0,
  });

  const health = Buffer.alloc(HEALTH_LOG_SIZE, 0xee);
  buildHealthLog(health, {
    dataUnitsRead: 5,
    dataUnitsWritten: 6,
    hostReads: 2 ** 50,
    hostWrites: 8,
    errors: 9,
  });
  const h = decodeHealthLog(health);
  assert.deepEqual(
    [
      h.data_units_read,
      h.data_units_written,
      h.host_read_commands,
      h.host_write_commands,
      h.num_err_log_entries,
    ],
    [5, 6, 2 ** 50, 8, 9],
  );
  assert.equal(h.temperature, 0);

  const changed = Buffer.alloc(4096, 0xee);
  buildChangedNsList(changed, [4, 9]);
  assert.deepEqual(decodeNsidList(changed), [4, 9]);

  const ana = buildAnaLog(
    3,
    [
      { grpid: 1, state: AnaState.optimized, nsids: [1, 2] },
      { grpid: 2, state: AnaState.inaccessible, nsids: [5] },
    ],
    false,
  );
  assert.deepEqual(decodeAnaLog(ana), {
    changeCount: 3,
    groups: [
      { grpid: 1, state: AnaState.optimized, changeCount: 3, nsids: [1, 2] },
      { grpid: 2, state: AnaState.inaccessible, changeCount: 3, nsids: [5] },
    ],
  });
  assert.deepEqual(
    decodeAnaLog(buildAnaLog(1, [{ grpid: 1, state: 1, nsids: [1] }], true)).groups[0].nsids,
    [],
  );

  const dw0 = asyncEventDw0(
    AsyncEventType.NOTICE,
    NoticeInfo.NAMESPACE_ATTRIBUTE_CHANGED,
    LogPage.CHANGED_NS_LIST,
  );
  assert.equal(dw0, 0x00040002);
  assert.deepEqual(decodeAsyncEvent(dw0), { type: 2, info: 0, logPage: 4 });
});

test('discovery log: what the target builds, the host decodes', () => {
  const log = buildDiscoveryLog(2 ** 33 + 5, [
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
      secureChannel: TreqSecureChannel.REQUIRED,
      sectype: TcpSecType.TLS_1_3,
    },
    {
      trtype: 'TCP',
      adrfam: 'IPv6',
      subtype: SubType.DISCOVERY_REFERRAL,
      portid: 2,
      cntlid: 0xffff,
      asqsz: 32,
      eflags: 0,
      trsvcid: '8009',
      subnqn: 'nqn.2014-08.org.nvmexpress.discovery',
      traddr: '::1',
    },
  ]);
  assert.deepEqual(decodeDiscoveryLogHeader(log), { genctr: 2n ** 33n + 5n, numrec: 2n, recfmt: 0 });
  // a TLS port: secure channel required (TREQ bits 1:0 = 1, with SQ flow control disable), TLS 1.3
  const tlsEntry = decodeDiscoveryEntry(log, DISCOVERY_LOG_HEADER_SIZE);
  assert.deepEqual([tlsEntry.treq, tlsEntry.sectype], [0x5, TcpSecType.TLS_1_3]);
  assert.deepEqual(decodeDiscoveryEntry(log, DISCOVERY_LOG_HEADER_SIZE + DISCOVERY_LOG_ENTRY_SIZE), {
    trtype: TrType.TCP,
    adrfam: 2,
    subtype: SubType.DISCOVERY_REFERRAL,
    treq: 0x4,
    portid: 2,
    cntlid: 0xffff,
    asqsz: 32,
    eflags: 0,
    trsvcid: '8009',
    subnqn: 'nqn.2014-08.org.nvmexpress.discovery',
    traddr: '::1',
    sectype: 0,
  });
});
