// NVMe/RDMA target transport, how a connect request travels from the acceptor
// (app thread) to the poll group that will own the queue, possibly in another
// realm. A CM id moves between realms only by CmId.transfer to a channel of the
// receiving realm, whose token the acceptor does not know in advance; so:
//   1. the acceptor checks the request and offers it to the core, which picks a
//      poll group (round-robin) and hands it the offer (addConnection);
//   2. the poll group claims it, naming its realm's CM channel;
//   3. the acceptor transfers the id there and tells the poll group to adopt it;
//   4. the poll group adopts the id, creates the QP on its CQ and accepts.
// The handlers are declared here once (every realm loads this module); each hands
// its payload to the receiver registered on the thread it runs on, so listener.ts
// and poll-group.ts never import each other.

import { currentThread, defineHandler, type ThreadRef } from '../../thread/index.ts';
import type { TransportAddress } from '../transport.ts';

/** What the acceptor gives the core for a checked connect request (the `conn` of addConnection). */
export interface RdmaOffer {
  /** names the request at the acceptor */
  offer: number;
  acceptor: ThreadRef;
}

/** A poll group claims an offer: the id goes to the CM channel with that token. */
export interface RdmaClaim {
  offer: number;
  channelToken: number;
  pg: ThreadRef;
}

/** The acceptor handed the id over: adopt it with `token`, then accept with these values. */
export interface RdmaAdopt {
  token: number;
  qid: number;
  depth: number;
  readDepth: number;
  listenAddr: TransportAddress;
}

/** The acceptor's side (RdmaAcceptor in listener.ts). */
export interface RdmaAcceptorInbox {
  claim(m: RdmaClaim): void;
}

/** A poll group's side (RdmaPollGroup in poll-group.ts). */
export interface RdmaPollGroupInbox {
  adopt(m: RdmaAdopt): void;
}

let acceptor: RdmaAcceptorInbox | null = null;
const pollGroups = new Map<number, RdmaPollGroupInbox>();

export function setRdmaAcceptorInbox(a: RdmaAcceptorInbox | null): void {
  acceptor = a;
}

export function setRdmaPollGroupInbox(threadId: number, pg: RdmaPollGroupInbox | null): void {
  if (pg === null) pollGroups.delete(threadId);
  else pollGroups.set(threadId, pg);
}

export const rdmaHandoff = {
  /** poll group → acceptor */
  claim: defineHandler<RdmaClaim>('nvmf.rdma.claim', (m) => acceptor?.claim(m)),
  /** acceptor → poll group (an id nobody adopts is cleaned up with its realm) */
  adopt: defineHandler<RdmaAdopt>('nvmf.rdma.adopt', (m) => pollGroups.get(currentThread().id)?.adopt(m)),
};
