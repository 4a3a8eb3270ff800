// Real-process tests of the nvmf_tgt framework: reactors, RPCs, lifecycle.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { RpcClient } from '../../src/jsonrpc/index.ts';
import { NvmeController } from '../../src/nvme/index.ts';
import { freePort, pattern, type SpawnedTarget, spawnTarget } from '../lib/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'nvmf-fw-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let seq = 0;
/** nvmf_tgt with `args` (no -m: the default mask unless args say), its RPC socket in `dir` */
function startTarget(args: string[]): SpawnedTarget {
  return spawnTarget({ rpcPath: join(dir, `t${++seq}.sock`), args });
}

function connect(t: SpawnedTarget): Promise<RpcClient> {
  return t.connectRpc(15_000);
}

async function exitCode(t: SpawnedTarget): Promise<number | null> {
  return (await t.exit).code;
}

async function stop(t: SpawnedTarget, c?: RpcClient): Promise<number | null> {
  c?.close();
  return (await t.stop('SIGTERM', 10_000)).code;
}

type Reactors = { reactors: Array<{ lcore: number; lw_threads: Array<{ name: string; id: number }> }> };

test('-m 0x3: two reactors with threads, stats reach both, SIGTERM stops in reverse order with exit 0', async () => {
  const t = startTarget(['-m', '0x3']);
  const c = await connect(t);
  await c.call('framework_wait_init');
  const r = (await c.call('framework_get_reactors')) as Reactors;
  assert.deepEqual(
    r.reactors.map((x) => x.lcore),
    [0, 1],
  );
  assert.ok(r.reactors[0].lw_threads.some((th) => th.name === 'app_thread'));
  assert.ok(r.reactors[1].lw_threads.some((th) => th.name === 'reactor_1'));
  const stats = (await c.call('thread_get_stats')) as {
    tick_rate: number;
    threads: Array<{ name: string; cpumask: string }>;
  };
  assert.equal(stats.tick_rate, 1_000_000);
  const names = stats.threads.map((x) => x.name);
  assert.ok(names.includes('app_thread') && names.includes('reactor_1'), names.join(','));
  assert.equal(stats.threads.find((x) => x.name === 'reactor_1')?.cpumask, '2');
  const chans = (await c.call('thread_get_io_channels')) as {
    threads: Array<{ name: string; io_channels: unknown[] }>;
  };
  assert.equal(chans.threads.length, stats.threads.length);
  const subs = (await c.call('framework_get_subsystems')) as Array<{ subsystem: string }>;
  assert.deepEqual(
    subs.slice(0, 5).map((s) => s.subsystem),
    ['scheduler', 'sock', 'iobuf', 'keyring', 'accel'],
  );
  const methods = (await c.call('rpc_get_methods')) as string[];
  for (const m of ['spdk_get_version', 'framework_get_reactors', 'save_config', 'spdk_kill_instance']) {
    assert.ok(methods.includes(m), m);
  }
  assert.equal(await stop(t, c), 0);
  const log = t.log();
  const initOrder = [...log.matchAll(/subsystem (\w+): init/g)].map((m) => m[1]);
  const finiOrder = [...log.matchAll(/subsystem (\w+): fini/g)].map((m) => m[1]);
  assert.deepEqual(initOrder.slice(0, 5), ['scheduler', 'sock', 'iobuf', 'keyring', 'accel']);
  assert.deepEqual(finiOrder, [...initOrder].reverse());
});

test('--wait-for-rpc holds init until framework_start_init; startup-only methods are refused after', async () => {
  const t = startTarget(['--wait-for-rpc']);
  const c = await connect(t);
  await assert.rejects(c.call('framework_get_reactors'), /framework_start_init/);
  assert.equal(await c.call('iobuf_set_options', { small_pool_count: 4096 }), true);
  assert.doesNotMatch(t.log(), /subsystem scheduler: init/);
  assert.equal(await c.call('framework_start_init'), true);
  assert.equal(await c.call('framework_wait_init'), true);
  assert.match(t.log(), /subsystem scheduler: init/);
  await assert.rejects(
    c.call('iobuf_set_options', { small_pool_count: 2048 }),
    /before framework is initialized/,
  );
  const cfg = (await c.call('framework_get_config', { name: 'iobuf' })) as Array<{
    params: { small_pool_count: number };
  }>;
  assert.equal(cfg[0].params.small_pool_count, 4096);
  assert.equal(await stop(t, c), 0);
});

