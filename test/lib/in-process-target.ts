// An NvmfTarget in this process, on the caller's thread harness: the transport plug-in
// registered, the target's io_device, the target started on one poll group with the
// transport created. For tests and benches that drive qpairs themselves (fake sockets, a
// fake fabric) and poll the threads as they go.
import { NVMF_TGT_DEVICE } from '../../src/nvmf/messages.ts';
import { NvmfPollGroup } from '../../src/nvmf/poll-group.ts';
import { NvmfTarget, setTarget } from '../../src/nvmf/target.ts';
import { createTcpPollGroup, TCP_DEFAULT_OPTIONS, type TcpPollGroup } from '../../src/nvmf/tcp/index.ts';
import { registerTransport, type TransportOptions, type TransportPlugin } from '../../src/nvmf/transport.ts';
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
