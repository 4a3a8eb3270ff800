// FusedOrder (src/nvmf/fused.ts): the order a transport hands commands to the core
// in, for every order in which commands arrive and become ready.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FusedOrder } from '../../../src/nvmf/fused.ts';
import type { NvmfRequest } from '../../../src/nvmf/transport.ts';
import { NvmOpcode, Sqe, SqeFlags } from '../../../src/wire/nvme.ts';
import { fakeQpair, fakeReq } from './fake-ctrlr.ts';

const ioQpair = fakeQpair();
ioQpair.qid = 1;

/** A kind bit of these tests: the FUSE bits on a Write instead of the pair's own opcodes. */
const ON_WRITE = 0x100;

/** A command with those FUSE bits: a first half is a Compare, a second a Write (as hosts send
 * them), unless `kind` has ON_WRITE; an unfused one a Read. */
function command(kind: number, qid = 1): NvmfRequest {
  const fuse = kind & SqeFlags.FUSE_MASK;
  return fakeReq(qid === 1 ? ioQpair : fakeQpair(), (cmd) => {
    cmd[Sqe.FLAGS] = SqeFlags.PSDT_SGL_MPTR_CONTIG | fuse;
    cmd[Sqe.OPCODE] =
      (kind & ON_WRITE) !== 0 || fuse === SqeFlags.FUSE_SECOND
        ? NvmOpcode.WRITE
        : fuse === SqeFlags.FUSE_FIRST
          ? NvmOpcode.COMPARE
          : NvmOpcode.READ;
  });
}

/** Runs the events (`+x`: x arrives, `!x`: x's data is in, `-x`: the transport drops x) and
 * returns what reached the core, in order, with `*` after a half whose pairing failed. */
function run(events: string[], kinds: Record<string, number>, qid = 1): string[] {
  const out: string[] = [];
  const names = new Map<NvmfRequest, string>();
  const order = new FusedOrder((req) => out.push(`${names.get(req)}${req.fusedFailed ? '*' : ''}`));
  const reqs = new Map<string, NvmfRequest>();
  for (const e of events) {
    const name = e.slice(1);
    if (e[0] === '+') {
      const r = command(kinds[name] ?? SqeFlags.FUSE_NONE, qid);
      reqs.set(name, r);
      names.set(r, name);
      order.received(r);
    } else if (e[0] === '!') order.ready(reqs.get(name) as NvmfRequest);
    else order.dropped(reqs.get(name) as NvmfRequest);
  }
  return out;
}

const F = SqeFlags.FUSE_FIRST;
const S = SqeFlags.FUSE_SECOND;

test('fused ordering: the halves reach the core together, first then second, whatever runs between', () => {
  const cases: Array<[string, string[], Record<string, number>, string[]]> = [
    ['unfused commands pass in ready order', ['+w1', '+w2', '!w2', '!w1'], {}, ['w2', 'w1']],
    [
      'an R2T write ready between the halves (issue #2428) runs before the pair',
      ['+w', '+c', '!c', '!w', '+x', '!x'],
      { c: F, x: S },
      ['w', 'c', 'x'],
    ],
    ['the second ready first waits for the first', ['+c', '+x', '!x', '!c'], { c: F, x: S }, ['c', 'x']],
    [
      'a first followed by an unfused command fails, now if it was ready',
      ['+c', '!c', '+w', '!w'],
      { c: F },
      ['c*', 'w'],
    ],
    ['a first not yet ready fails when its data comes', ['+c', '+w', '!w', '!c'], { c: F }, ['w', 'c*']],
    ['a second with no first fails alone', ['+w', '+x', '!x', '!w'], { x: S }, ['x*', 'w']],
    [
      'a first that is not a Compare pairs with nothing: it goes at once (the core answers Invalid Opcode), its second is alone',
      ['+c', '!c', '+x', '!x'],
      { c: F | ON_WRITE, x: S },
      ['c', 'x*'],
    ],
    [
      'a first followed by a first: the earlier one fails',
      ['+c1', '!c1', '+c2', '!c2', '+x', '!x'],
      { c1: F, c2: F, x: S },
      ['c1*', 'c2', 'x'],
    ],
    [
      'two pairs in a row, the second ready first',
      ['+c1', '+x1', '+c2', '+x2', '!x2', '!c2', '!x1', '!c1'],
      { c1: F, x1: S, c2: F, x2: S },
      ['c2', 'x2', 'c1', 'x1'],
    ],
    [
      'the transport drops the second: the waiting first fails',
      ['+c', '+x', '!c', '-x'],
      { c: F, x: S },
      ['c*'],
    ],
    [
      'the transport drops the first: the second fails when ready',
      ['+c', '+x', '-c', '!x'],
      { c: F, x: S },
      ['x*'],
    ],
    [
      'a dropped pending first leaves the next second alone',
      ['+c', '-c', '+x', '!x'],
      { c: F, x: S },
      ['x*'],
    ],
  ];
  for (const [what, events, kinds, want] of cases) assert.deepEqual(run(events, kinds), want, what);
});

test('fused ordering: the admin queue never pairs (the controller refuses fused admin commands itself)', () => {
  assert.deepEqual(run(['+c', '!c', '+x', '!x'], { c: F, x: S }, 0), ['c', 'x']);
});
