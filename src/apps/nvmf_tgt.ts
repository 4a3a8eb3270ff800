// nvmf_tgt: the NVMe-oF target application (command line -> Application).

import { closeSync, openSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Application } from '../event/app.ts';
import { parseCpumask } from '../event/cpumask.ts';
import { frameworkSubsystems } from '../modules/event/index.ts';
import { configureMetrics } from '../modules/event/metrics/index.ts';
import { checkLogFlag, LogLevel, logger, parseLogLevel } from '../util/log.ts';
import { parseByteSize } from '../util/size.ts';
import { parseNtCopyThreshold } from './copy-tuning.ts';

const USAGE = `usage: nvmf_tgt [options]
  -m, --cpumask MASK      reactor cores: hex mask (0x3) or list ([0,1]); default 0x1
  -r, --rpc-socket PATH   JSON-RPC Unix socket (default /var/tmp/spdk.sock)
  -c, --json FILE         replay a configuration saved by save_config
      --wait-for-rpc      wait for framework_start_init before initializing subsystems
      --poll-window-us N  keep polling N µs after activity before a reactor sleeps
                          (default 100; 0: sleep as soon as idle)
      --nt-copy-threshold BYTES  copies of at least BYTES (k/M/G suffix) use non-temporal stores
                          (glibc on x86-64: the process re-executes itself with GLIBC_TUNABLES;
                          default 64k; 0: glibc's own threshold, tens of MiB)
  -L, --logflag FLAG      enable debug logs of a component (repeatable; 'all' for every one;
                          log_get_flags lists them)
      --log-level LEVEL   what is printed to stderr: error, warn, notice, info or debug
                          (default notice; log_set_print_level)
      --log-json          one JSON object per log line
      --log-file PATH     also append the log to PATH (level: log_set_level, default as stderr)
      --log-file-max-size BYTES  rotate PATH past this size (k/M/G suffix; default 64M; 0: never),
                          keeping PATH.1 .. PATH.5
  -M, --metrics-port PORT serve Prometheus /metrics and the live dashboard on this port (off by default)
      --metrics-address A address of that server (default 127.0.0.1)
  -h, --help              this text
      --version           the version, then exit`;

function fail(msg: string): never {
  process.stderr.write(`nvmf_tgt: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      cpumask: { type: 'string', short: 'm', default: '0x1' },
      'rpc-socket': { type: 'string', short: 'r', default: '/var/tmp/spdk.sock' },
      json: { type: 'string', short: 'c' },
      'wait-for-rpc': { type: 'boolean', default: false },
      'poll-window-us': { type: 'string' },
      'nt-copy-threshold': { type: 'string' },
      logflag: { type: 'string', short: 'L', multiple: true, default: [] },
      'log-level': { type: 'string' },
      'log-json': { type: 'boolean', default: false },
      'log-file': { type: 'string' },
      'log-file-max-size': { type: 'string', default: '64M' },
      'metrics-port': { type: 'string', short: 'M' },
      'metrics-address': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
    strict: true,
  });
}
try {
  args = parse();
} catch (e) {
  fail((e as Error).message);
}
if (args.values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

let cores: number[];
let level: number = LogLevel.NOTICE;
let pollWindowUs: number | undefined;
let fileMaxBytes = 0;
try {
  cores = parseCpumask(args.values.cpumask);
  const w = args.values['poll-window-us'];
  if (w !== undefined) {
    pollWindowUs = Number(w);
    if (!/^\d+$/.test(w) || pollWindowUs > 1_000_000)
      throw new Error(`--poll-window-us must be an integer from 0 to 1000000, not "${w}"`);
  }
  // the shim acted on it before this parse; a malformed one it skipped is reported here
  const nt = args.values['nt-copy-threshold'];
  if (nt !== undefined) parseNtCopyThreshold(nt);
  if (args.values['log-level'] !== undefined) level = parseLogLevel(args.values['log-level']);
  // as SPDK: a flag no component registered is a usage error
  for (const f of args.values.logflag) checkLogFlag(f);
  fileMaxBytes = parseSize(args.values['log-file-max-size']);
  const logFile = args.values['log-file'];
  if (logFile !== undefined) {
    try {
      closeSync(openSync(logFile, 'a', 0o640));
    } catch (e) {
      throw new Error(`--log-file ${logFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const mp = args.values['metrics-port'];
  if (mp !== undefined) {
    const port = /^\d+$/.test(mp) ? Number(mp) : Number.NaN;
    if (!(port >= 0 && port <= 65535)) throw new Error(`--metrics-port: '${mp}' is not a port (0-65535)`);
    configureMetrics({ port, address: args.values['metrics-address'] });
  } else if (args.values['metrics-address'] !== undefined) {
    throw new Error('--metrics-address needs --metrics-port');
  }
} catch (e) {
  fail((e as Error).message);
}

function parseSize(v: string): number {
  const n = parseByteSize(v);
  if (n === null) throw new Error(`--log-file-max-size: '${v}' is not a size (e.g. 64M)`);
  return n;
}

let app: Application;
try {
  app = new Application({
    cores,
    rpcSocket: args.values['rpc-socket'],
    jsonConfig: args.values.json,
    waitForRpc: args.values['wait-for-rpc'],
    log: {
      level,
      flags: args.values.logflag,
      json: args.values['log-json'],
      file: args.values['log-file'] ?? null,
      fileLevel: level,
      fileMaxBytes,
    },
    subsystems: frameworkSubsystems,
    reactorEntry: new URL('./nvmf_tgt-reactor.ts', import.meta.url),
    pollWindowUs,
  });
} catch (e) {
  // e.g. a missing or cyclic subsystem dependency
  process.stderr.write(`nvmf_tgt: ${(e as Error).message}\n`);
  process.exit(1);
}
const log = logger('app');

let signalled = false;
const onSignal = (sig: NodeJS.Signals): void => {
  if (signalled) return;
  signalled = true;
  log.notice(`received ${sig}`);
  void app.stop(0);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

app.stopped.then((code) => {
  process.exitCode = code;
  // nothing of ours should keep running; do not wait for stray handles
  setImmediate(() => process.exit(code));
});

try {
  await app.start();
  const tunables = process.env.GLIBC_TUNABLES ?? '';
  if (tunables.includes('x86_non_temporal_threshold')) log.info(`large copies: GLIBC_TUNABLES=${tunables}`);
} catch (e) {
  log.error(`start-up failed: ${(e as Error).message}`);
  await app.stop(1);
}
