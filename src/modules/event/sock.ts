// The sock subsystem: socket implementation options, kept with SPDK's names
// and defaults so save_config matches SPDK's; the TCP transport reads them.

import type { FrameworkSubsystem } from '../../event/subsystem.ts';
import { type ParamSpec, RpcError, type RpcMethod, RpcState } from '../../jsonrpc/index.ts';

export interface SockImplOptions {
  recv_buf_size: number;
  send_buf_size: number;
  enable_recv_pipe: boolean;
  enable_quickack: boolean;
  enable_placement_id: number;
  enable_zerocopy_send_server: boolean;
  enable_zerocopy_send_client: boolean;
  zerocopy_threshold: number;
  tls_version: number;
  enable_ktls: boolean;
}

const IMPLS = ['ssl', 'posix'] as const;

function defaults(impl: string): SockImplOptions {
  const buf = impl === 'posix' ? 2 * 1024 * 1024 : 4096;
  return {
    recv_buf_size: buf,
    send_buf_size: buf,
    enable_recv_pipe: true,
    enable_quickack: false,
    enable_placement_id: 0,
    enable_zerocopy_send_server: true,
    enable_zerocopy_send_client: false,
    zerocopy_threshold: 0,
    tls_version: 0,
    enable_ktls: false,
  };
}

let defaultImpl = 'posix';
const options = new Map<string, SockImplOptions>(IMPLS.map((i) => [i, defaults(i)]));

/** Options of a socket implementation (the TCP transport uses 'posix'). */
export function sockImplOptions(impl = defaultImpl): SockImplOptions {
  return { ...(options.get(impl) ?? defaults(impl)) };
}

function checkImpl(name: string): void {
  if (!(IMPLS as readonly string[]).includes(name)) {
    throw new RpcError(
      -32602,
      `impl_name: unknown socket implementation '${name}' (have: ${IMPLS.join(', ')})`,
    );
  }
}

const implName: ParamSpec = {
  name: 'impl_name',
  type: 'string',
  required: true,
  help: 'Name of socket implementation, e.g. posix',
  cli: { flags: ['-i', '--impl'] },
};

const optionSpecs: ParamSpec[] = [
  {
    name: 'recv_buf_size',
    type: 'integer',
    min: 0,
    help: 'Size of socket receive buffer in bytes',
    cli: { flags: ['-r', '--recv-buf-size'] },
  },
  {
    name: 'send_buf_size',
    type: 'integer',
    min: 0,
    help: 'Size of socket send buffer in bytes',
    cli: { flags: ['-s', '--send-buf-size'] },
  },
  {
    name: 'enable_recv_pipe',
    type: 'boolean',
    help: 'Enable receive pipe',
    cli: { flags: ['--enable-recv-pipe'], action: 'store_true' },
  },
  {
    name: 'enable_quickack',
    type: 'boolean',
    help: 'Enable quick ACK',
    cli: { flags: ['--enable-quickack'], action: 'store_true' },
  },
  {
    name: 'enable_placement_id',
    type: 'integer',
    min: 0,
    max: 2,
    help: 'Placement id mode: 0 off, 1 NAPI, 2 CPU',
    cli: { flags: ['--enable-placement-id'] },
  },
  {
    name: 'enable_zerocopy_send_server',
    type: 'boolean',
    help: 'Enable zerocopy on send for server sockets',
    cli: { flags: ['--enable-zerocopy-send-server'], action: 'store_true' },
  },
  {
    name: 'enable_zerocopy_send_client',
    type: 'boolean',
    help: 'Enable zerocopy on send for client sockets',
    cli: { flags: ['--enable-zerocopy-send-client'], action: 'store_true' },
  },
  {
    name: 'zerocopy_threshold',
    type: 'integer',
    min: 0,
    help: 'Zerocopy threshold in bytes',
    cli: { flags: ['--zerocopy-threshold'] },
  },
  {
    name: 'tls_version',
    type: 'integer',
    min: 0,
    help: 'TLS protocol version (0 = any)',
    cli: { flags: ['--tls-version'] },
  },
  {
    name: 'enable_ktls',
    type: 'boolean',
    help: 'Enable Kernel TLS',
    cli: { flags: ['--enable-ktls'], action: 'store_true' },
  },
];

const setDefaultImpl: RpcMethod<{ impl_name: string }, boolean> = {
  name: 'sock_set_default_impl',
  summary: 'Set the default sock implementation',
  states: RpcState.STARTUP | RpcState.RUNTIME,
  params: [implName],
  handler(p) {
    checkImpl(p.impl_name);
    defaultImpl = p.impl_name;
    return true;
  },
};

const setImplOptions: RpcMethod<{ impl_name: string } & Partial<SockImplOptions>, boolean> = {
  name: 'sock_impl_set_options',
  summary: 'Set options of socket layer implementation',
  states: RpcState.STARTUP | RpcState.RUNTIME,
  params: [implName, ...optionSpecs],
  handler(p) {
    checkImpl(p.impl_name);
    const cur = options.get(p.impl_name) as SockImplOptions;
    const { impl_name: _ignored, ...rest } = p;
    for (const [k, v] of Object.entries(rest)) {
      if (v !== undefined && k in cur) (cur as unknown as Record<string, unknown>)[k] = v;
    }
    return true;
  },
};

const getImplOptions: RpcMethod<{ impl_name: string }, SockImplOptions> = {
  name: 'sock_impl_get_options',
  summary: 'Get options of socket layer implementation',
  states: RpcState.RUNTIME,
  params: [implName],
  handler(p) {
    checkImpl(p.impl_name);
    return sockImplOptions(p.impl_name);
  },
};

export const sockSubsystem: FrameworkSubsystem = {
  name: 'sock',
  depends: [],
  async init() {},
  async fini() {},
  writeConfigJson() {
    return [
      { method: 'sock_set_default_impl', params: { impl_name: defaultImpl } },
      ...IMPLS.map((i) => ({
        method: 'sock_impl_set_options',
        params: { impl_name: i, ...sockImplOptions(i) },
      })),
    ];
  },
  rpcMethods: [setDefaultImpl, setImplOptions, getImplOptions],
};