test('save_config -> --json -> save_config is identical; spdk_kill_instance exits 0', async () => {
  const t1 = startTarget(['-m', '[0,1]', '--wait-for-rpc']);
  const c1 = await connect(t1);
  await c1.call('sock_impl_set_options', { impl_name: 'posix', recv_buf_size: 65536 });
  await c1.call('accel_set_options', { task_count: 1024 });
  await c1.call('framework_start_init');
  await c1.call('framework_wait_init');
  const saved1 = await c1.call('save_config');
  assert.equal(await stop(t1, c1), 0);

  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(saved1, null, 2));
  const t2 = startTarget(['--json', file]);
  const c2 = await connect(t2);
  await c2.call('framework_wait_init');
  const saved2 = await c2.call('save_config');
  assert.deepEqual(saved2, saved1);
  const sock = (
    saved2 as {
      subsystems: Array<{
        subsystem: string;
        config: Array<{ method: string; params: Record<string, unknown> }>;
      }>;
    }
  ).subsystems.find((s) => s.subsystem === 'sock');
  assert.equal(
    sock?.config.find((e) => e.params.impl_name === 'posix' && e.method === 'sock_impl_set_options')?.params
      .recv_buf_size,
    65536,
  );
  // load_config at runtime skips the startup-only methods (as rpc.py does) and changes nothing here
  assert.equal(await c2.call('load_config', saved1 as Record<string, unknown>), true);
  assert.deepEqual(await c2.call('save_config'), saved1);
  assert.match(t2.log(), /iobuf_set_options skipped/);
  await assert.rejects(c2.call('load_config', { subsystems: 'x' }), /subsystems/);
  assert.equal(await c2.call('spdk_kill_instance', { sig_name: 'SIGTERM' }), true);
  c2.close();
  assert.equal(await exitCode(t2), 0);
  assert.ok(readFileSync(file, 'utf8').length > 0);
});

test('bad start-up input exits non-zero with the reason', async () => {
  const t = startTarget(['-m', 'zz']);
  assert.equal(await exitCode(t), 2);
  assert.match(t.log(), /cpumask 'zz'/);
  const file = join(dir, 'bad.json');
  writeFileSync(
    file,
    JSON.stringify({ subsystems: [{ subsystem: 'sock', config: [{ method: 'no_such_method' }] }] }),
  );
  const t2 = startTarget(['--json', file]);
  assert.equal(await exitCode(t2), 1);
  assert.match(t2.log(), /no_such_method/);
});

/** GLIBC_TUNABLES of a live process as its kernel sees it ('' when unset). */
function tunablesOf(pid: number): string {
  const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  return env.find((v) => v.startsWith('GLIBC_TUNABLES='))?.slice('GLIBC_TUNABLES='.length) ?? '';
}

/** A target with `args` and `env`, up and initialized, given to `check`, stopped (exit 0) even when `check` throws. */
async function withTarget(
  args: string[],
  env: NodeJS.ProcessEnv,
  check: (t: SpawnedTarget, c: RpcClient) => Promise<void>,
): Promise<void> {
  const t = spawnTarget({ rpcPath: join(dir, `t${++seq}.sock`), args, env });
  const c = await connect(t);
  try {
    await c.call('framework_wait_init');
    await check(t, c);
  } finally {
    assert.equal(await stop(t, c), 0);
  }
}

test("large copies: the target re-executes itself (same PID) with glibc's non-temporal threshold", async () => {
  assert.ok(
    process.platform === 'linux' && process.arch === 'x64',
    `glibc's x86 tunables: this test needs Linux on x86-64, not ${process.platform}/${process.arch}`,
  );
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  // the default, 64 KiB: the process we spawned (execve keeps its PID) has it
  await withTarget(['--log-level', 'info'], env, async (t) => {
    assert.match(tunablesOf(t.child.pid as number), /^glibc\.cpu\.x86_non_temporal_threshold=0x10000(:|$)/);
    await t.waitForLog('large copies: GLIBC_TUNABLES=glibc.cpu.x86_non_temporal_threshold=0x10000', 5000);
  });
  // a size of the user's, after tunables already set (the log shows it: glibc cuts the variable
  // at each ':' in the block /proc/PID/environ reads, not in the process's own copy)
  const arena = { ...env, GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' };
  await withTarget(['--nt-copy-threshold', '1M', '--log-level', 'info'], arena, async (t) => {
    await t.waitForLog(
      'large copies: GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.cpu.x86_non_temporal_threshold=0x100000',
      5000,
    );
  });
  // the user's own threshold is theirs
  const own = 'glibc.cpu.x86_non_temporal_threshold=0x200000';
  await withTarget([], { ...env, GLIBC_TUNABLES: own }, async (t) => {
    assert.equal(tunablesOf(t.child.pid as number), own);
  });
  // 0 leaves glibc's own threshold
  await withTarget(['--nt-copy-threshold', '0', '--log-level', 'info'], env, async (t) => {
    assert.equal(tunablesOf(t.child.pid as number), '');
    assert.doesNotMatch(t.log(), /large copies/);
  });
  // a malformed size is a usage error, with no re-execution first
  const bad = spawnTarget({ rpcPath: join(dir, `t${++seq}.sock`), args: ['--nt-copy-threshold', '4k'], env });
  assert.equal(await exitCode(bad), 2);
  assert.match(bad.log(), /--nt-copy-threshold must be 0 or a size from 16448/);
});

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat). */
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Spin this thread until it has been given `us` µs of CPU time, however long that takes. */
function spinForCpu(us: number): void {
  const start = process.threadCpuUsage();
  for (;;) {
    const got = process.threadCpuUsage(start);
    if (got.user + got.system >= us) return;
  }
}

