// NVMe base specification: submission/completion queue entry layouts,
// opcodes and status codes. Values and names follow SPDK's
// include/spdk/nvme_spec.h (SPDK_NVME_SC_FOO → StatusCode.FOO). Everything is
// read and written in place on Buffers at fixed little-endian offsets.

/** Submission queue entry size in bytes. */
export const SQE_SIZE = 64;
/** Completion queue entry size in bytes. */
export const CQE_SIZE = 16;

/** Byte offsets inside a 64-byte SQE. */
export const Sqe = {
  OPCODE: 0,
  /** bits 0-1 FUSE, bits 6-7 PSDT (0 = PRP, 1/2 = SGL) */
  FLAGS: 1,
  CID: 2,
  NSID: 4,
  CDW2: 8,
  CDW3: 12,
  MPTR: 16,
  /** data pointer: PRP1/PRP2 or one 16-byte SGL descriptor */
  DPTR: 24,
  SGL_ADDRESS: 24,
  SGL_LENGTH: 32,
  /** for keyed SGLs: 3-byte length at 32 and 4-byte key at 35 (descriptor bytes 8..10 and 11..14) */
  SGL_KEY: 35,
  /** high nibble descriptor type, low nibble subtype */
  SGL_TYPE: 39,
  CDW10: 40,
  CDW11: 44,
  CDW12: 48,
  CDW13: 52,
  CDW14: 56,
  CDW15: 60,
  // Fabrics commands (opcode 0x7F): byte 4 is the fabrics command type
  FCTYPE: 4,
  // NVM read/write/compare/write zeroes: SLBA in CDW10/11, NLB (0's based) in CDW12 bits 0-15
  SLBA_LO: 40,
  SLBA_HI: 44,
  NLB: 48,
} as const;

/** SQE byte 1 fields. */
export const SqeFlags = {
  FUSE_MASK: 0x03,
  FUSE_NONE: 0x00,
  FUSE_FIRST: 0x01,
  FUSE_SECOND: 0x02,
  PSDT_SHIFT: 6,
  PSDT_MASK: 0xc0,
  PSDT_PRP: 0x00,
  PSDT_SGL_MPTR_CONTIG: 0x40,
  PSDT_SGL_MPTR_SGL: 0x80,
} as const;

/** SGL descriptor types (high nibble of byte 15 of the descriptor). */
export const SglType = {
  DATA_BLOCK: 0x0,
  BIT_BUCKET: 0x1,
  SEGMENT: 0x2,
  LAST_SEGMENT: 0x3,
  KEYED_DATA_BLOCK: 0x4,
  TRANSPORT_DATA_BLOCK: 0x5,
  VENDOR_SPECIFIC: 0xf,
} as const;

/** SGL descriptor subtypes (low nibble of byte 15 of the descriptor). */
export const SglSubtype = {
  ADDRESS: 0x0,
  OFFSET: 0x1,
  TRANSPORT: 0xa,
  INVALIDATE_KEY: 0xf,
} as const;

/** Full type byte (type << 4 | subtype) of the descriptors NVMe/TCP uses. */
export const SglDescriptor = {
  /** data in the capsule, address = offset into in-capsule data */
  IN_CAPSULE: (SglType.DATA_BLOCK << 4) | SglSubtype.OFFSET, // 0x01
  /** data moved by the transport (R2T/H2CData, C2HData) */
  TRANSPORT: (SglType.TRANSPORT_DATA_BLOCK << 4) | SglSubtype.TRANSPORT, // 0x5A
} as const;

/** Byte offsets inside a 16-byte CQE. */
export const Cqe = {
  DW0: 0,
  DW1: 4,
  SQHD: 8,
  SQID: 10,
  CID: 12,
  STATUS: 14,
} as const;

/** Bits of the 16-bit CQE status field (offset 14), phase bit included. */
export const CqeStatus = {
  PHASE: 0x0001,
  SC_SHIFT: 1,
  SC_MASK: 0xff,
  SCT_SHIFT: 9,
  SCT_MASK: 0x7,
  CRD_SHIFT: 12,
  CRD_MASK: 0x3,
  MORE: 0x4000,
  DNR: 0x8000,
} as const;

