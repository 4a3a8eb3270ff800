// nvmf_* methods of what a subsystem exports and to whom: namespaces, the
// hosts that see a namespace, and allowed hosts (SPDK's nvmf_rpc.c: add_ns,
// remove_ns, ns_add_host, ns_remove_host, add_host, remove_host, allow_any_host).

import type { RpcMethod } from '../../../jsonrpc/index.ts';
import { getTarget } from '../../../nvmf/target.ts';
import { UsageError } from '../../../util/errors.ts';
import { checkTgt, invalid, nqnPos, RUNTIME, run, tgtName } from './common.ts';
import { dhchapKeyParams, releaseHostKeys, takeHostKeys } from './dhchap.ts';

/** nvmf_ns_add_host / nvmf_ns_remove_host: rpc.py's positional nqn, nsid, host. */
function nsVisibilityMethod(name: string, summary: string, visible: boolean): RpcMethod {
  return {
    name,
    summary,
    states: RUNTIME,
    params: [
      nqnPos,
      {
        name: 'nsid',
        type: 'integer',
        required: true,
        min: 1,
        help: 'Namespace ID',
        cli: { positional: true, int: true },
      },
      { name: 'host', type: 'string', required: true, help: 'Host NQN', cli: { positional: true } },
      tgtName,
    ],
    handler: (p: { nqn: string; nsid: number; host: string; tgt_name?: string }) =>
      run(async () => {
        checkTgt(p);
        await getTarget().setNamespaceVisible(p.nqn, p.nsid, p.host, visible);
        return true;
      }),
  };
}

