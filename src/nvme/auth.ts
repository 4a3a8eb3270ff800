// DH-HMAC-CHAP on the host side (SPDK's lib/nvme/nvme_auth.c, Linux's
// drivers/nvme/host/auth.c): after a Connect whose answer sets AUTHREQ.ATR,
// the queue runs the transaction with Authentication Send / Receive commands:
//
//   Send AUTH_Negotiate → Receive DH-HMAC-CHAP_Challenge → Send _Reply →
//   Receive _Success1 [→ Send _Success2 when we asked the controller to prove
//   itself with our controller secret]
//
// The values are those of src/auth (the same code the target checks them
// with). A challenge we cannot use, or a controller that fails to prove itself,
// is answered with AUTH_Failure2; an AUTH_Failure1 from the controller ends
// the attempt. Either way the caller gets an NvmeAuthError and closes the queue.

import { randomBytes, randomInt } from 'node:crypto';
import {
  controllerResponse,
  DHCHAP_DHGROUP_NAMES,
  DHCHAP_DIGEST_NAMES,
  deriveDhSecret,
  dhchapHashId,
  dhchapHashLength,
  dhchapHashName,
  dhGroupId,
  dhGroupName,
  generateDhKeyPair,
  hostResponse,
  isFfdheGroup,
  responsesMatch,
} from '../auth/index.ts';
import { type DhchapSecret, parseDhchapSecret } from '../keyring/index.ts';
import { InvalidArgumentError } from '../util/errors.ts';
import {
  AUTH_FAILURE_REASON,
  AUTH_PROTOCOL_DHCHAP,
  AuthFailure,
  AuthMessageId,
  AuthScc,
  AuthType,
  authFailureName,
  dhchapChallengeSize,
  readAuthFailure,
  readAuthHeader,
  readDhchapChallenge,
  readDhchapChallengeLengths,
  readDhchapSuccess1,
  writeAuthFailure,
  writeAuthNegotiate,
  writeAuthReceive,
  writeAuthSend,
  writeDhchapReply,
  writeDhchapSuccess2,
} from '../wire/auth.ts';
import { SQE_SIZE } from '../wire/nvme.ts';
import { execute } from './command.ts';
import { NvmeAuthError } from './errors.ts';
import type { NvmeQpair } from './qpair.ts';

/** What a Receive asks for: room for any message (an ffdhe8192 challenge is 16 + 64 + 1024 bytes). */
const RECEIVE_SIZE = 4096;

/**
 * A host's DH-HMAC-CHAP configuration (structured-cloneable: it travels to other realms with
 * the I/O queue parameters).
 */
export interface DhchapHostConfig {
  /** the host's secret (nvme-cli's --dhchap-secret) */
  secret: DhchapSecret;
  /** the controller's secret (--dhchap-ctrl-secret): when set, the controller must prove itself too */
  ctrlrSecret: DhchapSecret | null;
  /** hash ids offered, the strongest wins at the controller (default: all) */
  digests: number[];
  /** DH group ids offered (default: all) */
  dhgroups: number[];
}

/** The options as given (secrets as DHHC-1 text or parsed; SPDK's digest and DH group names). */
export interface DhchapHostOptions {
  dhchapSecret?: string | DhchapSecret;
  dhchapCtrlrSecret?: string | DhchapSecret;
  dhchapDigests?: string[];
  dhchapDhgroups?: string[];
}

function secretOf(v: string | DhchapSecret): DhchapSecret {
  return typeof v === 'string' ? parseDhchapSecret(v) : { hash: v.hash, key: Buffer.from(v.key) };
}

/** The configuration from options; null without a host secret. Throws on a bad secret or name. */
export function dhchapHostConfig(o: DhchapHostOptions): DhchapHostConfig | null {
  if (o.dhchapSecret === undefined) {
    if (o.dhchapCtrlrSecret !== undefined)
      throw new InvalidArgumentError('a DH-HMAC-CHAP controller secret needs the host secret too');
    return null;
  }
  const digests = (o.dhchapDigests ?? DHCHAP_DIGEST_NAMES).map((n) => {
    const id = dhchapHashId(n);
    if (id === undefined) throw new InvalidArgumentError(`unknown DH-HMAC-CHAP digest '${n}'`);
    return id;
  });
  const dhgroups = (o.dhchapDhgroups ?? DHCHAP_DHGROUP_NAMES).map((n) => {
    const id = dhGroupId(n);
    if (id === undefined) throw new InvalidArgumentError(`unknown DH-HMAC-CHAP DH group '${n}'`);
    return id;
  });
  return {
    secret: secretOf(o.dhchapSecret),
    ctrlrSecret: o.dhchapCtrlrSecret === undefined ? null : secretOf(o.dhchapCtrlrSecret),
    digests,
    dhgroups,
  };
}

