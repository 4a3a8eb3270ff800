// The framework subsystem table: every subsystem the app starts, in the
// order SPDK lists them; dependencies decide the final init order. nvmf_tgt
// (src/apps/nvmf_tgt.ts) hands it to the framework, which imports no plug-in.

import { collectRpcMethods } from '../../event/rpc-methods.ts';
import type { FrameworkSubsystem } from '../../event/subsystem.ts';
import type { RpcMethod } from '../../jsonrpc/index.ts';
import { accelSubsystem } from './accel.ts';
import { bdevSubsystem } from './bdev.ts';
import { iobufSubsystem } from './iobuf.ts';
import { keyringSubsystem } from './keyring.ts';
import { metricsSubsystem } from './metrics/index.ts';
import { nvmfSubsystem } from './nvmf.ts';
import { schedulerSubsystem } from './scheduler.ts';
import { sockSubsystem } from './sock.ts';

export const frameworkSubsystems: FrameworkSubsystem[] = [
  schedulerSubsystem,
  sockSubsystem,
  iobufSubsystem,
  keyringSubsystem,
  accelSubsystem,
  bdevSubsystem,
  nvmfSubsystem,
  metricsSubsystem,
];

/** Every RPC method of nvmf_tgt: the framework's and each subsystem's (the server registers
 * these; the nvmf-rpc CLI, docs/rpc.md and the tests read the same table). */
export function rpcMethodTable(): RpcMethod[] {
  return collectRpcMethods(frameworkSubsystems);
}