/** Status code types. */
export const StatusCodeType = {
  GENERIC: 0x0,
  COMMAND_SPECIFIC: 0x1,
  MEDIA_ERROR: 0x2,
  PATH: 0x3,
  VENDOR_SPECIFIC: 0x7,
} as const;
export type StatusCodeType = (typeof StatusCodeType)[keyof typeof StatusCodeType];

/** Generic command status codes (SCT 0). */
export const GenericStatus = {
  SUCCESS: 0x00,
  INVALID_OPCODE: 0x01,
  INVALID_FIELD: 0x02,
  COMMAND_ID_CONFLICT: 0x03,
  DATA_TRANSFER_ERROR: 0x04,
  ABORTED_POWER_LOSS: 0x05,
  INTERNAL_DEVICE_ERROR: 0x06,
  ABORTED_BY_REQUEST: 0x07,
  ABORTED_SQ_DELETION: 0x08,
  ABORTED_FAILED_FUSED: 0x09,
  ABORTED_MISSING_FUSED: 0x0a,
  INVALID_NAMESPACE_OR_FORMAT: 0x0b,
  COMMAND_SEQUENCE_ERROR: 0x0c,
  INVALID_SGL_SEG_DESCRIPTOR: 0x0d,
  INVALID_NUM_SGL_DESCRIPTORS: 0x0e,
  DATA_SGL_LENGTH_INVALID: 0x0f,
  METADATA_SGL_LENGTH_INVALID: 0x10,
  SGL_DESCRIPTOR_TYPE_INVALID: 0x11,
  INVALID_CONTROLLER_MEM_BUF: 0x12,
  INVALID_PRP_OFFSET: 0x13,
  ATOMIC_WRITE_UNIT_EXCEEDED: 0x14,
  OPERATION_DENIED: 0x15,
  INVALID_SGL_OFFSET: 0x16,
  HOSTID_INCONSISTENT_FORMAT: 0x18,
  KEEP_ALIVE_EXPIRED: 0x19,
  KEEP_ALIVE_INVALID: 0x1a,
  ABORTED_PREEMPT: 0x1b,
  SANITIZE_FAILED: 0x1c,
  SANITIZE_IN_PROGRESS: 0x1d,
  SGL_DATA_BLOCK_GRANULARITY_INVALID: 0x1e,
  COMMAND_INVALID_IN_CMB: 0x1f,
  COMMAND_NAMESPACE_IS_PROTECTED: 0x20,
  COMMAND_INTERRUPTED: 0x21,
  COMMAND_TRANSIENT_TRANSPORT_ERROR: 0x22,
  COMMAND_PROHIBITED_BY_LOCKDOWN: 0x23,
  ADMIN_COMMAND_MEDIA_NOT_READY: 0x24,
  // NVM command set specific generic codes
  LBA_OUT_OF_RANGE: 0x80,
  CAPACITY_EXCEEDED: 0x81,
  NAMESPACE_NOT_READY: 0x82,
  RESERVATION_CONFLICT: 0x83,
  FORMAT_IN_PROGRESS: 0x84,
} as const;

