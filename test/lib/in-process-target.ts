// An NvmfTarget in this process, on the caller's thread harness: the transport plug-in
// registered, the target's io_device, the target started on one poll group with the
// transport created. For tests and benches that drive qpairs themselves (fake sockets, a
// fake fabric) and poll the threads as they go.
import { EventEmitter } from 'node:events';
import { NVMF_TGT_DEVICE } from '../../src/nvmf/messages.ts';
import { NvmfPollGroup } from '../../src/nvmf/poll-group.ts';
import { NvmfTarget, setTarget } from '../../src/nvmf/target.ts';
import { createTcpPollGroup, TCP_DEFAULT_OPTIONS, type TcpPollGroup } from '../../src/nvmf/tcp/index.ts';
import {
  registerTransport,
  type TransportAddress,
  type TransportOptions,
  type TransportPlugin,
} from '../../src/nvmf/transport.ts';
import { registerIoDevice } from '../../src/thread/index.ts';

/** Runs the threads until a promise settles (the harness's own settle). */
export type Settle = <X>(p: Promise<X>) => Promise<X>;

export async function startInProcessTarget(
  settle: Settle,
  plugin: TransportPlugin,
  transport: TransportOptions,
): Promise<NvmfTarget> {
  registerTransport(plugin);
  registerIoDevice(
    NVMF_TGT_DEVICE,
    () => new NvmfPollGroup(),
    (pg) => pg.destroy(),
    'nvmf_tgt',
  );
  const tgt = new NvmfTarget();
  setTarget(tgt);
  await settle(tgt.start(1));
  await settle(tgt.createTransport(transport));
  return tgt;
}

/**
 * The TCP transport with no listener: its poll groups go into `groups` as they are made, for
 * the caller to hand sockets to (`TcpPollGroup.addSocket`); no reactor to wake, the caller polls.
 */
export function tcpWithoutListener(groups: TcpPollGroup[]): TransportPlugin {
  return {
    name: 'TCP',
    defaults: () => ({ ...TCP_DEFAULT_OPTIONS }),
    createPollGroup(opts, events) {
      const g = createTcpPollGroup(opts, events, () => {});
      groups.push(g);
      return g;
    },
    listen: async () => ({ close: async () => {} }),
  };
}

/** The listener address the sockets handed to `TcpPollGroup.addSocket` came in on. */
export const TCP_LISTEN: TransportAddress = {
  trtype: 'TCP',
  adrfam: 'IPv4',
  traddr: '127.0.0.1',
  trsvcid: '4420',
};

/**
 * What a TCP poll group uses of an accepted net.Socket, with no kernel behind it: the test
 * feeds bytes with emit('data') and a subclass decides what `write` keeps.
 */
export abstract class SocketWithoutKernel extends EventEmitter {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 50000;
  readonly remoteFamily = 'IPv4';
  destroyed = false;
  setNoDelay(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  end(): this {
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
  abstract write(buf: Buffer, cb?: () => void): boolean;
}
