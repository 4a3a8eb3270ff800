// The root of the errors nvmf-ts throws on purpose, and the kinds every
// component shares. Each error carries a stable `code` naming its kind; every
// code is listed once in docs/errors.md (a unit test keeps the two in step).
// A component's own kinds live with it (RpcError in jsonrpc, BdevError in
// bdev, NvmfError in nvmf, the host library's in nvme/errors.ts), all rooted here.

/**
 * Every error nvmf-ts throws on purpose. `code` is a string such as
 * 'NVMF_ERR_USAGE' — except for RpcError, whose code is the JSON-RPC error
 * code it carries on the wire (a number, as SPDK's clients read it).
 */
export class NvmfTsError extends Error {
  readonly code: string | number;
  constructor(code: string | number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * Bad command-line arguments: the tool prints the message and its usage, then
 * exits 2 (as argparse does). `usage` is the text to print when the thrower
 * knows it (nvmf-rpc's per-method usage); the tool's own otherwise.
 */
export class UsageError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_USAGE';
  readonly usage: string | undefined;
  constructor(message: string, usage?: string) {
    super('NVMF_ERR_USAGE', message);
    this.usage = usage;
  }
}

/** A value given to a library function is malformed or out of range (the message names it). */
export class InvalidArgumentError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_INVALID_ARG';
  constructor(message: string, options?: ErrorOptions) {
    super('NVMF_ERR_INVALID_ARG', message, options);
  }
}

/** A call made when it cannot be served: outside a thread, before start-up, after a disconnect. */
export class InvalidStateError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_INVALID_STATE';
  constructor(message: string) {
    super('NVMF_ERR_INVALID_STATE', message);
  }
}

/** A name registered twice in a table that must hold it once (handlers, io_devices, RPC methods…). */
export class DuplicateNameError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_DUPLICATE_NAME';
  constructor(message: string) {
    super('NVMF_ERR_DUPLICATE_NAME', message);
  }
}

/** A name looked up in a table that does not hold it (an io_device, a handler, a transport, a bdev module…). */
export class NotRegisteredError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_NOT_REGISTERED';
  constructor(message: string) {
    super('NVMF_ERR_NOT_REGISTERED', message);
  }
}

/** A file nvmf-ts reads (a --json configuration, a persisted reservation) is not in the expected form. */
export class FileFormatError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_FILE_FORMAT';
  constructor(message: string) {
    super('NVMF_ERR_FILE_FORMAT', message);
  }
}
