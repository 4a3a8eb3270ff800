// The NVM command path in process (ctrlr-bdev.ts executeIo) over a malloc bdev
// and the deterministic thread harness: data round trips, completions come
// after the submit call with the queue's counters right, fused
// compare-and-write (match and miscompare), and a refused command never
// reaches the bdev.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as B from '../../../src/bdev/index.ts';
import { createMallocBdev } from '../../../src/modules/bdev/malloc/malloc.ts';
import { executeIo, InFlight, type IoQueueState } from '../../../src/nvmf/ctrlr-bdev.ts';
import { PgSubsystem } from '../../../src/nvmf/poll-group-subsystem.ts';
import { NO_RESERVATION } from '../../../src/nvmf/reservation.ts';
import { SubsystemState, SubsystemType } from '../../../src/nvmf/subsystem.ts';
import {
  GenericStatus,
  MediaErrorStatus,
  NvmOpcode,
  Sqe,
  SqeFlags,
  StatusCodeType,
  setSlba,
  statusOf,
} from '../../../src/wire/nvme.ts';
import { pattern } from '../../lib/pattern.ts';
import { pollIdle, settle, uniq } from '../bdev/harness.ts';
import { type FakeReq, fakeQpair, fakeReq } from './fake-ctrlr.ts';

const BS = 512;

interface Queue extends IoQueueState {
  errors: { status: number; lba: number }[];
  completed: number;
}

async function queueOnMalloc(): Promise<Queue> {
  const name = await settle(createMallocBdev({ name: uniq('Malloc'), numBlocks: 256, blockSize: BS }));
  const desc = B.bdevOpen(name, true, () => {});
  const ch = B.bdevGetIoChannel(desc);
  const sub = new PgSubsystem({
    nqn: 'nqn.2016-06.io.spdk:cnode1',
    subtype: SubsystemType.NVME,
    state: SubsystemState.ACTIVE,
    serial: 'SN1',
    model: 'MN1',
    allowAnyHost: true,
    hosts: [],
    authHosts: [],
    namespaces: [],
    listeners: [],
    listenerAnaStates: [],
    anaChangeCount: 0,
    maxNamespaces: 32,
    anaReporting: false,
  });
  sub.ns.set(1, {
    nsid: 1,
    config: {
      nsid: 1,
      bdevName: name,
      nguid: '',
      uuid: '',
      eui64: null,
      anaGroupId: 1,
      noAutoVisible: false,
      hosts: [],
      ptplFile: null,
      resv: NO_RESERVATION,
    },
    visibleHosts: null,
    desc,
    ch,
    unmapSupported: true,
    writeCache: false,
    flushSupported: false,
  });
  const q: Queue = {
    sub,
    hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:ctrlr-bdev-test',
    hostId: '11'.repeat(16),
    inFlight: new InFlight(),
    reservationCommand() {
      throw new Error('no reservation command in these tests');
    },
    fusedFirst: null,
    anaPathStatus: 0,
    outstanding: 0,
    maxTransferBytes: 128 * 1024,
    errors: [],
    completed: 0,
    onError(req, lba) {
      q.errors.push({ status: statusOf(req.rsp), lba });
    },
    onComplete() {
      q.completed++;
    },
  };
  return q;
}

/** An NVM command on namespace 1: `nlb` blocks at `slba`, `fuse` bits, data buffer for the blocks. */
function nvm(opcode: number, slba: number, nlb: number, fuse = 0, data?: Buffer): FakeReq {
  const r = fakeReq(
    fakeQpair(),
    (cmd) => {
      cmd[Sqe.OPCODE] = opcode;
      cmd[Sqe.FLAGS] = SqeFlags.PSDT_SGL_MPTR_CONTIG | fuse;
      cmd.writeUInt32LE(1, Sqe.NSID);
      setSlba(cmd, slba);
      cmd.writeUInt16LE(nlb - 1, Sqe.CDW12);
    },
    nlb * BS,
  );
  if (data !== undefined) data.copy(r.iov[0]);
  return r;
}

