// The NVMe 2.0 controller model as an NVMe 2.0-era host meets it (VS 2.0,
// CAP.CRWMS and the CRTO property, CC.CSS = 110b written while disabled then
// enabled, Identify CNS 06h / 08h / 1Ch, the I/O Command Set Profile feature),
// CAP.CSS bit 6 both ways (nvmf_set_config cap_css_iocs), and discovery on
// every listener of the target: `discover` through a port that has only an NVM
// subsystem's listener, the deprecation logged once, and nvmf-rpc's
// `discovery` shortcut for the discovery NQN.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { discover, NvmeController, NvmeStatusError } from '../../src/nvme/index.ts';
import { Cns, Csi, IDENTIFY_SIZE, IdNsIndependent, writeIdentifyCommand } from '../../src/wire/identify.ts';
import {
  AdminOpcode,
  CapHiBits,
  CcBits,
  CcCss,
  ControllerRegister,
  CstsBits,
  decodeCap,
  FeatureId,
  initSqe,
  SQE_SIZE,
  Sqe,
} from '../../src/wire/nvme.ts';
import { ChildTarget, TEST_NQN, waitFor } from '../lib/index.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const RPC = new URL('../../bin/nvmf-rpc.mjs', import.meta.url).pathname;
const DISCOVERY_NQN = 'nqn.2014-08.org.nvmexpress.discovery';

let target: ChildTarget;

before(async () => {
  // the default config: cnode1 listens on the port; the discovery subsystem has no listener
  target = await ChildTarget.start({ cores: '0x1' });
});

after(async () => {
  await target?.dispose();
});

function trid(subnqn = TEST_NQN) {
  return { traddr: '127.0.0.1', trsvcid: target.port, subnqn };
}

/** An Identify with the CNS, NSID, CNTID and CSI given (the library's identify() sets CNS and NSID only). */
async function identify(c: NvmeController, cns: number, nsid: number, csi = 0, cntid = 0): Promise<Buffer> {
  const sqe = Buffer.alloc(SQE_SIZE);
  writeIdentifyCommand(sqe, cns, nsid);
  sqe.writeUInt16LE(cntid, Sqe.CDW10 + 2);
  sqe[Sqe.CDW11 + 3] = csi;
  const buf = Buffer.alloc(IDENTIFY_SIZE, 0xee);
  await c.adminCommand(sqe, buf, true);
  return buf;
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (e) {
    assert.ok(e instanceof NvmeStatusError, String(e));
    return e.status;
  }
}

