// Instructions per reactor-loop iteration, for changes to src/thread/realm.ts that
// target-inprocess.ts cannot see (it drives the threads with the test harness, not the
// loop). One realm with three threads, as nvmf_tgt's reactor 0 has (the app thread, a
// poll group, the bdev control thread), and one active poller, busy every other
// iteration, so the loop alternates busy and idle iterations as a loaded target does
// (the poll window keeps it iterating). Stops after --iterations polls. Count
// instructions as for target-inprocess.ts: two runs under valgrind, divided by the
// difference of --iterations; never gates CI.
//
//   valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//     node --predictable --hash-seed=1 --random-seed=1 bench/reactor-loop.ts --iterations 50000
//     # and --iterations 250000

import { parseArgs } from 'node:util';
import { PollerStatus, registerPoller, spawnThread, startRealm } from '../src/thread/index.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '100000' } } });
const total = Number(values.iterations);

const realm = startRealm({
  reactor: 0,
  reactorCount: 1,
  ports: [undefined],
  sharedIds: new Int32Array(new SharedArrayBuffer(4)),
  defaultThreadName: 'app_thread',
  pollWindowUs: 1e9,
});
spawnThread('poll_group', 0, () => {});
spawnThread('bdev', 0, () => {});
let polls = 0;
const start = process.threadCpuUsage();
await new Promise<void>((resolve) => {
  registerPoller(
    () => {
      if (++polls === total) {
        realm.stop();
        resolve();
      }
      return polls & 1 ? PollerStatus.BUSY : PollerStatus.IDLE;
    },
    0,
    'alternate',
  );
});
const cpu = process.threadCpuUsage(start);
console.log(
  `${realm.iterations()} iterations, ${(((cpu.user + cpu.system) * 1000) / total).toFixed(1)} ns CPU each`,
);
process.exit(0);
