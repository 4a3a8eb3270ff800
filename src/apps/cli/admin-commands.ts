// The admin commands of `nvmf`: discovery, connect, identify, namespaces, log
// pages, features, SMART and the error log, printed as nvme-cli prints them.

import { UsageError } from '../../util/errors.ts';
import {
  Cns,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  IdCtrl,
  lbaFormatIndex,
} from '../../wire/identify.ts';
import {
  decodeErrorLogEntry,
  decodeHealthLog,
  ERROR_LOG_ENTRY_SIZE,
  HEALTH_LOG_SIZE,
  LogPage,
} from '../../wire/log.ts';
import { FeatureId } from '../../wire/nvme.ts';
import { parseInteger } from './args.ts';
import { activeNamespaces, type Command, NSID_ALL, nsidOption, withController } from './command.ts';
import { describeDiscoveryEntry, versionString } from './decode.ts';
import { formatFields, hexDump, toJson } from './format.ts';

const ID_CTRL_HEX = new Set([
  'vid',
  'ssvid',
  'ieee',
  'cmic',
  'cntlid',
  'ver',
  'oaes',
  'ctratt',
  'oacs',
  'frmw',
  'lpa',
  'sqes',
  'cqes',
  'oncs',
  'fuses',
  'fna',
  'vwc',
  'sgls',
  'ocfs',
]);
const ID_NS_HEX = new Set(['nsfeat', 'flbas', 'mc', 'dpc', 'dps', 'nmic', 'rescap', 'fpi', 'dlfeat']);

const FEATURE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(FeatureId).map(([name, id]) => [
    id,
    name
      .toLowerCase()
      .split('_')
      .map((w) => (w === 'of' ? w : w[0].toUpperCase() + w.slice(1)))
      .join(' '),
  ]),
);

const discover: Command = {
  name: 'discover',
  summary: 'read the discovery log of a discovery controller',
  options: {},
  discovery: true,
  help: 'nvmf discover -t tcp -a ADDR [-s PORT] [-q HOSTNQN] [-I HOSTID] [-o json]',
  async run(ctx) {
    const log = await withController(ctx.trid, (c) => c.getDiscoveryLog());
    const records = log.entries.map(describeDiscoveryEntry);
    if (ctx.json) {
      ctx.out(toJson({ genctr: Number(log.genctr), records }));
      return;
    }
    let text = `\nDiscovery Log Number of Records ${records.length}, Generation counter ${log.genctr}\n`;
    records.forEach((r, i) => {
      text += `=====Discovery Log Entry ${i}======\n`;
      for (const [k, v] of Object.entries(r)) text += `${`${k}:`.padEnd(9)}${v}\n`;
    });
    ctx.out(text);
  },
};

const connect: Command = {
  name: 'connect',
  summary: 'connect, print the controller summary, disconnect',
  options: {},
  help: 'nvmf connect -t tcp -a ADDR -s PORT -n SUBNQN [-q HOSTNQN] [-I HOSTID] [-g] [-G] [-S SECRET [-C CTRL_SECRET]] [-o json]',
  async run(ctx) {
    const summary = await withController(ctx.trid, async (c) => {
      const id = decodeIdentifyController(c.cdata!);
      const namespaces = [...c.namespaces.values()].map((ns) => ({
        nsid: ns.nsid,
        nsze: ns.nsze,
        block_size: ns.blockSize,
        size_bytes: ns.nsze * ns.blockSize,
      }));
      return {
        cntlid: c.cntlid,
        subnqn: id.subnqn,
        mn: id.mn,
        sn: id.sn,
        fr: id.fr,
        ver: versionString(id.ver as number),
        mdts: id.mdts,
        traddr: ctx.trid.traddr,
        trsvcid: ctx.trid.trsvcid,
        // DH-HMAC-CHAP, when the controller asked for it
        ...(c.auth !== null ? { authentication: c.auth } : {}),
        namespaces,
      };
    });
    if (ctx.json) {
      ctx.out(toJson(summary));
      return;
    }
    let text = `connected to ${summary.subnqn} at ${summary.traddr}:${summary.trsvcid}\n`;
    const { authentication, ...fields } = summary;
    text += formatFields({ ...fields, namespaces: summary.namespaces.length }, new Set(['cntlid']));
    if (authentication !== undefined)
      text += `authenticated: ${authentication.digest}, ${authentication.dhgroup}${authentication.bidirectional ? ', controller authenticated too' : ''}\n`;
    for (const ns of summary.namespaces)
      text += `  nsid ${ns.nsid}: ${ns.nsze} blocks of ${ns.block_size} bytes (${(ns.size_bytes / 1048576).toFixed(2)} MiB)\n`;
    text += 'disconnected\n';
    ctx.out(text);
  },
};