/** Command specific status codes (SCT 1), including the Fabrics ones. */
export const CommandSpecificStatus = {
  COMPLETION_QUEUE_INVALID: 0x00,
  INVALID_QUEUE_IDENTIFIER: 0x01,
  INVALID_QUEUE_SIZE: 0x02,
  ABORT_COMMAND_LIMIT_EXCEEDED: 0x03,
  ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED: 0x05,
  INVALID_FIRMWARE_SLOT: 0x06,
  INVALID_FIRMWARE_IMAGE: 0x07,
  INVALID_INTERRUPT_VECTOR: 0x08,
  INVALID_LOG_PAGE: 0x09,
  INVALID_FORMAT: 0x0a,
  FIRMWARE_REQ_CONVENTIONAL_RESET: 0x0b,
  INVALID_QUEUE_DELETION: 0x0c,
  FEATURE_ID_NOT_SAVEABLE: 0x0d,
  FEATURE_NOT_CHANGEABLE: 0x0e,
  FEATURE_NOT_NAMESPACE_SPECIFIC: 0x0f,
  FIRMWARE_REQ_NVM_RESET: 0x10,
  FIRMWARE_REQ_RESET: 0x11,
  FIRMWARE_REQ_MAX_TIME_VIOLATION: 0x12,
  FIRMWARE_ACTIVATION_PROHIBITED: 0x13,
  OVERLAPPING_RANGE: 0x14,
  NAMESPACE_INSUFFICIENT_CAPACITY: 0x15,
  NAMESPACE_ID_UNAVAILABLE: 0x16,
  NAMESPACE_ALREADY_ATTACHED: 0x18,
  NAMESPACE_IS_PRIVATE: 0x19,
  NAMESPACE_NOT_ATTACHED: 0x1a,
  THINPROVISIONING_NOT_SUPPORTED: 0x1b,
  CONTROLLER_LIST_INVALID: 0x1c,
  DEVICE_SELF_TEST_IN_PROGRESS: 0x1d,
  BOOT_PARTITION_WRITE_PROHIBITED: 0x1e,
  INVALID_CTRLR_ID: 0x1f,
  INVALID_SECONDARY_CTRLR_STATE: 0x20,
  INVALID_NUM_CTRLR_RESOURCES: 0x21,
  INVALID_RESOURCE_ID: 0x22,
  SANITIZE_PROHIBITED: 0x23,
  ANA_GROUP_IDENTIFIER_INVALID: 0x24,
  ANA_ATTACH_FAILED: 0x25,
  INSUFFICIENT_CAPACITY: 0x26,
  NAMESPACE_ATTACH_LIMIT_EXCEEDED: 0x27,
  PROHIBIT_CMD_EXEC_NOT_SUPPORTED: 0x28,
  IOCS_NOT_SUPPORTED: 0x29,
  IOCS_NOT_ENABLED: 0x2a,
  IOCS_COMBINATION_REJECTED: 0x2b,
  INVALID_IOCS: 0x2c,
  IDENTIFIER_UNAVAILABLE: 0x2d,
  STREAM_RESOURCE_ALLOCATION_FAILED: 0x7f,
  // NVM command set
  CONFLICTING_ATTRIBUTES: 0x80,
  INVALID_PROTECTION_INFO: 0x81,
  ATTEMPTED_WRITE_TO_RO_RANGE: 0x82,
  CMD_SIZE_LIMIT_SIZE_EXCEEDED: 0x83,
} as const;

/** Fabrics command specific status codes (SCT 1, Connect and friends). */
export const FabricsStatus = {
  INCOMPATIBLE_FORMAT: 0x80,
  CONTROLLER_BUSY: 0x81,
  INVALID_PARAM: 0x82,
  RESTART_DISCOVERY: 0x83,
  INVALID_HOST: 0x84,
  LOG_RESTART_DISCOVERY: 0x90,
  AUTH_REQUIRED: 0x91,
} as const;

/** Media and data integrity errors (SCT 2). */
export const MediaErrorStatus = {
  WRITE_FAULTS: 0x80,
  UNRECOVERED_READ_ERROR: 0x81,
  GUARD_CHECK_ERROR: 0x82,
  APPLICATION_TAG_CHECK_ERROR: 0x83,
  REFERENCE_TAG_CHECK_ERROR: 0x84,
  COMPARE_FAILURE: 0x85,
  ACCESS_DENIED: 0x86,
  DEALLOCATED_OR_UNWRITTEN_BLOCK: 0x87,
  END_TO_END_STORAGE_TAG_CHECK_ERROR: 0x88,
} as const;

