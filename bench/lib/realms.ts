// A small multi-reactor setup for the bdev bench and the bdev real-reactor
// tests: this process is reactor 0, each other reactor is a worker running
// bench/lib/realm-worker.ts; all realms load the bdev module table (and the
// sparse example) and run the real reactor loop of src/thread/realm.ts.

import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { bdevModuleEntry as sparseEntry } from '../../examples/sparse-bdev/sparse.ts';
import { registerBdevModule } from '../../src/bdev/module.ts';
import { bdevModuleTable } from '../../src/modules/bdev/index.ts';
import { type Realm, startRealm } from '../../src/thread/index.ts';

export function registerAllBdevModules(): void {
  for (const e of [...bdevModuleTable, sparseEntry]) registerBdevModule(e.module);
}

export interface Reactors {
  realm: Realm;
  workers: Worker[];
  stop(): Promise<void>;
}

export async function startReactors(count: number): Promise<Reactors> {
  registerAllBdevModules();
  const sharedIds = new Int32Array(new SharedArrayBuffer(4));
  // full mesh: ports[a][b] is a's end of the a<->b channel
  const ports: Array<Array<MessagePort | undefined>> = Array.from({ length: count }, () => new Array(count));
  for (let a = 0; a < count; a++) {
    for (let b = a + 1; b < count; b++) {
      const ch = new MessageChannel();
      ports[a][b] = ch.port1;
      ports[b][a] = ch.port2;
    }
  }
  const workers: Worker[] = [];
  const ready: Promise<void>[] = [];
  for (let r = 1; r < count; r++) {
    const own = ports[r].filter((p): p is MessagePort => p !== undefined);
    const w = new Worker(new URL('./realm-worker.ts', import.meta.url), {
      workerData: { reactor: r, reactorCount: count, sharedIds, ports: ports[r] },
      transferList: own as never,
    });
    ready.push(
      new Promise((resolve, reject) => {
        w.once('message', () => resolve());
        w.once('error', reject);
      }),
    );
    workers.push(w);
  }
  await Promise.all(ready);
  const realm = startRealm({
    reactor: 0,
    reactorCount: count,
    ports: ports[0],
    sharedIds,
    defaultThreadName: 'app_thread',
  });
  return {
    realm,
    workers,
    async stop() {
      realm.stop();
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
