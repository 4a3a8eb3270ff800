// The tracepoints (src/util/trace.ts) seen by a subscriber: the target runs in
// process on the thread test harness with the real TCP transport and a malloc
// bdev, the host library connects over 127.0.0.1 and does one write and one
// read; every channel's events are checked against what happened. The RPC
// channels are checked on a method table of their own.
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { after, before, test } from 'node:test';
import { RpcError, RpcRegistry, RpcState } from '../../../src/jsonrpc/index.ts';
import { createMallocBdev } from '../../../src/modules/bdev/malloc/malloc.ts';
import { NvmeController } from '../../../src/nvme/index.ts';
import { type NvmfTarget, setTarget } from '../../../src/nvmf/target.ts';
import { createTcpPollGroup, TCP_DEFAULT_OPTIONS, TcpListener } from '../../../src/nvmf/tcp/index.ts';
import type { TransportAddress } from '../../../src/nvmf/transport.ts';
import {
  type CommandCompleteEvent,
  type CommandStartEvent,
  type ControllerEvent,
  type QpairEvent,
  type RpcCallCompleteEvent,
  traceChannels,
} from '../../../src/util/trace.ts';
import { FABRICS_OPCODE, FabricsCommandType, NvmOpcode } from '../../../src/wire/nvme.ts';
import { freePort } from '../../lib/child-target.ts';
import { startInProcessTarget } from '../../lib/in-process-target.ts';
import { pattern } from '../../lib/pattern.ts';
import { settle, until } from '../bdev/harness.ts';

const NQN = 'nqn.2016-06.io.spdk:cnode1';
const BS = 512;

const seen = new Map<string, unknown[]>();
function events<T>(ch: { name: string | symbol }): T[] {
  return (seen.get(String(ch.name)) ?? []) as T[];
}
const record = (message: unknown, name: string | symbol) => {
  const list = seen.get(String(name)) ?? [];
  list.push(message);
  seen.set(String(name), list);
};

let tgt: NvmfTarget;
let listen: TransportAddress;

before(async () => {
  for (const ch of Object.values(traceChannels)) diagnosticsChannel.subscribe(ch.name, record);
  tgt = await startInProcessTarget(
    settle,
    {
      name: 'TCP',
      defaults: () => ({ ...TCP_DEFAULT_OPTIONS }),
      createPollGroup: (opts, events) => createTcpPollGroup(opts, events),
      async listen(addr, _opts, onSocket) {
        const l = new TcpListener(addr, (sock) => onSocket(sock));
        await l.listen();
        return l;
      },
    },
    { ...TCP_DEFAULT_OPTIONS },
  );
  const bdev = await settle(createMallocBdev({ name: 'Malloc0', numBlocks: 1024, blockSize: BS }));
  await settle(
    tgt.createSubsystem({
      nqn: NQN,
      serial: 'SN-TRACE',
      model: 'tracing',
      allowAnyHost: true,
      maxNamespaces: 8,
      minCntlid: 1,
      maxCntlid: 0xffef,
      anaReporting: false,
    }),
  );
  await settle(tgt.addNamespace(NQN, { bdevName: bdev, nsid: 1 }));
  listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(await freePort()) };
  await settle(tgt.addListener(NQN, listen));
});

after(async () => {
  for (const ch of Object.values(traceChannels)) diagnosticsChannel.unsubscribe(ch.name, record);
  await settle(tgt.stop(), 10_000);
  setTarget(null);
});

function io(submit: (cb: (status: number) => void) => boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    if (!submit(resolve)) reject(new Error('submit refused'));
  });
}

