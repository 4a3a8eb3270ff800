// DH-HMAC-CHAP on the target (SPDK's lib/nvmf/auth.c): one QpairAuth per
// queue whose host must authenticate, driven by that queue's Authentication
// Send / Receive commands on its poll-group thread:
//
//   Send AUTH_Negotiate → Receive DH-HMAC-CHAP_Challenge → Send _Reply →
//   Receive _Success1 [→ Send _Success2, when the host asked the controller
//   to prove itself too]
//
// A problem found in a Send completes that command successfully and leaves the
// reason for the next Receive, which carries AUTH_Failure1; the queue is then
// closed (100 ms later, so the failure reaches the host). A host that goes
// silent mid-way past the timeout (its controller's KATO, 120 s without one)
// loses the queue too; re-authentication of an enabled queue (a Negotiate on it)
// that times out leaves the queue as it was, as SPDK does.
//
// The Diffie-Hellman work (an ffdhe8192 key pair and shared secret) runs in
// libuv's thread pool (src/auth/dh.ts), so the poll group goes on serving its
// other queues meanwhile; the command that needs it is held (parked) and
// completed when the result comes back. The host's keys are asked of the app
// thread (which reads them from the keyring) at each Negotiate, so a key
// changed with nvmf_subsystem_set_keys applies to the next authentication.

import { randomBytes } from 'node:crypto';
import {
  controllerResponse,
  type DhKeyPair,
  deriveDhSecret,
  dhchapHashLength,
  dhchapHashName,
  dhGroupName,
  generateDhKeyPair,
  hostResponse,
  responsesMatch,
} from '../auth/index.ts';
import type { DhchapSecret } from '../keyring/index.ts';
import {
  nowUs,
  type Poller,
  PollerStatus,
  registerPoller,
  type SpdkThread,
  sendMsg,
} from '../thread/index.ts';
import { logger } from '../util/log.ts';
import {
  AUTH_FAILURE_REASON,
  AUTH_PROTOCOL_DHCHAP,
  AUTH_SECP_NVME,
  AUTH_SPSP0,
  AUTH_SPSP1,
  AuthFailure,
  AuthFailureMsg,
  AuthMessageId,
  AuthNegotiate,
  AuthScc,
  AuthType,
  authFailureName,
  authNegotiateSize,
  DHCHAP_SUCCESS2_SIZE,
  DhchapHashId,
  DhchapReply,
  DhGroupId,
  dhchapChallengeSize,
  dhchapReplySize,
  dhchapSuccess1Size,
  readAuthCommand,
  readAuthFailure,
  readAuthHeader,
  readAuthNegotiate,
  readDhchapReply,
  readDhchapReplyLengths,
  writeAuthFailure,
  writeDhchapChallenge,
  writeDhchapSuccess1,
} from '../wire/auth.ts';
import { FabricsCommandType, GenericStatus, StatusCodeType, setStatus } from '../wire/nvme.ts';
import type { NvmfQpair, NvmfRequest } from './transport.ts';

const log = logger('nvmf_auth');

/** Without a keep-alive timeout, how long each step may take (SPDK's default). */
const DEFAULT_TIMEOUT_MS = 120_000;
/** After AUTH_Failure1 went out, the queue closes this much later. */
const FAILURE1_CLOSE_DELAY_US = 100_000;
/** The strongest first: the target picks the first the host offers and the target allows. */
const DIGEST_PREFERENCE = [DhchapHashId.SHA512, DhchapHashId.SHA384, DhchapHashId.SHA256];
const DHGROUP_PREFERENCE = [
  DhGroupId.FFDHE8192,
  DhGroupId.FFDHE6144,
  DhGroupId.FFDHE4096,
  DhGroupId.FFDHE3072,
  DhGroupId.FFDHE2048,
  DhGroupId.NULL,
];