/** Path related status codes (SCT 3). */
export const PathStatus = {
  INTERNAL_PATH_ERROR: 0x00,
  ASYMMETRIC_ACCESS_PERSISTENT_LOSS: 0x01,
  ASYMMETRIC_ACCESS_INACCESSIBLE: 0x02,
  ASYMMETRIC_ACCESS_TRANSITION: 0x03,
  CONTROLLER_PATH_ERROR: 0x60,
  HOST_PATH_ERROR: 0x70,
  ABORTED_BY_HOST: 0x71,
} as const;

/** Admin command set opcodes. */
export const AdminOpcode = {
  DELETE_IO_SQ: 0x00,
  CREATE_IO_SQ: 0x01,
  GET_LOG_PAGE: 0x02,
  DELETE_IO_CQ: 0x04,
  CREATE_IO_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09,
  GET_FEATURES: 0x0a,
  ASYNC_EVENT_REQUEST: 0x0c,
  NS_MANAGEMENT: 0x0d,
  FIRMWARE_COMMIT: 0x10,
  FIRMWARE_IMAGE_DOWNLOAD: 0x11,
  DEVICE_SELF_TEST: 0x14,
  NS_ATTACHMENT: 0x15,
  KEEP_ALIVE: 0x18,
  DIRECTIVE_SEND: 0x19,
  DIRECTIVE_RECEIVE: 0x1a,
  VIRTUALIZATION_MANAGEMENT: 0x1c,
  NVME_MI_SEND: 0x1d,
  NVME_MI_RECEIVE: 0x1e,
  CAPACITY_MANAGEMENT: 0x20,
  LOCKDOWN: 0x24,
  DOORBELL_BUFFER_CONFIG: 0x7c,
  FABRIC_COMMAND: 0x7f,
  FORMAT_NVM: 0x80,
  SECURITY_SEND: 0x81,
  SECURITY_RECEIVE: 0x82,
  SANITIZE: 0x84,
  GET_LBA_STATUS: 0x86,
} as const;

/** NVM command set (I/O queue) opcodes. */
export const NvmOpcode = {
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  WRITE_UNCORRECTABLE: 0x04,
  COMPARE: 0x05,
  WRITE_ZEROES: 0x08,
  DATASET_MANAGEMENT: 0x09,
  VERIFY: 0x0c,
  RESERVATION_REGISTER: 0x0d,
  RESERVATION_REPORT: 0x0e,
  RESERVATION_ACQUIRE: 0x11,
  RESERVATION_RELEASE: 0x15,
  COPY: 0x19,
  FABRIC_COMMAND: 0x7f,
} as const;

/** The opcode every Fabrics command carries; the command is in byte 4 (FCTYPE). */
export const FABRICS_OPCODE = 0x7f;

/** Fabrics command types (SQE byte 4 when opcode is 0x7F). */
export const FabricsCommandType = {
  PROPERTY_SET: 0x00,
  CONNECT: 0x01,
  PROPERTY_GET: 0x04,
  AUTHENTICATION_SEND: 0x05,
  AUTHENTICATION_RECV: 0x06,
  DISCONNECT: 0x08,
} as const;

/** Data transfer direction encoded in opcode bits 0-1 (host view). */
export const OpcodeDataTransfer = {
  NONE: 0,
  HOST_TO_CONTROLLER: 1,
  CONTROLLER_TO_HOST: 2,
  BIDIRECTIONAL: 3,
} as const;

/** Direction of an opcode's data (bits 0-1). For Fabrics commands pass the FCTYPE. */
export function opcodeDataTransfer(opcode: number): number {
  return opcode & 0x3;
}

