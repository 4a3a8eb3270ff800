// JSON-RPC method table types, shared by the server, the registry, the CLI and
// every component that registers methods (framework, bdev, nvmf); the errors
// of a call (RpcError: the server's answer; RpcClientError: no answer).

import { NvmfTsError } from '../util/errors.ts';

/** Bitmask of the application states a method may run in (SPDK_RPC_STARTUP / SPDK_RPC_RUNTIME). */
export const RpcState = { STARTUP: 1, RUNTIME: 2 } as const;

/** JSON-RPC 2.0 codes plus SPDK's -1 for "not allowed in the current state". */
export const RpcErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  INVALID_STATE: -1,
} as const;

/** Message-first logger (src/util/log.ts's Logger fits). */
export interface RpcLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export interface ParamSpec {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'object' | 'array' | 'any';
  required?: boolean;
  default?: unknown;
  /** Inclusive bounds for integer/number values. */
  min?: number;
  max?: number;
  /** Allowed values for a string parameter. */
  enum?: readonly string[];
  /** Members of an 'object' parameter (unknown members are rejected); without it any object passes. */
  properties?: readonly ParamSpec[];
  /** Spec every element of an 'array' parameter must meet (its `name` is unused). */
  items?: ParamSpec;
  help: string;
  /**
   * How the CLI (rpc.py syntax) spells this parameter. Without `cli` the
   * parameter gets a long flag derived from its name (`--num-blocks`).
   */
  cli?: {
    /**
     * Positional, in declaration order. Required on the command line when `required`, or when the
     * method has a cliTransform (which builds the JSON from the positionals, e.g. MB → num_blocks).
     */
    positional?: boolean;
    flags?: string[];
    action?: 'store_true' | 'store_false' | 'append';
    /** Parse the CLI value as an integer (accepts 0x.. too). */
    int?: boolean;
  };
}

export interface RpcContext {
  logger: RpcLogger;
  /** The registry state at the time of the call (RpcState bit). */
  state: number;
  method: string;
}

// biome-ignore lint/suspicious/noExplicitAny: handlers declare their own param types; the table holds them all
export interface RpcMethod<P = any, R = any> {
  name: string;
  summary: string;
  /** RpcState bits the method is allowed in. */
  states: number;
  params: ParamSpec[];
  /** Throw RpcError for errors; a returned `undefined` is sent as `true` (SPDK's bool response). */
  handler(params: P, ctx: RpcContext): R | Promise<R>;
  /** CLI only: turn parsed CLI arguments into the JSON params (e.g. size in MB → num_blocks). */
  cliTransform?(args: Record<string, unknown>): Record<string, unknown>;
  /**
   * CLI only: how to print the result, like rpc.py's print_dict/print_json/print_array/print_null.
   * Default: `true`/null print nothing, a string prints unquoted, anything else as JSON indented 2.
   */
  cliPrint?: 'json' | 'array' | 'none';
}

/**
 * A JSON-RPC error answer: `code` is the numeric JSON-RPC code it carries on
 * the wire (-32602 invalid params, SPDK's negative errno values…), as SPDK's
 * clients read it; docs/errors.md lists the codes this project answers with.
 */
export class RpcError extends NvmfTsError {
  declare readonly code: number;
  readonly data?: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(code, message);
    if (data !== undefined) this.data = data;
  }
}

/** Why an RpcClient call got no answer: it could not connect, the connection closed, time ran out, or the answer was not JSON-RPC. */
export type RpcClientErrorCode =
  | 'NVMF_ERR_RPC_CONNECT'
  | 'NVMF_ERR_RPC_CLOSED'
  | 'NVMF_ERR_RPC_TIMEOUT'
  | 'NVMF_ERR_RPC_BAD_RESPONSE';

/** An RpcClient call that got no answer from the server (an answer that is an error is an RpcError). */
export class RpcClientError extends NvmfTsError {
  declare readonly code: RpcClientErrorCode;
  constructor(code: RpcClientErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/** The server cannot listen on its socket path: something else is there, or another process serves it. */
export class RpcSocketError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_RPC_SOCKET';
  constructor(message: string) {
    super('NVMF_ERR_RPC_SOCKET', message);
  }
}

export const noopLogger: RpcLogger = {
  info() {},
  warn() {},
  error() {},
  debug() {},
};
