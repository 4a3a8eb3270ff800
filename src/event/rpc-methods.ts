// The framework's own RPC methods (names, params and result shapes as
// SPDK's), and collectRpcMethods(): framework + every subsystem's methods,
// the one table the server registers and the CLI reads (for nvmf_tgt's
// subsystems: rpcMethodTable() in src/modules/event/index.ts).

import { readFileSync } from 'node:fs';
import { RpcError, RpcErrorCode, type RpcMethod, RpcState } from '../jsonrpc/index.ts';
import {
  currentThread,
  defineChannelIter,
  defineThreadIter,
  forEachChannel,
  forEachThread,
  realmLoad,
  type ThreadInfo,
  TICK_RATE,
  threadInfo,
  threadStats,
} from '../thread/index.ts';
import {
  checkLogFlag,
  configureLogging,
  logConfig,
  logFlagEnabled,
  logLevelName,
  parseLogLevel,
  registeredLogFlags,
} from '../util/log.ts';
import { type RealmMemory, realmMemory } from '../util/memory.ts';
import { REACTOR_DEVICE } from './reactors.ts';
import type { ConfigEntry, FrameworkSubsystem } from './subsystem.ts';

/** What the framework RPCs need from the running app (set by app.ts). */
export interface AppControl {
  readonly cores: readonly number[];
  subsystems(): FrameworkSubsystem[];
  startInit(): Promise<void>;
  waitInit(): Promise<void>;
  saveConfig(): { subsystems: Array<{ subsystem: string; config: ConfigEntry[] }> };
  loadConfig(cfg: unknown): Promise<void>;
  kill(signal: string): void;
}

let control: AppControl | null = null;

export function setAppControl(c: AppControl | null): void {
  control = c;
}

function app(): AppControl {
  if (control === null) throw new RpcError(RpcErrorCode.INTERNAL_ERROR, 'the application is not running');
  return control;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    return pkg.version;
  } catch {
    return '0.0.0';
  }
}

const collectThreads = defineThreadIter<{ threads: ThreadInfo[] }>(
  'framework.collectThreads',
  (ctx, next) => {
    ctx.threads.push(threadInfo(currentThread()));
    next(0);
  },
);

function allThreads(): Promise<ThreadInfo[]> {
  return new Promise((resolve) =>
    forEachThread(collectThreads, { threads: [] as ThreadInfo[] }, (r) => resolve(r.ctx.threads)),
  );
}

type ReactorView = { reactor: number; busyUs: number; idleUs: number; threads: ThreadInfo[] };
const collectReactor = defineChannelIter<{ reactors: ReactorView[] }>(
  'framework.collectReactor',
  (ch, ctx, next) => {
    const load = realmLoad();
    ctx.reactors.push({
      reactor: (ch.ctx as { reactor: number }).reactor,
      busyUs: Math.round(load.busyUs),
      idleUs: Math.round(load.idleUs),
      threads: threadStats(),
    });
    next(0);
  },
);

type RealmView = { reactor: number; memory: RealmMemory; handles: number };
const collectRealm = defineChannelIter<{ realms: RealmView[] }>('framework.collectRealm', (ch, ctx, next) => {
  ctx.realms.push({ reactor: (ch.ctx as { reactor: number }).reactor, ...realmMemory() });
  next(0);
});

/** Heap and libuv handle counts of every reactor realm (leak checks in thread_get_stats). */
function allRealms(): Promise<RealmView[]> {
  return new Promise((resolve) =>
    forEachChannel(REACTOR_DEVICE, collectRealm, { realms: [] as RealmView[] }, (r) =>
      resolve(r.ctx.realms.sort((a, b) => a.reactor - b.reactor)),
    ),
  );
}

function cpumaskOf(core: number): string {
  return (1n << BigInt(core)).toString(16);
}

function coreOf(reactor: number): number {
  return control?.cores[reactor] ?? reactor;
}

