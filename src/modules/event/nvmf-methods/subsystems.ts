// nvmf_* methods of the subsystems themselves (SPDK's nvmf_rpc.c: create,
// delete, pause, resume, list; their controllers and queue pairs) and the
// save_config entries that recreate every subsystem.

import type { ConfigEntry } from '../../../event/subsystem.ts';
import { RpcError, type RpcMethod } from '../../../jsonrpc/index.ts';
import { type NvmfSubsystem, SubsystemType } from '../../../nvmf/subsystem.ts';
import { getTarget, type NvmfTarget } from '../../../nvmf/target.ts';
import { DISCOVERY_NQN } from '../../../wire/discovery.ts';
import { checkTgt, nqnPos, RUNTIME, run, tgtName } from './common.ts';
import { hostKeyNames } from './dhchap.ts';

/** A listed host with the keyring names of its keys (TLS PSK, DH-HMAC-CHAP), as SPDK lists them. */
function hostJson(s: NvmfSubsystem, h: string): { nqn: string } & Record<string, string> {
  const psk = s.hostPsks.get(h);
  return { nqn: h, ...(psk !== undefined ? { psk: psk.keyName } : {}), ...hostKeyNames(s.hostKeys.get(h)) };
}

function subsystemJson(t: NvmfTarget, nqn: string): Record<string, unknown> {
  const s = t.getSubsystem(nqn);
  const base: Record<string, unknown> = {
    nqn: s.nqn,
    subtype: s.subtype,
    listen_addresses: s.listeners.map((l) => ({ ...l.address })),
    allow_any_host: s.allowAnyHost,
    // a host's TLS PSK and DH-HMAC-CHAP keys by their keyring names, never their bytes
    hosts: [...s.hosts].map((h) => hostJson(s, h)),
  };
  if (s.subtype === SubsystemType.DISCOVERY) return base;
  return {
    ...base,
    serial_number: s.serial,
    model_number: s.model,
    max_namespaces: s.maxNamespaces,
    min_cntlid: s.minCntlid,
    max_cntlid: s.maxCntlid,
    namespaces: [...s.namespaces.values()].map((n) => ({
      nsid: n.nsid,
      bdev_name: n.bdevName,
      name: n.bdevName,
      nguid: n.nguid,
      uuid: n.uuid,
      ...(n.eui64 ? { eui64: n.eui64 } : {}),
      ...(s.anaReporting ? { anagrpid: n.anaGroupId } : {}),
      // beyond SPDK's listing: who sees it (masking) and where its reservation persists
      no_auto_visible: n.noAutoVisible,
      ...(n.noAutoVisible ? { hosts: n.hosts.map((h) => ({ nqn: h })) } : {}),
      ...(n.ptplFile !== null ? { ptpl_file: n.ptplFile } : {}),
    })),
  };
}

export function subsystemConfigEntries(t: NvmfTarget): ConfigEntry[] {
  const out: ConfigEntry[] = [];
  // as SPDK writes them: every namespace first, then the hosts that see masked ones
  const nsHostEntries: ConfigEntry[] = [];
  const listenerEntries: ConfigEntry[] = [];
  for (const s of t.subsystems.values()) {
    if (s.subtype === SubsystemType.NVME) {
      out.push({
        method: 'nvmf_create_subsystem',
        params: {
          nqn: s.nqn,
          allow_any_host: s.allowAnyHost,
          serial_number: s.serial,
          model_number: s.model,
          max_namespaces: s.maxNamespaces,
          min_cntlid: s.minCntlid,
          max_cntlid: s.maxCntlid,
          ana_reporting: s.anaReporting,
        },
      });
      for (const h of s.hosts) {
        const { nqn: host, ...keys } = hostJson(s, h);
        out.push({ method: 'nvmf_subsystem_add_host', params: { nqn: s.nqn, host, ...keys } });
      }
      for (const n of s.namespaces.values()) {
        out.push({
          method: 'nvmf_subsystem_add_ns',
          params: {
            nqn: s.nqn,
            namespace: {
              nsid: n.nsid,
              bdev_name: n.bdevName,
              ...(n.ptplFile !== null ? { ptpl_file: n.ptplFile } : {}),
              nguid: n.nguid,
              uuid: n.uuid,
              ...(n.eui64 ? { eui64: n.eui64 } : {}),
              no_auto_visible: n.noAutoVisible,
            },
          },
        });
        for (const h of n.hosts)
          nsHostEntries.push({ method: 'nvmf_ns_add_host', params: { nqn: s.nqn, nsid: n.nsid, host: h } });
      }
    }
    for (const l of s.listeners) {
      listenerEntries.push({
        method: 'nvmf_subsystem_add_listener',
        params: { nqn: s.nqn, listen_address: { ...l.address }, secure_channel: l.secureChannel },
      });
    }
  }
  for (const r of t.referrals) {
    out.push({
      method: 'nvmf_discovery_add_referral',
      params: { address: { ...r.address }, subnqn: r.subnqn, secure_channel: r.secureChannel },
    });
  }
  // discovery listeners first (as SPDK writes them), then the subsystems'
  listenerEntries.sort(
    (a, b) => Number(b.params?.nqn === DISCOVERY_NQN) - Number(a.params?.nqn === DISCOVERY_NQN),
  );
  return [...out, ...nsHostEntries, ...listenerEntries];
}

