// Starting and stopping reactors: reactor 0 is this (main) thread, every
// other reactor a worker thread. Each pair of reactors gets a MessagePort
// pair (full mesh); thread ids come from one shared counter.

import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { getIoChannel, type Realm, registerIoDevice, startRealm } from '../thread/index.ts';
import { InvalidArgumentError, NvmfTsError } from '../util/errors.ts';
import { type LogConfig, logger } from '../util/log.ts';

const log0 = logger('reactor');

/** A worker reactor failed to start: it reported an error, crashed or exited before it was ready. */
export class ReactorStartError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_REACTOR_START';
  constructor(message: string, options?: ErrorOptions) {
    super('NVMF_ERR_REACTOR_START', message, options);
  }
}

/** Every realm's default thread holds a channel on this device, so a forEachChannel over it visits each reactor once. */
export const REACTOR_DEVICE = 'framework.reactor';

export interface WorkerInit {
  reactor: number;
  reactorCount: number;
  cores: number[];
  ports: Array<MessagePort | undefined>;
  sharedIds: Int32Array;
  log: LogConfig;
  pollWindowUs: number | undefined;
}

export type WorkerReport = { k: 'ready' } | { k: 'error'; message: string } | { k: 'stopped' };
export type WorkerCommand = { k: 'stop' };

/** Set up the realm of this thread (main or worker) and its reactor device channel. */
export function startReactorRealm(
  reactor: number,
  reactorCount: number,
  ports: Array<MessagePort | undefined>,
  sharedIds: Int32Array,
  pollWindowUs?: number,
): Realm {
  const realm = startRealm({
    reactor,
    reactorCount,
    ports,
    sharedIds,
    pollWindowUs,
    defaultThreadName: reactor === 0 ? 'app_thread' : `reactor_${reactor}`,
  });
  registerIoDevice(
    REACTOR_DEVICE,
    () => ({ reactor }),
    () => {},
    'reactor',
  );
  getIoChannel(REACTOR_DEVICE);
  return realm;
}

export interface Reactors {
  readonly realm: Realm;
  readonly cores: readonly number[];
  stop(): Promise<void>;
}

/**
 * Start reactor 0 here and one worker per other core, each running `workerEntry`: the app's
 * module that calls runReactorWorker (reactor-worker.ts) with the same subsystem table as
 * reactor 0. `onLost` is called if a worker reactor dies while running (not when stop() ends it).
 */
export async function startReactors(
  cores: number[],
  log: LogConfig,
  workerEntry: URL | undefined,
  onLost: (reactor: number, reason: string) => void = () => {},
  pollWindowUs?: number,
): Promise<Reactors> {
  const n = cores.length;
  if (n > 1 && workerEntry === undefined) {
    throw new InvalidArgumentError(
      'more than one reactor: the app must name the module its worker reactors run',
    );
  }
  const mesh: Array<Array<MessagePort | undefined>> = Array.from({ length: n }, () =>
    new Array(n).fill(undefined),
  );
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const ch = new MessageChannel();
      mesh[i][j] = ch.port1;
      mesh[j][i] = ch.port2;
    }
  }
  const sharedIds = new Int32Array(new SharedArrayBuffer(4));
  const realm = startReactorRealm(0, n, mesh[0], sharedIds, pollWindowUs);
  log0.info(`reactor 0 started on core ${cores[0]}`);

  const workers: Worker[] = [];
  const ready: Array<Promise<void>> = [];
  for (let r = 1; r < n && workerEntry !== undefined; r++) {
    const ports = mesh[r];
    const init: WorkerInit = { reactor: r, reactorCount: n, cores, ports, sharedIds, log, pollWindowUs };
    const w = new Worker(workerEntry, {
      workerData: init,
      transferList: ports.filter((p): p is MessagePort => p !== undefined),
      name: `reactor_${r}`,
    });
    workers.push(w);
    ready.push(
      new Promise<void>((resolve, reject) => {
        const onMsg = (m: WorkerReport): void => {
          if (m.k === 'ready') {
            log0.info(`reactor ${r} started on core ${cores[r]}`);
            resolve();
          } else if (m.k === 'error') reject(new ReactorStartError(`reactor ${r}: ${m.message}`));
        };
        w.on('message', onMsg);
        w.once('error', (e: Error) =>
          reject(new ReactorStartError(`reactor ${r} failed: ${e.message}`, { cause: e })),
        );
        w.once('exit', (code) =>
          reject(new ReactorStartError(`reactor ${r} exited during start-up (code ${code})`)),
        );
      }),
    );
  }

  const alive = new Set<Worker>(workers);
  let stopping = false;
  for (const [i, w] of workers.entries()) {
    w.once('exit', (code) => {
      alive.delete(w);
      if (!stopping) onLost(i + 1, `exited with code ${code}`);
    });
  }
  const stopWorkers = async (): Promise<void> => {
    stopping = true;
    await Promise.all(
      [...alive].map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve());
            w.postMessage({ k: 'stop' } satisfies WorkerCommand);
            // a worker stuck in a loop must not hold the shutdown forever
            setTimeout(() => void w.terminate(), 5000).unref();
          }),
      ),
    );
  };

  try {
    await Promise.all(ready);
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    realm.stop();
    throw e;
  }
  for (const w of workers) {
    w.removeAllListeners('error');
    w.on('error', (e: Error) => log0.error(`worker reactor failed: ${e.message}`));
  }

  return {
    realm,
    cores,
    async stop() {
      await stopWorkers();
      realm.stop();
    },
  };
}
