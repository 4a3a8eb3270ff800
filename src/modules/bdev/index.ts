// The table of bdev modules nvmf-ts ships: each entry is the module (its
// replica builder and config write-out) and its RPC methods. The bdev
// framework subsystem registers them; nothing registers by import.

import type { BdevModule } from '../../bdev/module.ts';
import type { RpcMethod } from '../../jsonrpc/index.ts';
import { aioModule } from './aio/aio.ts';
import { aioRpcMethods } from './aio/rpc.ts';
import { delayModule } from './delay/delay.ts';
import { delayRpcMethods } from './delay/rpc.ts';
import { errorModule } from './error/error.ts';
import { errorRpcMethods } from './error/rpc.ts';
import { mallocModule } from './malloc/malloc.ts';
import { mallocRpcMethods } from './malloc/rpc.ts';
import { nullModule } from './null/null.ts';
import { nullRpcMethods } from './null/rpc.ts';
import { nvmeModule } from './nvme/controller-record.ts';
import { nvmeRpcMethods } from './nvme/rpc.ts';
import { passthruModule } from './passthru/passthru.ts';
import { passthruRpcMethods } from './passthru/rpc.ts';
import { rbdModule } from './rbd/rbd.ts';
import { rbdRpcMethods } from './rbd/rpc.ts';

export interface BdevModuleEntry {
  module: BdevModule;
  rpcMethods: RpcMethod[];
}

export const bdevModuleTable: BdevModuleEntry[] = [
  { module: mallocModule, rpcMethods: mallocRpcMethods },
  { module: nullModule, rpcMethods: nullRpcMethods },
  { module: aioModule, rpcMethods: aioRpcMethods },
  { module: passthruModule, rpcMethods: passthruRpcMethods },
  { module: delayModule, rpcMethods: delayRpcMethods },
  { module: errorModule, rpcMethods: errorRpcMethods },
  { module: nvmeModule, rpcMethods: nvmeRpcMethods },
  { module: rbdModule, rpcMethods: rbdRpcMethods },
];
