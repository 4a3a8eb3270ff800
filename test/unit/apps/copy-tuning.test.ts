// nvmf_tgt's re-execution with glibc's tunables for non-temporal large copies: what it sets, and
// when it leaves the process alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_NT_COPY_THRESHOLD,
  parseNtCopyThreshold,
  thresholdFromArgs,
  tunablesFor,
} from '../../../src/apps/copy-tuning.ts';

test('--nt-copy-threshold takes bytes with k/M suffixes, 0, and refuses what glibc would ignore', () => {
  assert.equal(parseNtCopyThreshold('64k'), 65536);
  assert.equal(parseNtCopyThreshold('1M'), 1024 * 1024);
  assert.equal(parseNtCopyThreshold('16448'), 16448);
  assert.equal(parseNtCopyThreshold('0'), 0);
  for (const bad of ['16447', '4k', '-1', '64kb', '', '2G', '0x10000']) {
    assert.throws(() => parseNtCopyThreshold(bad), /--nt-copy-threshold must be 0 or a size/, bad);
  }
});

test('the command line: the last occurrence wins, both spellings, 64 KiB by default, null if malformed', () => {
  assert.equal(DEFAULT_NT_COPY_THRESHOLD, 65536);
  assert.equal(thresholdFromArgs(['-m', '0x1']), 65536);
  assert.equal(thresholdFromArgs(['--nt-copy-threshold', '0']), 0);
  assert.equal(thresholdFromArgs(['--nt-copy-threshold=1M', '--nt-copy-threshold', '128k']), 131072);
  assert.equal(thresholdFromArgs(['--nt-copy-threshold', 'lots']), null);
  assert.equal(thresholdFromArgs(['--nt-copy-threshold']), null);
});

test('GLIBC_TUNABLES: set on Linux x86-64, appended to the user’s, never over their own threshold', () => {
  const t = 'glibc.cpu.x86_non_temporal_threshold=0x10000';
  assert.equal(tunablesFor(65536, {}, 'linux', 'x64', 'GenuineIntel'), t);
  assert.equal(
    tunablesFor(65536, { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, 'linux', 'x64', 'GenuineIntel'),
    `glibc.malloc.arena_max=2:${t}`,
  );
  // on AMD, rep movsb would ignore the threshold below the L2 size
  assert.equal(
    tunablesFor(131072, {}, 'linux', 'x64', 'AuthenticAMD'),
    'glibc.cpu.x86_non_temporal_threshold=0x20000:glibc.cpu.x86_rep_movsb_threshold=0x40000000',
  );
  assert.equal(
    tunablesFor(
      65536,
      { GLIBC_TUNABLES: 'glibc.cpu.x86_rep_movsb_threshold=0x1000' },
      'linux',
      'x64',
      'AuthenticAMD',
    ),
    `glibc.cpu.x86_rep_movsb_threshold=0x1000:${t}`,
  );
  // left alone: the user's own threshold (or the re-executed process), 0, other platforms
  const own = { GLIBC_TUNABLES: 'glibc.cpu.x86_non_temporal_threshold=0x100000' };
  assert.equal(tunablesFor(65536, own, 'linux', 'x64', 'GenuineIntel'), null);
  assert.equal(tunablesFor(0, {}, 'linux', 'x64', 'GenuineIntel'), null);
  assert.equal(tunablesFor(65536, {}, 'linux', 'arm64', ''), null);
  assert.equal(tunablesFor(65536, {}, 'darwin', 'x64', 'GenuineIntel'), null);
});
