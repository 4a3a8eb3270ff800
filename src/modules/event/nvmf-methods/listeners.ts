// nvmf_* methods of where subsystems are reached: listeners and their ANA
// states, and the discovery service's referrals (SPDK's nvmf_rpc.c), with the
// transport address they share (an object, or rpc.py's flat CLI flags).

import { type ParamSpec, RpcError, type RpcMethod } from '../../../jsonrpc/index.ts';
import { getTarget } from '../../../nvmf/target.ts';
import type { TransportAddress } from '../../../nvmf/transport.ts';
import { DISCOVERY_NQN } from '../../../wire/discovery.ts';
import { checkTgt, invalid, nqnPos, RUNTIME, run, tgtName, tgtNameP } from './common.ts';

const ADRFAMS = ['ipv4', 'ipv6', 'ib', 'fc', 'intra_host'];

function normAddress(a: unknown, what: string): TransportAddress {
  if (a === null || typeof a !== 'object')
    invalid(`${what}: an object with trtype, traddr, trsvcid is required`);
  const o = a as Record<string, unknown>;
  if (typeof o.trtype !== 'string' || o.trtype === '') invalid(`${what}.trtype is required`);
  if (typeof o.traddr !== 'string' || o.traddr === '') invalid(`${what}.traddr is required`);
  const trsvcid = o.trsvcid === undefined ? '' : String(o.trsvcid);
  if (o.trtype.toUpperCase() === 'TCP' && !/^\d+$/.test(trsvcid))
    invalid(`${what}.trsvcid must be a port number for TCP`);
  let adrfam =
    typeof o.adrfam === 'string' && o.adrfam !== '' ? o.adrfam : o.traddr.includes(':') ? 'IPv6' : 'IPv4';
  if (!ADRFAMS.includes(adrfam.toLowerCase()))
    invalid(`${what}.adrfam '${adrfam}' is not one of IPv4, IPv6, IB, FC`);
  adrfam =
    adrfam.toLowerCase() === 'ipv4'
      ? 'IPv4'
      : adrfam.toLowerCase() === 'ipv6'
        ? 'IPv6'
        : adrfam.toUpperCase();
  return { trtype: o.trtype.toUpperCase(), adrfam, traddr: o.traddr, trsvcid };
}

const addressFlatParams: ParamSpec[] = [
  {
    name: 'trtype',
    type: 'string',
    help: 'NVMe-oF transport type: e.g., tcp (CLI; sent inside the address object)',
    cli: { flags: ['-t', '--trtype'] },
  },
  {
    name: 'traddr',
    type: 'string',
    help: 'NVMe-oF transport address: e.g., an ip address (CLI)',
    cli: { flags: ['-a', '--traddr'] },
  },
  {
    name: 'adrfam',
    type: 'string',
    help: 'NVMe-oF transport adrfam: e.g., ipv4, ipv6 (CLI)',
    cli: { flags: ['-f', '--adrfam'] },
  },
  {
    name: 'trsvcid',
    type: 'string',
    help: 'NVMe-oF transport service id: e.g., a port number (CLI)',
    cli: { flags: ['-s', '--trsvcid'] },
  },
];

function addressFromCli(args: Record<string, unknown>, key: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const addr: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined) continue;
    if (k === 'trtype' || k === 'traddr' || k === 'adrfam' || k === 'trsvcid') addr[k] = v;
    else out[k] = v;
  }
  if (Object.keys(addr).length > 0) out[key] = addr;
  return out;
}

/** rpc.py's shortcut: `discovery` names the discovery subsystem where it takes an NQN
 * (add/remove listener, add/remove referral); a translation of the command line, as there. */
function discoveryAlias(params: Record<string, unknown>, key: string): Record<string, unknown> {
  return params[key] === 'discovery' ? { ...params, [key]: DISCOVERY_NQN } : params;
}

function addressOf(p: Record<string, unknown>, key: string): TransportAddress {
  if (p[key] !== undefined) return normAddress(p[key], key);
  return normAddress({ trtype: p.trtype, traddr: p.traddr, adrfam: p.adrfam, trsvcid: p.trsvcid }, key);
}

const ANA_STATES = ['optimized', 'non_optimized', 'inaccessible', 'persistent_loss', 'change'] as const;

