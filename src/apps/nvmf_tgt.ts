// nvmf_tgt: the NVMe-oF target application (command line -> Application).

import { parseArgs } from 'node:util';
import { Application } from '../event/app.ts';
import { parseCpumask } from '../event/cpumask.ts';
import { frameworkSubsystems } from '../modules/event/index.ts';
import { LogLevel, logger, parseLogLevel } from '../util/log.ts';

const USAGE = `usage: nvmf_tgt [options]
  -m, --cpumask MASK      reactor cores: hex mask (0x3) or list ([0,1]); default 0x1
  -r, --rpc-socket PATH   JSON-RPC Unix socket (default /var/tmp/spdk.sock)
  -c, --json FILE         replay a configuration saved by save_config
      --wait-for-rpc      wait for framework_start_init before initializing subsystems
  -L, --logflag FLAG      enable debug logs of a component (repeatable; 'all' for every one)
      --log-level LEVEL   error, warn, notice, info or debug (default notice)
      --log-json          one JSON object per log line
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
      logflag: { type: 'string', short: 'L', multiple: true, default: [] },
      'log-level': { type: 'string' },
      'log-json': { type: 'boolean', default: false },
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
try {
  cores = parseCpumask(args.values.cpumask);
  if (args.values['log-level'] !== undefined) level = parseLogLevel(args.values['log-level']);
} catch (e) {
  fail((e as Error).message);
}

let app: Application;
try {
  app = new Application({
    cores,
    rpcSocket: args.values['rpc-socket'],
    jsonConfig: args.values.json,
    waitForRpc: args.values['wait-for-rpc'],
    log: { level, flags: args.values.logflag, json: args.values['log-json'] },
    subsystems: frameworkSubsystems,
    reactorEntry: new URL('./nvmf_tgt-reactor.ts', import.meta.url),
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
} catch (e) {
  log.error(`start-up failed: ${(e as Error).message}`);
  await app.stop(1);
}