/** What framework_get_reactors answers: each reactor's busy/idle time and its threads. */
export function getReactors(): Promise<ReactorsResult> {
  return new Promise((resolve) =>
    forEachChannel(REACTOR_DEVICE, collectReactor, { reactors: [] as ReactorView[] }, (r) => {
      const reactors = r.ctx.reactors
        .sort((a, b) => a.reactor - b.reactor)
        .map((v) => {
          const core = coreOf(v.reactor);
          // the reactor's own split: time doing work vs polling idle or asleep
          return {
            lcore: core,
            busy: v.busyUs,
            idle: v.idleUs,
            in_interrupt: false,
            lw_threads: v.threads.map((t) => ({
              name: t.name,
              id: t.id,
              cpumask: cpumaskOf(core),
              elapsed: t.busy + t.idle,
            })),
          };
        });
      resolve({ tick_rate: TICK_RATE, pid: process.pid, reactors });
    }),
  );
}

export interface ReactorsResult {
  tick_rate: number;
  pid: number;
  reactors: Array<{
    lcore: number;
    busy: number;
    idle: number;
    in_interrupt: boolean;
    lw_threads: Array<{ name: string; id: number; cpumask: string; elapsed: number }>;
  }>;
}

// ------------------------------------------------------------ log RPCs (SPDK's log_*)

type LogSettings = { level: number; fileLevel: number; flags: string[] };
/** Apply the log settings in every realm (each has its own copy of the logger's state). */
const applyLogSettings = defineChannelIter<LogSettings>('framework.applyLogSettings', (_ch, ctx, next) => {
  configureLogging({ level: ctx.level, fileLevel: ctx.fileLevel, flags: ctx.flags });
  next(0);
});

function setLogSettings(change: (s: LogSettings) => void): Promise<boolean> {
  const c = logConfig();
  const s: LogSettings = { level: c.level, fileLevel: c.fileLevel, flags: [...c.flags] };
  change(s);
  configureLogging(s);
  return new Promise((resolve) => forEachChannel(REACTOR_DEVICE, applyLogSettings, s, () => resolve(true)));
}

function levelParam(p: { level: string }): number {
  try {
    return parseLogLevel(p.level);
  } catch (e) {
    throw new RpcError(RpcErrorCode.INVALID_PARAMS, (e as Error).message);
  }
}

function flagParam(p: { flag: string }): string {
  try {
    checkLogFlag(p.flag);
  } catch (e) {
    throw new RpcError(RpcErrorCode.INVALID_PARAMS, (e as Error).message);
  }
  return p.flag;
}

const LOG_STATES = RpcState.STARTUP | RpcState.RUNTIME;
const levelSpec = {
  name: 'level',
  type: 'string',
  required: true,
  help: 'ERROR, WARNING, NOTICE, INFO or DEBUG',
  cli: { positional: true },
} as const;
const flagSpec = {
  name: 'flag',
  type: 'string',
  required: true,
  help: "a registered log flag (log_get_flags), or 'all'",
  cli: { positional: true },
} as const;

const logMethods: RpcMethod[] = [
  {
    name: 'log_set_level',
    summary: 'Set the level of what is written to the log file (--log-file)',
    states: LOG_STATES,
    params: [levelSpec],
    handler: (p: { level: string }) => {
      const level = levelParam(p);
      return setLogSettings((s) => {
        s.fileLevel = level;
      });
    },
  },
  {
    name: 'log_get_level',
    summary: 'Get the level of what is written to the log file',
    states: LOG_STATES,
    params: [],
    handler: () => logLevelName(logConfig().fileLevel),
  },
  {
    name: 'log_set_print_level',
    summary: 'Set the level of what is printed to stderr',
    states: LOG_STATES,
    params: [levelSpec],
    handler: (p: { level: string }) => {
      const level = levelParam(p);
      return setLogSettings((s) => {
        s.level = level;
      });
    },
  },
  {
    name: 'log_get_print_level',
    summary: 'Get the level of what is printed to stderr',
    states: LOG_STATES,
    params: [],
    handler: () => logLevelName(logConfig().level),
  },
  {
    name: 'log_set_flag',
    summary: "Enable a component's debug lines",
    states: LOG_STATES,
    params: [flagSpec],
    handler: (p: { flag: string }) => {
      const flag = flagParam(p);
      return setLogSettings((s) => {
        if (!s.flags.includes(flag)) s.flags.push(flag);
      });
    },
  },
  {
    name: 'log_clear_flag',
    summary: "Disable a component's debug lines",
    states: LOG_STATES,
    params: [flagSpec],
    handler: (p: { flag: string }) => {
      const flag = flagParam(p);
      return setLogSettings((s) => {
        // clearing one flag under 'all' keeps every other one
        const on = s.flags.includes('all') ? registeredLogFlags() : s.flags;
        s.flags = flag === 'all' ? [] : on.filter((f) => f !== flag && f !== 'all');
      });
    },
  },
  {
    name: 'log_get_flags',
    summary: 'Get every registered log flag and whether it is enabled',
    states: LOG_STATES,
    params: [],
    handler: () => Object.fromEntries(registeredLogFlags().map((f) => [f, logFlagEnabled(f)])),
  },
];

