// Public API of the JSON-RPC library (server, client, method table).

export { RpcClient } from './client.ts';
export { cliFlagsOf, lintRpcMethods, renderRpcDocs } from './docs.ts';
export { RpcRegistry } from './registry.ts';
export { RpcServer, type RpcServerOptions } from './server.ts';
export { JsonStreamSplitter, type SplitError } from './splitter.ts';
export {
  noopLogger,
  type ParamSpec,
  RpcClientError,
  type RpcClientErrorCode,
  type RpcContext,
  RpcError,
  RpcErrorCode,
  type RpcLogger,
  type RpcMethod,
  RpcSocketError,
  RpcState,
} from './types.ts';
export { checkParam, validateParams } from './validate.ts';
