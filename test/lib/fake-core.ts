// A fake target core for transport and host-library tests: answers Connect, properties,
// Identify, Set Features, Keep Alive and NVM I/O against an in-memory disk.

import type net from 'node:net';
import {
  createTcpPollGroup,
  TCP_DEFAULT_OPTIONS,
  TcpListener,
  type TcpPollGroup,
} from '../../src/nvmf/tcp/index.ts';
import type { NvmfQpair, NvmfRequest, QpairEvents, TransportOptions } from '../../src/nvmf/transport.ts';
import { buildDiscoveryLog } from '../../src/wire/discovery.ts';
import {
  CONNECT_CATTR_DISABLE_SQFLOW,
  readConnectCommand,
  readPropertyCommand,
} from '../../src/wire/fabrics.ts';
import { Cns, IdCtrl } from '../../src/wire/identify.ts';
import { decodeGetLog, LogPage } from '../../src/wire/log.ts';
import {
  AdminOpcode,
  ControllerRegister,
  Cqe,
  Dsm,
  FABRICS_OPCODE,
  FabricsCommandType,
  GenericStatus,
  getNumBlocks,
  getSlba,
  MediaErrorStatus,
  NvmOpcode,
  Sqe,
  StatusCodeType,
  setStatus,
} from '../../src/wire/nvme.ts';

export const BLOCK = 512;

export class FakeCore implements QpairEvents {
  readonly disk: Buffer;
  connected = 0;
  disconnected: NvmfQpair[] = [];
  requests = 0;
  enabled = false;
  /** complete on a later tick to exercise asynchronous completion */
  asyncComplete = true;

  constructor(blocks: number) {
    this.disk = Buffer.alloc(blocks * BLOCK);
  }

  onQpairConnected(_qpair: NvmfQpair): void {
    this.connected++;
  }

  onQpairDisconnected(qpair: NvmfQpair): void {
    this.disconnected.push(qpair);
  }

  onRequest(req: NvmfRequest): void {
    this.requests++;
    this.execute(req);
    if (this.asyncComplete) setImmediate(() => req.complete());
    else req.complete();
  }

