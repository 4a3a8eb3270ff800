// nvmf_* methods that set the target's own options (SPDK's nvmf_rpc.c:
// nvmf_set_config, nvmf_set_max_subsystems, nvmf_set_crdt), allowed before
// the framework starts as well as after.

import { RpcError, type RpcMethod } from '../../../jsonrpc/index.ts';
import { getTarget } from '../../../nvmf/target.ts';
import { ANY_STATE, run } from './common.ts';

export const targetConfigMethods: RpcMethod[] = [
  {
    name: 'nvmf_set_config',
    summary: 'Set the NVMe-oF target configuration',
    states: ANY_STATE,
    params: [
      {
        name: 'discovery_filter',
        type: 'string',
        help: 'Discovery log filter: match_any or a combination of transport, address, svcid (e.g. "transport,address")',
        cli: { flags: ['-d', '--discovery-filter'] },
      },
      {
        name: 'admin_cmd_passthru',
        type: 'object',
        help: 'Admin command passthru flags (stored; passthru not supported)',
      },
      {
        name: 'poll_groups_mask',
        type: 'string',
        help: 'CPU mask of poll groups (stored)',
        cli: { flags: ['-m', '--poll-groups-mask'] },
      },
      {
        name: 'dhchap_digests',
        type: 'array',
        help: 'DH-HMAC-CHAP digests the target allows: sha256, sha384, sha512 (default all)',
        cli: { flags: ['--dhchap-digests'] },
        items: { name: 'item', type: 'string', help: 'a digest name' },
      },
      {
        name: 'dhchap_dhgroups',
        type: 'array',
        help: 'DH-HMAC-CHAP DH groups the target allows: null, ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144, ffdhe8192 (default all)',
        cli: { flags: ['--dhchap-dhgroups'] },
        items: { name: 'item', type: 'string', help: 'a DH group name' },
      },
      { name: 'dup_host_policy', type: 'string', help: 'Duplicate host policy (stored)' },
      {
        name: 'cap_css_iocs',
        type: 'boolean',
        help:
          'Advertise CAP.CSS bit 6, I/O command sets (hosts then select CC.CSS = 110b); nvmf-ts only: ' +
          'SPDK sets it only with ZNS namespaces, so the default is off (controllers connected later see it)',
        cli: { flags: ['--cap-css-iocs'], action: 'store_true' },
      },
    ],
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        const t = getTarget();
        if (p.discovery_filter !== undefined) {
          const f = String(p.discovery_filter);
          const ok =
            f === 'match_any' || f.split(',').every((x) => ['transport', 'address', 'svcid'].includes(x));
          if (!ok) throw new RpcError(-22, `invalid discovery_filter '${f}'`);
          await t.setDiscoveryFilter(f);
        }
        if (p.admin_cmd_passthru !== undefined)
          Object.assign(t.config.admin_cmd_passthru, p.admin_cmd_passthru);
        if (p.dhchap_digests !== undefined || p.dhchap_dhgroups !== undefined) {
          try {
            await t.setDhchapConfig(
              Array.isArray(p.dhchap_digests) ? p.dhchap_digests.map(String) : undefined,
              Array.isArray(p.dhchap_dhgroups) ? p.dhchap_dhgroups.map(String) : undefined,
            );
          } catch (e) {
            // SPDK: a name it does not know fails the decode (Invalid parameters)
            throw new RpcError(-32602, (e as Error).message);
          }
        }
        if (p.dup_host_policy !== undefined) t.config.dup_host_policy = String(p.dup_host_policy);
        if (p.cap_css_iocs !== undefined && p.cap_css_iocs !== t.capCssIocs) {
          t.capCssIocs = p.cap_css_iocs === true;
          if (t.pollGroups.length > 0) await t.sync();
        }
        return true;
      }),
  },
  {
    name: 'nvmf_set_max_subsystems',
    summary: 'Set the maximum number of NVMe-oF subsystems',
    states: ANY_STATE,
    params: [
      {
        name: 'max_subsystems',
        type: 'integer',
        required: true,
        min: 1,
        help: 'Maximum number of subsystems',
        cli: { positional: true, int: true },
      },
    ],
    handler: (p: { max_subsystems: number }) =>
      run(() => {
        getTarget().maxSubsystems = p.max_subsystems;
        return true;
      }),
  },
  {
    name: 'nvmf_set_crdt',
    summary: 'Set the command retry delay times',
    states: ANY_STATE,
    params: [
      {
        name: 'crdt1',
        type: 'integer',
        min: 0,
        max: 65535,
        help: 'Command Retry Delay Time 1 (100 ms units)',
        cli: { flags: ['-t1', '--crdt1'], int: true },
      },
      {
        name: 'crdt2',
        type: 'integer',
        min: 0,
        max: 65535,
        help: 'Command Retry Delay Time 2',
        cli: { flags: ['-t2', '--crdt2'], int: true },
      },
      {
        name: 'crdt3',
        type: 'integer',
        min: 0,
        max: 65535,
        help: 'Command Retry Delay Time 3',
        cli: { flags: ['-t3', '--crdt3'], int: true },
      },
    ],
    handler: (p: { crdt1?: number; crdt2?: number; crdt3?: number }) =>
      run(() => {
        const t = getTarget();
        t.crdt = [p.crdt1 ?? t.crdt[0], p.crdt2 ?? t.crdt[1], p.crdt3 ?? t.crdt[2]];
        return true;
      }),
  },
];