test('NVMe 2.0 host sequence: VS 2.0, CRWMS and CRTO, CC.CSS = 110b written disabled then enabled, CNS 06h/08h/1Ch, feature 19h', async () => {
  const c = await NvmeController.connect(trid(), { skipIdentify: true, kato: 0 });
  try {
    assert.equal(Number(await c.propertyGet(ControllerRegister.VS, 4)), 0x00020000, 'VS 2.0');
    const cap = await c.propertyGet(ControllerRegister.CAP, 8);
    const fields = decodeCap(cap);
    assert.equal(fields.crwms, true, 'CAP.CRMS.CRWMS');
    assert.equal(fields.css, 0x01, 'CAP.CSS: the NVM command set only, by default');
    // CRTO: CRWMT = CAP.TO, as SPDK (the Linux host reads it when CRWMS is set)
    assert.equal(Number(await c.propertyGet(ControllerRegister.CRTO, 4)), fields.to);
    // the host selects "all supported I/O command sets" while the controller is disabled
    const css = CcCss.ALL_IOCS << CcBits.CSS_SHIFT;
    await c.propertySet(ControllerRegister.CC, css);
    assert.equal(Number(await c.propertyGet(ControllerRegister.CC, 4)), css);
    // the reserved CSS values and 111b (admin only) stay refused (Connect Invalid Parameter)
    for (const bad of [1, 5, 7])
      assert.equal(
        await status(c.propertySet(ControllerRegister.CC, bad << CcBits.CSS_SHIFT)),
        0x182,
        `CSS ${bad}`,
      );
    const enable = css | CcBits.EN | (6 << CcBits.IOSQES_SHIFT) | (4 << CcBits.IOCQES_SHIFT);
    await c.propertySet(ControllerRegister.CC, enable);
    await waitFor(
      'CSTS.RDY',
      async () => (Number(await c.propertyGet(ControllerRegister.CSTS, 4)) & CstsBits.RDY) !== 0,
    );
    assert.equal(Number(await c.propertyGet(ControllerRegister.CC, 4)), enable);
    // CNS 1Ch: combination 0 is the NVM command set (vector bit 0), for CNTID FFFFh or its own ID
    for (const cntid of [0xffff, c.cntlid]) {
      const v = await identify(c, Cns.IO_COMMAND_SET, 0, 0, cntid);
      assert.equal(v.readBigUInt64LE(0), 1n, `CNS 1Ch vector 0 (CNTID 0x${cntid.toString(16)})`);
      assert.ok(
        v.subarray(8).every((b) => b === 0),
        'no other combination',
      );
    }
    assert.equal(
      await status(identify(c, Cns.IO_COMMAND_SET, 0, 0, c.cntlid + 1)),
      0x02,
      'another controller',
    );
    // CNS 06h for the NVM command set: no limits beyond MDTS (all zero); another CSI is refused
    const nvmCtrl = await identify(c, Cns.CSI_CONTROLLER, 0, Csi.NVM);
    assert.ok(nvmCtrl.every((b) => b === 0));
    assert.equal(await status(identify(c, Cns.CSI_CONTROLLER, 0, Csi.ZNS)), 0x02);
    // CNS 08h: the command-set independent namespace data
    const indep = await identify(c, Cns.CS_INDEPENDENT_NAMESPACE, 1);
    assert.equal(indep[IdNsIndependent.NMIC], 1, 'shared');
    assert.equal(indep[IdNsIndependent.RESCAP], 0xfe, 'every reservation type, IEKEY (no PTPL file)');
    assert.equal(indep[IdNsIndependent.NSTAT], 1, 'ready');
    assert.ok(
      (await identify(c, Cns.CS_INDEPENDENT_NAMESPACE, 7)).every((b) => b === 0),
      'inactive: zeroes',
    );
    assert.equal(await status(identify(c, Cns.CS_INDEPENDENT_NAMESPACE, 0)), 0x0b, 'NSID 0');
    // CNS 05h / 07h with CSI NVM
    assert.deepEqual(
      [...(await identify(c, Cns.CSI_ACTIVE_NS_LIST, 0, Csi.NVM)).subarray(0, 8)],
      [1, 0, 0, 0, 0, 0, 0, 0],
    );
    assert.ok((await identify(c, Cns.CSI_NAMESPACE, 1, Csi.NVM)).every((b) => b === 0));
    // I/O Command Set Profile: combination 0 is current; only it can be set
    assert.equal((await c.getFeatures(FeatureId.IO_COMMAND_SET_PROFILE)).dw0, 0);
    await c.setFeatures(FeatureId.IO_COMMAND_SET_PROFILE, 0);
    assert.equal(
      await status(c.setFeatures(FeatureId.IO_COMMAND_SET_PROFILE, 1)),
      0x12b,
      'IOCS combination rejected',
    );
    // and I/O works in the controller enabled so
    const id = await c.identify(Cns.CONTROLLER, 0);
    assert.equal(id.readUInt32LE(80), 0x00020000, 'Identify VER 2.0');
  } finally {
    await c.disconnect();
  }
});

