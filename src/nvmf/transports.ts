// Table of transport plug-ins (explicit registration, no import side effects).
// The nvmf framework subsystem registers TCP (src/nvmf/tcp) here in every realm.
import type { Socket } from 'node:net';
import type { QpairEvents, TransportAddress, TransportOptions, TransportPollGroup } from './transport.ts';

export interface TransportListener {
  close(): Promise<void>;
}

export interface TransportPlugin {
  /** upper case, e.g. 'TCP' */
  readonly name: string;
  /** the options nvmf_create_transport fills in when not given (SPDK's defaults) */
  defaults(): TransportOptions;
  createPollGroup(opts: TransportOptions, events: QpairEvents): TransportPollGroup;
  /** app thread: listen on `addr`; each accepted (paused) socket goes to onSocket */
  listen(
    addr: TransportAddress,
    opts: TransportOptions,
    onSocket: (s: Socket) => void,
  ): Promise<TransportListener>;
}

const plugins = new Map<string, TransportPlugin>();

export function registerTransport(p: TransportPlugin): void {
  plugins.set(p.name.toUpperCase(), p);
}

export function getTransport(name: string): TransportPlugin | undefined {
  return plugins.get(name.toUpperCase());
}

export function transportNames(): string[] {
  return [...plugins.keys()];
}
