// The module each worker reactor of nvmf_tgt runs (reactors 1..N-1): the same
// framework subsystem table that nvmf_tgt.ts hands reactor 0.

import { runReactorWorker } from '../event/reactor-worker.ts';
import { frameworkSubsystems } from '../modules/event/index.ts';

await runReactorWorker(frameworkSubsystems);
