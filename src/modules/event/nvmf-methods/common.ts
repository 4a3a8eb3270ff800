// What every part of the nvmf_* method table shares: the error mapping, the
// target name parameter, the subsystem NQN parameter, the RPC states.

import { type ParamSpec, RpcError, RpcState } from '../../../jsonrpc/index.ts';
import { NvmfError } from '../../../nvmf/errors.ts';

export const RUNTIME = RpcState.RUNTIME;
export const ANY_STATE = RpcState.STARTUP | RpcState.RUNTIME;

/** Run a handler's body: target errors keep their errno as the JSON-RPC code, anything else is -32603. */
export async function run<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof RpcError) throw e;
    if (e instanceof NvmfError) throw new RpcError(e.errno, e.message);
    throw new RpcError(-32603, (e as Error)?.message ?? String(e));
  }
}

export function invalid(msg: string): never {
  throw new RpcError(-32602, msg);
}

export const tgtName: ParamSpec = {
  name: 'tgt_name',
  type: 'string',
  help: 'Parent NVMe-oF target name (only the default target exists)',
  cli: { flags: ['-t', '--tgt-name'] },
};
export const tgtNameG: ParamSpec = { ...tgtName, cli: { flags: ['-g', '--tgt-name'] } };
export const tgtNameP: ParamSpec = { ...tgtName, cli: { flags: ['-p', '--tgt-name'] } };
export const nqnPos: ParamSpec = {
  name: 'nqn',
  type: 'string',
  required: true,
  help: 'Subsystem NQN',
  cli: { positional: true },
};

export function checkTgt(p: { tgt_name?: string }): void {
  if (p.tgt_name !== undefined && p.tgt_name !== 'nvmf_tgt' && p.tgt_name !== '') {
    throw new RpcError(-19, `Unable to find a target named ${p.tgt_name}`);
  }
}
