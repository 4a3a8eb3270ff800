// The discovery log's entries (discovery-log.ts): which listeners a host sees,
// the discovery subsystem's own entry, discovery_filter, referrals last.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { discoveryLogEntries, filterMatches, referralEntry } from '../../../src/nvmf/discovery-log.ts';
import { PgSubsystem } from '../../../src/nvmf/poll-group-subsystem.ts';
import { SubsystemState, SubsystemType, type SubsystemView } from '../../../src/nvmf/subsystem.ts';
import {
  DISCOVERY_NQN,
  EFLAGS_DUPRETINFO,
  EFLAGS_EPCSD,
  SubType,
  TcpSecType,
  TreqSecureChannel,
} from '../../../src/wire/discovery.ts';

const tcp = (traddr: string, trsvcid: string) => ({ trtype: 'TCP', adrfam: 'IPv4', traddr, trsvcid });
const A = tcp('10.0.0.1', '4420');
const B = tcp('10.0.0.2', '4420');
const C = tcp('10.0.0.1', '4421');

function sub(o: Partial<SubsystemView> & { nqn: string }): PgSubsystem {
  return new PgSubsystem({
    subtype: SubsystemType.NVME,
    state: SubsystemState.ACTIVE,
    serial: '',
    model: '',
    allowAnyHost: true,
    hosts: [],
    authHosts: [],
    namespaces: [],
    listeners: [],
    listenerAnaStates: [],
    anaChangeCount: 0,
    maxNamespaces: 32,
    anaReporting: false,
    ...o,
  });
}

const subsystems = [
  sub({ nqn: DISCOVERY_NQN, subtype: SubsystemType.DISCOVERY, listeners: [A, C] }),
  sub({ nqn: 'nqn.2016-06.io.spdk:open', listeners: [A, B, C] }),
  sub({ nqn: 'nqn.2016-06.io.spdk:closed', allowAnyHost: false, hosts: ['nqn.h1'], listeners: [A] }),
  sub({ nqn: 'nqn.2016-06.io.spdk:off', state: SubsystemState.INACTIVE, listeners: [A] }),
];

const referral = referralEntry({
  address: tcp('10.0.0.9', '8009'),
  subnqn: DISCOVERY_NQN,
  secureChannel: false,
});

function entries(hostnqn: string, filter = 'match_any') {
  return discoveryLogEntries({ subsystems, hostnqn, via: A, asqsz: 32, filter, referrals: [referral] });
}

test('a host sees its own discovery entry, the subsystems it may reach, then the referrals', () => {
  const e = entries('nqn.h2');
  assert.deepEqual(
    e.map((x) => [x.subnqn, x.traddr, x.trsvcid, x.subtype]),
    [
      [DISCOVERY_NQN, '10.0.0.1', '4420', SubType.DISCOVERY_CURRENT],
      ['nqn.2016-06.io.spdk:open', '10.0.0.1', '4420', SubType.NVME],
      ['nqn.2016-06.io.spdk:open', '10.0.0.2', '4420', SubType.NVME],
      ['nqn.2016-06.io.spdk:open', '10.0.0.1', '4421', SubType.NVME],
      [DISCOVERY_NQN, '10.0.0.9', '8009', SubType.DISCOVERY_REFERRAL],
    ],
  );
  assert.equal(e[0].eflags, EFLAGS_DUPRETINFO | EFLAGS_EPCSD);
  assert.deepEqual(
    e.slice(1, 4).map((x) => [x.portid, x.asqsz, x.cntlid]),
    [
      [0, 32, 0xffff],
      [1, 32, 0xffff],
      [2, 32, 0xffff],
    ],
  );
  // a listed host also sees the closed subsystem
  assert.ok(entries('nqn.h1').some((x) => x.subnqn === 'nqn.2016-06.io.spdk:closed'));
});

test('discovery_filter keeps the listeners matching the one the host came through', () => {
  const nvm = (f: string) =>
    entries('nqn.h2', f)
      .filter((x) => x.subtype === SubType.NVME)
      .map((x) => `${x.traddr}:${x.trsvcid}`);
  assert.deepEqual(nvm('address'), ['10.0.0.1:4420', '10.0.0.1:4421']);
  assert.deepEqual(nvm('svcid'), ['10.0.0.1:4420', '10.0.0.2:4420']);
  assert.deepEqual(nvm('address,svcid'), ['10.0.0.1:4420']);
  assert.equal(filterMatches('transport', { ...B, trtype: 'RDMA' }, A), false);
  assert.equal(filterMatches('', B, A), true);
});

test('a referral to an NVM subsystem says so, and carries its secure channel requirement', () => {
  const r = referralEntry({ address: tcp('10.0.0.8', '4420'), subnqn: 'nqn.x', secureChannel: true });
  // as SPDK: TREQ says required / not required; TSAS stays zero (the referral's port decides)
  assert.deepEqual(
    [r.subtype, r.secureChannel, r.sectype ?? 0, r.cntlid],
    [SubType.NVME, TreqSecureChannel.REQUIRED, 0, 0xffff],
  );
  assert.deepEqual(
    [referral.subtype, referral.secureChannel, referral.sectype ?? 0],
    [SubType.DISCOVERY_REFERRAL, TreqSecureChannel.NOT_REQUIRED, 0],
  );
});

test('a secure-channel listener says "required" and TLS 1.3, the others "not required" (as SPDK)', () => {
  const tls = sub({
    nqn: 'nqn.2016-06.io.spdk:tls',
    listeners: [A, C],
    listenerAnaStates: ['optimized', 'optimized'],
    listenerSecureChannels: [false, true],
  });
  const e = discoveryLogEntries({
    subsystems: [subsystems[0], tls],
    hostnqn: 'nqn.h1',
    via: A,
    asqsz: 32,
    filter: 'match_any',
    referrals: [],
  });
  assert.deepEqual(
    e.map((x) => [x.subnqn, x.trsvcid, x.secureChannel, x.sectype]),
    [
      [DISCOVERY_NQN, '4420', TreqSecureChannel.NOT_REQUIRED, TcpSecType.NONE],
      ['nqn.2016-06.io.spdk:tls', '4420', TreqSecureChannel.NOT_REQUIRED, TcpSecType.NONE],
      ['nqn.2016-06.io.spdk:tls', '4421', TreqSecureChannel.REQUIRED, TcpSecType.TLS_1_3],
    ],
  );
});
