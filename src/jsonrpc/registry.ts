// The method table: registration, lookup, the STARTUP/RUNTIME state gate, and
// invoke() (validate + state check + handler) used by the socket server and by
// in-process callers such as --json config replay.

import { DuplicateNameError, InvalidArgumentError } from '../util/errors.ts';
import { traceChannels } from '../util/trace.ts';
import { noopLogger, RpcError, RpcErrorCode, type RpcLogger, type RpcMethod, RpcState } from './types.ts';
import { validateParams } from './validate.ts';

// SPDK's lib/rpc/rpc.c wording for a method called in the wrong state.
const ONLY_AFTER_INIT =
  'Method may only be called after framework is initialized using framework_start_init RPC.';
const ONLY_BEFORE_INIT =
  'Method may only be called before framework is initialized. Use --wait-for-rpc command line parameter and then issue this RPC before the framework_start_init RPC.';

export class RpcRegistry {
  /** Current application state; starts in STARTUP like SPDK. */
  state: number = RpcState.STARTUP;
  private readonly methods = new Map<string, RpcMethod>();

  register(m: RpcMethod): void {
    if (this.methods.has(m.name)) throw new DuplicateNameError(`RPC method ${m.name} is already registered`);
    if (typeof m.handler !== 'function')
      throw new InvalidArgumentError(`RPC method ${m.name} has no handler`);
    const seen = new Set<string>();
    for (const p of m.params) {
      if (seen.has(p.name))
        throw new DuplicateNameError(`RPC method ${m.name} declares parameter ${p.name} twice`);
      seen.add(p.name);
    }
    this.methods.set(m.name, m);
  }

  registerAll(ms: readonly RpcMethod[]): void {
    for (const m of ms) this.register(m);
  }

  get(name: string): RpcMethod | undefined {
    return this.methods.get(name);
  }

  /** Every method, sorted by name. */
  list(): RpcMethod[] {
    return [...this.methods.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  setState(s: number): void {
    this.state = s;
  }

  /** Run a method by name; throws RpcError (method not found, bad params, wrong state, handler errors). */
  async invoke(name: string, params: unknown, logger: RpcLogger = noopLogger): Promise<unknown> {
    const { rpcCallStart, rpcCallComplete } = traceChannels;
    if (!rpcCallStart.hasSubscribers && !rpcCallComplete.hasSubscribers)
      return this.run(name, params, logger);
    if (rpcCallStart.hasSubscribers) rpcCallStart.publish({ method: name });
    const start = performance.now();
    let errorCode = 0;
    try {
      return await this.run(name, params, logger);
    } catch (e) {
      errorCode = e instanceof RpcError ? e.code : RpcErrorCode.INTERNAL_ERROR;
      throw e;
    } finally {
      if (rpcCallComplete.hasSubscribers) {
        rpcCallComplete.publish({ method: name, durationUs: (performance.now() - start) * 1000, errorCode });
      }
    }
  }

  private async run(name: string, params: unknown, logger: RpcLogger): Promise<unknown> {
    const m = this.methods.get(name);
    if (m === undefined) throw new RpcError(RpcErrorCode.METHOD_NOT_FOUND, 'Method not found');
    if ((m.states & this.state) === 0) {
      throw new RpcError(
        RpcErrorCode.INVALID_STATE,
        this.state === RpcState.STARTUP ? ONLY_AFTER_INIT : ONLY_BEFORE_INIT,
      );
    }
    const checked = validateParams(m, params);
    try {
      return await m.handler(checked, { logger, state: this.state, method: name });
    } catch (e) {
      if (e instanceof RpcError) throw e;
      logger.error(`RPC method ${name} failed: ${(e as Error)?.stack ?? String(e)}`);
      throw new RpcError(RpcErrorCode.INTERNAL_ERROR, (e as Error)?.message ?? String(e));
    }
  }
}