/** A method that names a subsystem (positional NQN, optional tgt_name) and runs one target operation on it. */
function subsystemOperation(
  name: string,
  summary: string,
  operation: (target: NvmfTarget, nqn: string) => Promise<void>,
): RpcMethod {
  return {
    name,
    summary,
    states: RUNTIME,
    params: [nqnPos, tgtName],
    handler: (p: { nqn: string; tgt_name?: string }) =>
      run(async () => {
        checkTgt(p);
        await operation(getTarget(), p.nqn);
        return true;
      }),
  };
}

export const subsystemMethods: RpcMethod[] = [
  {
    name: 'nvmf_create_subsystem',
    summary: 'Create an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      tgtName,
      {
        name: 'serial_number',
        type: 'string',
        help: 'Format: "sn" etc. (default 00000000000000000000)',
        cli: { flags: ['-s', '--serial-number'] },
      },
      {
        name: 'model_number',
        type: 'string',
        help: 'Model number (default "SPDK bdev Controller")',
        cli: { flags: ['-d', '--model-number'] },
      },
      {
        name: 'allow_any_host',
        type: 'boolean',
        help: 'Allow any host to connect (no host NQN check)',
        cli: { flags: ['-a', '--allow-any-host'], action: 'store_true' },
      },
      {
        name: 'max_namespaces',
        type: 'integer',
        min: 0,
        max: 1024,
        help: 'Maximum number of namespaces allowed (default 32)',
        cli: { flags: ['-m', '--max-namespaces'], int: true },
      },
      {
        name: 'ana_reporting',
        type: 'boolean',
        help: 'Enable ANA reporting feature',
        cli: { flags: ['-r', '--ana-reporting'], action: 'store_true' },
      },
      {
        name: 'min_cntlid',
        type: 'integer',
        min: 1,
        max: 0xffef,
        help: 'Minimum controller ID (default 1)',
        cli: { flags: ['-i', '--min-cntlid'], int: true },
      },
      {
        name: 'max_cntlid',
        type: 'integer',
        min: 1,
        max: 0xffef,
        help: 'Maximum controller ID (default 0xffef)',
        cli: { flags: ['-I', '--max-cntlid'], int: true },
      },
      { name: 'max_discard_size_kib', type: 'integer', min: 0, help: 'Maximum discard size in KiB (stored)' },
      {
        name: 'max_write_zeroes_size_kib',
        type: 'integer',
        min: 0,
        help: 'Maximum write zeroes size in KiB (stored)',
      },
      { name: 'passthrough', type: 'boolean', help: 'Passthrough identify (not supported; must be false)' },
      { name: 'enable_nssr', type: 'boolean', help: 'NVM subsystem reset (not supported; must be false)' },
    ],
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        if (p.passthrough === true || p.enable_nssr === true)
          throw new RpcError(-22, 'passthrough and enable_nssr are not supported');
        const maxNs =
          p.max_namespaces === undefined || p.max_namespaces === 0 ? 32 : Number(p.max_namespaces);
        await getTarget().createSubsystem({
          nqn: String(p.nqn),
          serial: p.serial_number === undefined ? '00000000000000000000' : String(p.serial_number),
          model: p.model_number === undefined ? 'SPDK bdev Controller' : String(p.model_number),
          allowAnyHost: p.allow_any_host === true,
          maxNamespaces: maxNs,
          minCntlid: p.min_cntlid === undefined ? 1 : Number(p.min_cntlid),
          maxCntlid: p.max_cntlid === undefined ? 0xffef : Number(p.max_cntlid),
          anaReporting: p.ana_reporting === true,
        });
        return true;
      }),
  },
  subsystemOperation('nvmf_delete_subsystem', 'Delete an NVMe-oF subsystem', (t, nqn) =>
    t.deleteSubsystem(nqn),
  ),
  subsystemOperation(
    'nvmf_subsystem_pause',
    'Pause an NVMe-oF subsystem: new I/O waits until resume, I/O in flight drains before the call returns, admin commands go on',
    (t, nqn) => t.pauseSubsystem(nqn),
  ),
  subsystemOperation(
    'nvmf_subsystem_resume',
    'Resume a paused NVMe-oF subsystem: the I/O that waited runs, in arrival order',
    (t, nqn) => t.resumeSubsystem(nqn),
  ),
  {
    name: 'nvmf_get_subsystems',
    summary: 'Display NVMe-oF subsystems',
    states: RUNTIME,
    params: [
      { name: 'nqn', type: 'string', help: 'Subsystem NQN (optional filter)', cli: { positional: true } },
      { ...tgtName, cli: { flags: ['-t', '--tgt-name'] } },
    ],
    handler: (p: { nqn?: string; tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        const t = getTarget();
        if (p.nqn !== undefined) return [subsystemJson(t, p.nqn)];
        return [...t.subsystems.keys()].map((n) => subsystemJson(t, n));
      }),
  },
  {
    name: 'nvmf_subsystem_get_controllers',
    summary: 'Display the controllers of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [nqnPos, tgtName],
    handler: (p: { nqn: string; tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        const t = getTarget();
        t.getSubsystem(p.nqn);
        return [...t.ctrlrs.values()]
          .filter((c) => c.subnqn === p.nqn)
          .map((c) => ({
            cntlid: c.cntlid,
            hostnqn: c.hostnqn,
            hostid: formatHostid(c.hostid),
            num_io_qpairs: c.ioQueues.size,
          }));
      }),
  },
  {
    name: 'nvmf_subsystem_get_qpairs',
    summary: 'Display the queue pairs of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [nqnPos, tgtName],
    handler: (p: { nqn: string; tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        return getTarget().qpairs(p.nqn);
      }),
  },
];

function formatHostid(hex: string): string {
  if (hex.length !== 32) return hex;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
