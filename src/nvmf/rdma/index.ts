// NVMe/RDMA transport: public surface for the target core. The plug-in (a table of
// operations, as SPDK's spdk_nvmf_transport_rdma is): the defaults, the check that
// RDMA can be used here at all, the poll group of each poll-group thread, the
// acceptor of each listen address.
import { rdmaAvailability } from '../../rdma/index.ts';
import type { TransportPlugin } from '../transport.ts';
import { RdmaListener } from './listener.ts';
import { createRdmaPollGroup, RDMA_DEFAULT_OPTIONS, rdmaOptionsError } from './poll-group.ts';

export { type ConnectDecision, decideConnectRequest } from './connect-request.ts';
export { RdmaAcceptor, RdmaListener, rdmaAcceptor } from './listener.ts';
export { createRdmaPollGroup, RDMA_DEFAULT_OPTIONS, RdmaPollGroup, rdmaOptionsError } from './poll-group.ts';
export { RdmaQpair, RdmaQpairState } from './qpair.ts';
export { RdmaReqState, RdmaRequest } from './request.ts';

export const rdmaTransportPlugin: TransportPlugin = {
  name: 'RDMA',
  defaults: () => ({ ...RDMA_DEFAULT_OPTIONS }),
  unavailable() {
    const a = rdmaAvailability();
    return a.available ? null : a.reason;
  },
  createPollGroup: (opts, events) => createRdmaPollGroup(opts, events),
  async listen(addr, opts, _onSocket, onConnection) {
    const problem = rdmaOptionsError(opts);
    if (problem !== null) throw new Error(problem);
    const l = new RdmaListener(addr, opts, onConnection);
    l.listen();
    return l;
  },
};
