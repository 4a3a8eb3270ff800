// A poll group's data buffers: what the busiest moment needed is kept (up to the transport's
// num_shared_buffers), so a queue depth above buf_cache_size does not allocate a fresh
// max_io_size buffer per command.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTcpPollGroup, TCP_DEFAULT_OPTIONS } from '../../../src/nvmf/tcp/index.ts';
import type { QpairEvents } from '../../../src/nvmf/transport.ts';

const events = {} as QpairEvents;

test('data buffers: 200 outstanding at once come back to the pool and serve the next 200', () => {
  const group = createTcpPollGroup({ ...TCP_DEFAULT_OPTIONS }, events, () => {});
  const first = Array.from({ length: 200 }, () => group.buffers.get());
  for (const b of first) group.buffers.put(b);
  const again = new Set(Array.from({ length: 200 }, () => group.buffers.get()));
  assert.equal(first.filter((b) => again.has(b)).length, 200, 'every buffer reused, none allocated');
  assert.equal(first[0].length, TCP_DEFAULT_OPTIONS.max_io_size);
});

test('data buffers: no more than num_shared_buffers (or buf_cache_size, if larger) are kept idle', () => {
  const group = createTcpPollGroup(
    { ...TCP_DEFAULT_OPTIONS, num_shared_buffers: 40, buf_cache_size: 8 },
    events,
    () => {},
  );
  const held = Array.from({ length: 100 }, () => group.buffers.get());
  for (const b of held) group.buffers.put(b);
  const kept = new Set(held);
  const next = Array.from({ length: 100 }, () => group.buffers.get());
  assert.equal(next.filter((b) => kept.has(b)).length, 40);
});
