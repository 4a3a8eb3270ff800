// The records the RDMA addon exchanges with JavaScript through Uint32Arrays, and the
// libibverbs values they carry. Work requests are written here and posted by
// QueuePair.postSend / postRecv and SharedReceiveQueue.postRecv; completions are read
// from what CompletionQueue.poll fills. Nothing here allocates: the hot path writes
// into arrays made once. The numbers mirror native/rdma/src/addon.h and libibverbs'
// ABI (verbs.h); test/unit/rdma checks them against the built addon.

/** One work request: 16 header words, then up to 16 scatter/gather entries of 3 words. */
export const WorkRequest = {
  WORDS: 64,
  HEADER_WORDS: 16,
  MAX_SGE: 16,
  SGE_WORDS: 3,
  OPCODE: 0,
  FLAGS: 1,
  ID_LO: 2,
  ID_HI: 3,
  NUM_SGE: 4,
  /** immediate data (host order), or the rkey a SEND_WITH_INV invalidates */
  IMM_OR_INV: 5,
  REMOTE_ADDR_LO: 6,
  REMOTE_ADDR_HI: 7,
  RKEY: 8,
  /** per SGE, at HEADER_WORDS + SGE_WORDS * i: the MemoryRegion's index, offset into it, length */
  SGE_MR: 0,
  SGE_OFFSET: 1,
  SGE_LENGTH: 2,
} as const;

/** One work completion as CompletionQueue.poll writes it. */
export const WorkCompletion = {
  WORDS: 8,
  ID_LO: 0,
  ID_HI: 1,
  STATUS: 2,
  OPCODE: 3,
  BYTE_LEN: 4,
  QP_NUM: 5,
  FLAGS: 6,
  /** immediate data (host order) with WC_FLAGS.WITH_IMM, the invalidated rkey with WITH_INV */
  IMM_OR_INV: 7,
} as const;

/** ibv_wr_opcode values a work request may carry. */
export const WrOpcode = {
  RDMA_WRITE: 0,
  RDMA_WRITE_WITH_IMM: 1,
  SEND: 2,
  SEND_WITH_IMM: 3,
  RDMA_READ: 4,
  SEND_WITH_INV: 9,
} as const;

/** ibv_send_flags. */
export const SendFlags = {
  FENCE: 1,
  SIGNALED: 2,
  SOLICITED: 4,
  INLINE: 8,
} as const;

/** ibv_access_flags for ProtectionDomain.registerMemory. */
export const Access = {
  LOCAL_WRITE: 1,
  REMOTE_WRITE: 2,
  REMOTE_READ: 4,
} as const;

/** ibv_wc_opcode. */
export const WcOpcode = {
  SEND: 0,
  RDMA_WRITE: 1,
  RDMA_READ: 2,
  RECV: 128,
  RECV_RDMA_WITH_IMM: 129,
} as const;

/** ibv_wc_flags. */
export const WcFlags = {
  WITH_IMM: 2,
  WITH_INV: 8,
} as const;

/** ibv_wc_status values the transport tells apart (the addon's wcStatusString names any). */
export const WcStatus = {
  SUCCESS: 0,
  LOC_LEN_ERR: 1,
  LOC_PROT_ERR: 4,
  WR_FLUSH_ERR: 5,
  REM_INV_REQ_ERR: 9,
  REM_ACCESS_ERR: 10,
  RETRY_EXC_ERR: 12,
  RNR_RETRY_EXC_ERR: 13,
} as const;

/** ibv_qp_state. */
export const QpState = {
  RESET: 0,
  INIT: 1,
  RTR: 2,
  RTS: 3,
  ERR: 6,
} as const;

