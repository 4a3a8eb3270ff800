// NVMe/TCP transport: public surface for the target core.
export { type AcceptCallback, TcpListener } from './listener.ts';
export {
  createTcpPollGroup,
  TCP_DEFAULT_OPTIONS,
  TcpPollGroup,
  TcpQpair,
  TcpQpairState,
  TcpReqState,
  TcpRequest,
} from './tcp.ts';
