// NVMe/TCP transport: public surface for the target core.
export { type AcceptCallback, TcpListener } from './listener.ts';
export { createTcpPollGroup, TCP_DEFAULT_OPTIONS, TcpPollGroup } from './poll-group.ts';
export { TcpQpair, TcpQpairState } from './qpair.ts';
export { TcpReqState, TcpRequest } from './request.ts';