test('a connect, a 4 KiB write and read, and a disconnect, as the channels tell them', async () => {
  const ctrlr = await settle(
    NvmeController.connect(
      { traddr: listen.traddr, trsvcid: listen.trsvcid, subnqn: NQN },
      { kato: 0, asyncEvents: false },
    ),
    10_000,
  );
  const qpair = await settle(ctrlr.createIoQpair(32), 10_000);
  const data = pattern(4096, 3);
  assert.equal(await settle(io((cb) => qpair.write(1, 16, 8, data, cb))), 0);
  const back = Buffer.alloc(4096);
  assert.equal(await settle(io((cb) => qpair.read(1, 16, 8, back, cb))), 0);
  assert.deepEqual(back, data);
  const cntlid = ctrlr.cntlid;
  const hostnqn = ctrlr.trid.hostnqn;
  await settle(ctrlr.disconnect(), 10_000);
  await until(() => events(traceChannels.qpairDisconnected).length === 2, 10_000);

  const thread = 'nvmf_tgt_poll_group_0';
  const created = events<ControllerEvent>(traceChannels.controllerCreated);
  assert.deepEqual(created, [{ cntlid, subnqn: NQN, hostnqn, kato: 0, thread }]);
  const destroyed = events<ControllerEvent>(traceChannels.controllerDestroyed);
  assert.deepEqual(destroyed, created, 'the same controller, destroyed once');

  for (const ch of [traceChannels.qpairConnected, traceChannels.qpairDisconnected]) {
    const qs = events<QpairEvent>(ch);
    assert.deepEqual(qs.map((q) => q.qid).sort(), [0, 1], `${String(ch.name)}: the admin and the I/O queue`);
    for (const q of qs) {
      assert.deepEqual(
        [q.trtype, q.cntlid, q.subnqn, q.hostnqn, q.thread],
        ['TCP', cntlid, NQN, hostnqn, thread],
      );
      assert.deepEqual(q.listenAddress, listen);
      assert.equal(q.peerAddress.traddr, '127.0.0.1');
      assert.notEqual(q.peerAddress.trsvcid, listen.trsvcid);
    }
  }

  const starts = events<CommandStartEvent>(traceChannels.commandStart);
  const completes = events<CommandCompleteEvent>(traceChannels.commandComplete);
  assert.equal(completes.length, starts.length, 'every command traced at start completes once');
  const key = (e: CommandStartEvent) => `${e.qid}/${e.cid}/${e.opcode}`;
  assert.deepEqual(completes.map(key).sort(), starts.map(key).sort());
  const adminConnect = starts.find((e) => e.opcode === FABRICS_OPCODE && e.qid === 0);
  assert.deepEqual(
    adminConnect && [adminConnect.cntlid, adminConnect.fctype, adminConnect.length],
    [-1, FabricsCommandType.CONNECT, 1024],
    'the admin Connect starts before its queue has a controller',
  );
  const adminConnectDone = completes.find((e) => e.opcode === FABRICS_OPCODE && e.qid === 0);
  assert.equal(adminConnectDone?.cntlid, cntlid, 'and completes with it');
  for (const [opcode, what] of [
    [NvmOpcode.WRITE, 'write'],
    [NvmOpcode.READ, 'read'],
  ] as const) {
    const s = starts.filter((e) => e.opcode === opcode);
    const c = completes.filter((e) => e.opcode === opcode);
    assert.equal(s.length, 1, `one ${what} started`);
    assert.deepEqual(s[0], { qid: 1, cntlid, cid: s[0].cid, opcode, fctype: -1, nsid: 1, length: 4096 });
    assert.equal(c.length, 1, `one ${what} completed`);
    const { status, latencyUs, ...rest } = c[0];
    assert.deepEqual(rest, s[0]);
    assert.equal(status, 0);
    assert.ok(latencyUs >= 0 && latencyUs < 10_000_000, `${what} latency ${latencyUs} µs`);
  }
  assert.equal(events(traceChannels.keepAliveExpired).length, 0);
});

test('RPC calls: method, duration and error code', async () => {
  const reg = new RpcRegistry();
  reg.setState(RpcState.RUNTIME);
  reg.register({
    name: 'ok_method',
    summary: 'answers 1',
    params: [],
    states: RpcState.RUNTIME,
    handler: async () => 1,
  });
  reg.register({
    name: 'busy_method',
    summary: 'fails with -16',
    params: [],
    states: RpcState.RUNTIME,
    handler: () => {
      throw new RpcError(-16, 'busy');
    },
  });
  const before = events(traceChannels.rpcCallComplete).length;
  assert.equal(await reg.invoke('ok_method', {}), 1);
  await assert.rejects(reg.invoke('busy_method', {}), /busy/);
  await assert.rejects(reg.invoke('no_such_method', {}), /Method not found/);
  const done = events<RpcCallCompleteEvent>(traceChannels.rpcCallComplete).slice(before);
  assert.deepEqual(
    done.map((e) => [e.method, e.errorCode]),
    [
      ['ok_method', 0],
      ['busy_method', -16],
      ['no_such_method', -32601],
    ],
  );
  for (const e of done) assert.ok(e.durationUs >= 0);
  assert.deepEqual(events(traceChannels.rpcCallStart).slice(-3), [
    { method: 'ok_method' },
    { method: 'busy_method' },
    { method: 'no_such_method' },
  ]);
});
