// The decoders the `nvmf` CLI prints with (src/wire) on hand-built
// structures: every field read at its offset in the NVMe base specification
// (a target that leaves a field zero cannot catch a misplaced offset), 128-bit
// counters beyond 2^53, and the CLI's discovery value strings.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeDiscoveryEntry,
  eflagsString,
  treqString,
  versionString,
} from '../../src/apps/cli/decode.ts';
import { decodeIdentifyController, decodeIdentifyNamespace } from '../../src/wire/identify.ts';
import { decodeErrorLogEntry, decodeHealthLog } from '../../src/wire/log.ts';

function u128(buf: Buffer, off: number, v: bigint): void {
  buf.writeBigUInt64LE(v & 0xffff_ffff_ffff_ffffn, off);
  buf.writeBigUInt64LE(v >> 64n, off + 8);
}

test('Identify Controller fields at their spec offsets', () => {
  const d = Buffer.alloc(4096);
  d.writeUInt16LE(0x1b36, 0);
  d.writeUInt16LE(0x1af4, 2);
  d.write('SN123               ', 4, 'latin1');
  d.write('Model X', 24, 'latin1');
  d.write('1.0     ', 64, 'latin1');
  d[72] = 6;
  d[73] = 0xe4;
  d[74] = 0xd2;
  d[75] = 0x5c;
  d[76] = 0x3;
  d[77] = 5;
  d.writeUInt16LE(0x21, 78);
  d.writeUInt32LE(0x10400, 80);
  d.writeUInt32LE(0x100, 92);
  d[111] = 1;
  d.writeUInt16LE(0x1f, 256);
  d[262] = 127;
  d.writeUInt16LE(343, 266);
  u128(d, 280, 1n << 64n);
  d.writeUInt16LE(100, 320);
  d[512] = 0x66;
  d[513] = 0x44;
  d.writeUInt16LE(128, 514);
  d.writeUInt32LE(32, 516);
  d.writeUInt16LE(0x5f, 520);
  d[525] = 0x7;
  d.writeUInt32LE(0x100005, 536);
  d.write('nqn.2016-06.io.spdk:x', 768, 'latin1');
  d.writeUInt32LE(260, 1792);
  d.writeUInt32LE(1, 1796);
  d[1803] = 1;
  const id = decodeIdentifyController(d);
  assert.deepEqual(
    [id.vid, id.ssvid, id.sn, id.mn, id.fr, id.rab, id.ieee, id.cmic, id.mdts, id.cntlid, id.ver],
    [0x1b36, 0x1af4, 'SN123', 'Model X', '1.0', 6, 0x5cd2e4, 3, 5, 0x21, 0x10400],
  );
  assert.deepEqual(
    [id.oaes, id.cntrltype, id.oacs, id.elpe, id.wctemp, id.tnvmcap, id.kas],
    [0x100, 1, 0x1f, 127, 343, '18446744073709551616', 100],
  );
  assert.deepEqual(
    [id.sqes, id.cqes, id.maxcmd, id.nn, id.oncs, id.vwc, id.sgls, id.subnqn, id.ioccsz, id.iorcsz, id.msdbd],
    [0x66, 0x44, 128, 32, 0x5f, 7, 0x100005, 'nqn.2016-06.io.spdk:x', 260, 1, 1],
  );
  assert.equal(versionString(0x10400), '1.4.0');
});

