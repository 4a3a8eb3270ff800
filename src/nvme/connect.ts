// Connecting one queue: the TCP connection (TLS 1.3 first when the transport
// ID has a PSK) with ICReq/ICResp (NvmeTcpQpair), or the rdma_cm connection of an
// NVMe/RDMA queue (NvmeRdmaQpair) when its trtype is rdma, then the Fabrics Connect. An admin queue asks for a new controller (CNTLID
// 0xffff, dynamic model) and learns its CNTLID; an I/O queue joins an existing
// controller by CNTLID with the same host NQN and host ID.

import { parsePskInterchange, TLS_CIPHER_SUITE, TlsPskHash, tlsPsk, tlsPskHashOf } from '../keyring/index.ts';
import { InvalidArgumentError } from '../util/errors.ts';
import {
  CONNECT_CATTR_DISABLE_SQFLOW,
  ConnectData,
  connectResponseCntlid,
  writeConnectCommand,
  writeConnectData,
} from '../wire/fabrics.ts';
import { SQE_SIZE } from '../wire/nvme.ts';
import { execute } from './command.ts';
import { defaultHostIdentity } from './host-identity.ts';
import type { NvmeQpair } from './qpair.ts';
import { NvmeRdmaQpair } from './rdma-qpair.ts';
import { NvmeTcpQpair, type QpairTlsOptions } from './tcp-qpair.ts';
import type { TransportId } from './transport-id.ts';

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

export interface AdminQueueParams {
  trid: TransportId;
  hostid: Buffer;
  queueSize: number;
  /** keep alive timeout in ms sent in Connect (0 = none) */
  kato: number;
  disableSqFlowControl?: boolean;
  connectTimeoutMs?: number;
}

/** Connect an admin queue (a new controller); resolves the queue and the controller's CNTLID. */
export async function connectAdminQueue(p: AdminQueueParams): Promise<{ admin: NvmeQpair; cntlid: number }> {
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
    return { admin, cntlid: connectResponseCntlid(c.dw0) };
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
  if (trid.trtype === 'rdma') {
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

export interface IoQpairConnectParams {
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
    await execute(q, cmd, data, false, `Connect qid ${p.qid}`);
    q.inCapsuleDataSize = saved;
  } catch (err) {
    q.close();
    throw err;
  }
  q.qid = p.qid;
  if (p.ioTimeoutMs) q.ioTimeoutMs = p.ioTimeoutMs;
  return q;
}