/** rdma_cm_event_type. */
export const CmEventType = {
  ADDR_RESOLVED: 0,
  ADDR_ERROR: 1,
  ROUTE_RESOLVED: 2,
  ROUTE_ERROR: 3,
  CONNECT_REQUEST: 4,
  CONNECT_RESPONSE: 5,
  CONNECT_ERROR: 6,
  UNREACHABLE: 7,
  REJECTED: 8,
  ESTABLISHED: 9,
  DISCONNECTED: 10,
  DEVICE_REMOVAL: 11,
  ADDR_CHANGE: 14,
  TIMEWAIT_EXIT: 15,
} as const;

const TWO_32 = 0x1_0000_0000;

/**
 * Starts work request `slot` of `wrs`: opcode, flags, id (an integer below 2^53) and
 * the number of SGEs (set them with setSge). Clears the remote address, rkey and
 * immediate words, so a record reused for another opcode carries nothing stale.
 */
export function setWorkRequest(
  wrs: Uint32Array,
  slot: number,
  opcode: number,
  flags: number,
  wrId: number,
  numSge: number,
): void {
  const base = slot * WorkRequest.WORDS;
  wrs[base + WorkRequest.OPCODE] = opcode;
  wrs[base + WorkRequest.FLAGS] = flags;
  wrs[base + WorkRequest.ID_LO] = wrId >>> 0;
  wrs[base + WorkRequest.ID_HI] = Math.floor(wrId / TWO_32);
  wrs[base + WorkRequest.NUM_SGE] = numSge;
  wrs[base + WorkRequest.IMM_OR_INV] = 0;
  wrs[base + WorkRequest.REMOTE_ADDR_LO] = 0;
  wrs[base + WorkRequest.REMOTE_ADDR_HI] = 0;
  wrs[base + WorkRequest.RKEY] = 0;
}

/** SGE `index` of work request `slot`: `length` bytes at `offset` in the MemoryRegion with that index. */
export function setSge(
  wrs: Uint32Array,
  slot: number,
  index: number,
  mrIndex: number,
  offset: number,
  length: number,
): void {
  const at = slot * WorkRequest.WORDS + WorkRequest.HEADER_WORDS + index * WorkRequest.SGE_WORDS;
  wrs[at + WorkRequest.SGE_MR] = mrIndex;
  wrs[at + WorkRequest.SGE_OFFSET] = offset;
  wrs[at + WorkRequest.SGE_LENGTH] = length;
}

/** The peer's buffer of an RDMA READ / WRITE: its 64-bit address as two 32-bit halves, and its rkey. */
export function setRemote(
  wrs: Uint32Array,
  slot: number,
  addressLo: number,
  addressHi: number,
  rkey: number,
): void {
  const base = slot * WorkRequest.WORDS;
  wrs[base + WorkRequest.REMOTE_ADDR_LO] = addressLo;
  wrs[base + WorkRequest.REMOTE_ADDR_HI] = addressHi;
  wrs[base + WorkRequest.RKEY] = rkey;
}

/** Immediate data of a *_WITH_IMM request, or the rkey a SEND_WITH_INV invalidates. */
export function setImmediateOrInvalidate(wrs: Uint32Array, slot: number, value: number): void {
  wrs[slot * WorkRequest.WORDS + WorkRequest.IMM_OR_INV] = value;
}

/** The id of completion `i` in what CompletionQueue.poll wrote. */
export function completionId(wcs: Uint32Array, i: number): number {
  const base = i * WorkCompletion.WORDS;
  return wcs[base + WorkCompletion.ID_HI] * TWO_32 + wcs[base + WorkCompletion.ID_LO];
}

/** A field of completion `i` (WorkCompletion.STATUS, OPCODE, BYTE_LEN, …). */
export function completionField(wcs: Uint32Array, i: number, field: number): number {
  return wcs[i * WorkCompletion.WORDS + field];
}

/** The halves of a 64-bit address (a MemoryRegion's `address` plus an offset) for setRemote. */
export function splitAddress(address: bigint): { lo: number; hi: number } {
  return { lo: Number(address & 0xffff_ffffn), hi: Number((address >> 32n) & 0xffff_ffffn) };
}
