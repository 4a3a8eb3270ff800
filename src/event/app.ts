// The application lifecycle: reactors up, every realm's realmInit, the RPC
// server, optional --json replay, subsystem init in dependency order (now,
// or on framework_start_init with --wait-for-rpc), and on SIGINT/SIGTERM a
// graceful stop: RPC server closed, fini in reverse order, workers joined.

import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { RpcError, RpcErrorCode, RpcRegistry, RpcServer, RpcState } from '../jsonrpc/index.ts';
import type { ThreadRef } from '../thread/index.ts';
import { FileFormatError, InvalidStateError } from '../util/errors.ts';
import { configureLogging, type LogConfig, type Logger, logger } from '../util/log.ts';
import { type Reactors, startReactors } from './reactors.ts';
import { collectRpcMethods, setAppControl, setMethodTableReader } from './rpc-methods.ts';
import { type App, type ConfigEntry, type FrameworkSubsystem, orderSubsystems } from './subsystem.ts';

export interface AppOptions {
  cores: number[];
  rpcSocket: string;
  jsonConfig?: string;
  waitForRpc: boolean;
  log: LogConfig;
  /** the framework subsystem table (nvmf_tgt's: src/modules/event/index.ts); the framework imports none itself */
  subsystems: FrameworkSubsystem[];
  /** the module each worker reactor runs: one that calls runReactorWorker (reactor-worker.ts) with
   * the same table; needed when `cores` names more than one core */
  reactorEntry?: URL;
}

type SavedConfig = { subsystems: Array<{ subsystem: string; config: ConfigEntry[] | null }> };

function parseConfig(cfg: unknown): SavedConfig {
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg))
    throw new RpcError(
      RpcErrorCode.INVALID_PARAMS,
      `the configuration must be an object with a "subsystems" array (save_config's shape), not ${Array.isArray(cfg) ? 'an array' : cfg === null ? 'null' : `a ${typeof cfg}`}`,
    );
  const subs = (cfg as { subsystems?: unknown }).subsystems;
  if (!Array.isArray(subs)) throw new RpcError(RpcErrorCode.INVALID_PARAMS, 'subsystems: expected an array');
  for (const [i, s] of subs.entries()) {
    if (typeof s !== 'object' || s === null || typeof (s as { subsystem?: unknown }).subsystem !== 'string') {
      throw new RpcError(RpcErrorCode.INVALID_PARAMS, `subsystems[${i}]: expected { subsystem, config }`);
    }
    const c = (s as { config?: unknown }).config;
    if (c !== null && c !== undefined && !Array.isArray(c)) {
      throw new RpcError(RpcErrorCode.INVALID_PARAMS, `subsystems[${i}].config: expected an array`);
    }
  }
  return cfg as SavedConfig;
}

export class Application implements App {
  readonly cores: readonly number[];
  readonly reactorCount: number;
  private readonly opts: AppOptions;
  private readonly log: Logger;
  private readonly ordered: FrameworkSubsystem[];
  private readonly registry = new RpcRegistry();
  private server: RpcServer | null = null;
  private reactors: Reactors | null = null;
  private readonly started: FrameworkSubsystem[] = [];
  private initState: 'waiting' | 'running' | 'done' | 'failed' = 'waiting';
  private initDone: Promise<void>;
  private resolveInit: () => void = () => {};
  private rejectInit: (e: Error) => void = () => {};
  private pendingRuntimeConfig: Array<{ subsystem: string; entry: ConfigEntry }> = [];
  private stopping: Promise<void> | null = null;
  private exitCode = 0;
  /** resolves with the process exit code once the app has stopped */
  readonly stopped: Promise<number>;
  private resolveStopped: (code: number) => void = () => {};

  constructor(opts: AppOptions) {
    this.opts = opts;
    this.cores = opts.cores;
    this.reactorCount = opts.cores.length;
    this.log = logger('app');
    this.ordered = orderSubsystems(opts.subsystems);
    this.initDone = new Promise((resolve, reject) => {
      this.resolveInit = resolve;
      this.rejectInit = reject;
    });
    this.initDone.catch(() => {});
    this.stopped = new Promise((resolve) => {
      this.resolveStopped = resolve;
    });
  }

  logger(component: string): Logger {
    return logger(component);
  }

  get appThread(): ThreadRef {
    if (this.reactors === null) throw new InvalidStateError('reactors are not running');
    return this.reactors.realm.thread.ref;
  }