/** Feature identifiers (Get/Set Features CDW10 bits 0-7). */
export const FeatureId = {
  ARBITRATION: 0x01,
  POWER_MANAGEMENT: 0x02,
  LBA_RANGE_TYPE: 0x03,
  TEMPERATURE_THRESHOLD: 0x04,
  ERROR_RECOVERY: 0x05,
  VOLATILE_WRITE_CACHE: 0x06,
  NUMBER_OF_QUEUES: 0x07,
  INTERRUPT_COALESCING: 0x08,
  INTERRUPT_VECTOR_CONFIGURATION: 0x09,
  WRITE_ATOMICITY: 0x0a,
  ASYNC_EVENT_CONFIGURATION: 0x0b,
  AUTONOMOUS_POWER_STATE_TRANSITION: 0x0c,
  HOST_MEM_BUFFER: 0x0d,
  TIMESTAMP: 0x0e,
  KEEP_ALIVE_TIMER: 0x0f,
  HOST_CONTROLLED_THERMAL_MANAGEMENT: 0x10,
  NON_OPERATIONAL_POWER_STATE_CONFIG: 0x11,
  READ_RECOVERY_LEVEL_CONFIG: 0x12,
  PREDICTABLE_LATENCY_MODE_CONFIG: 0x13,
  PREDICTABLE_LATENCY_MODE_WINDOW: 0x14,
  LBA_STATUS_INFORMATION_ATTRIBUTES: 0x15,
  HOST_BEHAVIOR_SUPPORT: 0x16,
  SANITIZE_CONFIG: 0x17,
  ENDURANCE_GROUP_EVENT: 0x18,
  IO_COMMAND_SET_PROFILE: 0x19,
  SOFTWARE_PROGRESS_MARKER: 0x80,
  HOST_IDENTIFIER: 0x81,
  HOST_RESERVE_MASK: 0x82,
  HOST_RESERVE_PERSIST: 0x83,
} as const;

/** Dataset Management CDW11 attributes and range entry layout (16 bytes per range). */
export const Dsm = {
  ATTR_INTEGRAL_READ: 0x1,
  ATTR_INTEGRAL_WRITE: 0x2,
  ATTR_DEALLOCATE: 0x4,
  RANGE_SIZE: 16,
  RANGE_CONTEXT_ATTRIBUTES: 0,
  RANGE_LENGTH: 4,
  RANGE_SLBA_LO: 8,
  RANGE_SLBA_HI: 12,
  MAX_RANGES: 256,
} as const;

/** Read/Write CDW12 high bits. */
export const RwFlags = {
  /** CDW12 bit 30 */
  FUA: 1 << 30,
  /** CDW12 bit 31 */
  LIMITED_RETRY: 1 << 31,
} as const;

/** Write Zeroes CDW12 bit 25: deallocate. */
export const WRITE_ZEROES_DEAC = 1 << 25;

// ---------------------------------------------------------------------------
// In-place helpers

/** Zero a CQE in place (16 byte stores: the JIT keeps them inline on the I/O path, where a fill
 * is a native call and a hot caller may not inline writeUInt32LE). */
export function clearCqe(cqe: Buffer): void {
  for (let i = 0; i < CQE_SIZE; i++) cqe[i] = 0;
}

/** Writes a CQE's SQ head, SQ ID and command ID (once per command on the target). */
export function setCqeIds(cqe: Buffer, sqhd: number, sqid: number, cid: number): void {
  cqe[Cqe.SQHD] = sqhd & 0xff;
  cqe[Cqe.SQHD + 1] = sqhd >>> 8;
  cqe[Cqe.SQID] = sqid & 0xff;
  cqe[Cqe.SQID + 1] = sqid >>> 8;
  cqe[Cqe.CID] = cid & 0xff;
  cqe[Cqe.CID + 1] = cid >>> 8;
}

/** Fill the status field of a CQE (phase bit left 0, as fabrics uses no phase). */
export function setStatus(rsp: Buffer, sct: number, sc: number, dnr = false): void {
  let status =
    ((sc & CqeStatus.SC_MASK) << CqeStatus.SC_SHIFT) | ((sct & CqeStatus.SCT_MASK) << CqeStatus.SCT_SHIFT);
  if (dnr) status |= CqeStatus.DNR;
  rsp.writeUInt16LE(status, Cqe.STATUS);
}

/** Success (SCT 0 / SC 0). */
export function setSuccess(rsp: Buffer): void {
  rsp.writeUInt16LE(0, Cqe.STATUS);
}

