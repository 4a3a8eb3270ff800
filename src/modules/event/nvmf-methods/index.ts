// nvmf_* JSON-RPC methods: SPDK's names, parameters and result shapes
// (python/spdk/rpc/nvmf.py, doc/jsonrpc.md), in parts grouped as SPDK's
// lib/nvmf/nvmf_rpc.c groups them. All run on the app thread.

import type { RpcMethod } from '../../../jsonrpc/index.ts';
import { dhchapMethods } from './dhchap.ts';
import { hostAndNamespaceMethods } from './hosts-namespaces.ts';
import { listenerMethods } from './listeners.ts';
import { subsystemMethods } from './subsystems.ts';
import { targetConfigMethods } from './target-config.ts';
import { transportMethods } from './transports.ts';

export { subsystemConfigEntries } from './subsystems.ts';
export { transportConfigEntry } from './transports.ts';

export const nvmfRpcMethods: RpcMethod[] = [
  ...transportMethods,
  ...subsystemMethods,
  ...listenerMethods,
  ...hostAndNamespaceMethods,
  ...dhchapMethods,
  ...targetConfigMethods,
];
