// Host (initiator) library: NVMe over TCP.
export {
  type Completion,
  type ControllerOptions,
  connectIoQpair,
  DEFAULT_HOSTNQN,
  type DiscoveredEntry,
  type DiscoveryLog,
  type IoCallback,
  type IoQpairConnectParams,
  NvmeController,
  NvmeIoQpair,
  NvmeStatusError,
  type TransportId,
} from './controller.ts';
export {
  type CommandCallback,
  NvmeTcpQpair,
  type QpairConnectOptions,
  TcpTransportError,
} from './tcp-qpair.ts';
export { DISCOVERY_NQN, formatTransportId, parseTransportId } from './trid.ts';
