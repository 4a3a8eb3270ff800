// The Application in-process on one reactor, with a test subsystem table.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Application } from '../../../src/event/app.ts';
import type { FrameworkSubsystem } from '../../../src/event/subsystem.ts';
import { RpcClient, RpcState } from '../../../src/jsonrpc/index.ts';
import { LogLevel } from '../../../src/util/log.ts';

const dir = mkdtempSync(join(tmpdir(), 'nvmf-app-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function table(events: string[], failing?: string): FrameworkSubsystem[] {
  const mk = (name: string, depends: string[]): FrameworkSubsystem => {
    let value = 0;
    return {
      name,
      depends,
      realmInit: () => {
        events.push(`realm ${name}`);
      },
      init: async () => {
        await new Promise((r) => setTimeout(r, 5)); // each init completes asynchronously
        if (name === failing) throw new Error(`${name} cannot start`);
        events.push(`init ${name}`);
      },
      fini: async () => {
        events.push(`fini ${name}`);
      },
      writeConfigJson: () => [{ method: `${name}_set`, params: { value } }],
      rpcMethods: [
        {
          name: `${name}_set`,
          summary: `set ${name}'s value`,
          states: RpcState.STARTUP,
          params: [{ name: 'value', type: 'integer', required: true, help: 'the value' }],
          handler: (p: { value: number }) => {
            value = p.value;
            return true;
          },
        },
      ],
    };
  };
  return [mk('top', ['mid']), mk('base', []), mk('mid', ['base'])];
}

const quiet = { level: LogLevel.ERROR, flags: [], json: false };

test('init in dependency order, wait-for-rpc, save_config, fini in reverse', async () => {
  const events: string[] = [];
  const sock = join(dir, 'a.sock');
  const app = new Application({
    cores: [0],
    rpcSocket: sock,
    waitForRpc: true,
    log: quiet,
    subsystems: table(events),
  });
  await app.start();
  assert.deepEqual(events, ['realm base', 'realm mid', 'realm top']);
  const c = await RpcClient.connect(sock, 5000);
  assert.equal(await c.call('mid_set', { value: 42 }), true);
  await assert.rejects(c.call('mid_set', { value: 'x' }), /value/);
  await c.call('framework_start_init');
  assert.deepEqual(events.slice(3), ['init base', 'init mid', 'init top']);
  assert.deepEqual(await c.call('framework_get_subsystems'), [
    { subsystem: 'base', depends_on: [] },
    { subsystem: 'mid', depends_on: ['base'] },
    { subsystem: 'top', depends_on: ['mid'] },
  ]);
  const saved = (await c.call('save_config')) as {
    subsystems: Array<{ subsystem: string; config: unknown[] }>;
  };
  assert.deepEqual(saved.subsystems[1], {
    subsystem: 'mid',
    config: [{ method: 'mid_set', params: { value: 42 } }],
  });
  await assert.rejects(c.call('framework_start_init'), /before framework is initialized/);
  c.close();
  await app.stop(0);
  assert.equal(await app.stopped, 0);
  assert.deepEqual(events.slice(6), ['fini top', 'fini mid', 'fini base']);
});

test('a failing init stops the started subsystems in reverse and reports exit 1', async () => {
  const events: string[] = [];
  const app = new Application({
    cores: [0],
    rpcSocket: join(dir, 'b.sock'),
    waitForRpc: false,
    log: quiet,
    subsystems: table(events, 'top'),
  });
  await assert.rejects(app.start(), /top cannot start/);
  assert.equal(await app.stopped, 1);
  assert.deepEqual(events.slice(3), ['init base', 'init mid', 'fini mid', 'fini base']);
});

test('a cyclic table is refused before anything starts', () => {
  const t = table([]);
  t[1].depends = ['top'];
  assert.throws(
    () =>
      new Application({
        cores: [0],
        rpcSocket: join(dir, 'c.sock'),
        waitForRpc: false,
        log: quiet,
        subsystems: t,
      }),
    /dependency cycle/,
  );
});
