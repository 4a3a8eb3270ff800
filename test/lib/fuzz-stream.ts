// Property-based fuzzing of a real nvmf_tgt's answers to PDU streams: after a
// valid ICReq, a generated stream (valid, mutated or random PDUs, see
// fuzz-pdu.ts) goes to the target. Property: whatever the target sends back is
// well-formed PDUs starting with the ICResp; when our own receiver finds the
// stream malformed the target must have ended the connection with a C2HTermReq;
// a connection the target closes ends with a C2HTermReq unless the host itself
// terminated (H2CTermReq) or disconnected (Fabrics Disconnect).

import fc from 'fast-check';
import { Ch, IcResp, PduType } from '../../src/wire/tcp.ts';
import { HOST_ACCEPTS, PduReceiver } from '../../src/wire/tcp-receiver.ts';
import { runReceiver, streamArb } from './fuzz-pdu.ts';
import { icDigests, icReq, RawConnection } from './raw-pdu.ts';

/** The largest PDU a running queue of the default transport accepts (H2CData of MAXH2CDATA). */
const TARGET_MAX_PLEN = 24 + 131072 + 2 * 4 + 128;

export const targetStreamArb = streamArb.filter((s) => s.side === 'target');

type StreamCase = typeof targetStreamArb extends fc.Arbitrary<infer T> ? T : never;

export interface StreamFuzzStats {
  cases: number;
  termReqs: number;
}

/** Run one case against the target at `port`; a reason on failure, null when it holds. */
export async function streamCaseHolds(
  port: string,
  s: StreamCase,
  stats?: StreamFuzzStats,
): Promise<string | null> {
  if (stats) stats.cases++;
  const conn = await RawConnection.connect(port);
  try {
    await conn.write(icReq({ dgst: icDigests({ hdgst: s.dg.hd, ddgst: s.dg.dd }) }));
    const first = await conn.waitBytes(IcResp.SIZE, 10_000);
    if (first.length < IcResp.SIZE || first[Ch.TYPE] !== PduType.IC_RESP)
      return `no ICResp: ${first.subarray(0, 16).toString('hex')}`;
    // our own receiver's verdict on the stream (same limits as the target's queue)
    const local = runReceiver([Buffer.from(s.stream)], 'target', s.dg, TARGET_MAX_PLEN, false);
    const hostEnded = local.pdus.some((p) => Number(p.split(':')[0]) === PduType.H2C_TERM_REQ);
    await conn.write(s.stream);
    if (local.errors.length > 0 && !hostEnded) {
      // the target must end this connection: give it time on a loaded machine
      await conn.waitClosed(10_000);
    } else {
      // wait for the target to close, or to go quiet
      const deadline = Date.now() + 10_000;
      let seen = conn.received;
      while (!conn.closed && Date.now() < deadline) {
        await conn.waitClosed(150);
        if (conn.received === seen) break;
        seen = conn.received;
      }
    }
    // what the target sent: parse it as a host would
    const types: number[] = [];
    let bad: string | null = null;
    const rx = new PduReceiver(
      {
        onPdu: (pdu) => types.push(pdu[Ch.TYPE]),
        onPduError: (fes, fei) => {
          bad = `the target sent a malformed PDU (fes ${fes}, fei ${fei})`;
        },
      },
      HOST_ACCEPTS,
      1 << 21,
    );
    const all = conn.data;
    rx.push(all.subarray(0, 128));
    rx.headerDigest = s.dg.hd;
    rx.dataDigest = s.dg.dd;
    rx.push(all.subarray(128));
    if (bad !== null) return bad;
    const termReq = types[types.length - 1] === PduType.C2H_TERM_REQ;
    if (termReq && stats) stats.termReqs++;
    if (types.slice(0, -1).includes(PduType.C2H_TERM_REQ)) return 'PDUs after a C2HTermReq';
    const disconnect = s.stream.includes(Buffer.from([0x7f])) && s.stream.includes(Buffer.from([0x08]));
    if (local.errors.length > 0 && !termReq && !hostEnded) {
      return `the stream is malformed (${local.errors[0]}) but the target sent no C2HTermReq (closed ${conn.closed})`;
    }
    if (conn.closed && !termReq && !hostEnded && !disconnect) {
      return `the target closed without a C2HTermReq (sent ${types.join(',')})`;
    }
    return null;
  } finally {
    conn.destroy();
  }
}

export function streamProperty(port: string, alive: () => boolean, stats?: StreamFuzzStats) {
  return fc.asyncProperty(targetStreamArb, async (s) => {
    const why = await streamCaseHolds(port, s, stats);
    if (why !== null) throw new Error(why);
    if (!alive()) throw new Error('the target died');
  });
}
