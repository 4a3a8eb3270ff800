// Entry point of a worker reactor: the same module tables as the main
// realm, the realm loop, and each subsystem's realmInit.

import { parentPort, workerData } from 'node:worker_threads';
import { frameworkSubsystems } from '../modules/event/index.ts';
import { configureLogging, logger } from '../util/log.ts';
import { startReactorRealm, type WorkerCommand, type WorkerInit, type WorkerReport } from './reactors.ts';
import { collectRpcMethods } from './rpc-methods.ts';

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error('reactor-worker.ts must run in a worker thread');

configureLogging(init.log, init.reactor);
const log = logger('reactor');

const report = (m: WorkerReport): void => port.postMessage(m);

try {
  const realm = startReactorRealm(init.reactor, init.reactorCount, init.ports, init.sharedIds);
  // evaluate the same tables as the main realm so handler and iterator names resolve here too
  collectRpcMethods(frameworkSubsystems);
  for (const s of frameworkSubsystems) await s.realmInit?.();
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
