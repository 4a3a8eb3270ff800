// discover() against our target: a log of more than one 4 KiB page (many
// subsystems), referrals followed (one to a second discovery port of the same
// target, which refers to itself: loop-safe; one to a dead port: reported),
// and reconnect after the target process is killed and started again.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  DISCOVERY_NQN,
  discover,
  discoveredSubsystems,
  NvmeController,
  type NvmeIoQpair,
} from '../../src/nvme/index.ts';
import { ChildTarget, freePort, listenerEntry, pollUntil } from '../lib/index.ts';

const configHome = mkdtempSync(join(tmpdir(), 'nvmf-ts-xdg-'));
process.env.XDG_CONFIG_HOME = configHome;

const SUBSYSTEMS = 12;
const ABORTED_SQ_DELETION = 0x08;
let target: ChildTarget;
let port = 0;
let port2 = 0;
let deadPort = 0;

function nqn(i: number): string {
  return `nqn.2016-06.io.spdk:many${i}`;
}

before(async () => {
  port = await freePort();
  port2 = await freePort();
  deadPort = await freePort();
  const config: { method: string; params: unknown }[] = [
    { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
    listenerEntry(DISCOVERY_NQN, port),
    listenerEntry(DISCOVERY_NQN, port2),
  ];
  for (let i = 0; i < SUBSYSTEMS; i++) {
    config.push({ method: 'nvmf_create_subsystem', params: { nqn: nqn(i), allow_any_host: true } });
    config.push(listenerEntry(nqn(i), port));
  }
  config.push({
    method: 'nvmf_subsystem_add_ns',
    params: { nqn: nqn(0), namespace: { nsid: 1, bdev_name: 'Malloc0' } },
  });
  target = await ChildTarget.start({
    cores: '0x1',
    config: {
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
          ],
        },
        { subsystem: 'nvmf', config },
      ],
    },
  });
  for (const p of [port2, deadPort])
    await target.call('nvmf_discovery_add_referral', {
      address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(p) },
    });
});

after(async () => {
  await target?.stop();
  rmSync(configHome, { recursive: true, force: true });
});

test('discover: a log longer than one page, read in pages, the same as one big read', async () => {
  const result = await discover(`trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${port}`, {
    followReferrals: false,
    chunkSize: 4096,
  });
  assert.equal(result.trid.subnqn, DISCOVERY_NQN);
  assert.deepEqual(result.referrals, []);
  const nvm = result.entries.filter((e) => e.subtype === 2).map((e) => e.subnqn);
  for (let i = 0; i < SUBSYSTEMS; i++) assert.ok(nvm.includes(nqn(i)), `${nqn(i)} listed`);
  assert.ok(result.entries.length > 4, 'more entries than one 4 KiB page holds');
  const referrals = result.entries.filter((e) => e.subtype === 1).map((e) => e.trsvcid);
  assert.deepEqual(referrals.sort(), [String(port2), String(deadPort)].sort());
  // one read of the whole page gives the same entries
  const c = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: String(port), subnqn: DISCOVERY_NQN },
    { kato: 0 },
  );
  try {
    const whole = await c.getLogPage(0x70, Buffer.alloc(1024 * (result.entries.length + 1)), 0, 0);
    assert.equal(whole.readUInt32LE(8), result.entries.length);
    assert.equal(whole.readBigUInt64LE(0), result.genctr);
    for (let i = 0; i < result.entries.length; i++) {
      const subnqn = whole.toString('latin1', 1024 * (i + 1) + 256, 1024 * (i + 1) + 512).replace(/\0+$/, '');
      assert.equal(result.entries[i].subnqn, subnqn, `entry ${i}`);
    }
  } finally {
    await c.disconnect();
  }
});

test('discover: referrals followed once each; a dead one reported, not fatal; depth bounded', async () => {
  const result = await discover({ traddr: '127.0.0.1', trsvcid: String(port), subnqn: DISCOVERY_NQN });
  assert.equal(result.depth, 0);
  assert.equal(result.referrals.length, 2);
  const live = result.referrals.find((r) => r.trid.trsvcid === String(port2));
  const dead = result.referrals.find((r) => r.trid.trsvcid === String(deadPort));
  assert.ok(live && dead);
  assert.equal(live.error, undefined);
  assert.equal(live.depth, 1);
  // port2's log refers to port2 and the dead port again: both already visited
  assert.deepEqual(live.referrals, []);
  assert.ok(live.entries.some((e) => e.subtype === 1 && e.trsvcid === String(port2)));
  assert.match(dead.error ?? '', /ECONNREFUSED|connection closed|socket error/);
  const subs = discoveredSubsystems(result).filter((e) => e.subtype === 2);
  assert.equal(subs.length, SUBSYSTEMS, 'each subsystem once across the walk');
  const shallow = await discover(
    { traddr: '127.0.0.1', trsvcid: String(port), subnqn: DISCOVERY_NQN },
    {
      maxReferralDepth: 0,
    },
  );
  assert.deepEqual(shallow.referrals, []);
});

test('reconnect after the target process is killed: I/O failed once, same queue objects usable again', async () => {
  const c = await NvmeController.connect({ traddr: '127.0.0.1', trsvcid: String(port), subnqn: nqn(0) });
  const lost: string[] = [];
  c.onConnectionLost = (reason) => lost.push(reason);
  const queues: NvmeIoQpair[] = await c.createIoQpairs(2, 64);
  const hostnqn = c.trid.hostnqn;
  try {
    await queues[0].writeAsync(1, 0, 8, Buffer.alloc(4096, 1));
    const statuses: number[] = [];
    let calls = 0;
    for (let i = 0; i < 40; i++)
      queues[i % 2].read(1, i * 8, 8, Buffer.alloc(4096), (status) => {
        calls++;
        statuses.push(status);
      });
    await target.kill('SIGKILL');
    await pollUntil(() => calls >= 40 && lost.length > 0, { timeoutMs: 5000 });
    assert.equal(calls, 40, 'every outstanding command completed');
    assert.ok(statuses.every((s) => s === 0 || s === ABORTED_SQ_DELETION));
    assert.equal(lost.length, 1, 'onConnectionLost once');
    assert.equal(c.failed, true);
    assert.ok(queues.every((q) => q.closed));
    await assert.rejects(c.reconnect(), /ECONNREFUSED|connection closed|socket error/);
    await target.restart();
    for (const p of [port2, deadPort])
      await target.call('nvmf_discovery_add_referral', {
        address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(p) },
      });
    await c.reconnect();
    assert.equal(c.failed, false);
    assert.equal(c.trid.hostnqn, hostnqn, 'same host NQN');
    assert.deepEqual(
      queues.map((q) => [q.qid, q.closed]),
      [
        [1, false],
        [2, false],
      ],
    );
    const data = Buffer.alloc(4096, 0x5a);
    await queues[0].writeAsync(1, 64, 8, data);
    const back = Buffer.alloc(4096);
    await queues[1].readAsync(1, 64, 8, back);
    assert.ok(back.equals(data), 'I/O through the reconnected queues');
    const ctrlrs = (await target.call('nvmf_subsystem_get_controllers', { nqn: nqn(0) })) as {
      hostnqn: string;
      num_io_qpairs: number;
    }[];
    assert.equal(ctrlrs.length, 1);
    assert.equal(ctrlrs[0].hostnqn, hostnqn);
    assert.equal(ctrlrs[0].num_io_qpairs, 2);
    assert.equal(c.namespaces.get(1)?.nsze, 8192);
  } finally {
    await c.disconnect();
  }
});
