// Worker side of bench/lib/realms.ts: one reactor realm.

import { parentPort, workerData } from 'node:worker_threads';
import { startRealm } from '../../src/thread/index.ts';
import './bdev-job.ts'; // named handlers must exist in every realm
import './remote-ops.ts';
import { registerAllBdevModules } from './realms.ts';

registerAllBdevModules();
const d = workerData as {
  reactor: number;
  reactorCount: number;
  sharedIds: Int32Array;
  ports: Array<import('node:worker_threads').MessagePort | undefined>;
};
startRealm({
  reactor: d.reactor,
  reactorCount: d.reactorCount,
  ports: d.ports,
  sharedIds: d.sharedIds,
  defaultThreadName: `reactor_${d.reactor}`,
});
parentPort?.postMessage('ready');