test('CAP.CSS bit 6 (I/O command sets) is advertised with nvmf_set_config cap_css_iocs, and not without', async () => {
  const capOf = async () => {
    const c = await NvmeController.connect(trid(), { skipIdentify: true, kato: 0 });
    try {
      return await c.propertyGet(ControllerRegister.CAP, 8);
    } finally {
      await c.disconnect();
    }
  };
  assert.equal((await capOf()) & (BigInt(CapHiBits.CSS_IOCS) << 32n), 0n);
  await target.call('nvmf_set_config', { cap_css_iocs: true });
  try {
    const cap = await capOf();
    assert.equal(decodeCap(cap).css, 0x41, 'NVM and I/O command sets');
    // save_config writes the option (only when on: a default config stays SPDK's)
    const saved = (await target.call('save_config')) as {
      subsystems: { subsystem: string; config: { method: string; params: Record<string, unknown> }[] }[];
    };
    const nvmf = saved.subsystems.find((s) => s.subsystem === 'nvmf');
    assert.equal(nvmf?.config.find((e) => e.method === 'nvmf_set_config')?.params.cap_css_iocs, true);
    // a host that follows CAP.CSS (Linux: CC.CSS = 110b) enables and identifies
    const c = await NvmeController.connect(trid(), { skipIdentify: true, kato: 0 });
    try {
      await c.propertySet(
        ControllerRegister.CC,
        (CcCss.ALL_IOCS << CcBits.CSS_SHIFT) |
          CcBits.EN |
          (6 << CcBits.IOSQES_SHIFT) |
          (4 << CcBits.IOCQES_SHIFT),
      );
      await waitFor(
        'CSTS.RDY',
        async () => (Number(await c.propertyGet(ControllerRegister.CSTS, 4)) & CstsBits.RDY) !== 0,
      );
      const desc = await c.identify(Cns.NS_DESCRIPTOR_LIST, 1);
      // the CSI descriptor (type 4, length 1, NVM) that such a host requires, after NGUID and UUID
      let off = 0;
      const types: number[] = [];
      while (desc[off] !== 0) {
        types.push(desc[off]);
        if (desc[off] === 4) assert.deepEqual([desc[off + 1], desc[off + 4]], [1, Csi.NVM]);
        off += 4 + desc[off + 1];
      }
      assert.ok(types.includes(4), `descriptor types ${types}`);
    } finally {
      await c.disconnect();
    }
  } finally {
    await target.call('nvmf_set_config', { cap_css_iocs: false });
  }
  assert.equal((await capOf()) & (BigInt(CapHiBits.CSS_IOCS) << 32n), 0n, 'off again');
});

test('discovery on a port with only the NVM subsystem listener lists the subsystem; the deprecation is logged once', async () => {
  for (let i = 0; i < 2; i++) {
    const r = await discover(`trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${target.port}`);
    assert.ok(
      r.entries.some((e) => e.subnqn === TEST_NQN && e.trsvcid === target.port),
      JSON.stringify(r.entries),
    );
  }
  const warnings = target
    .log()
    .split('\n')
    .filter((l) => l.includes('allowing a connection to the discovery subsystem'));
  assert.equal(warnings.length, 1, warnings.join('\n'));
  // a discovery controller through that port is a whole one (enabled, identified as discovery)
  const c = await NvmeController.connect(trid(DISCOVERY_NQN), { kato: 0 });
  try {
    assert.equal(c.isDiscovery, true);
    assert.equal(c.cdata?.readUInt32LE(80), 0x00020000, 'VER 2.0 for the discovery controller too');
  } finally {
    await c.disconnect();
  }
});

test("nvmf-rpc takes 'discovery' for the discovery NQN where rpc.py does (listeners, referrals)", async () => {
  const run = (...args: string[]) => {
    const r = spawnSync(NODE, [RPC, '-s', target.rpcPath, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  run('nvmf_subsystem_add_listener', 'discovery', '-t', 'tcp', '-a', '127.0.0.1', '-s', '18010');
  const disc = (await target.call('nvmf_get_subsystems', { nqn: DISCOVERY_NQN })) as {
    listen_addresses: { trsvcid: string }[];
  }[];
  assert.deepEqual(
    disc[0].listen_addresses.map((a) => a.trsvcid),
    ['18010'],
  );
  run('nvmf_subsystem_remove_listener', 'discovery', '-t', 'tcp', '-a', '127.0.0.1', '-s', '18010');
  run('nvmf_discovery_add_referral', '-t', 'tcp', '-a', '127.0.0.2', '-s', '4420', '-n', 'discovery');
  const refs = (await target.call('nvmf_discovery_get_referrals')) as { subnqn: string }[];
  assert.deepEqual(
    refs.map((r) => r.subnqn),
    [DISCOVERY_NQN],
  );
  run('nvmf_discovery_remove_referral', '-t', 'tcp', '-a', '127.0.0.2', '-s', '4420', '-n', 'discovery');
  assert.deepEqual(await target.call('nvmf_discovery_get_referrals'), []);
});

test('Identify and the admin commands of a controller enabled with CSS 000b are unchanged by all this', async () => {
  const c = await NvmeController.connect(trid());
  try {
    assert.ok(c.namespaces.has(1));
    const sqe = initSqe(Buffer.alloc(SQE_SIZE), AdminOpcode.KEEP_ALIVE);
    await c.adminCommand(sqe, null, false);
  } finally {
    await c.disconnect();
  }
});
