// Checks of the interop harness itself: the parts that need no target (output
// parsing, the generated config, the JSON-RPC client), one short guest boot that
// proves env, files, exit status and the guest-to-host-loopback path, and the refusals
// that come before a boot (too little memory, no 9p for the project share).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  freePort,
  missingPrerequisites,
  parseChecks,
  RUN_GUEST,
  rpcCall,
  runGuest,
  targetConfig,
  tlsInterchangeKey,
  tlsPskFromInterchangeKey,
} from './lib/harness.ts';

test('parseChecks keeps each result with the output that led to it', () => {
  const checks = parseChecks(
    [
      '== step',
      '$ nvme discover',
      '  boom',
      'CHECK discover FAIL no subsystem',
      'x',
      'CHECK id-ns PASS',
      '',
    ].join('\n'),
  );
  assert.deepEqual(checks.get('discover'), {
    pass: false,
    detail: 'no subsystem',
    evidence: '== step\n$ nvme discover\n  boom',
  });
  assert.deepEqual(checks.get('id-ns'), { pass: true, detail: '', evidence: 'x' });
  assert.equal(checks.size, 2);
});

test('targetConfig listens on the given port for discovery and both subsystems', () => {
  const config = targetConfig({
    port: 12345,
    nqn: 'nqn.2016-06.io.spdk:cnode1',
    restrictedNqn: 'nqn.2016-06.io.spdk:cnode2',
    allowedHostNqn: 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  }) as {
    subsystems: { subsystem: string; config: { method: string; params: Record<string, unknown> }[] }[];
  };
  const nvmf = config.subsystems.find((s) => s.subsystem === 'nvmf');
  assert.ok(nvmf);
  const listeners = nvmf.config.filter((c) => c.method === 'nvmf_subsystem_add_listener');
  assert.deepEqual(listeners.map((l) => l.params.nqn).sort(), [
    'nqn.2014-08.org.nvmexpress.discovery',
    'nqn.2016-06.io.spdk:cnode1',
    'nqn.2016-06.io.spdk:cnode2',
  ]);
  for (const listener of listeners) {
    assert.deepEqual(listener.params.listen_address, {
      trtype: 'TCP',
      adrfam: 'IPv4',
      traddr: '127.0.0.1',
      trsvcid: '12345',
    });
  }
  const restricted = nvmf.config.find(
    (c) => c.method === 'nvmf_create_subsystem' && c.params.nqn === 'nqn.2016-06.io.spdk:cnode2',
  );
  assert.equal(restricted?.params.allow_any_host, false);
});

test('tlsPskFromInterchangeKey derives the TLS PSK as SPDK does (a vector its target accepted)', () => {
  // Interchange key, NQNs and PSKs from a run in which Linux 6.12 connected to SPDK's
  // TLS listener with this PSK in its keyring.
  const key = 'NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:';
  const hostNqn = 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
  const derived = tlsPskFromInterchangeKey(key, hostNqn, 'nqn.2016-06.io.spdk:cnode2');
  assert.equal(derived.identity, `NVMe0R01 ${hostNqn} nqn.2016-06.io.spdk:cnode2`);
  assert.equal(
    derived.retained.toString('hex'),
    '3acc64e4d63bebc602ee068db0e8a03faf1730f172c3b5e679292525737a88b9',
  );
  assert.equal(
    derived.tlsPsk.toString('hex'),
    '58a878247bb954244842e872354dee1c3c182ab1c7fd1eee451775f952189bf6',
  );
  // the same key rebuilt from its bytes (CRC-32 little-endian), and a damaged one refused
  const bytes = Buffer.from(key.split(':')[2], 'base64').subarray(0, 32);
  assert.equal(tlsInterchangeKey(bytes), key);
  assert.throws(() => tlsPskFromInterchangeKey(key.replace('VRL', 'VRM'), hostNqn, 'x'), /CRC-32/);
});

