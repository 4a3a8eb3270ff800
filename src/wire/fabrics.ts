// NVMe over Fabrics command layouts (NVMe-oF 1.1 §3; SPDK include/spdk/nvmf_spec.h).
// Opcodes, fabrics command types and status codes live in nvme.ts.
// Offsets are into the 64-byte SQE / 16-byte CQE / 1024-byte Connect data.

export const FabricsSqe = {
  FCTYPE: 4,
  // Connect
  CONNECT_RECFMT: 40,
  CONNECT_QID: 42,
  CONNECT_SQSIZE: 44,
  CONNECT_CATTR: 46,
  CONNECT_KATO: 48,
  // Property Get / Set
  PROP_ATTRIB: 40,
  PROP_OFFSET: 44,
  PROP_VALUE: 48,
} as const;

/** Connect CATTR bit 2: the host disables SQ flow control. */
export const CONNECT_CATTR_DISABLE_SQFLOW = 0x04;

/** Connect data (1024 bytes, host to controller). */
export const ConnectData = {
  SIZE: 1024,
  HOSTID: 0, // 16 bytes
  CNTLID: 16,
  SUBNQN: 256, // 256 bytes, NUL-terminated
  HOSTNQN: 512,
  NQN_LEN: 256,
} as const;

/** Longest NQN in bytes, without its terminating NUL (NVMe base spec §4.5). */
export const NQN_MAX_LEN = 223;

/** Connect response: DW0 bits 15:0 = CNTLID; on Invalid Parameter DW0 byte 0 = IATTR, bytes 2..3 = IPO. */
export const ConnectRsp = { CNTLID: 0, AUTHREQ: 2, IATTR: 0, IPO: 2 } as const;

/** Reads a NUL-terminated ASCII string of at most `len` bytes. */
export function readCString(buf: Buffer, off: number, len: number): string {
  const end = Math.min(buf.length, off + len);
  let i = off;
  while (i < end && buf[i] !== 0) i++;
  return buf.toString('latin1', off, i);
}

/** Writes `s` space-padded to `len` bytes (identify strings). */
export function writePadded(buf: Buffer, off: number, len: number, s: string): void {
  buf.fill(0x20, off, off + len);
  buf.write(s.slice(0, len), off, 'latin1');
}

/** Writes `s` NUL-padded to `len` bytes (NQN fields). */
export function writeNulPadded(buf: Buffer, off: number, len: number, s: string): void {
  buf.fill(0, off, off + len);
  buf.write(s.slice(0, len - 1), off, 'latin1');
}