/** SPDK's state names (nvmf_subsystem_get_qpairs shows them). */
export const AuthState = {
  NEGOTIATE: 'negotiate',
  CHALLENGE: 'challenge',
  REPLY: 'reply',
  SUCCESS1: 'success1',
  SUCCESS2: 'success2',
  FAILURE1: 'failure1',
  COMPLETED: 'completed',
  ERROR: 'error',
} as const;
export type AuthState = (typeof AuthState)[keyof typeof AuthState];

/** A host's secrets as the app thread hands them over (null: none configured). */
export interface DhchapKeys {
  key: DhchapSecret | null;
  ctrlrKey: DhchapSecret | null;
}

/** What a queue's authentication needs of its poll group (NvmfPollGroup implements it). */
export interface AuthHost {
  readonly thread: SpdkThread;
  /** hash ids and DH group ids the target allows (nvmf_set_config) */
  allowedDigests(): readonly number[];
  allowedDhGroups(): readonly number[];
  /** the host's keys for this subsystem, asked of the app thread; `done` runs on this thread */
  fetchKeys(subnqn: string, hostnqn: string, done: (keys: DhchapKeys) => void): void;
  /** a fresh non-zero sequence number for a challenge */
  nextSeqnum(): number;
  /** the queue authenticated: commands other than authentication may run now */
  onAuthenticated(auth: QpairAuth): void;
  /** the transaction failed (failure1 sent, failure2 received, timed out): counted once per failure */
  onAuthFailed(auth: QpairAuth): void;
  /** end the queue (a failed, refused or abandoned authentication) */
  closeQueue(auth: QpairAuth, reason: string): void;
}

/** What nvmf_subsystem_get_qpairs shows of a queue's authentication. */
export interface AuthInfo {
  state: string;
  digest: string;
  dhgroup: string;
}

function fail(req: NvmfRequest, sct: number, sc: number, dnr: boolean): void {
  setStatus(req.rsp, sct, sc, dnr);
  req.complete();
}

/** The request's data as one buffer of `req.length` bytes (Send: the message; Receive: where to write it). */
function messageBuffer(req: NvmfRequest): Buffer | null {
  if (req.length === 0 || req.iov.length !== 1 || req.iov[0].length < req.length) return null;
  return req.iov[0].subarray(0, req.length);
}

/** One queue's DH-HMAC-CHAP transaction(s). */
export class QpairAuth {
  readonly qpair: NvmfQpair;
  readonly subnqn: string;
  readonly hostnqn: string;
  state: AuthState = AuthState.NEGOTIATE;
  /** the queue was enabled before this transaction (re-authentication): a timeout is not fatal */
  reauth = false;
  private readonly host: AuthHost;
  private readonly timeoutUs: number;
  private tid = 0;
  private hashId = 0;
  private dhGroupId = -1;
  private failReason: number = AuthFailure.FAILED;
  /** C1 and S1 of our challenge */
  private challenge: Buffer | null = null;
  private seqnum = 0;
  /** R2, when the host asked us to authenticate (CVALID) */
  private ctrlrResponse: Buffer | null = null;
  private dh: DhKeyPair | null = null;
  private dhError: string | null = null;
  private keys: DhchapKeys | null = null;
  /** a command waiting for the DH work or the keys */
  private parked: NvmfRequest | null = null;
  private resume: (() => void) | null = null;
  /** bumped by every new transaction and by close: late async results of an older one are dropped */
  private generation = 0;
  private closed = false;
  private timer: Poller | null = null;

  constructor(o: { qpair: NvmfQpair; subnqn: string; hostnqn: string; katoMs: number; host: AuthHost }) {
    this.qpair = o.qpair;
    this.subnqn = o.subnqn;
    this.hostnqn = o.hostnqn;
    this.host = o.host;
    this.timeoutUs = (o.katoMs > 0 ? o.katoMs : DEFAULT_TIMEOUT_MS) * 1000;
    this.armTimer();
  }

  private tag(): string {
    return `[${this.subnqn}:${this.hostnqn}:${this.qpair.qid}]`;
  }