test('rpcCall sends one JSON-RPC request and returns the result, or rejects with the error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'interop-rpc-'));
  const socketPath = join(dir, 'rpc.sock');
  const seen: unknown[] = [];
  const server: Server = createServer((socket) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const request = JSON.parse(text) as { id: number; method: string };
      seen.push(request);
      // Answer in two pieces to exercise reassembly.
      const answer =
        request.method === 'ok'
          ? JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { poll_groups: [] } })
          : JSON.stringify({
              jsonrpc: '2.0',
              id: request.id,
              error: { code: -32601, message: 'Method not found' },
            });
      socket.write(answer.slice(0, 10));
      setTimeout(() => socket.write(answer.slice(10)), 20);
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  try {
    assert.deepEqual(await rpcCall(socketPath, 'ok', { a: 1 }), { poll_groups: [] });
    await assert.rejects(rpcCall(socketPath, 'nope'), /RPC nope: -32601 Method not found/);
    assert.equal((seen[0] as { jsonrpc: string }).jsonrpc, '2.0');
    assert.deepEqual((seen[0] as { params: unknown }).params, { a: 1 });
    assert.equal('params' in (seen[1] as object), false);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run-guest: env and files reach the guest, its exit status and output come back, 10.0.2.2 is host loopback', async () => {
  const missing = missingPrerequisites();
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'interop-guest-'));
  const port = await freePort();
  const server = createServer((socket) => socket.end('hello-from-host\n'));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  try {
    const script = join(dir, 'script.sh');
    const data = join(dir, 'data.txt');
    writeFileSync(
      script,
      '#!/bin/sh\necho "greeting=$GREETING"\ncat /guest/files/data.txt\nnc "$HOST_IP" "$PORT"\nexit 3\n',
    );
    writeFileSync(data, 'file-content-42\n');
    const lines: string[] = [];
    const run = await runGuest({
      script,
      env: { GREETING: 'hi there', PORT: String(port) },
      files: [data],
      timeoutSeconds: 120,
      onLine: (line) => lines.push(line),
    });
    assert.equal(run.code, 3, `guest exit ${run.code}; stderr:\n${run.stderr}`);
    assert.deepEqual(lines, ['greeting=hi there', 'file-content-42', 'hello-from-host']);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run-guest refuses, before booting, a guest whose RAM cannot hold its unpacked initramfs', async () => {
  const missing = missingPrerequisites();
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'interop-guest-'));
  try {
    const script = join(dir, 'script.sh');
    writeFileSync(script, '#!/bin/sh\necho booted\n');
    const lines: string[] = [];
    const run = await runGuest({ script, memoryMiB: 128, timeoutSeconds: 60, onLine: (l) => lines.push(l) });
    assert.equal(run.code, 1, `run-guest exit ${run.code}; stderr:\n${run.stderr}`);
    assert.match(
      run.stderr,
      /guest memory 128 MiB is too small for the \d+ MiB initramfs .*give at least \d+ MiB/,
    );
    assert.deepEqual(lines, [], 'no guest should have booted');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run-guest -P refuses, before booting, an image without the 9p modules the project share needs', () => {
  const missing = missingPrerequisites();
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  // an image folder as an older setup-interop.sh left it: no 9p among the modules
  const cache = mkdtempSync(join(tmpdir(), 'interop-cache-'));
  try {
    writeFileSync(join(cache, 'vmlinuz'), '');
    writeFileSync(join(cache, 'initramfs.img'), '');
    writeFileSync(join(cache, 'manifest'), 'flavour: bookworm\nmodules: brd configfs nvme-tcp rdma_rxe\n');
    const run = spawnSync(RUN_GUEST, ['-P', '-t', '30', '-c', 'echo booted'], {
      encoding: 'utf8',
      env: { ...process.env, NVMF_INTEROP_CACHE: cache },
      timeout: 60_000,
    });
    assert.equal(run.status, 1, `run-guest exit ${run.status}; stderr:\n${run.stderr}`);
    assert.match(run.stderr, /has no 9p modules for -P: run scripts\/setup-interop\.sh/);
    assert.doesNotMatch(run.stdout, /booted/);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
