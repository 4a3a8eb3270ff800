// npm run fuzz [-- --seed N] [--runs N] [--minutes M] [--only pdu,stream,capsule,rpc]
//
// The reliability fuzzers of `npm test` for longer: the PDU receiver property
// (in process), and the PDU-stream, capsule and RPC properties against a real
// nvmf_tgt child (stream cases wait for the target to go quiet, so they run a
// tenth of --runs). Rounds repeat until --minutes pass (or once without it), each with
// seed+round. While fuzzing it checks that the target process lives, that a
// well-behaved host keeps completing verified I/O, and that the target's RSS
// stays bounded. Prints the seed, the cases run and the figures; exits 1 on
// the first failure with its counterexample.

import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { capsuleProperty, startCapsuleFuzz, stopCapsuleFuzz } from '../test/lib/fuzz-capsule.ts';
import { receiverProperty } from '../test/lib/fuzz-pdu.ts';
import { fuzzableMethods, rpcProperty } from '../test/lib/fuzz-rpc.ts';
import { type StreamFuzzStats, streamProperty } from '../test/lib/fuzz-stream.ts';
import { GoodHost } from '../test/lib/good-host.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    runs: { type: 'string', default: '500' },
    minutes: { type: 'string' },
    only: { type: 'string', default: 'pdu,stream,capsule,rpc' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log(
    'usage: npm run fuzz -- [--seed N] [--runs N per property per round] [--minutes M] [--only pdu,stream,capsule,rpc]',
  );
  process.exit(0);
}

const seed =
  values.seed !== undefined ? Number(values.seed) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
const runs = Number(values.runs);
const minutes = values.minutes !== undefined ? Number(values.minutes) : 0;
const only = new Set(values.only.split(','));
/** the target may grow this much over its RSS after warm-up before we call it unbounded */
const RSS_SLACK = 256 << 20;

console.log(
  `fuzz: seed ${seed}, ${runs} runs per property per round, ${minutes ? `${minutes} min` : 'one round'}, ${[...only].join('+')}`,
);
const started = Date.now();
const counts = { pdu: 0, stream: 0, capsule: 0, rpc: 0 };
const streamStats: StreamFuzzStats = { cases: 0, termReqs: 0 };

interface Failure {
  seed: number;
  counterexamplePath: string | null;
  counterexample: unknown;
  errorInstance: unknown;
}

class FuzzFailure extends Error {}

/** Report a failed property and stop fuzzing (the target is still shut down cleanly). */
function fail(what: string, r: Failure): never {
  console.error(`FAIL ${what} (seed ${r.seed}, path ${r.counterexamplePath}):`);
  console.error(`  counterexample: ${JSON.stringify(r.counterexample)?.slice(0, 2000)}`);
  console.error(`  ${String(r.errorInstance)}`);
  console.error(`replay: npm run fuzz -- --seed ${r.seed} --runs ${runs} --only ${what}`);
  throw new FuzzFailure(what);
}

const needTarget = only.has('stream') || only.has('capsule') || only.has('rpc');
const ctx = needTarget ? await startCapsuleFuzz() : null;
const good = ctx ? await GoodHost.connect({ port: ctx.target.port, lbaBase: 0 }) : null;
const methods = ctx ? await fuzzableMethods((await ctx.target.rpc.call('rpc_get_methods')) as string[]) : [];
good?.start();
let rssBase = 0;
let rssMax = 0;
let exitCode = 0;
try {
  for (let round = 0; ; round++) {
    const s = (seed + round) | 0;
    if (only.has('pdu')) {
      const r = fc.check(receiverProperty(), { seed: s, numRuns: runs });
      if (r.failed) fail('pdu', r as Failure);
      counts.pdu += r.numRuns;
    }
    if (ctx && only.has('stream')) {
      const r = await fc.check(streamProperty(ctx.target.port, ctx.target.alive, streamStats), {
        seed: s,
        numRuns: Math.max(1, Math.ceil(runs / 10)),
      });
      if (r.failed) fail('stream', r as Failure);
      counts.stream += r.numRuns;
    }
    if (ctx && only.has('capsule')) {
      const r = await fc.check(capsuleProperty(ctx), { seed: s, numRuns: runs });
      if (r.failed) fail('capsule', r as Failure);
      counts.capsule += r.numRuns;
    }
    if (ctx && only.has('rpc')) {
      const r = await fc.check(rpcProperty(ctx.target.rpcPath, methods, ctx.target.alive), {
        seed: s,
        numRuns: runs,
      });
      if (r.failed) fail('rpc', r as Failure);
      counts.rpc += r.numRuns;
    }
    if (ctx && good) {
      if (!ctx.target.alive()) throw new Error('the target process died');
      const uncaught = ctx.target.uncaughtErrors();
      if (uncaught.length > 0)
        throw new Error(`exceptions escaped in the target: ${uncaught.slice(0, 3).join(' | ')}`);
      const before = good.rounds;
      if (!(await good.waitRounds(before + 1)))
        throw new Error(`the good host stopped: ${good.errors.join('; ')}`);
      const rss = ctx.target.rssBytes();
      if (round === 0) rssBase = rss;
      rssMax = Math.max(rssMax, rss);
      if (rss > rssBase + RSS_SLACK) throw new Error(`target RSS ${rss} grew over ${rssBase} + ${RSS_SLACK}`);
    }
    const elapsed = (Date.now() - started) / 60_000;
    console.log(
      `round ${round} (seed ${s}): pdu ${counts.pdu}, stream ${counts.stream} (${streamStats.termReqs} TermReqs), capsule ${counts.capsule} (${ctx?.stats.commands ?? 0} commands, ${ctx?.stats.termReqs ?? 0} TermReqs), rpc ${counts.rpc}; good host ${good?.rounds ?? 0} rounds; target RSS ${(rssMax / 2 ** 20).toFixed(0)} MiB max`,
    );
    if (elapsed >= minutes) break;
  }
} catch (e) {
  if (!(e instanceof FuzzFailure)) console.error(`FAIL invariant: ${(e as Error).message}`);
  exitCode = 1;
}
const report = good ? await good.stop() : null;
if (good && report && report.errors.length > 0) {
  console.error(`FAIL the good host: ${report.errors.join('; ')}`);
  exitCode = 1;
}
await good?.close();
if (ctx) {
  await stopCapsuleFuzz(ctx);
  await ctx.target.stop();
}
console.log(
  `fuzz ${exitCode === 0 ? 'passed' : 'FAILED'}: seed ${seed}; cases pdu ${counts.pdu}, stream ${counts.stream}, capsule ${counts.capsule} (${ctx?.stats.commands ?? 0} commands), rpc ${counts.rpc}; good host ${report?.rounds ?? 0} verified rounds (${((report?.bytesVerified ?? 0) / 2 ** 20).toFixed(1)} MiB); target RSS ${(rssBase / 2 ** 20).toFixed(0)} → max ${(rssMax / 2 ** 20).toFixed(0)} MiB; ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
process.exit(exitCode);