const identify: Command = {
  name: 'identify',
  summary: 'Identify Controller (alias: id-ctrl)',
  options: {},
  help: 'nvmf identify -t tcp -a ADDR -s PORT -n SUBNQN [-o json]',
  async run(ctx) {
    const id = await withController(ctx.trid, async (c) => decodeIdentifyController(c.cdata!));
    if (ctx.json) ctx.out(toJson(id));
    else ctx.out(`NVME Identify Controller:\n${formatFields(id, ID_CTRL_HEX)}`);
  },
};

const idNs: Command = {
  name: 'id-ns',
  summary: 'Identify Namespace',
  options: { 'namespace-id': { type: 'string', short: 'n' } },
  optionHelp: { 'namespace-id': 'namespace ID (required)' },
  nsidOnN: true,
  help: 'nvmf id-ns -t tcp -a ADDR -s PORT --nqn SUBNQN -n NSID [-o json]',
  async run(ctx) {
    const nsid = nsidOption(ctx.values, 0);
    if (nsid === 0) throw new UsageError('a namespace ID (-n) of 1 or more is required');
    const id = await withController(ctx.trid, async (c) =>
      decodeIdentifyNamespace(await c.identify(Cns.NAMESPACE, nsid)),
    );
    if (ctx.json) {
      ctx.out(toJson(id));
      return;
    }
    let text = `NVME Identify Namespace ${nsid}:\n${formatFields(id, ID_NS_HEX)}`;
    const inUse = lbaFormatIndex(id.flbas, id.nlbaf);
    id.lbafs.forEach((f, i) => {
      text += `lbaf ${String(i).padStart(2)} : ms:${f.ms}   lbads:${f.ds}  rp:${f.rp}${i === inUse ? ' (in use)' : ''}\n`;
    });
    ctx.out(text);
  },
};

const listNs: Command = {
  name: 'list-ns',
  summary: 'list the active namespace IDs',
  options: {},
  help: 'nvmf list-ns -t tcp -a ADDR -s PORT -n SUBNQN [-o json]',
  async run(ctx) {
    const nsids = await withController(ctx.trid, activeNamespaces);
    if (ctx.json) ctx.out(toJson({ nsid_list: nsids.map((nsid) => ({ nsid })) }));
    else ctx.out(nsids.map((n, i) => `[${String(i).padStart(4)}]:0x${n.toString(16)}\n`).join(''));
  },
};

const getLog: Command = {
  name: 'get-log',
  summary: 'Get Log Page, printed as a hex dump (or raw with -b)',
  options: {
    'log-id': { type: 'string', short: 'i' },
    'log-len': { type: 'string', short: 'l' },
    'namespace-id': { type: 'string', short: 'n' },
    lpo: { type: 'string', short: 'L', default: '0' },
    'raw-binary': { type: 'boolean', short: 'b', default: false },
  },
  optionHelp: {
    'log-id': 'log page identifier (required)',
    'log-len': 'bytes to read, a multiple of 4 (required)',
    'namespace-id': 'namespace ID (default 0xffffffff)',
    lpo: 'byte offset in the log page',
    'raw-binary': 'write the page as raw bytes to stdout',
  },
  nsidOnN: true,
  help: 'nvmf get-log -t tcp -a ADDR -s PORT --nqn SUBNQN -i LOG_ID -l LOG_LEN [-n NSID] [-L OFFSET] [-b] [-o json]',
  async run(ctx) {
    const lid = parseInteger('log-id', ctx.values['log-id'] as string | undefined, 0, 255);
    const len = parseInteger('log-len', ctx.values['log-len'] as string | undefined, 4, 1 << 24);
    if (len % 4 !== 0) throw new UsageError('--log-len must be a multiple of 4 (the command counts dwords)');
    const offset = parseInteger('lpo', ctx.values.lpo as string, 0, Number.MAX_SAFE_INTEGER);
    const nsid = nsidOption(ctx.values, NSID_ALL);
    const page = await withController(ctx.trid, (c) => c.getLogPage(lid, Buffer.alloc(len), offset, nsid));
    if (ctx.values['raw-binary']) process.stdout.write(page);
    else if (ctx.json)
      ctx.out(toJson({ log_id: lid, namespace_id: nsid, offset, length: len, data: page.toString('hex') }));
    else
      ctx.out(
        `Device:${ctx.trid.subnqn} log_id:${lid} namespace_id:0x${nsid.toString(16)}\n${hexDump(page)}`,
      );
  },
};