const frameworkMethods: RpcMethod[] = [
  {
    name: 'spdk_get_version',
    summary: 'Get the version of the target',
    states: RpcState.STARTUP | RpcState.RUNTIME,
    params: [],
    handler() {
      const v = version();
      const [major, minor, patch] = v.split('.').map((x) => Number.parseInt(x, 10) || 0);
      return { version: `nvmf-ts v${v}`, fields: { major, minor, patch, suffix: '' } };
    },
  },
  {
    name: 'framework_get_subsystems',
    summary: 'Print subsystems array in initialization order',
    states: RpcState.RUNTIME,
    params: [],
    handler() {
      return app()
        .subsystems()
        .map((s) => ({ subsystem: s.name, depends_on: [...s.depends] }));
    },
  },
  {
    name: 'framework_get_config',
    summary: 'Get configuration of a framework subsystem',
    states: RpcState.RUNTIME,
    params: [
      {
        name: 'name',
        type: 'string',
        required: true,
        help: 'Name of subsystem to query',
        cli: { positional: true },
      },
      {
        // rpc.py's save_config always sends it; no config entry here is a batch, so it changes nothing.
        name: 'with_batches',
        type: 'boolean',
        help: 'Keep batch arrays in output (accepted; this target writes no batches)',
        cli: { flags: ['--with-batches'], action: 'store_true' },
      },
    ],
    handler(p: { name: string }) {
      const s = app()
        .subsystems()
        .find((x) => x.name === p.name);
      if (s === undefined)
        throw new RpcError(RpcErrorCode.INVALID_PARAMS, `name: subsystem '${p.name}' not found`);
      return s.writeConfigJson();
    },
  },
  {
    name: 'framework_start_init',
    summary: 'Start initialization of subsystems',
    states: RpcState.STARTUP,
    params: [],
    async handler() {
      await app().startInit();
      return true;
    },
  },
  {
    name: 'framework_wait_init',
    summary: 'Block until subsystems have been initialized',
    states: RpcState.STARTUP | RpcState.RUNTIME,
    params: [],
    async handler() {
      await app().waitInit();
      return true;
    },
  },
  {
    name: 'framework_get_reactors',
    summary: 'Display list of all reactors',
    states: RpcState.RUNTIME,
    params: [],
    handler: () => getReactors(),
  },
  {
    name: 'thread_get_stats',
    summary: 'Display current statistics of all the threads',
    states: RpcState.RUNTIME,
    params: [],
    async handler() {
      const threads = (await allThreads()).map((t) => ({
        name: t.name,
        id: t.id,
        cpumask: cpumaskOf(coreOf(t.reactor)),
        busy: t.busy,
        idle: t.idle,
        in_interrupt: false,
        active_pollers_count: t.active_pollers.length,
        timed_pollers_count: t.timed_pollers.length,
        paused_pollers_count: t.paused_pollers.length,
        // nvmf-ts additions for leak checks: what the thread holds
        io_channels_count: t.io_channels.length,
        io_channel_refs: t.io_channels.reduce((n, c) => n + c.ref, 0),
        pollers_count: t.active_pollers.length + t.timed_pollers.length + t.paused_pollers.length,
      }));
      // one entry per reactor: its heap (a V8 isolate each) and libuv handles
      const realms = (await allRealms()).map((r) => ({
        reactor: r.reactor,
        lcore: coreOf(r.reactor),
        memory: r.memory,
        handles: r.handles,
      }));
      return { tick_rate: TICK_RATE, threads, realms };
    },
  },
  {
    name: 'thread_get_pollers',
    summary: 'Display current pollers of all the threads',
    states: RpcState.RUNTIME,
    params: [],
    async handler() {
      const threads = (await allThreads()).map((t) => ({
        name: t.name,
        id: t.id,
        active_pollers: t.active_pollers,
        timed_pollers: t.timed_pollers,
        paused_pollers: t.paused_pollers,
      }));
      return { tick_rate: TICK_RATE, threads };
    },
  },
  {
    name: 'thread_get_io_channels',
    summary: 'Display current IO channels of all the threads',
    states: RpcState.RUNTIME,
    params: [],
    async handler() {
      const threads = (await allThreads()).map((t) => ({ name: t.name, io_channels: t.io_channels }));
      return { tick_rate: TICK_RATE, threads };
    },
  },
  {
    name: 'save_config',
    summary: 'Write the current configuration as replayable method calls, per subsystem',
    states: RpcState.RUNTIME,
    params: [],
    handler() {
      return app().saveConfig();
    },
  },
  {
    name: 'load_config',
    summary: 'Replay a configuration written by save_config',
    states: RpcState.STARTUP | RpcState.RUNTIME,
    params: [
      {
        name: 'subsystems',
        type: 'array',
        required: true,
        help: 'The "subsystems" array of a save_config result',
      },
    ],
    async handler(p: { subsystems: unknown[] }) {
      await app().loadConfig(p);
      return true;
    },
  },
  {
    name: 'spdk_kill_instance',
    summary: 'Send signal to instance',
    states: RpcState.STARTUP | RpcState.RUNTIME,
    params: [
      {
        name: 'sig_name',
        type: 'string',
        required: true,
        enum: ['SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGHUP', 'SIGKILL'],
        help: 'signal will be sent to server',
        cli: { positional: true },
      },
    ],
    handler(p: { sig_name: string }) {
      app().kill(p.sig_name);
      return true;
    },
  },
];