  async start(): Promise<void> {
    configureLogging(this.opts.log, 0);
    this.log.notice(`starting nvmf-ts on ${this.reactorCount} reactor(s), cores [${this.cores.join(',')}]`);
    const cpus = availableParallelism();
    if (this.cores.some((c) => c >= cpus)) {
      // workers are not pinned; more reactors than CPUs still work, only slower
      this.log.warn(`cpumask names cores beyond the ${cpus} CPU(s) available; reactors will share CPUs`);
    }
    this.reactors = await startReactors(
      [...this.cores],
      this.opts.log,
      this.opts.reactorEntry,
      (reactor, reason) => {
        this.log.error(`reactor ${reactor} lost (${reason}); shutting down`);
        void this.stop(1);
      },
    );
    for (const s of this.ordered) await s.realmInit?.();

    this.registry.registerAll(collectRpcMethods(this.ordered));
    setMethodTableReader(
      () => this.registry.state,
      () => this.registry.list().map((m) => ({ name: m.name, states: m.states })),
    );
    setAppControl({
      cores: this.cores,
      subsystems: () => [...this.ordered],
      // framework_start_init: nobody else reports a failure, so init logs it
      startInit: () => this.startInit(true),
      waitInit: () => this.initDone,
      saveConfig: () => this.saveConfig(),
      loadConfig: (cfg) => this.loadConfig(cfg),
      kill: (sig) => {
        setImmediate(() => process.kill(process.pid, sig));
      },
    });

    const rpcLog = logger('rpc');
    this.server = new RpcServer(this.registry, {
      path: this.opts.rpcSocket,
      logger: {
        info: (...a) => rpcLog.info(a.map(String).join(' ')),
        warn: (...a) => rpcLog.warn(a.map(String).join(' ')),
        error: (...a) => rpcLog.error(a.map(String).join(' ')),
        debug: (...a) => rpcLog.debug(a.map(String).join(' ')),
      },
    });
    await this.server.listen();
    this.log.notice(`RPC server listening on ${this.opts.rpcSocket}`);

    if (this.opts.jsonConfig !== undefined) {
      const text = await readFile(this.opts.jsonConfig, 'utf8');
      let cfg: unknown;
      try {
        cfg = JSON.parse(text);
      } catch (e) {
        throw new FileFormatError(`--json ${this.opts.jsonConfig}: not valid JSON (${(e as Error).message})`);
      }
      await this.loadConfig(cfg);
    }
    if (this.opts.waitForRpc) {
      this.log.notice('waiting for framework_start_init RPC before initializing subsystems');
      return;
    }
    // a failure propagates to the caller of start(), which logs it once
    await this.startInit(false);
  }

  /** Run the STARTUP-state entries now; keep RUNTIME ones for after init (or run them if init is done). */
  async loadConfig(cfg: unknown): Promise<void> {
    const parsed = parseConfig(cfg);
    for (const s of parsed.subsystems) {
      for (const entry of s.config ?? []) {
        const m = this.registry.get(entry.method);
        if (m === undefined) {
          throw new RpcError(
            RpcErrorCode.METHOD_NOT_FOUND,
            `config of '${s.subsystem}': method '${entry.method}' not found`,
          );
        }
        if (this.initState !== 'done' && (m.states & RpcState.STARTUP) === 0) {
          this.pendingRuntimeConfig.push({ subsystem: s.subsystem, entry });
          continue;
        }
        if (this.initState === 'done' && (m.states & RpcState.RUNTIME) === 0) {
          // as rpc.py's load_config: the state that could run it has passed
          this.log.warn(`config of '${s.subsystem}': ${entry.method} skipped (allowed only before init)`);
          continue;
        }
        await this.callConfig(s.subsystem, entry);
      }
    }
  }

  private async callConfig(subsystem: string, entry: ConfigEntry): Promise<void> {
    try {
      await this.registry.invoke(entry.method, entry.params ?? {});
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new RpcError(
        e instanceof RpcError ? e.code : RpcErrorCode.INTERNAL_ERROR,
        `config of '${subsystem}': ${entry.method} failed: ${msg}`,
      );
    }
  }

  async startInit(logFailure: boolean): Promise<void> {
    if (this.initState !== 'waiting') {
      throw new RpcError(RpcErrorCode.INVALID_STATE, 'subsystems are already initialized or initializing');
    }
    this.initState = 'running';
    try {
      for (const s of this.ordered) {
        this.log.notice(`subsystem ${s.name}: init`);
        await s.init(this);
        this.started.push(s);
        this.log.debug(`subsystem ${s.name}: init done`);
      }
      this.registry.setState(RpcState.RUNTIME);
      const pending = this.pendingRuntimeConfig;
      this.pendingRuntimeConfig = [];
      for (const p of pending) await this.callConfig(p.subsystem, p.entry);
      this.initState = 'done';
      this.log.notice('all subsystems initialized');
      this.resolveInit();
    } catch (e) {
      this.initState = 'failed';
      const err = e instanceof Error ? e : new Error(String(e));
      if (logFailure) this.log.error(`initialization failed: ${err.message}`);
      this.rejectInit(err);
      void this.stop(1);
      throw err;
    }
  }

  saveConfig(): { subsystems: Array<{ subsystem: string; config: ConfigEntry[] }> } {
    return { subsystems: this.ordered.map((s) => ({ subsystem: s.name, config: s.writeConfigJson() })) };
  }

  /** Graceful stop: RPC server, fini in reverse, reactors joined. Idempotent. */
  stop(code = 0): Promise<void> {
    if (this.stopping !== null) return this.stopping;
    this.exitCode = code;
    this.stopping = (async () => {
      this.log.notice('shutting down');
      try {
        await this.server?.close();
      } catch (e) {
        this.log.warn(`closing the RPC server: ${(e as Error).message}`);
      }
      for (const s of [...this.started].reverse()) {
        this.log.notice(`subsystem ${s.name}: fini`);
        try {
          await s.fini(this);
        } catch (e) {
          this.exitCode = this.exitCode || 1;
          this.log.error(`subsystem ${s.name}: fini failed: ${(e as Error).message}`);
        }
      }
      this.started.length = 0;
      setAppControl(null);
      await this.reactors?.stop();
      this.log.notice('stopped');
      this.resolveStopped(this.exitCode);
    })();
    return this.stopping;
  }
}
