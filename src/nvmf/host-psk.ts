// A host's TLS PSK on a subsystem (nvmf_subsystem_add_host --psk KEYNAME), as
// the app thread keeps it: the keyring reference (the key stays while the host
// has it, as SPDK holds it) and the TLS PSKs derived from it when the host was
// added, one per identity version the target accepts. The poll groups get the
// TLS PSKs with each snapshot; save_config and the RPCs show only the name.

import {
  type KeyRef,
  KeyringError,
  keyring,
  parsePskInterchange,
  type TlsPsk,
  TlsPskHash,
  tlsPsk,
  tlsPskHashOf,
} from '../keyring/index.ts';
import { NvmfTsError } from '../util/errors.ts';
import { NvmfError } from './errors.ts';

export interface HostPsk {
  /** the keyring name (what save_config and nvmf_get_subsystems show) */
  readonly keyName: string;
  readonly ref: KeyRef;
  /** the identities a host may offer with this key (versions 0 and 1) and their TLS PSKs */
  readonly psks: TlsPsk[];
}

const EINVAL = -22;
const EOPNOTSUPP = -95;

/** Take the keyring's key `keyName` as `hostnqn`'s PSK for `subnqn`; throws NvmfError naming the problem. */
export function loadHostPsk(keyName: string, hostnqn: string, subnqn: string): HostPsk {
  let ref: KeyRef;
  try {
    ref = keyring().get(keyName);
  } catch (e) {
    if (e instanceof KeyringError) throw new NvmfError(`PSK '${keyName}': ${e.message}`, EINVAL);
    throw e;
  }
  try {
    const key = parsePskInterchange(ref.read());
    if (tlsPskHashOf(key) === TlsPskHash.SHA384) {
      throw new NvmfError(
        `PSK '${keyName}' is a 48-byte (SHA-384) key, which needs TLS_AES_256_GCM_SHA384: Node's TLS binds ` +
          'every external PSK to SHA-256 (OpenSSL PSK callback), so only 32-byte keys (TLS_AES_128_GCM_SHA256) work',
        EOPNOTSUPP,
      );
    }
    return { keyName, ref, psks: [tlsPsk(key, hostnqn, subnqn, 0), tlsPsk(key, hostnqn, subnqn, 1)] };
  } catch (e) {
    ref.put();
    if (e instanceof NvmfError) throw e;
    // the key's format, the keyring's file checks, NQNs too long for an identity: never the key itself
    if (e instanceof NvmfTsError) throw new NvmfError(`PSK '${keyName}': ${e.message}`, EINVAL);
    throw e;
  }
}
