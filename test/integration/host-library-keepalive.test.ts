// The host library's keep-alive: a target that hangs without closing its
// socket (SIGSTOP) leaves a Keep Alive unanswered; after KATO the library ends
// the admin connection (onConnectionLost) and fails what was outstanding.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { NvmeController } from '../../src/nvme/index.ts';
import {
  type ChildTarget,
  countKeepAlives,
  pollUntil,
  startChildTarget,
  TEST_NQN,
  waitFor,
} from '../lib/index.ts';

let target: ChildTarget;
const identityDir = mkdtempSync(join(tmpdir(), 'nvmf-ts-ka-'));
const savedXdg = process.env.XDG_CONFIG_HOME;

before(async () => {
  process.env.XDG_CONFIG_HOME = identityDir; // the default host identity stays in the temp dir
  target = await startChildTarget({ cores: '0x1' });
});

after(async () => {
  target?.child.kill('SIGCONT');
  await target?.stop();
  if (savedXdg === undefined) delete process.env.XDG_CONFIG_HOME;
  else process.env.XDG_CONFIG_HOME = savedXdg;
  rmSync(identityDir, { recursive: true, force: true });
});

test('a hung target: the unanswered Keep Alive ends the connection after KATO; an answering one keeps it', async () => {
  const KATO = 1000;
  const ctrlr = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: target.port, subnqn: TEST_NQN },
    { kato: KATO },
  );
  try {
    let lostAt = 0;
    let reason = '';
    ctrlr.onConnectionLost = (why) => {
      lostAt = Date.now();
      reason = why;
    };
    // answering target: three KATOs go by with the connection up, as six answered Keep Alives
    const keepAlives = countKeepAlives(ctrlr);
    await waitFor('six Keep Alives answered', () => keepAlives.answered >= 6, { timeoutMs: 10 * KATO });
    assert.equal(lostAt, 0, `connection lost while the target answered: ${reason}`);
    assert.equal(ctrlr.failed, false);

    const io = await ctrlr.createIoQpair(8);
    target.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    const pending = io.readAsync(1, 0, 1, Buffer.alloc(512)).then(
      () => 'completed',
      () => 'failed',
    );
    const deadline = stoppedAt + 10 * KATO;
    await pollUntil(() => lostAt > 0, { timeoutMs: deadline - Date.now() });
    assert.ok(lostAt > 0, 'the connection was not ended while the target hung');
    assert.match(reason, /keep alive not answered within 1000 ms/);
    assert.ok(lostAt - stoppedAt >= KATO * 0.9, `ended ${lostAt - stoppedAt} ms after the hang, before KATO`);
    assert.equal(ctrlr.failed, true);
    target.child.kill('SIGCONT');
    // the I/O queue is the controller's: the host fails it once the target is gone for it
    io.close();
    assert.equal(await pending, 'failed');
  } finally {
    target.child.kill('SIGCONT');
    await ctrlr.disconnect();
  }
});
