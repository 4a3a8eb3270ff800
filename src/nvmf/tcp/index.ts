// NVMe/TCP transport: public surface for the target core.
export { type AcceptCallback, TcpListener } from './listener.ts';
export { createTcpPollGroup, TCP_DEFAULT_OPTIONS, TcpPollGroup } from './poll-group.ts';
export { TcpQpair, TcpQpairState } from './qpair.ts';
export { TcpReqState, TcpRequest } from './request.ts';
export { PlainSocket, type QpairSocket, TlsSocket } from './socket.ts';
export {
  checkNoSessionTickets,
  createTlsServerContext,
  secureChannelReady,
  TLS_SERVER_CIPHERS,
} from './tls-context.ts';
