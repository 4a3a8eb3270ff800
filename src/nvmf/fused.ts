// Fused commands kept together in submission order, for every transport (SPDK's
// nvmf_tcp_check_fused_ordering, spdk/spdk GitHub issue #2428). A transport
// hands commands to the core when their data is in, which is not the order
// they were submitted in: a write whose data comes after an R2T can become
// ready between the two halves of a fused Compare and Write sent after it, and
// the core would then see the first half, that write, then the second half,
// and abort the pair (Missing Fused). So the pairing is decided here, in the
// order the commands arrive, and a half that is ready waits for the other: the
// core receives the two one right after the other.
//
// Use: one FusedOrder per queue. The transport calls received() for each
// command as it arrives (before its data), ready() once its data is in (it
// then runs it, or holds it for its partner and runs it with the partner
// later), dropped() for a command it ends itself (a transport error) before
// ready(), and reset() when the connection goes (what it held is the
// transport's to free). A request the pairing failed reaches the core with
// `fusedFailed` set: the core answers it Command Aborted due to Missing Fused
// Command, as SPDK's transport does. Unfused traffic costs one check.

import { NvmOpcode, Sqe, SqeFlags } from '../wire/nvme.ts';
import type { NvmfRequest } from './transport.ts';

export class FusedOrder {
  /** a first half received whose next command has not arrived yet */
  private pendingFirst: NvmfRequest | null = null;
  /** hands a request to the core (the transport's own dispatch), in the order called */
  private readonly run: (req: NvmfRequest) => void;

  constructor(run: (req: NvmfRequest) => void) {
    this.run = run;
  }

  /** A command arrived (submission order), before any of its data. */
  received(req: NvmfRequest): void {
    req.fusedPartner = null;
    req.fusedReady = false;
    req.fusedFailed = false;
    // admin commands are never fused (the controller refuses the bits as an invalid field)
    let fuse = req.qpair.qid === 0 ? SqeFlags.FUSE_NONE : req.cmd[Sqe.FLAGS] & SqeFlags.FUSE_MASK;
    // a first half that is not a Compare pairs with nothing: the core answers it Invalid
    // Opcode at once (as before this ordering), and a second half after it is alone
    if (fuse === SqeFlags.FUSE_FIRST && req.cmd[Sqe.OPCODE] !== NvmOpcode.COMPARE) fuse = SqeFlags.FUSE_NONE;
    const first = this.pendingFirst;
    if (first === null && fuse === SqeFlags.FUSE_NONE) return;
    if (first !== null) {
      this.pendingFirst = null;
      if (fuse === SqeFlags.FUSE_SECOND) {
        first.fusedPartner = req;
        req.fusedPartner = first;
        return;
      }
      // the first half was not followed by its second: it fails (now, if it waited)
      this.fail(first);
    }
    if (fuse === SqeFlags.FUSE_FIRST) this.pendingFirst = req;
    else if (fuse === SqeFlags.FUSE_SECOND) req.fusedFailed = true; // no first half before it
  }

  /** The command's data is in: it runs now, or when its partner is ready too (first half first). */
  ready(req: NvmfRequest): void {
    const partner = req.fusedPartner;
    if (partner === null || partner === undefined) {
      if (req === this.pendingFirst)
        req.fusedReady = true; // its partner is not even here yet
      else this.run(req);
      return;
    }
    if (!partner.fusedReady) {
      req.fusedReady = true;
      return;
    }
    partner.fusedReady = false;
    partner.fusedPartner = null;
    req.fusedPartner = null;
    const secondIsReq = (req.cmd[Sqe.FLAGS] & SqeFlags.FUSE_MASK) === SqeFlags.FUSE_SECOND;
    this.run(secondIsReq ? partner : req);
    this.run(secondIsReq ? req : partner);
  }

  /** The transport ends `req` itself before ready() (a transport error): its partner fails. */
  dropped(req: NvmfRequest): void {
    if (this.pendingFirst === req) this.pendingFirst = null;
    const partner = req.fusedPartner;
    req.fusedPartner = null;
    req.fusedReady = false;
    if (partner !== null && partner !== undefined) {
      partner.fusedPartner = null;
      this.fail(partner);
    }
  }

  /** The connection is gone: forget what was held (never handed to the core). */
  reset(): void {
    this.pendingFirst = null;
  }

  private fail(req: NvmfRequest): void {
    req.fusedFailed = true;
    if (req.fusedReady) {
      req.fusedReady = false;
      this.run(req);
    }
  }
}
