// A host that opens a TCP connection and then never completes a Fabrics
// Connect (silent from the start, or silent after its ICReq) has no
// controller, so no keep-alive covers it: the target closes such a
// connection after its connect timeout (NVMF_TS_CONNECT_TIMEOUT_MS, 1 s
// here), while a connected host that stays idle far longer is untouched.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NvmeController } from '../../../src/nvme/index.ts';
import { Ch, IcResp, PduType } from '../../../src/wire/tcp.ts';
import { type ChildTarget, RawConnection, startChildTarget, TEST_NQN, waitFor } from '../../lib/index.ts';
import { icReq } from '../../lib/raw-pdu.ts';

const TIMEOUT_MS = 1000;
let target: ChildTarget;

before(async () => {
  const saved = process.env.NVMF_TS_CONNECT_TIMEOUT_MS;
  process.env.NVMF_TS_CONNECT_TIMEOUT_MS = String(TIMEOUT_MS);
  try {
    target = await startChildTarget();
  } finally {
    if (saved === undefined) delete process.env.NVMF_TS_CONNECT_TIMEOUT_MS;
    else process.env.NVMF_TS_CONNECT_TIMEOUT_MS = saved;
  }
});

after(async () => {
  await target?.stop();
});

async function waitQpairs(want: number, what: string, timeoutMs: number): Promise<void> {
  await waitFor(what, async () => (await target.total('current_qpairs')) === want, {
    timeoutMs,
    intervalMs: 100,
  });
}

test('a connection that never sends anything is closed after the connect timeout', async () => {
  const started = Date.now();
  const silent = await RawConnection.connect(target.port);
  try {
    await waitQpairs(1, 'the target adopted the connection', 3000);
    assert.ok(await silent.waitClosed(10 * TIMEOUT_MS), 'the target closed the silent connection');
    assert.ok(Date.now() - started >= TIMEOUT_MS * 0.9, 'not before the timeout');
    await waitQpairs(0, 'its queue gone from nvmf_get_stats', 5000);
  } finally {
    silent.destroy();
  }
});

test('a connection that stops after ICReq (no Fabrics Connect) is closed too', async () => {
  const conn = await RawConnection.connect(target.port);
  try {
    await conn.write(icReq());
    const reply = await conn.waitBytes(IcResp.SIZE, 3000);
    assert.equal(reply[Ch.TYPE], PduType.IC_RESP, 'ICResp received');
    assert.ok(await conn.waitClosed(10 * TIMEOUT_MS), 'closed for want of a Connect');
    await waitQpairs(0, 'its queue gone from nvmf_get_stats', 5000);
  } finally {
    conn.destroy();
  }
});

test('a connected host idle for several timeouts keeps its queues and does I/O', async () => {
  const ctrlr = await NvmeController.connect(
    { traddr: '127.0.0.1', trsvcid: target.port, subnqn: TEST_NQN },
    { kato: 10_000 },
  );
  try {
    const io = await ctrlr.createIoQpair(8);
    // three connect timeouts go by, each shown by a silent connection opened after the previous
    // one closed (after this host's queues were made) and closed by the target for want of a Connect
    for (let i = 0; i < 3; i++) {
      const witness = await RawConnection.connect(target.port);
      try {
        assert.ok(await witness.waitClosed(10 * TIMEOUT_MS), `silent connection ${i + 1} closed`);
      } finally {
        witness.destroy();
      }
    }
    await waitQpairs(2, "only the host's two queues left", 5000);
    assert.equal(ctrlr.admin.closed, false, 'admin queue still open');
    assert.equal(io.closed, false, 'I/O queue still open');
    const data = Buffer.alloc(4096, 0x5a);
    await io.writeAsync(1, 0, 8, data);
    const back = Buffer.alloc(4096);
    await io.readAsync(1, 0, 8, back);
    assert.ok(back.equals(data), 'data read back');
  } finally {
    await ctrlr.disconnect();
  }
  assert.deepEqual(target.uncaughtErrors(), []);
});
