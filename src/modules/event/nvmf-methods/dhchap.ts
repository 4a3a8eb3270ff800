// DH-HMAC-CHAP keys of a subsystem's hosts (SPDK's nvmf_rpc.c): the keyring
// names nvmf_subsystem_add_host and nvmf_subsystem_set_keys take
// (dhchap_key, dhchap_ctrlr_key), turned into keyring references the
// subsystem keeps; the bytes are read when a host authenticates.

import { type ParamSpec, RpcError, type RpcMethod } from '../../../jsonrpc/index.ts';
import { KeyringError, keyring, parseDhchapSecret } from '../../../keyring/index.ts';
import type { HostKeys } from '../../../nvmf/subsystem.ts';
import { getTarget } from '../../../nvmf/target.ts';
import { checkTgt, nqnPos, RUNTIME, run, tgtName } from './common.ts';

export const dhchapKeyParams: ParamSpec[] = [
  {
    name: 'dhchap_key',
    type: 'string',
    help: 'DH-HMAC-CHAP key name (keyring): the host must authenticate with it',
    cli: { flags: ['--dhchap-key'] },
  },
  {
    name: 'dhchap_ctrlr_key',
    type: 'string',
    help: 'DH-HMAC-CHAP controller key name (keyring): the controller proves itself with it when asked',
    cli: { flags: ['--dhchap-ctrlr-key'] },
  },
];

/** SPDK answers an unknown key with Invalid Parameters. */
function keyRef(name: string, what: string) {
  let ref: ReturnType<ReturnType<typeof keyring>['get']>;
  try {
    ref = keyring().get(name);
  } catch (e) {
    if (e instanceof KeyringError) throw new RpcError(-32602, `Unable to find ${what}: ${name}`);
    throw e;
  }
  try {
    // a key that is not a DHHC-1 secret would only fail at the first authentication
    parseDhchapSecret(ref.read());
  } catch (e) {
    ref.put();
    throw new RpcError(-32602, `${what} ${name} is not usable: ${(e as Error).message}`);
  }
  return ref;
}

/** The keyring references for the names in `p` (absent: null); the caller owns them. */
export function takeHostKeys(p: { dhchap_key?: unknown; dhchap_ctrlr_key?: unknown }): HostKeys {
  const dhchapKey = p.dhchap_key === undefined ? null : keyRef(String(p.dhchap_key), 'DH-HMAC-CHAP key');
  try {
    const dhchapCtrlrKey =
      p.dhchap_ctrlr_key === undefined ? null : keyRef(String(p.dhchap_ctrlr_key), 'DH-HMAC-CHAP ctrlr key');
    return { dhchapKey, dhchapCtrlrKey };
  } catch (e) {
    dhchapKey?.put();
    throw e;
  }
}

export function releaseHostKeys(k: HostKeys): void {
  k.dhchapKey?.put();
  k.dhchapCtrlrKey?.put();
}

/** What nvmf_get_subsystems and save_config show of a host's keys: their names. */
export function hostKeyNames(k: HostKeys | undefined): Record<string, string> {
  return {
    ...(k?.dhchapKey ? { dhchap_key: k.dhchapKey.name } : {}),
    ...(k?.dhchapCtrlrKey ? { dhchap_ctrlr_key: k.dhchapCtrlrKey.name } : {}),
  };
}

export const dhchapMethods: RpcMethod[] = [
  {
    name: 'nvmf_subsystem_set_keys',
    summary: "Set the DH-HMAC-CHAP keys of a subsystem's host (used from its next authentication)",
    states: RUNTIME,
    params: [
      nqnPos,
      { name: 'host', type: 'string', required: true, help: 'Host NQN', cli: { positional: true } },
      tgtName,
      ...dhchapKeyParams,
    ],
    handler: (p: Record<string, unknown>) =>
      run(async () => {
        checkTgt(p as { tgt_name?: string });
        getTarget().getSubsystem(String(p.nqn));
        const keys = takeHostKeys(p);
        try {
          await getTarget().setHostKeys(String(p.nqn), String(p.host), keys);
        } catch (e) {
          releaseHostKeys(keys);
          // SPDK: -EINVAL with strerror's text
          throw new RpcError(-22, `Invalid argument: ${(e as Error).message}`);
        }
        return true;
      }),
  },
];
