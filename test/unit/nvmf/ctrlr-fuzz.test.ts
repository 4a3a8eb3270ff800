// Property-based check of the controller's admin and property paths over fake
// requests: any 64-byte SQE with any data length is answered exactly once (AERs
// aside, which wait for an event), never throws, and leaves CC/CSTS consistent
// (CSTS.RDY only with CC.EN, never CFS) and the error log bounded. Fixed seed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { NvmfCtrlr } from '../../../src/nvmf/target-controller.ts';
import type { NvmfRequest } from '../../../src/nvmf/transport.ts';
import { enableDirectly, makeFakeCtrlr } from './fake-ctrlr.ts';

function makeCtrlr(discovery: boolean): NvmfCtrlr {
  return makeFakeCtrlr({ discovery, anaReporting: true, host: { onCtrlrDisabled: () => {} } }).c;
}

/** Admin opcodes and fabrics types worth hitting more often than random bytes would. */
const OPCODES = [0x02, 0x06, 0x08, 0x09, 0x0a, 0x0c, 0x18, 0x7f, 0x01, 0x05, 0x80, 0xc0];

const command = fc.record({
  sqe: fc.uint8Array({ minLength: 64, maxLength: 64 }),
  opcode: fc.oneof(fc.constantFrom(...OPCODES), fc.integer({ min: 0, max: 255 })),
  fctype: fc.constantFrom(0x00, 0x04, 0x01, 0x08, 0x20),
  plainFlags: fc.boolean(),
  length: fc.oneof(fc.constantFrom(0, 4, 64, 512, 1024, 4096, 8192), fc.integer({ min: 0, max: 9000 })),
});

test('any admin or property command is answered once, never throws, keeps CC/CSTS consistent', () => {
  for (const discovery of [false, true]) {
    const c = makeCtrlr(discovery);
    // start enabled most of the time: more commands get past the sequence check
    enableDirectly(c);
    let held = 0;
    fc.assert(
      fc.property(command, (k) => {
        const cmd = Buffer.from(k.sqe);
        cmd[0] = k.opcode;
        if (k.plainFlags) cmd[1] = 0x40;
        if (k.opcode === 0x7f) cmd[4] = k.fctype;
        let done = 0;
        const r: NvmfRequest = {
          qpair: c.adminQpair,
          cmd,
          rsp: Buffer.alloc(16),
          xferDir: 0,
          length: k.length,
          iov: k.length > 0 ? [Buffer.alloc(k.length)] : [],
          traceStart: 0,
          complete() {
            done++;
          },
        };
        if (k.opcode === 0x7f) {
          if (k.fctype === 0x04) c.propertyGet(r);
          else if (k.fctype === 0x00) c.propertySet(r);
          else return; // Connect/Disconnect/others are the poll group's
        } else c.admin(r);
        const isAer = k.opcode === 0x0c && done === 0;
        if (isAer) held++;
        assert.ok(done === 1 || isAer, `completed ${done} times (opcode 0x${k.opcode.toString(16)})`);
        assert.ok(held <= 4, 'at most 4 AERs are held');
        assert.ok((c.csts & 0x2) === 0, 'never CSTS.CFS');
        if ((c.csts & 1) !== 0) assert.ok((c.cc & 1) !== 0, 'CSTS.RDY only with CC.EN');
        assert.ok(c.errorLog.length <= 128, 'error log bounded');
        for (const b of r.iov) assert.ok(b.length <= Math.max(k.length, 4096), 'no oversized data');
      }),
      { seed: 0x5eed, numRuns: 3000 },
    );
    c.destroy();
  }
});