test('Identify Namespace fields, the LBA formats and 64-bit sizes', () => {
  const d = Buffer.alloc(4096);
  d.writeBigUInt64LE((1n << 33n) + 5n, 0);
  d.writeBigUInt64LE(1000n, 8);
  d.writeBigUInt64LE(999n, 16);
  d[24] = 0x1;
  d[25] = 1; // two formats
  d[26] = 1; // format 1 in use
  d[30] = 1;
  d[33] = 0x9;
  d.writeUInt16LE(64, 46); // NOIOB
  d.writeUInt16LE(7, 64); // NPWG
  d.writeUInt32LE(3, 92);
  Buffer.from('00112233445566778899aabbccddeeff', 'hex').copy(d, 104);
  Buffer.from('0102030405060708', 'hex').copy(d, 120);
  d.writeUInt32LE(9 << 16, 128);
  d.writeUInt16LE(8, 132);
  d[134] = 12;
  d[135] = 2;
  const ns = decodeIdentifyNamespace(d);
  assert.equal(ns.nsze, 2 ** 33 + 5);
  assert.deepEqual(
    [ns.ncap, ns.nuse, ns.nsfeat, ns.nlbaf, ns.flbas, ns.nmic, ns.dlfeat],
    [1000, 999, 1, 1, 1, 1, 9],
  );
  assert.deepEqual([ns.noiob, ns.npwg, ns.anagrpid], [64, 7, 3]);
  assert.equal(ns.nguid, '00112233445566778899aabbccddeeff');
  assert.equal(ns.eui64, '0102030405060708');
  assert.deepEqual(ns.lbafs, [
    { ms: 0, ds: 9, rp: 0 },
    { ms: 8, ds: 12, rp: 2 },
  ]);
});

test('SMART log: temperature, percentages and 128-bit counters', () => {
  const d = Buffer.alloc(512);
  d[0] = 0x2;
  d.writeUInt16LE(310, 1);
  d[3] = 100;
  d[4] = 10;
  d[5] = 3;
  u128(d, 32, 1000n);
  u128(d, 48, 2000n);
  u128(d, 64, 30n);
  u128(d, 80, 40n);
  u128(d, 128, 1n << 60n);
  u128(d, 176, 7n);
  d.writeUInt32LE(11, 192);
  d.writeUInt16LE(300, 200);
  const s = decodeHealthLog(d);
  assert.deepEqual(
    [s.critical_warning, s.temperature, s.available_spare, s.available_spare_threshold, s.percentage_used],
    [2, 310, 100, 10, 3],
  );
  assert.deepEqual(
    [s.data_units_read, s.data_units_written, s.host_read_commands, s.host_write_commands],
    [1000, 2000, 30, 40],
  );
  assert.equal(s.power_on_hours, '1152921504606846976');
  assert.equal(s.num_err_log_entries, 7);
  assert.equal(s.warning_temp_time, 11);
  assert.deepEqual(s.temperature_sensors, [300, 0, 0, 0, 0, 0, 0, 0]);
});

test('error log entry fields', () => {
  const d = Buffer.alloc(128);
  const off = 64;
  d.writeBigUInt64LE(5n, off);
  d.writeUInt16LE(1, off + 8);
  d.writeUInt16LE(0x42, off + 10);
  d.writeUInt16LE(0x4004, off + 12);
  d.writeUInt16LE(0xffff, off + 14);
  d.writeBigUInt64LE(123456789n, off + 16);
  d.writeUInt32LE(1, off + 24);
  d[off + 29] = 3;
  const e = decodeErrorLogEntry(d, off);
  assert.deepEqual(
    [e.error_count, e.sqid, e.cmdid, e.status_field, e.parm_error_location, e.lba, e.nsid, e.trtype],
    [5, 1, 0x42, 0x4004, 0xffff, 123456789, 1, 3],
  );
});

test('discovery entries in nvme-cli words', () => {
  assert.deepEqual(
    describeDiscoveryEntry({
      trtype: 3,
      adrfam: 2,
      subtype: 1,
      treq: 0x5,
      portid: 7,
      cntlid: 0xffff,
      asqsz: 32,
      eflags: 0x3,
      trsvcid: '8009',
      subnqn: 'nqn.2014-08.org.nvmexpress.discovery',
      traddr: '::1',
      sectype: 2,
    }),
    {
      trtype: 'tcp',
      adrfam: 'ipv6',
      subtype: 'discovery subsystem referral',
      treq: 'required, sq flow control disable supported',
      portid: 7,
      trsvcid: '8009',
      subnqn: 'nqn.2014-08.org.nvmexpress.discovery',
      traddr: '::1',
      eflags: 'explicit discovery connections, duplicate discovery information',
      sectype: 'tls13',
    },
  );
  assert.equal(treqString(0x2), 'not required');
  assert.equal(eflagsString(0), 'none');
  assert.equal(describeDiscoveryEntry({ trtype: 99 } as never).trtype, 'unrecognized (99)');
});