export const hostAndNamespaceMethods: RpcMethod[] = [
  {
    name: 'nvmf_subsystem_add_ns',
    summary: 'Add a namespace to an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      {
        name: 'namespace',
        type: 'object',
        help: 'Namespace: {bdev_name, ptpl_file, nsid, nguid, eui64, uuid, anagrpid, no_auto_visible}',
      },
      {
        name: 'bdev_name',
        type: 'string',
        help: 'The name of the bdev that will back this namespace (CLI)',
        cli: { positional: true },
      },
      {
        name: 'ptpl_file',
        type: 'string',
        help: 'File path to save/restore persistent reservation information (optional, CLI)',
        cli: { flags: ['-p', '--ptpl-file'] },
      },
      {
        name: 'nsid',
        type: 'integer',
        min: 0,
        help: 'The requested NSID (optional, CLI)',
        cli: { flags: ['-n', '--nsid'], int: true },
      },
      {
        name: 'nguid',
        type: 'string',
        help: 'Namespace globally unique identifier (optional, CLI)',
        cli: { flags: ['-g', '--nguid'] },
      },
      {
        name: 'eui64',
        type: 'string',
        help: 'Namespace EUI-64 identifier (optional, CLI)',
        cli: { flags: ['-e', '--eui64'] },
      },
      {
        name: 'uuid',
        type: 'string',
        help: 'Namespace UUID (optional, CLI)',
        cli: { flags: ['-u', '--uuid'] },
      },
      {
        name: 'anagrpid',
        type: 'integer',
        min: 1,
        help: 'ANA group ID (optional, CLI)',
        cli: { flags: ['-a', '--anagrpid'], int: true },
      },
      {
        name: 'no_auto_visible',
        type: 'boolean',
        help: 'Do not auto make namespace visible to controllers (CLI)',
        cli: { flags: ['-i', '--no-auto-visible'], action: 'store_true' },
      },
      tgtName,
    ],
    cliTransform: (a) => {
      const out: Record<string, unknown> = {};
      const ns: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(a)) {
        if (v === undefined) continue;
        if (
          [
            'bdev_name',
            'ptpl_file',
            'nsid',
            'nguid',
            'eui64',
            'uuid',
            'anagrpid',
            'no_auto_visible',
          ].includes(k)
        )
          ns[k] = v;
        else out[k] = v;
      }
      out.namespace = ns;
      return out;
    },
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        const ns = (p.namespace ?? p) as Record<string, unknown>;
        if (typeof ns.bdev_name !== 'string' || ns.bdev_name === '')
          invalid('namespace.bdev_name is required');
        // the namespace object is free-form (rpc.py flattens it too): check its numbers here
        for (const k of ['nsid', 'anagrpid']) {
          const v = ns[k];
          if (v !== undefined && (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 0xfffffffe))
            invalid(`namespace.${k} ${JSON.stringify(v)} is not an integer in 0..4294967294`);
        }
        if (ns.no_auto_visible !== undefined && typeof ns.no_auto_visible !== 'boolean')
          invalid('namespace.no_auto_visible must be a boolean');
        if (ns.ptpl_file !== undefined && (typeof ns.ptpl_file !== 'string' || ns.ptpl_file === ''))
          invalid('namespace.ptpl_file must be a file path');
        if (ns.uuid !== undefined && !/^[0-9a-fA-F-]{36}$/.test(String(ns.uuid)))
          invalid(`namespace.uuid '${ns.uuid}' is not a UUID`);
        if (ns.nguid !== undefined && !/^[0-9a-fA-F]{32}$/.test(String(ns.nguid).replace(/-/g, '')))
          invalid(`namespace.nguid '${ns.nguid}' is not 16 bytes of hex`);
        if (ns.eui64 !== undefined && !/^[0-9a-fA-F]{16}$/.test(String(ns.eui64).replace(/-/g, '')))
          invalid(`namespace.eui64 '${ns.eui64}' is not 8 bytes of hex`);
        return getTarget().addNamespace(String(p.nqn), {
          bdevName: ns.bdev_name,
          nsid: ns.nsid === undefined ? undefined : Number(ns.nsid),
          uuid: ns.uuid === undefined ? undefined : String(ns.uuid).toLowerCase(),
          nguid: ns.nguid === undefined ? undefined : String(ns.nguid),
          eui64: ns.eui64 === undefined ? undefined : String(ns.eui64).replace(/-/g, '').toUpperCase(),
          anaGroupId: ns.anagrpid === undefined ? undefined : Number(ns.anagrpid),
          noAutoVisible: ns.no_auto_visible === true,
          ptplFile: ns.ptpl_file === undefined ? undefined : String(ns.ptpl_file),
        });
      }),
  },
  nsVisibilityMethod(
    'nvmf_ns_add_host',
    'Make a namespace visible to the controllers of a host (a namespace added with no_auto_visible)',
    true,
  ),
  nsVisibilityMethod(
    'nvmf_ns_remove_host',
    'Make a namespace not visible to the controllers of a host',
    false,
  ),
  {
    name: 'nvmf_subsystem_remove_ns',
    summary: 'Remove a namespace from an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      {
        name: 'nsid',
        type: 'integer',
        required: true,
        min: 1,
        help: 'The requested NSID',
        cli: { positional: true, int: true },
      },
      tgtName,
    ],
    handler: (p: { nqn: string; nsid: number; tgt_name?: string }) =>
      run(async () => {
        checkTgt(p);
        await getTarget().removeNamespace(p.nqn, p.nsid);
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_add_host',
    summary: 'Add a host to the allowed list of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      { name: 'host', type: 'string', required: true, help: 'Host NQN to allow', cli: { positional: true } },
      tgtName,
      {
        name: 'psk',
        type: 'string',
        help: "Name of the keyring key (keyring_file_add_key) holding the host's TLS PSK, interchange format",
        cli: { flags: ['--psk'] },
      },
      ...dhchapKeyParams,
    ],
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        const t = getTarget();
        t.getSubsystem(String(p.nqn));
        const psk = p.psk === undefined ? undefined : String(p.psk);
        // DH-HMAC-CHAP: keyring references the subsystem keeps once the host is added
        const keys = takeHostKeys(p);
        try {
          await t.addHost(String(p.nqn), String(p.host), { psk, keys });
        } catch (e) {
          releaseHostKeys(keys);
          throw e;
        }
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_remove_host',
    summary: 'Remove a host from the allowed list of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      nqnPos,
      { name: 'host', type: 'string', required: true, help: 'Host NQN to remove', cli: { positional: true } },
      tgtName,
    ],
    handler: (p: { nqn: string; host: string; tgt_name?: string }) =>
      run(async () => {
        checkTgt(p);
        await getTarget().removeHost(p.nqn, p.host);
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_allow_any_host',
    summary: 'Allow any host to connect to the NVMe-oF subsystem, or only the listed ones',
    states: RUNTIME,
    params: [
      nqnPos,
      {
        name: 'allow_any_host',
        type: 'boolean',
        help: 'Allow any host (true) or only the listed hosts (false)',
      },
      {
        name: 'enable',
        type: 'boolean',
        help: 'CLI: allow any host',
        cli: { flags: ['-e', '--enable'], action: 'store_true' },
      },
      {
        name: 'disable',
        type: 'boolean',
        help: 'CLI: allow only the listed hosts',
        cli: { flags: ['-d', '--disable'], action: 'store_true' },
      },
      tgtName,
    ],
    cliTransform: (a) => {
      const { enable, disable, ...rest } = a;
      if (enable === true && disable === true) throw new UsageError('-e and -d are mutually exclusive');
      return { ...rest, allow_any_host: disable !== true };
    },
    handler: (p: {
      nqn: string;
      allow_any_host?: boolean;
      enable?: boolean;
      disable?: boolean;
      tgt_name?: string;
    }) =>
      run(async () => {
        checkTgt(p);
        const allow = p.allow_any_host ?? (p.disable === true ? false : p.enable === true ? true : undefined);
        if (allow === undefined) invalid('allow_any_host is required');
        await getTarget().allowAnyHost(p.nqn, allow);
        return true;
      }),
  },
];
