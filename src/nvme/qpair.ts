// What the host library needs of one queue, whatever carries it: NvmeTcpQpair
// (tcp-qpair.ts) or NvmeRdmaQpair (rdma-qpair.ts). The controller, the I/O queue
// wrapper and the command helper use only this.

/** Completion callback: `cpl` is the 16-byte CQE, valid only during the call. */
export type CommandCallback = (cpl: Buffer) => void;

export interface NvmeQpair {
  readonly queueSize: number;
  /** in-capsule data limit in bytes for host-to-controller data */
  inCapsuleDataSize: number;
  /** set by the owner after Fabrics Connect */
  qid: number;
  closed: boolean;
  /** why the queue ended */
  closeReason: string | null;
  onClose: ((reason: string) => void) | null;
  readonly outstanding: number;
  /** commands that can be submitted now (0 when full or closed) */
  readonly available: number;
  /** per-command timeout in ms (0 = none); a command over it ends the queue */
  ioTimeoutMs: number;
  /**
   * Submit a 64-byte SQE (CID and data pointer are filled here). `data`: bytes to send
   * (`isRead` false) or the buffer to fill. False when the queue is full or closed.
   */
  submit(cmd: Buffer, data: Buffer | null, isRead: boolean, cb: CommandCallback): boolean;
  /** Like submit; the callback gets (status, cpl) with status = (sct << 8) | sc. */
  submitIo(
    cmd: Buffer,
    data: Buffer | null,
    isRead: boolean,
    cb: (status: number, cpl: Buffer) => void,
  ): boolean;
  /** End the queue; outstanding commands complete with an abort status. */
  fatal(reason: string): void;
  close(): void;
}