// rpc_get_methods needs the registry's state; the app passes a reader in.
let stateReader: () => number = () => RpcState.STARTUP | RpcState.RUNTIME;
let methodNames: () => Array<{ name: string; states: number }> = () => [];

export function setMethodTableReader(
  state: () => number,
  names: () => Array<{ name: string; states: number }>,
): void {
  stateReader = state;
  methodNames = names;
}

const rpcGetMethods: RpcMethod = {
  name: 'rpc_get_methods',
  summary: 'Get list of supported RPC methods',
  states: RpcState.STARTUP | RpcState.RUNTIME,
  params: [
    {
      name: 'current',
      type: 'boolean',
      default: false,
      help: 'Get list of RPC methods only callable in the current state',
      cli: { flags: ['-c', '--current'], action: 'store_true' },
    },
    {
      name: 'include_aliases',
      type: 'boolean',
      default: false,
      help: 'include RPC aliases',
      cli: { flags: ['-i', '--include-aliases'], action: 'store_true' },
    },
  ],
  handler(p: { current?: boolean }) {
    const state = stateReader();
    return methodNames()
      .filter((m) => !p.current || (m.states & state) !== 0)
      .map((m) => m.name);
  },
};

/** Framework methods plus every subsystem's, the one table for server and CLI. */
export function collectRpcMethods(subsystems: readonly FrameworkSubsystem[]): RpcMethod[] {
  const out: RpcMethod[] = [rpcGetMethods, ...frameworkMethods, ...logMethods];
  for (const s of subsystems) out.push(...(s.rpcMethods ?? []));
  return out;
}