/**
 * Little-endian reads of an SQE's or CQE's fields (fixed offsets inside the entry) as byte loads,
 * which the JIT keeps inline in the per-command code, where it may call readUInt16/32LE.
 */
export function u16le(buf: Buffer, at: number): number {
  return buf[at] | (buf[at + 1] << 8);
}

export function u32le(buf: Buffer, at: number): number {
  return (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16)) + buf[at + 3] * 0x100_0000;
}

export function getStatusCode(rsp: Buffer): number {
  return (u16le(rsp, Cqe.STATUS) >> CqeStatus.SC_SHIFT) & CqeStatus.SC_MASK;
}

export function getStatusCodeType(rsp: Buffer): number {
  return (u16le(rsp, Cqe.STATUS) >> CqeStatus.SCT_SHIFT) & CqeStatus.SCT_MASK;
}

export function getDnr(rsp: Buffer): boolean {
  return (rsp.readUInt16LE(Cqe.STATUS) & CqeStatus.DNR) !== 0;
}

/** True when the CQE status says SCT 0 / SC 0. */
export function isSuccess(rsp: Buffer): boolean {
  return (rsp.readUInt16LE(Cqe.STATUS) & 0x0ffe) === 0;
}

/** The 16-bit status field value without the phase bit: (sct << 8 | sc), handy to compare. */
export function statusOf(rsp: Buffer): number {
  return statusFromField(u16le(rsp, Cqe.STATUS));
}

/** A status field as a CQE (or an error log entry) stores it, packed as (sct << 8 | sc). */
export function statusFromField(raw: number): number {
  return (
    (((raw >> CqeStatus.SCT_SHIFT) & CqeStatus.SCT_MASK) << 8) |
    ((raw >> CqeStatus.SC_SHIFT) & CqeStatus.SC_MASK)
  );
}

const ZERO_SQE = new Uint8Array(SQE_SIZE);

/** Zeroes a 64-byte SQE and sets its opcode and NSID; returns it. */
export function initSqe(sqe: Buffer, opcode: number, nsid = 0): Buffer {
  // a typed-array set costs half of a fill: this runs once per I/O on the host
  sqe.set(ZERO_SQE);
  sqe[Sqe.OPCODE] = opcode;
  sqe.writeUInt32LE(nsid >>> 0, Sqe.NSID);
  return sqe;
}

/**
 * Describes the command's data with one SGL descriptor (PSDT = SGL): in-capsule
 * data at offset 0, or a transport data block (R2T / C2HData move it). NVMe/TCP
 * knows no other form.
 */
export function setSqeSgl(sqe: Buffer, length: number, inCapsule: boolean): void {
  // the 16-byte descriptor written whole, dword by dword (no fill: this runs once per I/O)
  sqe.writeUInt32LE(0, Sqe.SGL_ADDRESS);
  sqe.writeUInt32LE(0, Sqe.SGL_ADDRESS + 4);
  sqe.writeUInt32LE(length, Sqe.SGL_LENGTH);
  sqe.writeUInt32LE(0, Sqe.SGL_LENGTH + 4);
  sqe[Sqe.FLAGS] = (sqe[Sqe.FLAGS] & ~SqeFlags.PSDT_MASK) | SqeFlags.PSDT_SGL_MPTR_CONTIG;
  sqe[Sqe.SGL_TYPE] = inCapsule ? SglDescriptor.IN_CAPSULE : SglDescriptor.TRANSPORT;
}

/**
 * A read / write / compare / write zeroes SQE: SLBA, NLB (given as a count,
 * stored 0's based in CDW12 bits 15:0) and CDW12 flags (RwFlags).
 */
export function writeRwCommand(
  sqe: Buffer,
  opcode: number,
  nsid: number,
  slba: number,
  blocks: number,
  cdw12Flags: number,
): void {
  initSqe(sqe, opcode, nsid);
  setSlba(sqe, slba);
  sqe.writeUInt32LE((((blocks - 1) & 0xffff) | cdw12Flags) >>> 0, Sqe.CDW12);
}

