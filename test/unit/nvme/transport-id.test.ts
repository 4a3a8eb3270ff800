import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DISCOVERY_NQN, formatTransportId, parseTransportId } from '../../../src/nvme/index.ts';

test('parses the SPDK transport ID string form', () => {
  const trid = parseTransportId(
    'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4421 subnqn:nqn.2016-06.io.spdk:cnode1 hdgst:true',
  );
  assert.deepEqual(trid, {
    traddr: '127.0.0.1',
    trsvcid: '4421',
    subnqn: 'nqn.2016-06.io.spdk:cnode1',
    hdgst: true,
  });
});

test('defaults: port 4420 and the discovery NQN; key=value accepted', () => {
  const trid = parseTransportId('traddr=10.0.0.1');
  assert.equal(trid.trsvcid, '4420');
  assert.equal(trid.subnqn, DISCOVERY_NQN);
});

test('round-trips through formatTransportId', () => {
  const trid = parseTransportId(
    'trtype:tcp traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.x hostnqn:nqn.h ddgst:1 hostid:11111111-2222-3333-4444-555555555555',
  );
  assert.deepEqual(parseTransportId(formatTransportId(trid)), trid);
});

test('rejects typos and unsupported values with the field named', () => {
  assert.throws(() => parseTransportId('traddr:1.2.3.4 trsvcd:4420'), /unknown key "trsvcd"/);
  assert.throws(() => parseTransportId('trtype:fc traddr:1.2.3.4'), /trtype fc is not supported/);
  assert.throws(() => parseTransportId('traddr:1.2.3.4 trsvcid:70000'), /not a TCP port/);
  assert.throws(() => parseTransportId('trsvcid:4420'), /traddr is required/);
  assert.throws(() => parseTransportId('traddr:1.2.3.4 hdgst:maybe'), /hdgst must be true or false/);
  assert.throws(() => parseTransportId('traddr'), /not key:value/);
});

test('trtype rdma: parsed, kept in the string form (tcp stays the default)', () => {
  const trid = parseTransportId('trtype:RDMA traddr:10.0.0.1 trsvcid:4420 subnqn:nqn.x');
  assert.equal(trid.trtype, 'rdma');
  assert.equal(formatTransportId(trid), 'trtype:rdma adrfam:ipv4 traddr:10.0.0.1 trsvcid:4420 subnqn:nqn.x');
  assert.deepEqual(parseTransportId(formatTransportId(trid)), trid);
  assert.equal(parseTransportId('traddr:10.0.0.1').trtype, undefined, 'no trtype: tcp');
});
