// Host (initiator) library: NVMe over TCP.
export {
  type Completion,
  type ControllerOptions,
  DEFAULT_HOSTNQN,
  type DiscoveredEntry,
  type DiscoveryLog,
  type IoCallback,
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
