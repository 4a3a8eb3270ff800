// Property-based fuzzing of the JSON-RPC layer of a running nvmf_tgt: every
// registered method with arbitrary JSON as params (anything, or objects built
// from the method's own parameter names with arbitrary values), sent raw over
// the Unix socket. Property: exactly one well-formed response carrying the
// request's id, and the target lives. Shared by CI and `npm run fuzz`.

import fc from 'fast-check';
import type { RpcMethod } from '../../src/jsonrpc/index.ts';
import { rpcMethodTable } from '../../src/modules/event/index.ts';
import { isWellFormedResponse, rawRpc } from './raw-rpc.ts';

/**
 * Methods never fuzzed: they end the process or reach out of the machine (a random address
 * for an NVMe-oF host connection waits on the network), which is not bad input to judge.
 */
export const RPC_FUZZ_EXCLUDED = new Set(['spdk_kill_instance', 'bdev_nvme_attach_controller']);

/** Names the fuzzer may use for bdevs/subsystems/hosts: never the good host's own. */
const NAME_POOL = [
  'Fuzz0',
  'Fuzz1',
  'nqn.2016-06.io.spdk:fuzz1',
  'nqn.2014-08.org.nvmexpress:uuid:f0220000-0000-4000-8000-000000000001',
  'TCP',
  '127.0.0.1',
  '',
];

/** The method table (with parameter specs) the target serves, minus the excluded ones. */
export async function fuzzableMethods(served: string[]): Promise<RpcMethod[]> {
  const set = new Set(served);
  return rpcMethodTable().filter((m) => set.has(m.name) && !RPC_FUZZ_EXCLUDED.has(m.name));
}

const smallJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom(...NAME_POOL) },
  { weight: 2, arbitrary: fc.integer({ min: -2, max: 70000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -1, 2 ** 31, 2 ** 32, 2 ** 53, 1e300, 0.5) },
  { weight: 1, arbitrary: fc.boolean() },
);

/** One fuzz request: a method and its raw params (undefined = no params member). */
export function rpcRequestArb(methods: RpcMethod[]) {
  return fc.constantFrom(...methods).chain((m) =>
    fc.record({
      method: fc.constant(m.name),
      params: fc.oneof(
        { weight: 1, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.anything({ maxDepth: 2 }) },
        {
          weight: 4,
          arbitrary: fc.dictionary(
            fc.oneof(
              {
                weight: 5,
                arbitrary: fc.constantFrom(...(m.params.length > 0 ? m.params.map((p) => p.name) : ['x'])),
              },
              { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
            ),
            smallJson,
            { maxKeys: Math.max(1, m.params.length) },
          ),
        },
      ),
      id: fc.oneof(fc.integer({ min: 1, max: 1e9 }), fc.string({ maxLength: 6 })),
    }),
  );
}

/**
 * A wait the client asks for (bdev_get_bdevs' `timeout`: wait that long for the bdev to appear)
 * is honoured, not a hang: the fuzzer keeps such waits within 5 s of its 30 s answer budget.
 */
const MAX_FUZZ_WAIT_MS = 5000;
function boundWaits(params: unknown): unknown {
  if (params === null || typeof params !== 'object' || Array.isArray(params)) return params;
  const out: Record<string, unknown> = { ...(params as Record<string, unknown>) };
  for (const [k, v] of Object.entries(out)) {
    if (/timeout/i.test(k) && typeof v === 'number' && v > MAX_FUZZ_WAIT_MS) out[k] = MAX_FUZZ_WAIT_MS;
  }
  return out;
}

/** Send one request raw; returns a reason when the answer is wrong, null when it holds. */
export async function rpcCaseHolds(
  rpcPath: string,
  r: { method: string; params: unknown; id: number | string },
): Promise<string | null> {
  const req: Record<string, unknown> = { jsonrpc: '2.0', method: r.method, id: r.id };
  if (r.params !== undefined) req.params = boundWaits(r.params);
  let text: string;
  try {
    text = JSON.stringify(req);
  } catch {
    return null; // not expressible as JSON (fc.anything can make such values): nothing to send
  }
  if (text === undefined) return null;
  const res = await rawRpc(rpcPath, text, 1, 30_000, 0);
  if (res.responses.length !== 1)
    return `${r.method}: ${res.responses.length} responses (closed ${res.closed})`;
  const resp = res.responses[0] as Record<string, unknown>;
  if (!isWellFormedResponse(resp))
    return `${r.method}: malformed response ${JSON.stringify(resp).slice(0, 300)}`;
  // JSON.stringify dropped undefined members, so params may be legitimately absent or invalid
  const sentParams = (JSON.parse(text) as { params?: unknown }).params;
  const expectId = r.id;
  if (sentParams !== undefined && (sentParams === null || typeof sentParams !== 'object')) {
    // a non-structured params member makes the request invalid; the id is still echoed
    if (resp.id !== expectId)
      return `${r.method}: id ${JSON.stringify(resp.id)} for ${JSON.stringify(expectId)}`;
    return null;
  }
  if (resp.id !== expectId)
    return `${r.method}: id ${JSON.stringify(resp.id)} for ${JSON.stringify(expectId)}`;
  const err = resp.error as { code: number; message: string } | undefined;
  if (
    err !== undefined &&
    err.code === -32603 &&
    /is not a function|Cannot read prop|undefined/.test(err.message)
  ) {
    return `${r.method}: a handler crashed on bad input: ${err.message}`;
  }
  return null;
}

export function rpcProperty(rpcPath: string, methods: RpcMethod[], alive: () => boolean) {
  return fc.asyncProperty(rpcRequestArb(methods), async (r) => {
    const why = await rpcCaseHolds(rpcPath, r);
    if (why !== null) throw new Error(why);
    if (!alive()) throw new Error(`the target died after ${r.method} ${JSON.stringify(r.params)}`);
  });
}