test('an idle target with two reactors does not spin a core', async () => {
  const t = startTarget(['-m', '0x3']);
  const c = await connect(t);
  await c.call('framework_wait_init');
  const cpuTicks = (): number => {
    const f = readFileSync(`/proc/${t.child.pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
  };
  const before = cpuTicks();
  // The window is 1.5 s of CPU time granted to a spinning thread on this machine now, not 1.5 s
  // of wall time (on a loaded machine a spinning target could get few ticks in 1.5 s of wall
  // time): this thread spins until the scheduler gave it that much; a reactor that spun would
  // have been given about as much.
  spinForCpu(1_500_000);
  const used = cpuTicks() - before;
  // 1.5 s at 100 ticks/s = 150 ticks of one busy core; an idle process uses almost none
  assert.ok(used < 20, `idle target used ${used} ticks while a spinning thread got 1.5 s of CPU`);
  // and it still answers promptly after sleeping
  const t0 = performance.now();
  await c.call('thread_get_stats');
  assert.ok(performance.now() - t0 < 1000);
  assert.equal(await stop(t, c), 0);
});

test('after I/O the poll window closes: a target with a connected, idle host does not spin', async () => {
  const port = String(await freePort());
  const nqn = 'nqn.2016-06.io.spdk:idle';
  const file = join(dir, 'idle-after-io.json');
  const listen = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: port };
  writeFileSync(
    file,
    JSON.stringify({
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            { method: 'bdev_malloc_create', params: { name: 'M0', num_blocks: 1024, block_size: 4096 } },
          ],
        },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            { method: 'nvmf_create_subsystem', params: { nqn, allow_any_host: true } },
            { method: 'nvmf_subsystem_add_ns', params: { nqn, namespace: { nsid: 1, bdev_name: 'M0' } } },
            { method: 'nvmf_subsystem_add_listener', params: { nqn, listen_address: listen } },
          ],
        },
      ],
    }),
  );
  // a long window, so that a loop that never stopped polling would show
  const t = startTarget(['-m', '0x3', '--poll-window-us', '5000', '--json', file]);
  const c = await connect(t);
  await c.call('framework_wait_init');
  const host = await NvmeController.connect(
    `trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${nqn}`,
  );
  try {
    const q = await host.createIoQpair(8);
    // QD1 traffic: every command finds the loop in its poll window
    for (let i = 0; i < 200; i++) {
      const data = pattern(4096, i);
      await q.writeAsync(1, i % 1024, 1, data);
      const back = Buffer.alloc(4096);
      await q.readAsync(1, i % 1024, 1, back);
      assert.ok(back.equals(data));
    }
    const before = cpuTicks(t.child.pid as number);
    spinForCpu(1_500_000);
    const used = cpuTicks(t.child.pid as number) - before;
    assert.ok(used < 20, `target idle after I/O used ${used} ticks while a spinning thread got 1.5 s of CPU`);
  } finally {
    await host.disconnect();
    // stopped even when an assertion failed, so the file does not wait on a live child
    assert.equal(await stop(t, c), 0);
  }
});

test('--log-json writes one JSON object per line; -L enables a component debug line', async () => {
  const t = startTarget(['--log-json', '-L', 'app', '--log-level', 'info']);
  const c = await connect(t);
  await c.call('framework_wait_init');
  assert.equal(await stop(t, c), 0);
  const lines = t
    .log()
    .split('\n')
    .filter((l) => l.length > 0);
  assert.ok(lines.length > 5);
  const records = lines.map(
    (l) => JSON.parse(l) as { level: string; component: string; msg: string; reactor: string },
  );
  assert.ok(records.some((r) => r.component === 'app' && r.msg === 'subsystem sock: init'));
  assert.ok(records.some((r) => r.level === 'info' && r.component === 'reactor'));
  assert.ok(records.every((r) => typeof r.reactor === 'string' && typeof r.msg === 'string'));
  assert.ok(
    records.some(
      (r) => r.level === 'debug' && r.component === 'app' && r.msg === 'subsystem sock: init done',
    ),
  );
  assert.ok(!records.some((r) => r.level === 'debug' && r.component !== 'app'));
});

test('SIGINT stops gracefully; a second target on a socket in use exits 1 with the reason', async () => {
  const t = startTarget([]);
  const c = await connect(t);
  await c.call('framework_wait_init');
  const second = spawnTarget({ rpcPath: t.rpcPath });
  const code2 = await exitCode(second);
  assert.equal(code2, 1);
  assert.match(second.log(), /in use/);
  assert.equal(await c.call('spdk_get_version').then(() => 'alive'), 'alive');
  c.close();
  t.child.kill('SIGINT');
  assert.equal(await exitCode(t), 0);
  assert.match(t.log(), /received SIGINT/);
});