/** One Dataset Management range (16 bytes) at index `i` of `buf`; context attributes 0. */
export function writeDsmRange(buf: Buffer, i: number, slba: number, blocks: number): void {
  const off = i * Dsm.RANGE_SIZE;
  buf.writeUInt32LE(0, off + Dsm.RANGE_CONTEXT_ATTRIBUTES);
  buf.writeUInt32LE(blocks >>> 0, off + Dsm.RANGE_LENGTH);
  buf.writeUInt32LE(slba >>> 0, off + Dsm.RANGE_SLBA_LO);
  buf.writeUInt32LE(Math.floor(slba / 0x1_0000_0000), off + Dsm.RANGE_SLBA_HI);
}

/** Starting LBA of an NVM command as a JS number (exact up to 2^53). */
export function getSlba(cmd: Buffer): number {
  return u32le(cmd, Sqe.SLBA_HI) * 0x1_0000_0000 + u32le(cmd, Sqe.SLBA_LO);
}

/** Store a starting LBA (number, < 2^53) as two 32-bit halves. */
export function setSlba(cmd: Buffer, slba: number): void {
  cmd.writeUInt32LE(slba >>> 0, Sqe.SLBA_LO);
  cmd.writeUInt32LE(Math.floor(slba / 0x1_0000_0000) >>> 0, Sqe.SLBA_HI);
}

/** Number of logical blocks of a read/write/compare/write zeroes (CDW12 NLB is 0's based). */
export function getNumBlocks(cmd: Buffer): number {
  return u16le(cmd, Sqe.NLB) + 1;
}

/**
 * A status as one number, the form the host library reports: (sct << 8) | sc
 * (what statusOf reads from a CQE). 0 is success.
 */
export function packStatus(sct: number, sc: number): number {
  return ((sct & CqeStatus.SCT_MASK) << 8) | (sc & CqeStatus.SC_MASK);
}

/** The status code type of a packed status (packStatus / statusOf). */
export function statusSct(status: number): number {
  return (status >> 8) & CqeStatus.SCT_MASK;
}

/** The status code of a packed status (packStatus / statusOf). */
export function statusSc(status: number): number {
  return status & CqeStatus.SC_MASK;
}

/** The name of a status in the tables above ("INVALID_FIELD"), or "UNKNOWN". */
export function statusName(sct: number, sc: number): string {
  let table: Record<string, number> | undefined;
  if (sct === StatusCodeType.GENERIC) table = GenericStatus;
  else if (sct === StatusCodeType.COMMAND_SPECIFIC)
    table = sc >= 0x80 && sc < 0xc0 ? FabricsStatus : CommandSpecificStatus;
  else if (sct === StatusCodeType.MEDIA_ERROR) table = MediaErrorStatus;
  else if (sct === StatusCodeType.PATH) table = PathStatus;
  let name = 'UNKNOWN';
  if (table) {
    for (const key in table) {
      if (table[key] === sc) {
        name = key;
        break;
      }
    }
    // command-specific 0x80.. overlap between NVM and Fabrics tables
    if (name === 'UNKNOWN' && table === FabricsStatus) {
      for (const key in CommandSpecificStatus) {
        if ((CommandSpecificStatus as Record<string, number>)[key] === sc) name = key;
      }
    }
  }
  return name;
}

/** Human-readable status, for logs and errors: "INVALID_FIELD (sct 0x0, sc 0x02)". */
export function statusToString(sct: number, sc: number): string {
  return `${statusName(sct, sc)} (sct 0x${sct.toString(16)}, sc 0x${sc.toString(16).padStart(2, '0')})`;
}

/** statusToString of a packed status. */
export function packedStatusToString(status: number): string {
  return statusToString(statusSct(status), statusSc(status));
}

/** Controller register (property) offsets, as Property Get/Set address them. */
export const ControllerRegister = {
  /** 8 bytes */
  CAP: 0x00,
  VS: 0x08,
  INTMS: 0x0c,
  INTMC: 0x10,
  CC: 0x14,
  CSTS: 0x1c,
  NSSR: 0x20,
  AQA: 0x24,
  ASQ: 0x28,
  ACQ: 0x30,
  /** Controller Ready Timeouts (4 bytes, NVMe 2.0: present when CAP.CRMS.CRWMS is set) */
  CRTO: 0x68,
} as const;

