// Connecting one queue: the TCP connection (TLS 1.3 first when the transport
// ID has a PSK) with ICReq/ICResp (NvmeTcpQpair), or the rdma_cm connection of an
// NVMe/RDMA queue (NvmeRdmaQpair) when its trtype is rdma, then the Fabrics Connect. An admin queue asks for a new controller (CNTLID
// 0xffff, dynamic model) and learns its CNTLID; an I/O queue joins an existing
// controller by CNTLID with the same host NQN and host ID. When the Connect
// answer asks for authentication (AUTHREQ.ATR), the queue runs DH-HMAC-CHAP
// (auth.ts) before anything else.

import { parsePskInterchange, TLS_CIPHER_SUITE, TlsPskHash, tlsPsk, tlsPskHashOf } from '../keyring/index.ts';
import { InvalidArgumentError } from '../util/errors.ts';
import { ConnectAuthReq, connectAuthReq } from '../wire/auth.ts';
import {
  CONNECT_CATTR_DISABLE_SQFLOW,
  ConnectData,
  connectResponseCntlid,
  writeConnectCommand,
  writeConnectData,
} from '../wire/fabrics.ts';
import { SQE_SIZE } from '../wire/nvme.ts';
import { type AuthOutcome, authenticateQueue, type DhchapHostConfig, randomTransactionId } from './auth.ts';
import { execute } from './command.ts';
import { NvmeAuthError } from './errors.ts';
import { defaultHostIdentity } from './host-identity.ts';
import type { NvmeQpair } from './qpair.ts';
import { NvmeRdmaQpair } from './rdma-qpair.ts';
import { NvmeTcpQpair, type QpairTlsOptions } from './tcp-qpair.ts';
import { isRdmaTransportId, type TransportId } from './transport-id.ts';

/** CNTLID an admin Connect sends to ask for a new controller. */
const DYNAMIC_CNTLID = 0xffff;
/** In-capsule data of the admin queue: room for the Connect data and small admin writes. */
const ADMIN_IN_CAPSULE_SIZE = 4096;

/**
 * What a queue to `trid` offers in its TLS handshake (undefined: plain TCP): identity version 0
 * and its TLS PSK for the host and subsystem NQNs (src/keyring/tls-psk.ts), as SPDK's initiator
 * and Linux (6.12) offer them. Node's TLS binds an external PSK to SHA-256, so a 48-byte
 * (SHA-384) key is refused here rather than failing every handshake.
 */
export function queueTls(trid: TransportId): QpairTlsOptions | undefined {
  if (trid.tlsKey === undefined) return undefined;
  const key = parsePskInterchange(trid.tlsKey);
  if (tlsPskHashOf(key) !== TlsPskHash.SHA256)
    throw new InvalidArgumentError(
      'TLS PSK: a 48-byte (SHA-384) key needs TLS_AES_256_GCM_SHA384, which Node binds to no external PSK; use a 32-byte key',
    );
  const t = tlsPsk(key, trid.hostnqn ?? defaultHostIdentity().hostnqn, trid.subnqn, 0);
  return { identity: t.identity, psk: t.psk, cipherSuite: TLS_CIPHER_SUITE[t.hash] };
}

/** The Connect command and its data for one queue. */
function connectCommand(
  qid: number,
  queueSize: number,
  kato: number,
  disableSqFlowControl: boolean,
  cntlid: number,
  trid: TransportId,
  hostid: Buffer,
): { cmd: Buffer; data: Buffer } {
  const cmd = Buffer.alloc(SQE_SIZE);
  writeConnectCommand(cmd, {
    recfmt: 0,
    qid,
    sqsize: queueSize - 1,
    cattr: disableSqFlowControl ? CONNECT_CATTR_DISABLE_SQFLOW : 0,
    kato,
  });
  const data = Buffer.alloc(ConnectData.SIZE);
  writeConnectData(data, {
    hostid,
    cntlid,
    subnqn: trid.subnqn,
    hostnqn: trid.hostnqn ?? defaultHostIdentity().hostnqn,
  });
  return { cmd, data };
}

/** DH-HMAC-CHAP of a queue the controller asks to authenticate (the Connect answer's AUTHREQ). */
export interface QueueAuthParams {
  /** null or absent: no secret, so a controller that requires authentication is refused */
  dhchap?: DhchapHostConfig | null;
  /** transaction id of the authentication (default random) */
  authTid?: number;
}

/** After a Connect: authenticate when the answer's AUTHREQ asks for it; null when it did not. */
async function authenticateIfAsked(
  q: NvmeQpair,
  dw0: number,
  qid: number,
  trid: TransportId,
  p: QueueAuthParams,
): Promise<AuthOutcome | null> {
  const req = connectAuthReq(dw0);
  if ((req & (ConnectAuthReq.ATR | ConnectAuthReq.ASCR)) === 0) return null;
  if (req & ConnectAuthReq.ASCR)
    throw new NvmeAuthError(
      qid,
      'none',
      0,
      'the controller asks for secure channel concatenation (not supported)',
    );
  if (!p.dhchap)
    throw new NvmeAuthError(qid, 'none', 0, 'the controller requires DH-HMAC-CHAP and no secret was given');
  return authenticateQueue(q, {
    qid,
    hostnqn: trid.hostnqn ?? defaultHostIdentity().hostnqn,
    subnqn: trid.subnqn,
    tid: p.authTid ?? randomTransactionId(),
    config: p.dhchap,
  });
}

