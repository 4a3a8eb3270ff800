// Checks request params against a method's ParamSpec list; every failure is an
// INVALID_PARAMS error whose message names the offending field.

import { type ParamSpec, RpcError, RpcErrorCode, type RpcMethod } from './types.ts';

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function invalid(message: string): RpcError {
  return new RpcError(RpcErrorCode.INVALID_PARAMS, message);
}

/** Check one value against its spec; `path` names it in messages (e.g. listen_address.trtype). */
export function checkParam(spec: ParamSpec, value: unknown, path: string = spec.name): void {
  const actual = typeOf(value);
  const ok =
    spec.type === 'any' ||
    spec.type === actual ||
    (spec.type === 'number' && actual === 'integer' && Number.isFinite(value as number));
  if (!ok) throw invalid(`Invalid parameter '${path}': expected ${spec.type}, got ${actual}`);
  if (typeof value === 'number') {
    if (spec.min !== undefined && value < spec.min) {
      throw invalid(`Invalid parameter '${path}': ${value} is below the minimum ${spec.min}`);
    }
    if (spec.max !== undefined && value > spec.max) {
      throw invalid(`Invalid parameter '${path}': ${value} is above the maximum ${spec.max}`);
    }
  }
  if (spec.enum !== undefined && typeof value === 'string' && !spec.enum.includes(value)) {
    throw invalid(`Invalid parameter '${path}': '${value}' is not one of ${spec.enum.join(', ')}`);
  }
  if (spec.properties !== undefined && actual === 'object') {
    checkObject(spec.properties, value as Record<string, unknown>, `${path}.`, path);
  }
  if (spec.items !== undefined && Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkParam(spec.items, value[i], `${path}[${i}]`);
  }
}

/** Unknown and missing members, then each member's value; nested defaults are not filled in. */
function checkObject(
  specs: readonly ParamSpec[],
  given: Record<string, unknown>,
  prefix: string,
  owner: string,
): void {
  const known = new Set<string>();
  for (const spec of specs) known.add(spec.name);
  for (const key of Object.keys(given)) {
    if (!known.has(key)) throw invalid(`Unknown parameter '${prefix}${key}' in ${owner}`);
  }
  for (const spec of specs) {
    const value = given[spec.name];
    if (value === undefined) {
      if (spec.required) throw invalid(`Missing required parameter '${prefix}${spec.name}'`);
      continue;
    }
    checkParam(spec, value, `${prefix}${spec.name}`);
  }
}

/**
 * Validate `params` (the request's raw `params` member) for `method` and return
 * the object handed to the handler, with declared defaults filled in.
 */
export function validateParams(method: RpcMethod, params: unknown): Record<string, unknown> {
  if (params !== undefined && (params === null || typeof params !== 'object' || Array.isArray(params))) {
    throw invalid(`Invalid parameters: ${method.name} takes a JSON object, got ${typeOf(params)}`);
  }
  const given = (params ?? {}) as Record<string, unknown>;
  const known = new Set<string>();
  for (const spec of method.params) known.add(spec.name);
  for (const key of Object.keys(given)) {
    if (!known.has(key)) throw invalid(`Unknown parameter '${key}' for ${method.name}`);
  }
  const out: Record<string, unknown> = {};
  for (const spec of method.params) {
    const value = given[spec.name];
    if (value === undefined) {
      if (spec.required) throw invalid(`Missing required parameter '${spec.name}'`);
      if (spec.default !== undefined) out[spec.name] = spec.default;
      continue;
    }
    checkParam(spec, value);
    out[spec.name] = value;
  }
  return out;
}