const status = (sct: number, sc: number): number => (sct << 8) | sc;

test('write then read back; each completes after the submit call and the counters follow', async () => {
  const q = await queueOnMalloc();
  const data = pattern(8 * BS, 7);
  const w = nvm(NvmOpcode.WRITE, 5, 8, 0, data);
  executeIo(q, w);
  assert.equal(w.done, 0, 'not completed inside the submit call');
  assert.equal(q.outstanding, 1, 'the write is at the bdev');
  pollIdle();
  assert.equal(w.done, 1);
  assert.equal(q.outstanding, 0);
  const r = nvm(NvmOpcode.READ, 5, 8);
  executeIo(q, r);
  pollIdle();
  assert.equal(r.done, 1);
  assert.equal(statusOf(r.rsp), 0);
  assert.deepEqual(Buffer.concat(r.iov).subarray(0, 8 * BS), data);
  assert.equal(q.completed, 2);
  assert.deepEqual(q.errors, []);
});

test('fused compare-and-write: a match writes, a miscompare fails both halves', async () => {
  const q = await queueOnMalloc();
  const old = pattern(4 * BS, 1);
  executeIo(q, nvm(NvmOpcode.WRITE, 10, 4, 0, old));
  pollIdle();

  const fresh = pattern(4 * BS, 2);
  const cmp = nvm(NvmOpcode.COMPARE, 10, 4, SqeFlags.FUSE_FIRST, old);
  const wr = nvm(NvmOpcode.WRITE, 10, 4, SqeFlags.FUSE_SECOND, fresh);
  executeIo(q, cmp);
  assert.equal(q.fusedFirst, cmp, 'the first half waits for its second');
  executeIo(q, wr);
  assert.equal(q.outstanding, 1, 'one bdev I/O for the pair');
  pollIdle();
  assert.deepEqual([cmp.done, wr.done, statusOf(cmp.rsp), statusOf(wr.rsp)], [1, 1, 0, 0]);
  const r = nvm(NvmOpcode.READ, 10, 4);
  executeIo(q, r);
  pollIdle();
  assert.deepEqual(Buffer.concat(r.iov).subarray(0, 4 * BS), fresh);

  const cmp2 = nvm(NvmOpcode.COMPARE, 10, 4, SqeFlags.FUSE_FIRST, old); // no longer what is on disk
  const wr2 = nvm(NvmOpcode.WRITE, 10, 4, SqeFlags.FUSE_SECOND, pattern(4 * BS, 3));
  executeIo(q, cmp2);
  executeIo(q, wr2);
  pollIdle();
  assert.equal(statusOf(cmp2.rsp), status(StatusCodeType.MEDIA_ERROR, MediaErrorStatus.COMPARE_FAILURE));
  assert.equal(statusOf(wr2.rsp), status(StatusCodeType.GENERIC, GenericStatus.ABORTED_FAILED_FUSED));
  assert.equal(q.outstanding, 0);
  assert.deepEqual(
    q.errors.map((e) => e.status),
    [
      status(StatusCodeType.MEDIA_ERROR, MediaErrorStatus.COMPARE_FAILURE),
      status(StatusCodeType.GENERIC, GenericStatus.ABORTED_FAILED_FUSED),
    ],
  );
});

test('a read past the end is refused before the bdev and reported with its LBA', async () => {
  const q = await queueOnMalloc();
  const r = nvm(NvmOpcode.READ, 250, 8);
  executeIo(q, r);
  assert.equal(r.done, 1, 'answered at once');
  assert.equal(q.outstanding, 0, 'nothing went to the bdev');
  assert.equal(statusOf(r.rsp), status(StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE));
  assert.deepEqual(q.errors, [
    { status: status(StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE), lba: 250 },
  ]);
});
