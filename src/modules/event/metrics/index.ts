// The metrics framework subsystem: the HTTP server of server.ts (Prometheus
// /metrics and the live dashboard), off by default; `nvmf_tgt --metrics-port`
// starts it at init, `metrics_enable` / `metrics_disable` at run time, and
// save_config replays it. docs/observability.md.

import type { FrameworkSubsystem } from '../../../event/subsystem.ts';
import { RpcError, type RpcMethod, RpcState } from '../../../jsonrpc/index.ts';
import { startRpcCounting, stopRpcCounting } from './gather.ts';
import { MetricsServer } from './server.ts';

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1';

let server: MetricsServer | null = null;
/** what the command line asked for, started at init */
let fromCommandLine: { port: number; address: string } | null = null;

/** nvmf_tgt's --metrics-port / --metrics-address: start the server when the subsystem inits. */
export function configureMetrics(o: { port: number; address?: string }): void {
  fromCommandLine = { port: o.port, address: o.address ?? DEFAULT_METRICS_ADDRESS };
}

async function enable(port: number, address: string): Promise<MetricsServer> {
  if (server !== null) {
    if (server.address === address && (port === 0 || server.port === port)) return server;
    await disable();
  }
  try {
    server = await MetricsServer.start({ port, address });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const errno = err.code === 'EADDRINUSE' ? -98 : err.code === 'EACCES' ? -13 : -22;
    throw new RpcError(errno, `metrics: cannot listen on ${address}:${port}: ${err.code ?? err.message}`);
  }
  return server;
}

async function disable(): Promise<void> {
  const s = server;
  server = null;
  if (s !== null) await s.stop();
}

const metricsEnable: RpcMethod<{ port: number; address?: string }, { address: string; port: number }> = {
  name: 'metrics_enable',
  summary: 'Start the HTTP server of Prometheus metrics (/metrics) and the live dashboard (/)',
  states: RpcState.RUNTIME,
  params: [
    {
      name: 'port',
      type: 'integer',
      min: 0,
      max: 65535,
      required: true,
      help: 'TCP port (0: any free one)',
      cli: { flags: ['-p', '--port'] },
    },
    {
      name: 'address',
      type: 'string',
      help: `address to bind (default ${DEFAULT_METRICS_ADDRESS})`,
      cli: { flags: ['-a', '--address'] },
    },
  ],
  async handler(p) {
    const s = await enable(p.port, p.address ?? DEFAULT_METRICS_ADDRESS);
    return { address: s.address, port: s.port };
  },
};

const metricsDisable: RpcMethod<Record<string, never>, boolean> = {
  name: 'metrics_disable',
  summary: 'Stop the metrics and dashboard HTTP server',
  states: RpcState.RUNTIME,
  params: [],
  async handler() {
    await disable();
    return true;
  },
};

const metricsGetStatus: RpcMethod<Record<string, never>, Record<string, unknown>> = {
  name: 'metrics_get_status',
  summary: 'Show whether the metrics server runs, where, and how often it was scraped',
  states: RpcState.RUNTIME,
  params: [],
  handler() {
    return server === null
      ? { enabled: false }
      : { enabled: true, address: server.address, port: server.port, scrapes: server.scrapes };
  },
};

export const metricsSubsystem: FrameworkSubsystem = {
  name: 'metrics',
  depends: ['bdev', 'nvmf'],
  async init() {
    // RPC calls are counted from start-up (one map update per call), shown once the server runs
    startRpcCounting();
    if (fromCommandLine !== null) await enable(fromCommandLine.port, fromCommandLine.address);
  },
  async fini() {
    await disable();
    stopRpcCounting();
  },
  writeConfigJson() {
    return server === null
      ? []
      : [{ method: 'metrics_enable', params: { port: server.port, address: server.address } }];
  },
  rpcMethods: [metricsEnable, metricsDisable, metricsGetStatus],
};
