// Host (initiator) library: NVMe over TCP. docs/host-library.md describes it.
export {
  type AsyncEvent,
  AsyncEventType,
  CHANGED_NS_LIST_LOG,
  type Completion,
  type ControllerOptions,
  connectIoQpair,
  DEFAULT_HOST_MAX_TRANSFER,
  DEFAULT_HOSTNQN,
  type DiscoveredEntry,
  type DiscoveryLog,
  type DiscoveryLogOptions,
  type IoCallback,
  type IoQpairConnectParams,
  NoticeInfo,
  NvmeController,
  NvmeIoQpair,
  NvmeQueueError,
  NvmeStatusError,
  type TransportId,
} from './controller.ts';
export { type DiscoverOptions, type DiscoveryResult, discover, discoveredSubsystems } from './discovery.ts';
export {
  configDir,
  defaultHostIdentity,
  type HostIdentity,
  type HostIdentityOptions,
  uuidOfHostNqn,
} from './host-identity.ts';
export { isInactiveNamespace, type NamespaceInfo, parseNamespace } from './namespace.ts';
export {
  type CommandCallback,
  NvmeTcpQpair,
  type QpairConnectOptions,
  TcpTransportError,
} from './tcp-qpair.ts';
export { DISCOVERY_NQN, formatTransportId, parseTransportId } from './trid.ts';
