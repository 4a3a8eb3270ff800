// Framework subsystems: named, with dependencies; started in dependency
// order (each init completes asynchronously), stopped in reverse.

import type { RpcMethod } from '../jsonrpc/index.ts';
import type { ThreadRef } from '../thread/index.ts';
import { DuplicateNameError, InvalidArgumentError, NotRegisteredError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';

export interface App {
  logger(component: string): Logger;
  /** core ids of the reactors, index = reactor number */
  readonly cores: readonly number[];
  readonly reactorCount: number;
  /** the app thread (reactor 0): start-up, RPCs, registries */
  readonly appThread: ThreadRef;
}

export interface ConfigEntry {
  method: string;
  params?: Record<string, unknown>;
}

export interface FrameworkSubsystem {
  name: string;
  depends: string[];
  /** runs in EVERY realm (main + each worker) before any init */
  realmInit?(): void | Promise<void>;
  /** app thread, dependency order */
  init(app: App): Promise<void>;
  /** app thread, reverse order */
  fini(app: App): Promise<void>;
  writeConfigJson(): ConfigEntry[];
  rpcMethods?: RpcMethod[];
}

/**
 * Order subsystems so each comes after its dependencies, depth first in table order
 * otherwise. Throws naming the missing dependency or the cycle.
 */
export function orderSubsystems(table: readonly FrameworkSubsystem[]): FrameworkSubsystem[] {
  const byName = new Map<string, FrameworkSubsystem>();
  for (const s of table) {
    if (byName.has(s.name)) throw new DuplicateNameError(`framework subsystem '${s.name}' is listed twice`);
    byName.set(s.name, s);
  }
  for (const s of table) {
    for (const d of s.depends) {
      if (!byName.has(d))
        throw new NotRegisteredError(
          `framework subsystem '${s.name}' depends on '${d}', which does not exist`,
        );
    }
  }
  const out: FrameworkSubsystem[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (s: FrameworkSubsystem, path: string[]): void => {
    const st = state.get(s.name);
    if (st === 'done') return;
    if (st === 'visiting') {
      const cycle = [...path.slice(path.indexOf(s.name)), s.name];
      throw new InvalidArgumentError(`framework subsystems have a dependency cycle: ${cycle.join(' -> ')}`);
    }
    state.set(s.name, 'visiting');
    for (const d of s.depends) visit(byName.get(d) as FrameworkSubsystem, [...path, s.name]);
    state.set(s.name, 'done');
    out.push(s);
  };
  for (const s of table) visit(s, []);
  return out;
}