export const listenerMethods: RpcMethod[] = [
  {
    name: 'nvmf_subsystem_add_listener',
    summary: 'Add a listener to an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      { ...nqnPos, help: "Subsystem NQN ('discovery' can be used as shortcut for discovery NQN)" },
      { name: 'listen_address', type: 'object', help: 'Listen address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      tgtNameP,
      {
        name: 'ana_state',
        type: 'string',
        enum: ANA_STATES,
        help: 'ANA state of the listener (default optimized)',
        cli: { flags: ['-n', '--ana-state'] },
      },
      {
        name: 'secure_channel',
        type: 'boolean',
        help: "Require a secure channel: TLS 1.3 with the hosts' PSKs (nvmf_subsystem_add_host --psk) before any NVMe/TCP PDU",
        cli: { flags: ['-k', '--secure-channel'], action: 'store_true' },
      },
      {
        name: 'sock_impl',
        type: 'string',
        help: 'Socket implementation: "ssl" is TLS (as --secure-channel), any other plain TCP',
      },
    ],
    cliTransform: (a) => discoveryAlias(addressFromCli(a, 'listen_address'), 'nqn'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        const secure = p.secure_channel === true;
        // as SPDK: a secure channel is the ssl implementation, and sock_impl "ssl" alone asks for it
        if (secure && p.sock_impl !== undefined && p.sock_impl !== 'ssl')
          throw new RpcError(
            -22,
            "Enabling secure_channel while specifying a sock_impl different from 'ssl' is unsupported",
          );
        const addr = addressOf(p, 'listen_address');
        await getTarget().addListener(
          String(p.nqn),
          addr,
          (p.ana_state as string) ?? 'optimized',
          secure || p.sock_impl === 'ssl',
        );
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_remove_listener',
    summary: 'Remove a listener from an NVMe-oF subsystem',
    states: RUNTIME,
    params: [
      { ...nqnPos, help: "Subsystem NQN ('discovery' can be used as shortcut for discovery NQN)" },
      { name: 'listen_address', type: 'object', help: 'Listen address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      tgtNameP,
    ],
    cliTransform: (a) => discoveryAlias(addressFromCli(a, 'listen_address'), 'nqn'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        await getTarget().removeListener(String(p.nqn), addressOf(p, 'listen_address'));
        return true;
      }),
  },
  {
    name: 'nvmf_subsystem_get_listeners',
    summary: 'Display the listeners of an NVMe-oF subsystem',
    states: RUNTIME,
    params: [nqnPos, tgtName],
    handler: (p: { nqn: string; tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        const s = getTarget().getSubsystem(p.nqn);
        return s.listeners.map((l) => ({
          address: { ...l.address },
          ana_state: l.anaState,
          ...(s.anaReporting
            ? {
                ana_states: [...s.namespaces.values()].map((n) => ({
                  ana_group: n.anaGroupId,
                  ana_state: l.anaState,
                })),
              }
            : {}),
        }));
      }),
  },
  {
    name: 'nvmf_subsystem_listener_set_ana_state',
    summary: 'Set the ANA state of a listener',
    states: RUNTIME,
    params: [
      nqnPos,
      { name: 'listen_address', type: 'object', help: 'Listen address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      {
        name: 'ana_state',
        type: 'string',
        required: true,
        enum: ANA_STATES,
        help: 'ANA state',
        cli: { flags: ['-n', '--ana-state'] },
      },
      {
        name: 'anagrpid',
        type: 'integer',
        min: 1,
        help: 'ANA group ID (default: all groups)',
        cli: { flags: ['-g', '--anagrpid'], int: true },
      },
      tgtNameP,
    ],
    cliTransform: (a) => addressFromCli(a, 'listen_address'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        await getTarget().setAnaState(String(p.nqn), addressOf(p, 'listen_address'), String(p.ana_state));
        return true;
      }),
  },
  {
    name: 'nvmf_discovery_add_referral',
    summary: 'Add a discovery service referral',
    states: RUNTIME,
    params: [
      { name: 'address', type: 'object', help: 'Referral address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      {
        name: 'subnqn',
        type: 'string',
        help: "Subsystem NQN (default: the discovery NQN; 'discovery' can be used as shortcut for it)",
        cli: { flags: ['-n', '--subnqn'] },
      },
      {
        name: 'secure_channel',
        type: 'boolean',
        help: 'The referral requires a secure channel',
        cli: { flags: ['-k', '--secure-channel'], action: 'store_true' },
      },
      tgtNameP,
    ],
    cliTransform: (a) => discoveryAlias(addressFromCli(a, 'address'), 'subnqn'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        const address = addressOf(p, 'address');
        await getTarget().addReferral({
          address,
          subnqn: p.subnqn === undefined ? DISCOVERY_NQN : String(p.subnqn),
          secureChannel: p.secure_channel === true,
        });
        return true;
      }),
  },
  {
    name: 'nvmf_discovery_remove_referral',
    summary: 'Remove a discovery service referral',
    states: RUNTIME,
    params: [
      { name: 'address', type: 'object', help: 'Referral address: {trtype, adrfam, traddr, trsvcid}' },
      ...addressFlatParams,
      {
        name: 'subnqn',
        type: 'string',
        help: "Subsystem NQN (default: the discovery NQN; 'discovery' can be used as shortcut for it)",
        cli: { flags: ['-n', '--subnqn'] },
      },
      tgtNameP,
    ],
    cliTransform: (a) => discoveryAlias(addressFromCli(a, 'address'), 'subnqn'),
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        await getTarget().removeReferral(
          addressOf(p, 'address'),
          p.subnqn === undefined ? DISCOVERY_NQN : String(p.subnqn),
        );
        return true;
      }),
  },
  {
    name: 'nvmf_discovery_get_referrals',
    summary: 'Display discovery service referrals',
    states: RUNTIME,
    params: [{ ...tgtName, cli: { flags: ['-t', '--tgt-name'] } }],
    handler: (p: { tgt_name?: string }) =>
      run(() => {
        checkTgt(p);
        return getTarget().referrals.map((r) => ({
          address: { ...r.address },
          secure_channel: r.secureChannel,
          subnqn: r.subnqn,
        }));
      }),
  },
];