const getFeature: Command = {
  name: 'get-feature',
  summary: 'Get Features (current value unless --sel says otherwise)',
  options: {
    'feature-id': { type: 'string', short: 'f' },
    'namespace-id': { type: 'string', short: 'n' },
    sel: { type: 'string', default: '0' },
    cdw11: { type: 'string', short: 'c', default: '0' },
  },
  optionHelp: {
    'feature-id': 'feature identifier (required)',
    'namespace-id': 'namespace ID (default 0)',
    sel: '0 current, 1 default, 2 saved, 3 supported capabilities',
    cdw11: 'command dword 11',
  },
  nsidOnN: true,
  help: 'nvmf get-feature -t tcp -a ADDR -s PORT --nqn SUBNQN -f FID [-n NSID] [--sel 0-3] [-c CDW11] [-o json]',
  async run(ctx) {
    const fid = parseInteger('feature-id', ctx.values['feature-id'] as string | undefined, 1, 255);
    const sel = parseInteger('sel', ctx.values.sel as string, 0, 3);
    const cdw11 = parseInteger('cdw11', ctx.values.cdw11 as string, 0, 0xffffffff);
    const nsid = nsidOption(ctx.values, 0);
    // SEL is CDW10 bits 10:8, next to the FID
    const c = await withController(ctx.trid, (ct) => ct.getFeatures(fid | (sel << 8), cdw11, nsid));
    const value = c.dw0 >>> 0;
    const name = FEATURE_NAMES[fid] ?? 'Unknown';
    const selName = ['Current', 'Default', 'Saved', 'Supported capabilities'][sel];
    if (ctx.json) ctx.out(toJson({ feature_id: fid, name, sel, value }));
    else
      ctx.out(
        `get-feature:0x${fid.toString(16).padStart(2, '0')} (${name}), ${selName} value:0x${value.toString(16).padStart(8, '0')}\n`,
      );
  },
};

const smartLog: Command = {
  name: 'smart-log',
  summary: 'SMART / health information log',
  options: { 'namespace-id': { type: 'string', short: 'n' } },
  optionHelp: { 'namespace-id': 'namespace ID (default 0xffffffff)' },
  nsidOnN: true,
  help: 'nvmf smart-log -t tcp -a ADDR -s PORT --nqn SUBNQN [-n NSID] [-o json]',
  async run(ctx) {
    const nsid = nsidOption(ctx.values, NSID_ALL);
    const page = await withController(ctx.trid, (c) =>
      c.getLogPage(LogPage.HEALTH, Buffer.alloc(HEALTH_LOG_SIZE), 0, nsid),
    );
    const smart = decodeHealthLog(page);
    if (ctx.json) {
      ctx.out(toJson(smart));
      return;
    }
    const kelvin = smart.temperature as number;
    const shown = {
      ...smart,
      temperature: kelvin === 0 ? '0 K' : `${kelvin - 273} °C (${kelvin} K)`,
      available_spare: `${smart.available_spare}%`,
      available_spare_threshold: `${smart.available_spare_threshold}%`,
      percentage_used: `${smart.percentage_used}%`,
    };
    ctx.out(
      `Smart Log for NVME device:${ctx.trid.subnqn} namespace-id:${nsid.toString(16)}\n${formatFields(shown, new Set(['critical_warning']), 40)}`,
    );
  },
};

const errorLog: Command = {
  name: 'error-log',
  summary: 'error information log entries',
  options: { 'log-entries': { type: 'string', short: 'e', default: '64' } },
  optionHelp: { 'log-entries': 'entries to read (default 64, at most ELPE + 1)' },
  help: 'nvmf error-log -t tcp -a ADDR -s PORT -n SUBNQN [-e ENTRIES] [-o json]',
  async run(ctx) {
    const wanted = parseInteger('log-entries', ctx.values['log-entries'] as string, 1, 256);
    const errors = await withController(ctx.trid, async (c) => {
      // ELPE is 0-based: the controller keeps ELPE + 1 entries
      const count = Math.min(wanted, c.cdata![IdCtrl.ELPE] + 1);
      const page = await c.getLogPage(LogPage.ERROR, Buffer.alloc(count * ERROR_LOG_ENTRY_SIZE), 0, NSID_ALL);
      return Array.from({ length: count }, (_, i) => decodeErrorLogEntry(page, i * ERROR_LOG_ENTRY_SIZE));
    });
    if (ctx.json) {
      ctx.out(toJson({ errors }));
      return;
    }
    let text = `Error Log Entries for device:${ctx.trid.subnqn} entries:${errors.length}\n.................\n`;
    errors.forEach((e, i) => {
      text += ` Entry[${String(i).padStart(2)}]\n.................\n${formatFields(e, new Set(['status_field', 'cmdid', 'sqid']), 20)}.................\n`;
    });
    ctx.out(text);
  },
};

export const adminCommands: Command[] = [
  discover,
  connect,
  identify,
  idNs,
  listNs,
  getLog,
  getFeature,
  smartLog,
  errorLog,
];
