// The reservation commands of `nvmf`: resv-register, resv-acquire, resv-release
// and resv-report with nvme-cli's option names and letters (-t and -a are the
// reservation type and action there, so the transport and address are then
// --transport and --traddr), and nvme-cli's output.

import type { ParseArgsOptionsConfig } from 'node:util';
import type { NvmeController, NvmeIoQpair } from '../../nvme/index.ts';
import { UsageError } from '../../util/errors.ts';
import { IdCtrl } from '../../wire/identify.ts';
import { ResvStatus, type ResvStatusData } from '../../wire/reservation.ts';
import { parseInteger } from './args.ts';
import { type Command, type Context, nsidOption, withController } from './command.ts';
import { toJson } from './format.ts';

/** JSON.rawJSON (Node 21+; not in the ES2024 typings): a number written exactly as given. */
const rawJson = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/** An nvme-cli key (OPT_SUFFIX): a 64-bit number, decimal or 0x…, 0 when absent. */
function keyOption(ctx: Context, name: string): bigint {
  const v = ctx.values[name];
  if (v === undefined) return 0n;
  const t = String(v).trim();
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t)) throw new UsageError(`--${name} must be a 64-bit number, not "${v}"`);
  const k = BigInt(t);
  if (k > 0xffff_ffff_ffff_ffffn) throw new UsageError(`--${name} must fit in 64 bits, not "${v}"`);
  return k;
}

function byteOption(ctx: Context, name: string, max: number): number {
  const v = ctx.values[name];
  return v === undefined ? 0 : parseInteger(name, String(v), 0, max);
}

/** The namespace (nvme-cli: -n, required here: there is no block device to ask). */
function resvNsid(ctx: Context): number {
  const nsid = nsidOption(ctx.values, 0);
  if (nsid === 0) throw new UsageError('--namespace-id (-n) is required');
  return nsid;
}

/** One controller and one I/O queue for the command. */
function withIoQueue<T>(ctx: Context, fn: (io: NvmeIoQpair, c: NvmeController) => Promise<T>): Promise<T> {
  return withController(ctx.trid, async (c) => fn(await c.createIoQpair(2), c));
}

const nsidOpt: ParseArgsOptionsConfig = { 'namespace-id': { type: 'string', short: 'n' } };

const resvRegister: Command = {
  name: 'resv-register',
  summary: 'register, unregister or replace a reservation key',
  options: {
    ...nsidOpt,
    crkey: { type: 'string', short: 'c' },
    nrkey: { type: 'string', short: 'k' },
    rrega: { type: 'string', short: 'r' },
    cptpl: { type: 'string', short: 'p' },
    iekey: { type: 'boolean', short: 'i', default: false },
  },
  optionHelp: {
    'namespace-id': 'namespace ID (required)',
    crkey: 'current reservation key',
    nrkey: 'new reservation key',
    rrega: 'reservation registration action: 0 register, 1 unregister, 2 replace',
    cptpl: 'change persist through power loss: 0 no change, 2 clear, 3 persist',
    iekey: 'ignore the existing key',
  },
  nsidOnN: true,
  help: 'nvmf resv-register -t tcp -a ADDR -s PORT --nqn SUBNQN -n NSID [-c CRKEY] [-k NRKEY] [-r RREGA] [-p CPTPL] [-i]',
  async run(ctx) {
    const nsid = resvNsid(ctx);
    const opts = {
      crkey: keyOption(ctx, 'crkey'),
      nrkey: keyOption(ctx, 'nrkey'),
      action: byteOption(ctx, 'rrega', 7),
      cptpl: byteOption(ctx, 'cptpl', 3),
      iekey: ctx.values.iekey === true,
    };
    await withIoQueue(ctx, (io) => io.reservationRegister(nsid, opts));
    if (!ctx.json) ctx.out('NVME Reservation  success\n'); // nvme-cli's words, its two spaces included
  },
};

const resvAcquire: Command = {
  name: 'resv-acquire',
  summary: 'acquire or preempt a reservation',
  options: {
    ...nsidOpt,
    crkey: { type: 'string', short: 'c' },
    prkey: { type: 'string', short: 'p' },
    rtype: { type: 'string', short: 't' },
    racqa: { type: 'string', short: 'a' },
    iekey: { type: 'boolean', short: 'i', default: false },
  },
  optionHelp: {
    'namespace-id': 'namespace ID (required)',
    crkey: 'current reservation key',
    prkey: 'the key to preempt',
    rtype:
      'reservation type: 1 write exclusive, 2 exclusive access, 3/4 … registrants only, 5/6 … all registrants',
    racqa: 'reservation acquire action: 0 acquire, 1 preempt, 2 preempt and abort',
    iekey: 'ignore the existing key',
  },
  nsidOnN: true,
  ownsTandA: true,
  help: 'nvmf resv-acquire --transport tcp --traddr ADDR -s PORT --nqn SUBNQN -n NSID -c CRKEY -t RTYPE [-a RACQA] [-p PRKEY] [-i]',
  async run(ctx) {
    const nsid = resvNsid(ctx);
    const opts = {
      crkey: keyOption(ctx, 'crkey'),
      prkey: keyOption(ctx, 'prkey'),
      rtype: byteOption(ctx, 'rtype', 255),
      action: byteOption(ctx, 'racqa', 7),
      iekey: ctx.values.iekey === true,
    };
    await withIoQueue(ctx, (io) => io.reservationAcquire(nsid, opts));
    if (!ctx.json) ctx.out('NVME Reservation Acquire success\n');
  },
};

