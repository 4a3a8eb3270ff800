// nvmf-perf's command line, spdk_nvme_perf's letters.

import { parseArgs } from 'node:util';
import { parseCpumask } from '../../event/cpumask.ts';
import { parseTransportId, type TransportId } from '../../nvme/index.ts';
import { UsageError } from '../../util/errors.ts';
import { isParseArgsError, parseInteger } from '../cli/args.ts';

export const WORKLOADS = ['read', 'write', 'randread', 'randwrite', 'rw', 'randrw'] as const;
export type Workload = (typeof WORKLOADS)[number];

export interface PerfConfig {
  trids: TransportId[];
  /** the -r strings as given, for labels */
  tridTexts: string[];
  queueDepth: number;
  ioSize: number;
  workload: Workload;
  random: boolean;
  /** percentage of reads, 0..100 */
  readPercent: number;
  timeSec: number;
  warmupSec: number;
  queuesPerNs: number;
  cores: number[];
  json: boolean;
  /** print the latency histogram of every row (spdk_nvme_perf's -LL) */
  histogram: boolean;
}

export const PERF_USAGE = `usage: nvmf-perf -r TRID [-r TRID…] [options]

Measures an NVMe/TCP target the way SPDK's spdk_nvme_perf does: DEPTH commands
kept outstanding on every queue, random or sequential offsets aligned to the
I/O size, latency in a log-linear histogram.

  -r, --transport-id TRID  target, SPDK's string form (repeatable), e.g.
                           'trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:4420
                            subnqn:nqn.2016-06.io.spdk:cnode1' (+ hdgst:true ddgst:true)
  -q, --io-depth N         commands outstanding per queue (default 32)
  -o, --io-size BYTES      I/O size, a multiple of the block size (default 4096)
  -w, --io-pattern P       read, write, randread, randwrite, rw, randrw (default randread)
  -M, --rwmixread PCT      percentage of reads for rw/randrw (default 50)
  -t, --time SEC           measured run time in seconds (default 10)
  -a, --warmup-time SEC    run this long first, not measured (default 0)
  -P, --num-qpairs N       I/O queues per namespace per worker (default 1)
  -c, --core-mask MASK     one worker thread per core in the mask: 0x3 or [0,1]
                           (default 0x1). Node.js cannot pin a thread to a core:
                           the mask sets how many workers run, the OS places them.
  -L, --latency-histogram  also print each row's latency histogram (non-empty buckets)
      --json               print the results as JSON
  -h, --help               this text
      --version            the version, then exit

Every worker runs all of its queues on the namespaces assigned to it (round
robin, as spdk_nvme_perf assigns them). A progress line is printed each
second when stdout is a terminal. Exit status: 0 when every I/O succeeded,
1 when any failed or the target could not be reached, 2 on bad arguments.
`;

export function parsePerfArgs(argv: string[]): PerfConfig | 'help' {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        'transport-id': { type: 'string', short: 'r', multiple: true },
        'io-depth': { type: 'string', short: 'q', default: '32' },
        'io-size': { type: 'string', short: 'o', default: '4096' },
        'io-pattern': { type: 'string', short: 'w', default: 'randread' },
        rwmixread: { type: 'string', short: 'M' },
        time: { type: 'string', short: 't', default: '10' },
        'warmup-time': { type: 'string', short: 'a', default: '0' },
        'num-qpairs': { type: 'string', short: 'P', default: '1' },
        'core-mask': { type: 'string', short: 'c', default: '0x1' },
        json: { type: 'boolean', default: false },
        'latency-histogram': { type: 'boolean', short: 'L', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    if (isParseArgsError(err)) throw new UsageError(err.message);
    throw err;
  }
  if (values.help) return 'help';
  const tridTexts = (values['transport-id'] as string[] | undefined) ?? [];
  if (tridTexts.length === 0) throw new UsageError('-r TRID is required');
  const trids = tridTexts.map((t) => {
    try {
      return parseTransportId(t);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  });
  const workload = values['io-pattern'] as Workload;
  if (!WORKLOADS.includes(workload))
    throw new UsageError(`-w must be one of ${WORKLOADS.join(', ')}, not "${workload}"`);
  const mixed = workload === 'rw' || workload === 'randrw';
  let readPercent = workload.endsWith('read') ? 100 : workload.endsWith('write') ? 0 : 50;
  if (values.rwmixread !== undefined) {
    if (!mixed) throw new UsageError('-M applies to rw and randrw only');
    readPercent = parseInteger('rwmixread', values.rwmixread as string, 0, 100);
  }
  let cores: number[];
  try {
    cores = parseCpumask(values['core-mask'] as string);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const ioSize = parseInteger('io-size', values['io-size'] as string, 512, 1 << 24);
  if (ioSize % 512 !== 0) throw new UsageError('-o must be a multiple of 512');
  return {
    trids,
    tridTexts,
    queueDepth: parseInteger('io-depth', values['io-depth'] as string, 1, 65536),
    ioSize,
    workload,
    random: workload.startsWith('rand'),
    readPercent,
    timeSec: parseInteger('time', values.time as string, 1, 86400),
    warmupSec: parseInteger('warmup-time', values['warmup-time'] as string, 0, 3600),
    queuesPerNs: parseInteger('num-qpairs', values['num-qpairs'] as string, 1, 64),
    cores,
    json: values.json === true,
    histogram: values['latency-histogram'] === true,
  };
}
