// A real nvmf_tgt with a secure-channel (TLS 1.3) listener, for the TLS tests:
// the default configuration (cnode1 on a plain port, any host; the discovery
// subsystem on that port too) plus TLS_NQN
// (a 16 MiB malloc namespace) on its own port with --secure-channel, where
// TLS_HOST has the PSK TLS_KEY (keyring key "key0") and TLS_PLAIN_HOST is
// allowed but has no PSK.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePskInterchange, type TlsPsk, tlsPsk } from '../../src/keyring/index.ts';
import { DISCOVERY_NQN } from '../../src/wire/discovery.ts';
import { ChildTarget, type ChildTargetOptions, freePort } from './child-target.ts';

export const TLS_NQN = 'nqn.2016-06.io.nvmf-ts:tls';
export const TLS_HOST = 'nqn.2014-08.org.nvmexpress:uuid:7a1e0001-0000-4000-8000-0000000000a1';
export const TLS_PLAIN_HOST = 'nqn.2014-08.org.nvmexpress:uuid:7a1e0001-0000-4000-8000-0000000000a2';
/** nvme-cli's documented example PSK (SHA-256, 32 bytes) */
export const TLS_KEY = 'NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:';
export const TLS_KEY_NAME = 'key0';
export const TLS_BDEV = 'TlsMalloc';
export const TLS_NUM_BLOCKS = 32768;

/** The identity and TLS PSK a host offers with TLS_KEY (version 0 unless asked). */
export function tlsClientPsk(hostnqn = TLS_HOST, subnqn = TLS_NQN, version: 0 | 1 = 0): TlsPsk {
  return tlsPsk(parsePskInterchange(TLS_KEY), hostnqn, subnqn, version);
}

export interface TlsTarget {
  target: ChildTarget;
  /** the secure-channel listener's port */
  tlsPort: string;
}

/** The secure-channel listener of TLS_NQN on 127.0.0.1:port (the RPC's parameters). */
export function tlsListener(port: string, nqn = TLS_NQN) {
  return {
    nqn,
    listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: port },
    secure_channel: true,
  };
}

/** Start nvmf_tgt with the default configuration, then add TLS_NQN behind a TLS listener by RPC. */
export async function startTlsTarget(o: ChildTargetOptions = {}): Promise<TlsTarget> {
  const target = await ChildTarget.start(o);
  try {
    const keyPath = join(target.dir, TLS_KEY_NAME);
    writeFileSync(keyPath, `${TLS_KEY}\n`, { mode: 0o600 });
    await target.call('keyring_file_add_key', { name: TLS_KEY_NAME, path: keyPath });
    await target.call('bdev_malloc_create', { name: TLS_BDEV, num_blocks: TLS_NUM_BLOCKS, block_size: 512 });
    await target.call('nvmf_create_subsystem', { nqn: TLS_NQN, allow_any_host: false });
    await target.call('nvmf_subsystem_add_ns', { nqn: TLS_NQN, namespace: { nsid: 1, bdev_name: TLS_BDEV } });
    await target.call('nvmf_subsystem_add_host', { nqn: TLS_NQN, host: TLS_HOST, psk: TLS_KEY_NAME });
    await target.call('nvmf_subsystem_add_host', { nqn: TLS_NQN, host: TLS_PLAIN_HOST });
    await target.call('nvmf_subsystem_add_listener', {
      nqn: DISCOVERY_NQN,
      listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: target.port },
    });
    const tlsPort = String(await freePort());
    await target.call('nvmf_subsystem_add_listener', tlsListener(tlsPort));
    return { target, tlsPort };
  } catch (e) {
    await target.dispose();
    throw e;
  }
}