/** CAP bits of its upper 32 bits (CAP is 64 bits; bit n here is CAP bit 32 + n). */
export const CapHiBits = {
  /** CSS bit 0 (CAP bit 37): the NVM command set */
  CSS_NVM: 1 << 5,
  /** CSS bit 6 (CAP bit 43): one or more I/O command sets, selected with CC.CSS = 110b */
  CSS_IOCS: 1 << 11,
  /** CRMS bit 0 (CAP bit 59): Controller Ready With Media Support, CRTO implemented */
  CRWMS: 1 << 27,
  /** CRMS bit 1 (CAP bit 60): Controller Ready Independent of Media Support */
  CRIMS: 1 << 28,
} as const;

/** CC.CSS values (bits 6:4). */
export const CcCss = {
  /** the NVM command set */
  NVM: 0b000,
  /** all supported I/O command sets (NVMe 2.0) */
  ALL_IOCS: 0b110,
  /** admin command set only */
  ADMIN_ONLY: 0b111,
} as const;

/** CRTO fields: CRWMT (bits 15:0) and CRIMT (bits 31:16), both in 500 ms units. */
export function crtoValue(crwmt: number, crimt: number): number {
  return ((crwmt & 0xffff) | ((crimt & 0xffff) << 16)) >>> 0;
}

/** CAP (controller capabilities, 8 bytes) fields the host reads. */
export interface CapFields {
  /** maximum queue entries supported, 0's based */
  mqes: number;
  /** worst-case time to become ready, in 500 ms units */
  to: number;
  /** minimum memory page size: 2^(12 + mpsmin) bytes */
  mpsmin: number;
  /** command sets supported (bit 0 NVM, bit 6 I/O command sets, bit 7 admin only) */
  css: number;
  /** Controller Ready With Media Support: the CRTO register is there */
  crwms: boolean;
}

export function decodeCap(cap: bigint): CapFields {
  return {
    mqes: Number(cap & 0xffffn),
    to: Number((cap >> 24n) & 0xffn),
    mpsmin: Number((cap >> 48n) & 0xfn),
    css: Number((cap >> 37n) & 0xffn),
    crwms: ((cap >> 59n) & 1n) === 1n,
  };
}

/** Set Features Number of Queues CDW11 (and its completion DW0): NSQR bits 15:0, NCQR 31:16, both 0's based. */
export function numberOfQueuesValue(sq: number, cq: number): number {
  return (((sq - 1) & 0xffff) | (((cq - 1) & 0xffff) << 16)) >>> 0;
}

/** The queue counts a Number of Queues value grants (1-based). */
export function decodeNumberOfQueues(dw0: number): { sq: number; cq: number } {
  return { sq: (dw0 & 0xffff) + 1, cq: (dw0 >>> 16) + 1 };
}

/** CC (controller configuration) fields. */
export const CcBits = {
  EN: 0x1,
  CSS_SHIFT: 4,
  CSS_MASK: 0x7 << 4,
  MPS_SHIFT: 7,
  AMS_SHIFT: 11,
  SHN_SHIFT: 14,
  SHN_MASK: 0x3 << 14,
  SHN_NORMAL: 0x1 << 14,
  SHN_ABRUPT: 0x2 << 14,
  IOSQES_SHIFT: 16,
  IOCQES_SHIFT: 20,
} as const;

/** CSTS (controller status) fields. */
export const CstsBits = {
  RDY: 0x1,
  CFS: 0x2,
  SHST_SHIFT: 2,
  SHST_MASK: 0x3 << 2,
  SHST_NORMAL: 0x0,
  SHST_OCCURRING: 0x1 << 2,
  SHST_COMPLETE: 0x2 << 2,
  NSSRO: 0x10,
  PP: 0x20,
} as const;
