// The keyring framework subsystem: SPDK's file keyring RPCs over src/keyring.
// save_config names each key's file, never its bytes.

import type { FrameworkSubsystem } from '../../event/subsystem.ts';
import { RpcError, type RpcMethod, RpcState } from '../../jsonrpc/index.ts';
import { type KeyInfo, KeyringError, keyring } from '../../keyring/index.ts';

/** SPDK answers keyring failures with the negative errno as the JSON-RPC code. */
function rpcFailure(e: unknown): never {
  if (e instanceof KeyringError) throw new RpcError(e.errno, e.message);
  throw e;
}

const addKey: RpcMethod<{ name: string; path: string }, boolean> = {
  name: 'keyring_file_add_key',
  summary: 'Add a file-based key to the keyring',
  states: RpcState.STARTUP | RpcState.RUNTIME,
  params: [
    { name: 'name', type: 'string', required: true, help: 'Name of the key', cli: { positional: true } },
    {
      name: 'path',
      type: 'string',
      required: true,
      help: 'Absolute path of the key file (mode 0600, owned by the target user)',
      cli: { positional: true },
    },
  ],
  handler(p) {
    try {
      keyring().addFileKey(p.name, p.path);
    } catch (e) {
      rpcFailure(e);
    }
    return true;
  },
};

const removeKey: RpcMethod<{ name: string }, boolean> = {
  name: 'keyring_file_remove_key',
  summary: 'Remove a file-based key from the keyring',
  states: RpcState.RUNTIME,
  params: [
    { name: 'name', type: 'string', required: true, help: 'Name of the key', cli: { positional: true } },
  ],
  handler(p) {
    try {
      keyring().removeKey(p.name);
    } catch (e) {
      rpcFailure(e);
    }
    return true;
  },
};

const getKeys: RpcMethod<Record<string, never>, KeyInfo[]> = {
  name: 'keyring_get_keys',
  summary: 'List the keys of the keyring (names and paths, never key bytes)',
  states: RpcState.RUNTIME,
  params: [],
  handler() {
    return keyring().list();
  },
};

export const keyringSubsystem: FrameworkSubsystem = {
  name: 'keyring',
  depends: [],
  async init() {},
  async fini() {
    keyring().clear();
  },
  writeConfigJson() {
    return keyring()
      .configEntries()
      .map((params) => ({ method: 'keyring_file_add_key', params }));
  },
  rpcMethods: [addKey, removeKey, getKeys],
};