const resvRelease: Command = {
  name: 'resv-release',
  summary: 'release a reservation or clear every registration',
  options: {
    ...nsidOpt,
    crkey: { type: 'string', short: 'c' },
    rtype: { type: 'string', short: 't' },
    rrela: { type: 'string', short: 'a' },
    iekey: { type: 'boolean', short: 'i', default: false },
  },
  optionHelp: {
    'namespace-id': 'namespace ID (required)',
    crkey: 'current reservation key',
    rtype: 'the type of the reservation released',
    rrela: 'reservation release action: 0 release, 1 clear',
    iekey: 'ignore the existing key',
  },
  nsidOnN: true,
  ownsTandA: true,
  help: 'nvmf resv-release --transport tcp --traddr ADDR -s PORT --nqn SUBNQN -n NSID -c CRKEY [-t RTYPE] [-a RRELA] [-i]',
  async run(ctx) {
    const nsid = resvNsid(ctx);
    const opts = {
      crkey: keyOption(ctx, 'crkey'),
      rtype: byteOption(ctx, 'rtype', 255),
      action: byteOption(ctx, 'rrela', 7),
      iekey: ctx.values.iekey === true,
    };
    await withIoQueue(ctx, (io) => io.reservationRelease(nsid, opts));
    if (!ctx.json) ctx.out('NVME Reservation Release success\n');
  },
};

/** nvme-cli's normal output of a Reservation Report (its hostid printing included: each byte in
 * %x, no padding, as nvme-cli 2.x prints it). */
export function formatResvReport(r: ResvStatusData, extended: boolean): string {
  let t = '\nNVME Reservation status:\n\n';
  t += `gen       : ${r.generation}\nrtype     : ${r.rtype}\nregctl    : ${r.regctl}\nptpls     : ${r.ptpls ? 1 : 0}\n`;
  r.registrants.forEach((g, i) => {
    if (extended) {
      const id = Buffer.from(g.hostId, 'hex');
      t += `regctlext[${i}] :\n  cntlid     : ${g.cntlid.toString(16)}\n  rcsts      : ${g.holder ? 1 : 0}\n`;
      t += `  rkey       : ${g.rkey.toString(16)}\n  hostid     : ${[...id].map((b) => b.toString(16)).join('')}\n`;
    } else {
      t += `regctl[${i}] :\n  cntlid  : ${g.cntlid.toString(16)}\n  rcsts   : ${g.holder ? 1 : 0}\n`;
      t += `  hostid  : ${BigInt(`0x${g.hostId || '0'}`).toString(16)}\n  rkey    : ${g.rkey.toString(16)}\n`;
    }
  });
  return `${t}\n`;
}

const resvReport: Command = {
  name: 'resv-report',
  summary: 'show the reservation status and the registrants of a namespace',
  options: {
    ...nsidOpt,
    numd: { type: 'string', short: 'd' },
    eds: { type: 'boolean', short: 'e', default: false },
    'raw-binary': { type: 'boolean', short: 'b', default: false },
  },
  optionHelp: {
    'namespace-id': 'namespace ID (required)',
    numd: 'number of dwords to transfer, 0-based (default and maximum 1023: 4 KiB)',
    eds: 'extended data structure (128-bit host IDs; chosen anyway when the controller has them)',
    'raw-binary': 'the data as received, on stdout',
  },
  nsidOnN: true,
  help: 'nvmf resv-report -t tcp -a ADDR -s PORT --nqn SUBNQN -n NSID [-d NUMD] [-e] [-b] [-o json]',
  async run(ctx) {
    const nsid = resvNsid(ctx);
    // as nvme-cli: NUMD 0 or past 4 KiB means 4 KiB, and at least the 16-byte header
    let numd =
      ctx.values.numd === undefined ? 0 : parseInteger('numd', String(ctx.values.numd), 0, 0xffffffff);
    if (numd === 0 || numd >= 1024) numd = 1023;
    numd = Math.max(numd, ResvStatus.SIZE / 4 - 1);
    const r = await withIoQueue(ctx, async (io, c) => {
      // a controller with 128-bit host IDs (CTRATT bit 0) reports the extended form only
      const extended = ctx.values.eds === true || ((c.cdata?.readUInt32LE(IdCtrl.CTRATT) ?? 0) & 1) === 1;
      return { extended, ...(await io.reservationReport(nsid, { extended, bytes: (numd + 1) * 4 })) };
    });
    if (ctx.values['raw-binary'] === true) {
      process.stdout.write(r.raw);
      return;
    }
    if (ctx.json) {
      ctx.out(
        toJson({
          gen: r.generation,
          rtype: r.rtype,
          regctl: r.regctl,
          ptpls: r.ptpls ? 1 : 0,
          [r.extended ? 'regctlext' : 'regctl_ds']: r.registrants.map((g) => ({
            cntlid: g.cntlid,
            rcsts: g.holder ? 1 : 0,
            rkey: rawJson(g.rkey.toString()), // exact 64-bit, as nvme-cli prints it
            hostid: g.hostId,
          })),
        }),
      );
      return;
    }
    ctx.out(formatResvReport(r, r.extended));
  },
};

export const resvCommands: Command[] = [resvRegister, resvAcquire, resvRelease, resvReport];
