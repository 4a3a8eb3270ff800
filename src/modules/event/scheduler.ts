// The scheduler subsystem: nvmf-ts keeps threads where they are created
// (SPDK's "static" scheduler); the RPC stores the choice for save_config.

import type { FrameworkSubsystem } from '../../event/subsystem.ts';
import { RpcError, type RpcMethod, RpcState } from '../../jsonrpc/index.ts';

const KNOWN = ['static'] as const;
let scheduler: { name: string; period?: number } = { name: 'static' };

const setScheduler: RpcMethod<{ name: string; period?: number }, boolean> = {
  name: 'framework_set_scheduler',
  summary: 'Select thread scheduler that will be activated',
  states: RpcState.STARTUP | RpcState.RUNTIME,
  params: [
    { name: 'name', type: 'string', required: true, help: 'Name of a scheduler', cli: { positional: true } },
    {
      name: 'period',
      type: 'integer',
      min: 1,
      help: 'Scheduler period in microseconds',
      cli: { flags: ['-p', '--period'] },
    },
  ],
  handler(p) {
    if (!(KNOWN as readonly string[]).includes(p.name)) {
      throw new RpcError(-32602, `scheduler '${p.name}' is not available (have: ${KNOWN.join(', ')})`);
    }
    scheduler = p.period === undefined ? { name: p.name } : { name: p.name, period: p.period };
    return true;
  },
};

const getScheduler: RpcMethod<Record<string, never>, Record<string, unknown>> = {
  name: 'framework_get_scheduler',
  summary: 'Display currently set scheduler and its properties',
  states: RpcState.RUNTIME,
  params: [],
  handler() {
    return { scheduler_name: scheduler.name, scheduler_period: scheduler.period ?? 0 };
  },
};

export const schedulerSubsystem: FrameworkSubsystem = {
  name: 'scheduler',
  depends: [],
  async init() {},
  async fini() {},
  writeConfigJson() {
    return [{ method: 'framework_set_scheduler', params: { ...scheduler } }];
  },
  rpcMethods: [setScheduler, getScheduler],
};