  /** For nvmf_subsystem_get_qpairs. */
  info(): AuthInfo {
    return {
      state: this.state,
      digest: dhchapHashName(this.hashId) ?? 'unknown',
      dhgroup: (this.dhGroupId >= 0 ? dhGroupName(this.dhGroupId) : undefined) ?? 'unknown',
    };
  }

  /** Whether a Negotiate may start a new transaction now (an enabled queue re-authenticating). */
  get idle(): boolean {
    return this.state === AuthState.COMPLETED;
  }

  /** Start over for a re-authentication of the enabled queue. */
  restart(): void {
    this.generation++;
    this.reset();
    this.reauth = true;
    this.state = AuthState.NEGOTIATE;
    this.armTimer();
  }

  /** The queue is closing: a held command completes (aborted), timers stop, late results are dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.generation++;
    this.stopTimer();
    const req = this.parked;
    this.parked = null;
    this.resume = null;
    if (req !== null) fail(req, StatusCodeType.GENERIC, GenericStatus.ABORTED_SQ_DELETION, false);
    this.reset();
  }

  private reset(): void {
    this.challenge = null;
    this.ctrlrResponse = null;
    this.dh = null;
    this.dhError = null;
    this.keys = null;
    this.seqnum = 0;
  }

  private setState(s: AuthState): void {
    if (this.state === s) return;
    log.debug(`${this.tag()} auth state: ${s}`);
    this.state = s;
  }

  // ------------------------------------------------------------ timers

  private stopTimer(): void {
    this.timer?.unregister();
    this.timer = null;
  }

  private armTimer(): void {
    this.stopTimer();
    const deadline = nowUs() + this.timeoutUs;
    // a timed poller checks the deadline; it fires once
    this.timer = registerPoller(
      () => {
        if (nowUs() < deadline) return PollerStatus.IDLE;
        this.stopTimer();
        this.timedOut();
        return PollerStatus.BUSY;
      },
      Math.min(this.timeoutUs, 1_000_000),
      'nvmf_auth_timeout',
    );
  }

  private timedOut(): void {
    log.error(`${this.tag()} authentication timed out (state ${this.state})`);
    if (this.reauth) {
      // a re-authentication that was not finished is not fatal: the queue stays as it was
      this.generation++;
      this.reset();
      this.setState(AuthState.COMPLETED);
      return;
    }
    this.setState(AuthState.ERROR);
    this.host.onAuthFailed(this);
    this.host.closeQueue(this, 'authentication timed out');
  }

  // ------------------------------------------------------------ commands

  /** An Authentication Send or Receive of this queue. */
  execute(req: NvmfRequest): void {
    if (this.parked !== null) {
      // one transaction step at a time: the host sent another before the last completed
      log.error(`${this.tag()} authentication command while another one is in progress`);
      fail(req, StatusCodeType.GENERIC, GenericStatus.COMMAND_SEQUENCE_ERROR, true);
      return;
    }
    const cmd = readAuthCommand(req.cmd);
    if (
      cmd.secp !== AUTH_SECP_NVME ||
      cmd.spsp0 !== AUTH_SPSP0 ||
      cmd.spsp1 !== AUTH_SPSP1 ||
      cmd.length !== req.length
    ) {
      log.error(
        `${this.tag()} invalid authentication command: secp 0x${cmd.secp.toString(16)}, spsp ${cmd.spsp0}/${cmd.spsp1}, length ${cmd.length} for ${req.length} bytes of data`,
      );
      fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true);
      return;
    }
    if (cmd.fctype === FabricsCommandType.AUTHENTICATION_SEND) this.send(req);
    else this.receive(req);
  }

  /** A Send found a problem: the command succeeds, the next Receive carries AUTH_Failure1. */
  private failure(req: NvmfRequest, reason: AuthFailure, why: string): void {
    log.error(`${this.tag()} ${why}: ${authFailureName(reason)}`);
    this.failReason = reason;
    this.setState(AuthState.FAILURE1);
    req.complete();
  }

  private send(req: NvmfRequest): void {
    const msg = messageBuffer(req);
    const hdr = msg === null ? null : readAuthHeader(msg);
    if (msg === null || hdr === null) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, `message of ${req.length} bytes`);
      return;
    }
    if (hdr.authType === AuthType.COMMON && hdr.authId === AuthMessageId.NEGOTIATE) this.negotiate(req, msg);
    else if (hdr.authType === AuthType.COMMON && hdr.authId === AuthMessageId.FAILURE2)
      this.failure2(req, msg);
    else if (hdr.authType === AuthType.DHCHAP && hdr.authId === AuthMessageId.DHCHAP_REPLY)
      this.reply(req, msg);
    else if (hdr.authType === AuthType.DHCHAP && hdr.authId === AuthMessageId.DHCHAP_SUCCESS2)
      this.success2(req, msg);
    else
      this.failure(
        req,
        AuthFailure.INCORRECT_PROTOCOL_MESSAGE,
        `unexpected message type ${hdr.authType} id 0x${hdr.authId.toString(16)}`,
      );
  }

  private receive(req: NvmfRequest): void {
    const buf = messageBuffer(req);
    if (buf === null || buf.length < AuthFailureMsg.SIZE) {
      // nowhere to put even a failure message
      fail(req, StatusCodeType.GENERIC, GenericStatus.INVALID_FIELD, true);
      this.setState(AuthState.ERROR);
      this.host.onAuthFailed(this);
      this.host.closeQueue(this, 'authentication receive without a buffer');
      return;
    }
    buf.fill(0);
    switch (this.state) {
      case AuthState.CHALLENGE:
        this.sendChallenge(req, buf);
        return;
      case AuthState.SUCCESS1:
        this.sendSuccess1(req, buf);
        return;
      case AuthState.FAILURE1:
        this.sendFailure1(req, buf, this.failReason);
        return;
      default:
        log.error(`${this.tag()} authentication receive in state ${this.state}`);
        this.sendFailure1(req, buf, AuthFailure.INCORRECT_PROTOCOL_MESSAGE);
    }
  }

  // ------------------------------------------------------------ Negotiate

  private negotiate(req: NvmfRequest, msg: Buffer): void {
    if (this.state !== AuthState.NEGOTIATE) {
      this.failure(req, AuthFailure.INCORRECT_PROTOCOL_MESSAGE, `AUTH_Negotiate in state ${this.state}`);
      return;
    }
    const n = readAuthNegotiate(msg);
    this.tid = n.tid;
    if (msg.length < AuthNegotiate.HEADER_SIZE || msg.length !== authNegotiateSize(n.napd)) {
      this.failure(
        req,
        AuthFailure.INCORRECT_PAYLOAD,
        `AUTH_Negotiate of ${msg.length} bytes, NAPD ${n.napd}`,
      );
      return;
    }
    if (n.scC !== AuthScc.NONE) {
      this.failure(req, AuthFailure.SCC_MISMATCH, `secure channel concatenation ${n.scC} asked for`);
      return;
    }
    const desc = n.protocols.find((p) => p.authId === AUTH_PROTOCOL_DHCHAP);
    if (desc === undefined) {
      this.failure(req, AuthFailure.PROTOCOL_UNUSABLE, 'no DH-HMAC-CHAP descriptor');
      return;
    }
    if (n.listTooLong) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, 'HALEN or DHLEN over 30');
      return;
    }
    const digests = this.host.allowedDigests();
    const hashId = DIGEST_PREFERENCE.find((h) => digests.includes(h) && desc.hashIds.includes(h));
    if (hashId === undefined) {
      this.failure(req, AuthFailure.HASH_UNUSABLE, `no usable hash among [${desc.hashIds.join(', ')}]`);
      return;
    }
    const groups = this.host.allowedDhGroups();
    const dhGroupId = DHGROUP_PREFERENCE.find((g) => groups.includes(g) && desc.dhGroupIds.includes(g));
    if (dhGroupId === undefined) {
      this.failure(
        req,
        AuthFailure.DHGROUP_UNUSABLE,
        `no usable DH group among [${desc.dhGroupIds.join(', ')}]`,
      );
      return;
    }
    this.hashId = hashId;
    this.dhGroupId = dhGroupId;
    log.debug(`${this.tag()} selected ${dhchapHashName(hashId)}, ${dhGroupName(dhGroupId)}`);
    this.prepare();
    this.armTimer();
    this.setState(AuthState.CHALLENGE);
    req.complete();
  }

  /** Start what the challenge and the reply need: our DH key pair, the host's keys. */
  private prepare(): void {
    const gen = this.generation;
    this.host.fetchKeys(this.subnqn, this.hostnqn, (keys) => {
      if (gen !== this.generation) return;
      this.keys = keys;
      this.wakeParked();
    });
    if (this.dhGroupId === DhGroupId.NULL) return;
    generateDhKeyPair(this.dhGroupId).then(
      (pair) =>
        sendMsg(
          this.host.thread,
          (_: null) => {
            if (gen !== this.generation) return;
            this.dh = pair;
            this.wakeParked();
          },
          null,
        ),
      (err: Error) =>
        sendMsg(
          this.host.thread,
          (_: null) => {
            if (gen !== this.generation) return;
            this.dhError = err.message;
            this.wakeParked();
          },
          null,
        ),
    );
  }

  private park(req: NvmfRequest, resume: () => void): void {
    this.parked = req;
    this.resume = resume;
  }

  private wakeParked(): void {
    const resume = this.resume;
    if (resume === null) return;
    this.parked = null;
    this.resume = null;
    resume();
  }

  // ------------------------------------------------------------ Challenge

  private sendChallenge(req: NvmfRequest, buf: Buffer): void {
    if (this.dhGroupId !== DhGroupId.NULL && this.dh === null) {
      if (this.dhError !== null) {
        log.error(`${this.tag()} DH key generation failed: ${this.dhError}`);
        this.sendFailure1(req, buf, AuthFailure.FAILED);
        return;
      }
      this.park(req, () => this.sendChallenge(req, buf));
      return;
    }
    const hl = dhchapHashLength(this.hashId);
    const dhValue = this.dh?.publicValue ?? Buffer.alloc(0);
    if (buf.length < dhchapChallengeSize(hl, dhValue.length)) {
      log.error(`${this.tag()} challenge does not fit ${buf.length} bytes`);
      this.sendFailure1(req, buf, AuthFailure.INCORRECT_PAYLOAD);
      return;
    }
    this.seqnum = this.host.nextSeqnum();
    this.challenge = randomBytes(hl);
    writeDhchapChallenge(buf, {
      tid: this.tid,
      hashId: this.hashId,
      dhGroupId: this.dhGroupId,
      seqnum: this.seqnum,
      challenge: this.challenge,
      dhValue,
    });
    this.armTimer();
    this.setState(AuthState.REPLY);
    req.complete();
  }

  // ------------------------------------------------------------ Reply

  private reply(req: NvmfRequest, msg: Buffer): void {
    if (this.state !== AuthState.REPLY) {
      this.failure(req, AuthFailure.INCORRECT_PROTOCOL_MESSAGE, `DH-HMAC-CHAP_Reply in state ${this.state}`);
      return;
    }
    if (msg.length < DhchapReply.HEADER_SIZE) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, `DH-HMAC-CHAP_Reply of ${msg.length} bytes`);
      return;
    }
    const hl = dhchapHashLength(this.hashId);
    const { hl: msgHl, dhvlen } = readDhchapReplyLengths(msg);
    if (msgHl !== hl) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, `hash length ${msgHl}, ${hl} expected`);
      return;
    }
    if (dhvlen % 4 !== 0) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, `DHVLEN ${dhvlen} is not a multiple of 4`);
      return;
    }
    if (msg.length !== dhchapReplySize(hl, dhvlen)) {
      this.failure(
        req,
        AuthFailure.INCORRECT_PAYLOAD,
        `DH-HMAC-CHAP_Reply of ${msg.length} bytes, ${dhchapReplySize(hl, dhvlen)} expected`,
      );
      return;
    }
    const r = readDhchapReply(msg);
    if (r.tid !== this.tid) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, `transaction id ${r.tid}, ${this.tid} expected`);
      return;
    }
    if (r.cvalid !== 0 && r.cvalid !== 1) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, `CVALID ${r.cvalid}`);
      return;
    }
    if (r.cvalid === 1 && r.seqnum === 0) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, 'sequence number 0 with CVALID');
      return;
    }
    if ((this.dhGroupId === DhGroupId.NULL) !== (dhvlen === 0)) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, `DHVLEN ${dhvlen} for ${dhGroupName(this.dhGroupId)}`);
      return;
    }
    this.verifyReply(req, r);
  }

  /** Once the keys (and the DH pair) are here: derive the shared secret, check R1, compute R2. */
  private verifyReply(req: NvmfRequest, r: ReturnType<typeof readDhchapReply>): void {
    const dhPending = this.dhGroupId !== DhGroupId.NULL && this.dh === null && this.dhError === null;
    if (this.keys === null || dhPending) {
      this.park(req, () => this.verifyReply(req, r));
      return;
    }
    const key = this.keys.key;
    if (key === null) {
      this.failure(req, AuthFailure.FAILED, 'no DH-HMAC-CHAP key for this host');
      return;
    }
    if (this.dh === null) {
      if (this.dhGroupId !== DhGroupId.NULL) {
        this.failure(req, AuthFailure.FAILED, `DH key generation failed: ${this.dhError}`);
        return;
      }
      this.checkResponses(req, r, key, null);
      return;
    }
    const gen = this.generation;
    this.park(req, () => {});
    deriveDhSecret(this.dh, r.dhValue).then(
      (secret) =>
        sendMsg(
          this.host.thread,
          (_: null) => {
            if (gen !== this.generation) return;
            this.parked = null;
            this.resume = null;
            this.checkResponses(req, r, key, secret);
          },
          null,
        ),
      (err: Error) =>
        sendMsg(
          this.host.thread,
          (_: null) => {
            if (gen !== this.generation) return;
            this.parked = null;
            this.resume = null;
            this.failure(req, AuthFailure.FAILED, `cannot derive the DH secret: ${err.message}`);
          },
          null,
        ),
    );
  }

  private checkResponses(
    req: NvmfRequest,
    r: ReturnType<typeof readDhchapReply>,
    key: DhchapSecret,
    sessionKey: Buffer | null,
  ): void {
    const challenge = this.challenge;
    if (challenge === null) {
      this.failure(req, AuthFailure.INCORRECT_PROTOCOL_MESSAGE, 'reply without a challenge');
      return;
    }
    const names = { hostnqn: this.hostnqn, subnqn: this.subnqn };
    const expected = hostResponse({
      hashId: this.hashId,
      secret: key,
      ...names,
      challenge,
      seqnum: this.seqnum,
      tid: this.tid,
      sessionKey,
    });
    if (!responsesMatch(r.response, expected)) {
      this.failure(req, AuthFailure.FAILED, 'host response mismatch');
      return;
    }
    this.ctrlrResponse = null;
    if (r.cvalid === 1) {
      const ctrlrKey = this.keys?.ctrlrKey ?? null;
      if (ctrlrKey === null) {
        this.failure(
          req,
          AuthFailure.FAILED,
          'the host asked for controller authentication: no controller key',
        );
        return;
      }
      this.ctrlrResponse = controllerResponse({
        hashId: this.hashId,
        secret: ctrlrKey,
        ...names,
        challenge: r.challenge,
        seqnum: r.seqnum,
        tid: this.tid,
        sessionKey,
      });
    }
    this.armTimer();
    this.setState(AuthState.SUCCESS1);
    req.complete();
  }

  // ------------------------------------------------------------ Success1 / Success2 / Failure2

  private sendSuccess1(req: NvmfRequest, buf: Buffer): void {
    const hl = dhchapHashLength(this.hashId);
    const r2 = this.ctrlrResponse;
    if (buf.length < dhchapSuccess1Size(r2 === null ? 0 : hl)) {
      log.error(`${this.tag()} success1 does not fit ${buf.length} bytes`);
      this.sendFailure1(req, buf, AuthFailure.INCORRECT_PAYLOAD);
      return;
    }
    // HL is set even without R2: the Linux host checks it
    writeDhchapSuccess1(buf, { tid: this.tid, hl, response: r2 });
    if (r2 === null) this.done();
    else {
      this.armTimer();
      this.setState(AuthState.SUCCESS2);
    }
    req.complete();
  }

  private success2(req: NvmfRequest, msg: Buffer): void {
    if (this.state !== AuthState.SUCCESS2) {
      this.failure(
        req,
        AuthFailure.INCORRECT_PROTOCOL_MESSAGE,
        `DH-HMAC-CHAP_Success2 in state ${this.state}`,
      );
      return;
    }
    const hdr = readAuthHeader(msg);
    if (msg.length !== DHCHAP_SUCCESS2_SIZE || hdr === null || hdr.tid !== this.tid) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, `DH-HMAC-CHAP_Success2 of ${msg.length} bytes`);
      return;
    }
    log.debug(`${this.tag()} the host authenticated the controller`);
    this.done();
    req.complete();
  }

  private failure2(req: NvmfRequest, msg: Buffer): void {
    if (this.state !== AuthState.REPLY && this.state !== AuthState.SUCCESS2) {
      this.failure(req, AuthFailure.INCORRECT_PROTOCOL_MESSAGE, `AUTH_Failure2 in state ${this.state}`);
      return;
    }
    if (msg.length !== AuthFailureMsg.SIZE || readAuthHeader(msg)?.tid !== this.tid) {
      this.failure(req, AuthFailure.INCORRECT_PAYLOAD, `AUTH_Failure2 of ${msg.length} bytes`);
      return;
    }
    const f = readAuthFailure(msg);
    log.error(`${this.tag()} the host ended the authentication: rc ${f.rc}, ${authFailureName(f.rce)}`);
    this.stopTimer();
    this.setState(AuthState.ERROR);
    this.host.onAuthFailed(this);
    req.complete();
    this.closeLater('the host failed the authentication (AUTH_Failure2)');
  }

  private sendFailure1(req: NvmfRequest, buf: Buffer, reason: number): void {
    writeAuthFailure(buf, 1, { tid: this.tid, rc: AUTH_FAILURE_REASON, rce: reason });
    this.setState(AuthState.FAILURE1);
    this.host.onAuthFailed(this);
    req.complete();
    this.closeLater(`authentication failed: ${authFailureName(reason)}`);
  }

  /** Close the queue once the last response had time to leave. */
  private closeLater(reason: string): void {
    this.stopTimer();
    const gen = this.generation;
    const at = nowUs() + FAILURE1_CLOSE_DELAY_US;
    this.timer = registerPoller(
      () => {
        if (nowUs() < at) return PollerStatus.IDLE;
        this.stopTimer();
        if (gen === this.generation) this.host.closeQueue(this, reason);
        return PollerStatus.BUSY;
      },
      FAILURE1_CLOSE_DELAY_US,
      'nvmf_auth_failure1_close',
    );
  }

  private done(): void {
    this.stopTimer();
    this.reset();
    this.setState(AuthState.COMPLETED);
    log.info(
      `${this.tag()} authenticated (${dhchapHashName(this.hashId)}, ${dhGroupName(this.dhGroupId)}${this.reauth ? ', re-authentication' : ''})`,
    );
    this.host.onAuthenticated(this);
  }
}