export interface AdminQueueParams extends QueueAuthParams {
  trid: TransportId;
  hostid: Buffer;
  queueSize: number;
  /** keep alive timeout in ms sent in Connect (0 = none) */
  kato: number;
  disableSqFlowControl?: boolean;
  connectTimeoutMs?: number;
}

/** Connect an admin queue (a new controller); resolves the queue and the controller's CNTLID. */
export async function connectAdminQueue(
  p: AdminQueueParams,
): Promise<{ admin: NvmeQpair; cntlid: number; auth: AuthOutcome | null }> {
  const admin = await openQueue(p.trid, 0, p.queueSize, ADMIN_IN_CAPSULE_SIZE, p.connectTimeoutMs);
  try {
    const { cmd, data } = connectCommand(
      0,
      p.queueSize,
      p.kato,
      p.disableSqFlowControl === true,
      DYNAMIC_CNTLID,
      p.trid,
      p.hostid,
    );
    const c = await execute(admin, cmd, data, false, 'Connect');
    const auth = await authenticateIfAsked(admin, c.dw0, 0, p.trid, p);
    return { admin, cntlid: connectResponseCntlid(c.dw0), auth };
  } catch (err) {
    admin.close();
    throw err;
  }
}

/** The transport connection of one queue, TCP or RDMA as the transport ID says. */
function openQueue(
  trid: TransportId,
  qid: number,
  queueSize: number,
  inCapsuleDataSize: number,
  connectTimeoutMs: number | undefined,
): Promise<NvmeQpair> {
  if (isRdmaTransportId(trid)) {
    if (trid.tlsKey !== undefined)
      return Promise.reject(
        new InvalidArgumentError('TLS (a PSK) is an NVMe/TCP secure channel, not for trtype rdma'),
      );
    // an admin queue takes no in-capsule data over RDMA (Linux's nvmet-rdma refuses it)
    return NvmeRdmaQpair.connect({
      traddr: trid.traddr,
      trsvcid: trid.trsvcid,
      qid,
      queueSize,
      inCapsuleDataSize: qid === 0 ? 0 : inCapsuleDataSize,
      connectTimeoutMs,
    });
  }
  return NvmeTcpQpair.connect({
    traddr: trid.traddr,
    trsvcid: trid.trsvcid,
    hdgst: trid.hdgst,
    ddgst: trid.ddgst,
    queueSize,
    inCapsuleDataSize,
    connectTimeoutMs,
    tls: queueTls(trid),
  });
}

export interface IoQpairConnectParams extends QueueAuthParams {
  trid: TransportId;
  /** the controller this queue joins (from its admin Connect) */
  cntlid: number;
  /** 16-byte host identifier, the same as the admin queue's */
  hostid: Buffer;
  qid: number;
  queueSize: number;
  /** IOCCSZ-derived in-capsule data limit in bytes (see NvmeController.ioInCapsuleDataSize) */
  inCapsuleDataSize: number;
  disableSqFlowControl?: boolean;
  connectTimeoutMs?: number;
  /** largest transfer of one command in bytes (NvmeController.maxTransferSize); default unlimited */
  maxTransferSize?: number;
  /** per-command timeout in ms (default 0 = none); see NvmeTcpQpair.ioTimeoutMs */
  ioTimeoutMs?: number;
}

/** The transport connection (TCP + ICReq, or rdma_cm) + Fabrics Connect of one I/O queue. */
export async function connectIoQueue(p: IoQpairConnectParams): Promise<NvmeQpair> {
  const q = await openQueue(p.trid, p.qid, p.queueSize, p.inCapsuleDataSize, p.connectTimeoutMs);
  try {
    const { cmd, data } = connectCommand(
      p.qid,
      p.queueSize,
      0,
      p.disableSqFlowControl === true,
      p.cntlid,
      p.trid,
      p.hostid,
    );
    // Connect data (1 KiB) always goes in the capsule
    const saved = q.inCapsuleDataSize;
    q.inCapsuleDataSize = Math.max(saved, ConnectData.SIZE);
    const c = await execute(q, cmd, data, false, `Connect qid ${p.qid}`);
    q.inCapsuleDataSize = saved;
    await authenticateIfAsked(q, c.dw0, p.qid, p.trid, p);
  } catch (err) {
    q.close();
    throw err;
  }
  q.qid = p.qid;
  if (p.ioTimeoutMs) q.ioTimeoutMs = p.ioTimeoutMs;
  return q;
}
