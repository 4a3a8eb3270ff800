// NVMe/RDMA target transport, the acceptor's decision on an rdma_cm connect
// request: the binding's private data checked (length, RECFMT, QID, HSQSIZE,
// HRQSIZE) and the host's RDMA READ allowance, then the queue's depth and RDMA
// READ depth negotiated from what the host asked, the transport's limits and
// the device's. A refusal carries the reject status the binding defines, which
// goes back to the host in the reject's private data. Pure: the unit tests
// drive it without a device.

import { RDMA_CM_RECFMT, RdmaRejectStatus, readRdmaConnectRequest } from '../../wire/rdma.ts';

/** What the transport allows (its options, SPDK's names). */
export interface ConnectLimits {
  max_queue_depth: number;
  max_aq_depth: number;
  max_io_qpairs_per_ctrlr: number;
}

/** What the device allows (ibv_query_device). */
export interface DeviceLimits {
  /** work requests per queue */
  maxQpWr: number;
  /** RDMA READs this side may have outstanding as the initiator */
  maxQpInitRdAtom: number;
}

export type ConnectDecision =
  | {
      accept: true;
      qid: number;
      /** commands the queue holds: receives posted, the accept's CRQSIZE */
      depth: number;
      /** RDMA READs the queue may have outstanding (the accept's initiator depth) */
      readDepth: number;
      hrqsize: number;
      hsqsize: number;
    }
  | { accept: false; status: number; reason: string };

function refuse(status: number, reason: string): ConnectDecision {
  return { accept: false, status, reason };
}

/**
 * Checks a connect request. `privateData` is what the CM delivered (it may pad the 32
 * bytes with zeros); `initiatorDepth` is the CM event's field: the RDMA READs the host
 * lets us have outstanding against it (its responder resources).
 */
export function decideConnectRequest(
  privateData: Buffer | null,
  initiatorDepth: number,
  limits: ConnectLimits,
  device: DeviceLimits,
): ConnectDecision {
  const req = privateData === null ? null : readRdmaConnectRequest(privateData);
  if (req === null) {
    return refuse(
      RdmaRejectStatus.INVALID_PRIVATE_DATA_LENGTH,
      `private data of ${privateData?.length ?? 0} bytes, the binding's is 32`,
    );
  }
  if (req.recfmt !== RDMA_CM_RECFMT) return refuse(RdmaRejectStatus.INVALID_RECFMT, `RECFMT ${req.recfmt}`);
  if (req.qid > limits.max_io_qpairs_per_ctrlr) {
    return refuse(
      RdmaRejectStatus.INVALID_QID,
      `QID ${req.qid} beyond max_io_qpairs_per_ctrlr ${limits.max_io_qpairs_per_ctrlr}`,
    );
  }
  // HSQSIZE is 0's based: a queue of one entry cannot exist (SQSIZE 0 is invalid in NVMe)
  if (req.hsqsize < 1) return refuse(RdmaRejectStatus.INVALID_HSQSIZE, `HSQSIZE ${req.hsqsize}`);
  // a host must be able to receive the response of every command it may send
  if (req.hrqsize < req.hsqsize + 1) {
    return refuse(
      RdmaRejectStatus.INVALID_HRQSIZE,
      `HRQSIZE ${req.hrqsize} below the ${req.hsqsize + 1} commands HSQSIZE allows`,
    );
  }
  // as SPDK: no RDMA READ allowance, no way to fetch write data
  if (initiatorDepth === 0) return refuse(RdmaRejectStatus.INVALID_IRD, 'the host allows no RDMA READ');
  const maxDepth = req.qid === 0 ? limits.max_aq_depth : limits.max_queue_depth;
  // as SPDK, the depth is negotiated down rather than refused
  const depth = Math.min(maxDepth, req.hsqsize + 1, req.hrqsize, device.maxQpWr);
  if (depth < 2) return refuse(RdmaRejectStatus.NO_RESOURCES, `a queue depth of ${depth}`);
  const readDepth = Math.min(depth, device.maxQpInitRdAtom, initiatorDepth);
  return { accept: true, qid: req.qid, depth, readDepth, hrqsize: req.hrqsize, hsqsize: req.hsqsize };
}