  private execute(req: NvmfRequest): void {
    const cmd = req.cmd;
    const rsp = req.rsp;
    const opcode = cmd[Sqe.OPCODE];
    if (opcode === FABRICS_OPCODE) {
      const fctype = cmd[Sqe.FCTYPE];
      if (fctype === FabricsCommandType.CONNECT) {
        const c = readConnectCommand(cmd);
        req.qpair.qid = c.qid;
        req.qpair.sqSize = c.sqsize + 1;
        req.qpair.sqFlowControlDisabled = (c.cattr & CONNECT_CATTR_DISABLE_SQFLOW) !== 0;
        rsp.writeUInt16LE(1, Cqe.DW0);
        return;
      }
      if (fctype === FabricsCommandType.PROPERTY_GET) {
        const off = readPropertyCommand(cmd).offset;
        if (off === ControllerRegister.CAP) {
          // MQES 127, CQR, TO 1 (500 ms); CSS NVM in the high dword
          rsp.writeUInt32LE(127 | (1 << 16) | (1 << 24), 0);
          rsp.writeUInt32LE(0x20, 4);
        } else if (off === ControllerRegister.CSTS) rsp.writeUInt32LE(this.enabled ? 1 : 0, 0);
        else if (off === ControllerRegister.VS) rsp.writeUInt32LE(0x10300, 0);
        return;
      }
      if (fctype === FabricsCommandType.PROPERTY_SET) {
        const p = readPropertyCommand(cmd);
        if (p.offset === ControllerRegister.CC) this.enabled = (p.value & 1n) === 1n;
        return;
      }
      setStatus(rsp, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
      return;
    }
    if (req.qpair.qid === 0) {
      switch (opcode) {
        case AdminOpcode.IDENTIFY: {
          if (cmd.readUInt32LE(Sqe.CDW10) === Cns.ACTIVE_NS_LIST) {
            // active namespace list: hand back fewer bytes than asked (the transport pads)
            const list = Buffer.alloc(8);
            list.writeUInt32LE(1, 0);
            req.iov = [list];
            return;
          }
          const data = Buffer.alloc(4096);
          data.writeUInt32LE((4096 + 64) / 16, IdCtrl.IOCCSZ);
          data.write('FAKE', IdCtrl.MN);
          req.iov = [data.subarray(0, req.length)];
          return;
        }
        case AdminOpcode.SET_FEATURES:
          rsp.writeUInt32LE(cmd.readUInt32LE(Sqe.CDW11), 0);
          return;
        case AdminOpcode.KEEP_ALIVE:
          return;
        case AdminOpcode.GET_LOG_PAGE: {
          const get = decodeGetLog(cmd);
          if (get.lid !== LogPage.DISCOVERY) break;
          const page = buildDiscoveryLog(5, [
            {
              trtype: 'TCP',
              adrfam: 'IPv4',
              subtype: 2,
              portid: 1,
              cntlid: 0xffff,
              asqsz: 128,
              eflags: 0,
              trsvcid: '4420',
              subnqn: 'nqn.2016-06.io.spdk:cnode1',
              traddr: '127.0.0.1',
            },
          ]);
          const data = Buffer.alloc(req.length);
          page.copy(data, 0, Math.min(get.offset, page.length));
          req.iov = [data];
          return;
        }
        default:
          break;
      }
      setStatus(rsp, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
      return;
    }
    const blocks = this.disk.length / BLOCK;
    const lba = getSlba(cmd);
    const nlb = getNumBlocks(cmd);
    const inRange = lba + nlb <= blocks;
    switch (opcode) {
      case NvmOpcode.READ:
        if (!inRange) break;
        // hand out a view of the disk (the core may replace iov)
        req.iov = [this.disk.subarray(lba * BLOCK, (lba + nlb) * BLOCK)];
        return;
      case NvmOpcode.WRITE: {
        if (!inRange) break;
        let off = lba * BLOCK;
        for (const b of req.iov) off += b.copy(this.disk, off);
        return;
      }
      case NvmOpcode.COMPARE: {
        if (!inRange) break;
        let off = lba * BLOCK;
        for (const b of req.iov) {
          if (!b.equals(this.disk.subarray(off, off + b.length))) {
            setStatus(rsp, StatusCodeType.MEDIA_ERROR, MediaErrorStatus.COMPARE_FAILURE);
            return;
          }
          off += b.length;
        }
        return;
      }
      case NvmOpcode.WRITE_ZEROES:
        if (!inRange) break;
        this.disk.fill(0, lba * BLOCK, (lba + nlb) * BLOCK);
        return;
      case NvmOpcode.FLUSH:
        return;
      case NvmOpcode.DATASET_MANAGEMENT: {
        const ranges = (cmd.readUInt32LE(Sqe.CDW10) & 0xff) + 1;
        const data = req.iov[0];
        for (let i = 0; i < ranges; i++) {
          const l = data.readUInt32LE(i * Dsm.RANGE_SIZE + Dsm.RANGE_SLBA_LO);
          const n = data.readUInt32LE(i * Dsm.RANGE_SIZE + Dsm.RANGE_LENGTH);
          this.disk.fill(0, l * BLOCK, (l + n) * BLOCK);
        }
        return;
      }
      default:
        setStatus(rsp, StatusCodeType.GENERIC, GenericStatus.INVALID_OPCODE, true);
        return;
    }
    setStatus(rsp, StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE, true);
  }
}

export interface FakeTarget {
  core: FakeCore;
  group: TcpPollGroup;
  listener: TcpListener;
  port: number;
  close(): Promise<void>;
}

/** Listener on 127.0.0.1 (ephemeral port) + one poll group polled on wake-up. */
export async function startFakeTarget(
  blocks = 2048,
  opts: Partial<TransportOptions> = {},
): Promise<FakeTarget> {
  const core = new FakeCore(blocks);
  let scheduled = false;
  let group: TcpPollGroup | null = null;
  const runPoll = () => {
    scheduled = false;
    while (group?.poll()) {
      // keep polling while busy (bounded by the work queued)
    }
  };
  group = createTcpPollGroup({ ...TCP_DEFAULT_OPTIONS, ...opts }, core, () => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(runPoll);
    }
  });
  const g = group;
  const listener = new TcpListener(
    { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '0' },
    (socket: net.Socket, addr) => g.addSocket(socket, addr),
  );
  await listener.listen();
  return {
    core,
    group: g,
    listener,
    port: listener.port,
    async close() {
      await listener.close();
      g.destroy();
    },
  };
}