let seqnum = 0;

/** S2 of our challenges: from a random start, never 0 (as Linux and SPDK). */
function nextSeqnum(): number {
  if (seqnum === 0) seqnum = randomInt(1, 0xffff_ffff);
  seqnum = (seqnum + 1) >>> 0;
  if (seqnum === 0) seqnum = 1;
  return seqnum;
}

/** A fresh transaction id for callers that keep none. */
export function randomTransactionId(): number {
  return randomInt(0, 0x1_0000);
}

/** What the transaction settled on. */
export interface AuthOutcome {
  digest: string;
  dhgroup: string;
  /** the controller proved itself too */
  bidirectional: boolean;
}

/**
 * Authenticate one queue (just connected, the Connect answer asked for it, or enabled: a
 * re-authentication). Resolves when the controller accepted us (and, with a controller
 * secret, we accepted it); rejects with NvmeAuthError (or the command's error).
 */
export async function authenticateQueue(
  q: NvmeQpair,
  o: { qid: number; hostnqn: string; subnqn: string; tid: number; config: DhchapHostConfig },
): Promise<AuthOutcome> {
  const { qid, tid, config } = o;
  const cmd = Buffer.alloc(SQE_SIZE);
  const send = async (msg: Buffer, what: string) => {
    writeAuthSend(cmd, msg.length);
    await execute(q, cmd, msg, false, `Authentication Send (${what})`);
  };
  const receive = async (what: string): Promise<Buffer> => {
    const buf = Buffer.alloc(RECEIVE_SIZE);
    writeAuthReceive(cmd, buf.length);
    await execute(q, cmd, buf, true, `Authentication Receive (${what})`);
    return buf;
  };
  /** Tell the controller we give up (AUTH_Failure2), then fail. */
  const refuse = async (rce: number, why: string): Promise<never> => {
    const msg = Buffer.alloc(8);
    writeAuthFailure(msg, 2, { tid, rc: AUTH_FAILURE_REASON, rce });
    await send(msg, 'AUTH_Failure2').catch(() => undefined);
    throw new NvmeAuthError(qid, 'host', rce, `${why} (${authFailureName(rce)})`);
  };
  /** The message must be `id`; AUTH_Failure1 from the controller ends it all. */
  const expect = async (buf: Buffer, id: number, what: string): Promise<void> => {
    const h = readAuthHeader(buf);
    if (h?.authType === AuthType.COMMON && h.authId === AuthMessageId.FAILURE1) {
      const f = readAuthFailure(buf);
      throw new NvmeAuthError(
        qid,
        'controller',
        f.rce,
        `the controller refused the authentication: ${authFailureName(f.rce)}`,
      );
    }
    if (h === null || h.authType !== AuthType.DHCHAP || h.authId !== id)
      await refuse(
        AuthFailure.INCORRECT_PROTOCOL_MESSAGE,
        `expected ${what}, got type ${h?.authType} id 0x${h?.authId.toString(16)}`,
      );
    if (h?.tid !== tid)
      await refuse(AuthFailure.INCORRECT_PAYLOAD, `${what} for transaction ${h?.tid}, not ${tid}`);
  };

  // 1: what we can do
  const negotiate = Buffer.alloc(72);
  const nlen = writeAuthNegotiate(negotiate, {
    tid,
    scC: AuthScc.NONE,
    protocols: [{ authId: AUTH_PROTOCOL_DHCHAP, hashIds: config.digests, dhGroupIds: config.dhgroups }],
  });
  await send(negotiate.subarray(0, nlen), 'AUTH_Negotiate');

  // 2: the controller's choice and challenge
  const c = await receive('DH-HMAC-CHAP_Challenge');
  await expect(c, AuthMessageId.DHCHAP_CHALLENGE, 'DH-HMAC-CHAP_Challenge');
  const { hl, dhvlen } = readDhchapChallengeLengths(c);
  if (dhchapChallengeSize(hl, dhvlen) > c.length)
    await refuse(AuthFailure.INCORRECT_PAYLOAD, `challenge of ${dhchapChallengeSize(hl, dhvlen)} bytes`);
  const ch = readDhchapChallenge(c);
  if (!config.digests.includes(ch.hashId) || dhchapHashLength(ch.hashId) === 0)
    await refuse(AuthFailure.HASH_UNUSABLE, `hash id ${ch.hashId} was not offered`);
  if (hl !== dhchapHashLength(ch.hashId))
    await refuse(AuthFailure.INCORRECT_PAYLOAD, `hash length ${hl} for ${dhchapHashName(ch.hashId)}`);
  if (!config.dhgroups.includes(ch.dhGroupId))
    await refuse(AuthFailure.DHGROUP_UNUSABLE, `DH group id ${ch.dhGroupId} was not offered`);
  if (ch.seqnum === 0) await refuse(AuthFailure.INCORRECT_PAYLOAD, 'challenge with sequence number 0');
  const withDh = isFfdheGroup(ch.dhGroupId);
  if (withDh === (dhvlen === 0))
    await refuse(
      AuthFailure.INCORRECT_PAYLOAD,
      `DH value of ${dhvlen} bytes for ${dhGroupName(ch.dhGroupId)}`,
    );

  // 3: the shared secret, our response, and our challenge to the controller
  let sessionKey: Buffer | null = null;
  let ourValue: Buffer = Buffer.alloc(0);
  if (withDh) {
    const pair = await generateDhKeyPair(ch.dhGroupId);
    ourValue = pair.publicValue;
    try {
      sessionKey = await deriveDhSecret(pair, ch.dhValue);
    } catch (e) {
      await refuse(AuthFailure.INCORRECT_PAYLOAD, `the controller's DH value: ${(e as Error).message}`);
    }
  }
  const names = { hostnqn: o.hostnqn, subnqn: o.subnqn };
  const r1 = hostResponse({
    hashId: ch.hashId,
    secret: config.secret,
    ...names,
    challenge: ch.challenge,
    seqnum: ch.seqnum,
    tid,
    sessionKey,
  });
  const bidirectional = config.ctrlrSecret !== null;
  const c2 = bidirectional ? randomBytes(hl) : Buffer.alloc(hl);
  const s2 = bidirectional ? nextSeqnum() : 0;
  const reply = Buffer.alloc(16 + 2 * hl + ourValue.length);
  writeDhchapReply(reply, {
    tid,
    response: r1,
    cvalid: bidirectional ? 1 : 0,
    seqnum: s2,
    challenge: c2,
    dhValue: ourValue,
  });
  await send(reply, 'DH-HMAC-CHAP_Reply');

  // 4: the verdict, and the controller's proof
  const s1 = await receive('DH-HMAC-CHAP_Success1');
  await expect(s1, AuthMessageId.DHCHAP_SUCCESS1, 'DH-HMAC-CHAP_Success1');
  if (config.ctrlrSecret !== null) {
    const m = readDhchapSuccess1(s1);
    if (m.rvalid !== 1 || m.hl !== hl || m.response === null)
      await refuse(AuthFailure.INCORRECT_PAYLOAD, 'the controller sent no response to our challenge');
    const expected = controllerResponse({
      hashId: ch.hashId,
      secret: config.ctrlrSecret,
      ...names,
      challenge: c2,
      seqnum: s2,
      tid,
      sessionKey,
    });
    if (m.response === null || !responsesMatch(m.response, expected))
      await refuse(AuthFailure.FAILED, 'controller authentication failed');
    // 5: we accept the controller
    const ok = Buffer.alloc(16);
    writeDhchapSuccess2(ok, tid);
    await send(ok, 'DH-HMAC-CHAP_Success2');
  }
  return {
    digest: dhchapHashName(ch.hashId) ?? String(ch.hashId),
    dhgroup: dhGroupName(ch.dhGroupId) ?? String(ch.dhGroupId),
    bidirectional,
  };
}
