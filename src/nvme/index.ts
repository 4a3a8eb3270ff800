// Host (initiator) library: NVMe over TCP. docs/host-library.md describes it.

export {
  InvalidArgumentError,
  NvmfTsError,
} from '../util/errors.ts';
// constants the library's API speaks in, from the wire layer
export { DISCOVERY_NQN } from '../wire/discovery.ts';
export { AsyncEventType, NoticeInfo } from '../wire/log.ts';
export {
  AcquireAction,
  Cptpl,
  RegisterAction,
  ReleaseAction,
  type ResvStatusData,
  ResvType,
} from '../wire/reservation.ts';
export {
  type AuthOutcome,
  authenticateQueue,
  type DhchapHostConfig,
  type DhchapHostOptions,
  dhchapHostConfig,
} from './auth.ts';
export type { Completion } from './command.ts';
export type { IoQpairConnectParams } from './connect.ts';
export {
  type AsyncEvent,
  CHANGED_NS_LIST_LOG,
  type ControllerOptions,
  DEFAULT_HOST_MAX_TRANSFER,
  type DiscoveredEntry,
  type DiscoveryLog,
  type DiscoveryLogOptions,
  NvmeController,
} from './controller.ts';
export { type DiscoverOptions, type DiscoveryResult, discover, discoveredSubsystems } from './discovery.ts';
export {
  NvmeAuthError,
  NvmeControllerError,
  type NvmeControllerErrorCode,
  NvmeQueueError,
  type NvmeQueueErrorCode,
  NvmeStatusError,
  TcpTransportError,
} from './errors.ts';
export {
  configDir,
  DEFAULT_HOSTNQN,
  defaultHostIdentity,
  type HostIdentity,
  type HostIdentityOptions,
  hostIdForHostNqn,
  uuidOfHostNqn,
} from './host-identity.ts';
export {
  connectIoQpair,
  type IoCallback,
  NvmeIoQpair,
  type ReservationAcquireOptions,
  type ReservationRegisterOptions,
  type ReservationReleaseOptions,
} from './io-qpair.ts';
export { isInactiveNamespace, type NamespaceInfo, parseNamespace } from './namespace.ts';
export { type CommandCallback, NvmeTcpQpair, type QpairConnectOptions } from './tcp-qpair.ts';
export { formatTransportId, parseTransportId, type TransportId } from './transport-id.ts';
