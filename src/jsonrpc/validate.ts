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

export function checkParam(spec: ParamSpec, value: unknown): void {
  const actual = typeOf(value);
  const ok =
    spec.type === 'any' ||
    spec.type === actual ||
    (spec.type === 'number' && actual === 'integer' && Number.isFinite(value as number));
  if (!ok) throw invalid(`Invalid parameter '${spec.name}': expected ${spec.type}, got ${actual}`);
  if (typeof value === 'number') {
    if (spec.min !== undefined && value < spec.min) {
      throw invalid(`Invalid parameter '${spec.name}': ${value} is below the minimum ${spec.min}`);
    }
    if (spec.max !== undefined && value > spec.max) {
      throw invalid(`Invalid parameter '${spec.name}': ${value} is above the maximum ${spec.max}`);
    }
  }
  if (spec.enum !== undefined && typeof value === 'string' && !spec.enum.includes(value)) {
    throw invalid(`Invalid parameter '${spec.name}': '${value}' is not one of ${spec.enum.join(', ')}`);
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
