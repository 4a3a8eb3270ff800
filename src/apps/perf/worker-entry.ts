// Worker-thread entry of nvmf-perf: connect the plan's queues, say "ready",
// run on "go", post the result, close the queues (the thread then ends).
//
// Messages to the parent: { type: 'ready' } | { type: 'progress', ios }
// | { type: 'result', result } | { type: 'error', message }.

import { parentPort, workerData } from 'node:worker_threads';
import { PerfWorker, type WorkerPlan } from './job.ts';

const port = parentPort!;
const worker = new PerfWorker(workerData as WorkerPlan);

try {
  await worker.connect();
  port.once('message', async (msg: { type: string }) => {
    if (msg.type !== 'go') {
      worker.close();
      port.close();
      return;
    }
    const result = await worker.run((ios) => port.postMessage({ type: 'progress', ios }));
    port.postMessage({ type: 'result', result });
    worker.close();
    port.close();
  });
  port.postMessage({ type: 'ready' });
} catch (err) {
  port.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  port.close();
}
