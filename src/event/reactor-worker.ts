// What a worker reactor runs: its realm (the port mesh, shared thread ids),
// the same subsystem table as the main realm, so that handler and iterator
// names resolve here too, each subsystem's realmInit, then the realm loop
// until the main realm says stop. The framework does not import its plug-ins:
// the app's worker module (src/apps/nvmf_tgt-reactor.ts) passes the table in.

import { parentPort, workerData } from 'node:worker_threads';
import { InvalidStateError } from '../util/errors.ts';
import { configureLogging, logger } from '../util/log.ts';
import { startReactorRealm, type WorkerCommand, type WorkerInit, type WorkerReport } from './reactors.ts';
import { collectRpcMethods } from './rpc-methods.ts';
import type { FrameworkSubsystem } from './subsystem.ts';

/** Run this worker thread as a reactor serving `subsystems` (the table reactor 0 was given). */
export async function runReactorWorker(subsystems: readonly FrameworkSubsystem[]): Promise<void> {
  const init = workerData as WorkerInit;
  const port = parentPort;
  if (port === null) throw new InvalidStateError('runReactorWorker must run in a worker thread');

  configureLogging(init.log, init.reactor);
  const log = logger('reactor');

  const report = (m: WorkerReport): void => port.postMessage(m);

  try {
    const realm = startReactorRealm(
      init.reactor,
      init.reactorCount,
      init.ports,
      init.sharedIds,
      init.pollWindowUs,
    );
    // evaluate the same tables as the main realm so handler and iterator names resolve here too
    collectRpcMethods(subsystems);
    for (const s of subsystems) await s.realmInit?.();
    port.on('message', (m: WorkerCommand) => {
      if (m.k !== 'stop') return;
      log.info(`reactor ${init.reactor} stopping`);
      realm.stop();
      port.close();
      // sockets or timers left by subsystems must not keep the worker alive
      setImmediate(() => process.exit(0));
    });
    report({ k: 'ready' });
  } catch (e) {
    report({ k: 'error', message: e instanceof Error ? e.message : String(e) });
  }
}
