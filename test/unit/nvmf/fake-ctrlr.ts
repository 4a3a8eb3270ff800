// Fixtures for controller tests without sockets: a fake admin qpair, a
// subsystem view, a CtrlrHost with neutral answers (overridable), and fake
// requests that count their completions.

import { PgSubsystem } from '../../../src/nvmf/poll-group-subsystem.ts';
import { SubsystemState, SubsystemType } from '../../../src/nvmf/subsystem.ts';
import { type CtrlrHost, NvmfCtrlr } from '../../../src/nvmf/target-controller.ts';
import { TCP_DEFAULT_OPTIONS } from '../../../src/nvmf/tcp/index.ts';
import type { NvmfQpair, NvmfRequest } from '../../../src/nvmf/transport.ts';

export const ADDR = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '4420' };
/** CC with EN = 1, IOSQES 6, IOCQES 4: what a host writes to enable */
export const CC_ENABLE = 1 | (6 << 16) | (4 << 20);

export function fakeQpair(): NvmfQpair {
  return {
    qid: 0,
    sqSize: 32,
    context: null,
    sqFlowControlDisabled: false,
    trtype: 'TCP',
    listenAddr: ADDR,
    peerAddr: ADDR,
    disconnect() {},
  };
}

export interface FakeCtrlrOptions {
  discovery?: boolean;
  anaReporting?: boolean;
  cntlid?: number;
  /** every byte of the 16-byte host ID */
  hostidFill?: number;
  kato?: number;
  /** replaces the neutral CtrlrHost answers */
  host?: Partial<Omit<CtrlrHost, 'sub'>>;
}

/** A controller on a fresh subsystem view (NVM or discovery), not enabled. */
export function makeFakeCtrlr(o: FakeCtrlrOptions = {}): { c: NvmfCtrlr; q: NvmfQpair } {
  const discovery = o.discovery ?? false;
  const sub = new PgSubsystem({
    nqn: discovery ? 'nqn.2014-08.org.nvmexpress.discovery' : 'nqn.2016-06.io.spdk:cnode1',
    subtype: discovery ? SubsystemType.DISCOVERY : SubsystemType.NVME,
    state: SubsystemState.ACTIVE,
    serial: 'SN1',
    model: 'MN1',
    allowAnyHost: true,
    hosts: [],
    authHosts: [],
    namespaces: [],
    listeners: [ADDR],
    listenerAnaStates: ['optimized'],
    anaChangeCount: 0,
    maxNamespaces: 32,
    anaReporting: o.anaReporting ?? false,
  });
  const host: CtrlrHost = {
    sub,
    discoveryEntries: () => [],
    discoveryGenctr: () => 1,
    transportOptions: () => ({ ...TCP_DEFAULT_OPTIONS }),
    onCtrlrEnabled: () => {},
    ...o.host,
  };
  const q = fakeQpair();
  const c = new NvmfCtrlr({
    cntlid: o.cntlid ?? 1,
    hostnqn: 'nqn.h',
    hostid: Buffer.alloc(16, o.hostidFill ?? 0),
    host,
    adminQpair: q,
    kato: o.kato ?? 0,
  });
  return { c, q };
}

/** Mark a controller enabled (CC.EN, CSTS.RDY) the way a host's first Property Set would. */
export function enableDirectly(c: NvmfCtrlr): void {
  c.cc = CC_ENABLE;
  c.csts = 1;
}

export interface FakeReq extends NvmfRequest {
  done: number;
}

let nextCid = 1;

/** A request with PSDT = SGL (as every NVMe-oF host sends) and a fresh CID; `fill` writes the rest. */
export function fakeReq(q: NvmfQpair, fill: (cmd: Buffer) => void, length = 0): FakeReq {
  const cmd = Buffer.alloc(64);
  cmd[1] = 0x40;
  cmd.writeUInt16LE(nextCid++ & 0xffff, 2);
  fill(cmd);
  const r: FakeReq = {
    qpair: q,
    cmd,
    rsp: Buffer.alloc(16),
    xferDir: 0,
    length,
    iov: length > 0 ? [Buffer.alloc(length)] : [],
    done: 0,
    traceStart: 0,
    complete() {
      r.done++;
    },
  };
  return r;
}
