// `nvmf`: an nvme-cli-like tool for NVMe over TCP, built on the host library.
// The host is this process, not the kernel, so there is no /dev/nvmeX: every
// command connects to the controller, does its work and disconnects.
//
//   nvmf discover -t tcp -a 127.0.0.1 -s 4420
//   nvmf identify -t tcp -a 127.0.0.1 -s 4420 -n nqn.2016-06.io.spdk:cnode1 -o json
//
// Exit status: 0 success, 1 NVMe or transport error (one line on stderr),
// 2 bad arguments (with the usage).

import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { DISCOVERY_NQN, NvmeController, type TransportId } from '../nvme/index.ts';
import {
  Cns,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeNsidList,
  IdCtrl,
  lbaFormatIndex,
} from '../wire/identify.ts';
import {
  decodeErrorLogEntry,
  decodeHealthLog,
  ERROR_LOG_ENTRY_SIZE,
  HEALTH_LOG_SIZE,
  LogPage,
} from '../wire/log.ts';
import { Dsm, FeatureId } from '../wire/nvme.ts';
import { exitWhenFlushed, isParseArgsError, parseInteger, UsageError } from './cli/args.ts';
import { describeDiscoveryEntry, versionString } from './cli/decode.ts';
import { formatFields, hexDump, toJson } from './cli/format.ts';

type Values = Record<string, string | boolean | undefined>;

interface Command {
  name: string;
  summary: string;
  /** the command's own options (the connect options are added to every command) */
  options: ParseArgsOptionsConfig;
  /** -n is the namespace ID here (nvme-cli's habit); the subsystem NQN is then --nqn */
  nsidOnN?: boolean;
  /** -s is the starting block here; the service ID is then --trsvcid */
  slbaOnS?: boolean;
  /** discovery commands connect to the discovery NQN and take no --nqn */
  discovery?: boolean;
  help: string;
  /** one line per own option, for --help */
  optionHelp?: Record<string, string>;
  run(ctx: Context): Promise<void>;
}

interface Context {
  values: Values;
  json: boolean;
  trid: TransportId;
  out(text: string): void;
}

const NSID_ALL = 0xffffffff;

function connectOptions(cmd: Command): ParseArgsOptionsConfig {
  const o: ParseArgsOptionsConfig = {
    transport: { type: 'string', short: 't', default: 'tcp' },
    traddr: { type: 'string', short: 'a' },
    trsvcid: { type: 'string', default: '4420' },
    hostnqn: { type: 'string', short: 'q' },
    hostid: { type: 'string', short: 'I' },
    'hdr-digest': { type: 'boolean', short: 'g', default: false },
    'data-digest': { type: 'boolean', short: 'G', default: false },
    'output-format': { type: 'string', short: 'o', default: 'normal' },
    help: { type: 'boolean', short: 'h', default: false },
  };
  if (!cmd.slbaOnS) o.trsvcid = { type: 'string', short: 's', default: '4420' };
  if (!cmd.discovery) o.nqn = cmd.nsidOnN ? { type: 'string' } : { type: 'string', short: 'n' };
  return o;
}

const CONNECT_HELP = (cmd: Command) => {
  const s = cmd.slbaOnS ? '    --trsvcid' : '-s, --trsvcid';
  const n = cmd.nsidOnN ? '    --nqn    ' : '-n, --nqn    ';
  return [
    'connect options:',
    '  -t, --transport TYPE     tcp (the only transport)',
    '  -a, --traddr ADDR        target address (required)',
    `  ${s} PORT       target port (default 4420)`,
    cmd.discovery ? null : `  ${n} NQN        subsystem NQN (required)`,
    '  -q, --hostnqn NQN        host NQN',
    '  -I, --hostid UUID        host identifier',
    '  -g, --hdr-digest         header digest (CRC32C)',
    '  -G, --data-digest        data digest (CRC32C)',
    '  -o, --output-format FMT  normal or json',
  ]
    .filter((l) => l !== null)
    .join('\n');
};

function transportIdFrom(cmd: Command, v: Values): TransportId {
  if (v.transport !== 'tcp') throw new UsageError(`--transport ${v.transport}: only tcp is supported`);
  if (typeof v.traddr !== 'string' || v.traddr === '') throw new UsageError('--traddr (-a) is required');
  const port = parseInteger('trsvcid', v.trsvcid as string, 1, 65535);
  let subnqn = DISCOVERY_NQN;
  if (!cmd.discovery) {
    if (typeof v.nqn !== 'string' || v.nqn === '') {
      const nsArg = v['namespace-id'];
      if (cmd.nsidOnN && typeof nsArg === 'string' && nsArg.startsWith('nqn.'))
        throw new UsageError('-n is the namespace ID for this command; give the subsystem NQN with --nqn');
      throw new UsageError(`--nqn${cmd.nsidOnN ? '' : ' (-n)'} is required`);
    }
    subnqn = v.nqn;
  }
  const trid: TransportId = { traddr: v.traddr, trsvcid: String(port), subnqn };
  if (typeof v.hostnqn === 'string') trid.hostnqn = v.hostnqn;
  if (typeof v.hostid === 'string') {
    if (!/^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$/i.test(v.hostid))
      throw new UsageError(`--hostid must be a UUID, not "${v.hostid}"`);
    trid.hostid = v.hostid;
  }
  if (v['hdr-digest']) trid.hdgst = true;
  if (v['data-digest']) trid.ddgst = true;
  return trid;
}

/** Connect, run `fn`, always disconnect. */
async function withController<T>(trid: TransportId, fn: (c: NvmeController) => Promise<T>): Promise<T> {
  // one command and gone: no asynchronous events to wait for
  const ctrlr = await NvmeController.connect(trid, { connectTimeoutMs: 10000, asyncEvents: false });
  try {
    return await fn(ctrlr);
  } finally {
    await ctrlr.disconnect();
  }
}

function nsidOption(v: Values, fallback: number): number {
  if (v['namespace-id'] === undefined) return fallback;
  try {
    // 0 is valid where the command allows it (Get Features, some log pages)
    return parseInteger('namespace-id', v['namespace-id'] as string, 0, NSID_ALL);
  } catch (err) {
    if (typeof v['namespace-id'] === 'string' && v['namespace-id'].startsWith('nqn.'))
      throw new UsageError('-n is the namespace ID for this command; give the subsystem NQN with --nqn');
    throw err;
  }
}

async function activeNamespaces(ctrlr: NvmeController): Promise<number[]> {
  return decodeNsidList(await ctrlr.identify(Cns.ACTIVE_NS_LIST, 0));
}

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

// ---- commands

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
  help: 'nvmf connect -t tcp -a ADDR -s PORT -n SUBNQN [-q HOSTNQN] [-I HOSTID] [-g] [-G] [-o json]',
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
        namespaces,
      };
    });
    if (ctx.json) {
      ctx.out(toJson(summary));
      return;
    }
    let text = `connected to ${summary.subnqn} at ${summary.traddr}:${summary.trsvcid}\n`;
    text += formatFields({ ...summary, namespaces: summary.namespaces.length }, new Set(['cntlid']));
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

const ioOptions: ParseArgsOptionsConfig = {
  'namespace-id': { type: 'string', short: 'n', default: '1' },
  'start-block': { type: 'string', short: 's', default: '0' },
  'block-count': { type: 'string', short: 'c', default: '0' },
  'data-size': { type: 'string', short: 'z' },
  data: { type: 'string', short: 'd' },
};

const ioHelp: Record<string, string> = {
  'namespace-id': 'namespace ID (default 1)',
  'start-block': 'first LBA (default 0)',
  'block-count': 'number of blocks, 0-based like nvme-cli (default 0: one block)',
  'data-size': 'buffer size in bytes; must hold the blocks',
  data: 'file to read into / write from (default stdout / stdin)',
  fua: 'force unit access',
};

interface IoPlan {
  nsid: number;
  slba: number;
  blocks: number;
  blockSize: number;
  /** largest transfer per command, in blocks (MDTS) */
  maxBlocks: number;
}

/** Decode the I/O options against the namespace and controller (checks -z like nvme-cli). */
async function planIo(ctx: Context, c: NvmeController): Promise<IoPlan> {
  const nsid = nsidOption(ctx.values, 1);
  const slba = parseInteger('start-block', ctx.values['start-block'] as string, 0, Number.MAX_SAFE_INTEGER);
  const blocks = parseInteger('block-count', ctx.values['block-count'] as string, 0, 0xffff) + 1;
  const ns = c.namespaces.get(nsid);
  if (ns === undefined) throw new Error(`namespace ${nsid} is not an active namespace of ${ctx.trid.subnqn}`);
  const blockSize = ns.blockSize;
  const size = blocks * blockSize;
  if (ctx.values['data-size'] !== undefined) {
    const z = parseInteger('data-size', ctx.values['data-size'] as string, 1, 1 << 30);
    if (z < size)
      throw new UsageError(
        `--data-size ${z} is smaller than ${blocks} block(s) of ${blockSize} bytes (${size})`,
      );
  }
  // one command per MDTS-sized piece (at most 1 MiB, to keep each buffer modest)
  const maxBytes = Math.min(c.maxTransferSize, 1 << 20);
  return { nsid, slba, blocks, blockSize, maxBlocks: Math.max(1, Math.floor(maxBytes / blockSize)) };
}

const read: Command = {
  name: 'read',
  summary: 'read blocks to a file (-d) or stdout',
  options: ioOptions,
  optionHelp: ioHelp,
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf read -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA -c BLOCKS-1 [-z BYTES] [-d FILE]',
  async run(ctx) {
    const data = await withController(ctx.trid, async (c) => {
      const p = await planIo(ctx, c);
      const io = await c.createIoQpair(4);
      const buf = Buffer.alloc(p.blocks * p.blockSize);
      await inPieces(p, (lba, n, start, end) => io.readAsync(p.nsid, lba, n, buf.subarray(start, end)));
      return buf;
    });
    if (typeof ctx.values.data === 'string') writeFileSync(ctx.values.data, data);
    else process.stdout.write(data);
    process.stderr.write('read: Success\n');
  },
};

const write: Command = {
  name: 'write',
  summary: 'write blocks from a file (-d) or stdin',
  options: { ...ioOptions, fua: { type: 'boolean', short: 'f', default: false } },
  optionHelp: ioHelp,
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf write -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA -c BLOCKS-1 [-z BYTES] [-d FILE] [-f (FUA)]',
  async run(ctx) {
    const source = typeof ctx.values.data === 'string' ? ctx.values.data : 0; // 0: stdin
    const input = readFileSync(source);
    await withController(ctx.trid, async (c) => {
      const p = await planIo(ctx, c);
      // the blocks hold the input, zero-padded (or cut) to whole blocks
      const buf = Buffer.alloc(p.blocks * p.blockSize);
      input.copy(buf, 0, 0, Math.min(input.length, buf.length));
      const io = await c.createIoQpair(4);
      const fua = ctx.values.fua === true;
      await inPieces(p, (lba, n, start, end) => io.writeAsync(p.nsid, lba, n, buf.subarray(start, end), fua));
    });
    process.stderr.write('write: Success\n');
  },
};

/** Run `fn` over the plan in MDTS-sized pieces: (lba, blocks, byte range). */
async function inPieces(
  p: IoPlan,
  fn: (lba: number, blocks: number, start: number, end: number) => Promise<void>,
): Promise<void> {
  for (let done = 0; done < p.blocks; ) {
    const n = Math.min(p.maxBlocks, p.blocks - done);
    await fn(p.slba + done, n, done * p.blockSize, (done + n) * p.blockSize);
    done += n;
  }
}

const compare: Command = {
  name: 'compare',
  summary: 'compare blocks with a file (-d) or stdin',
  options: ioOptions,
  optionHelp: ioHelp,
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf compare -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA -c BLOCKS-1 [-z BYTES] [-d FILE]',
  async run(ctx) {
    const input = readFileSync(typeof ctx.values.data === 'string' ? ctx.values.data : 0);
    await withController(ctx.trid, async (c) => {
      const p = await planIo(ctx, c);
      const buf = Buffer.alloc(p.blocks * p.blockSize);
      input.copy(buf, 0, 0, Math.min(input.length, buf.length));
      const io = await c.createIoQpair(4);
      await inPieces(p, (lba, n, start, end) => io.compareAsync(p.nsid, lba, n, buf.subarray(start, end)));
    });
    process.stderr.write('compare: Success\n');
  },
};

const writeZeroes: Command = {
  name: 'write-zeroes',
  summary: 'Write Zeroes over a block range',
  options: {
    'namespace-id': { type: 'string', short: 'n', default: '1' },
    'start-block': { type: 'string', short: 's', default: '0' },
    'block-count': { type: 'string', short: 'c', default: '0' },
  },
  optionHelp: ioHelp,
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf write-zeroes -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA -c BLOCKS-1',
  async run(ctx) {
    await withController(ctx.trid, async (c) => {
      const p = await planIo(ctx, c);
      const io = await c.createIoQpair(4);
      // no data moves: one command covers up to 65536 blocks
      await io.writeZeroesAsync(p.nsid, p.slba, p.blocks);
    });
    process.stderr.write('write-zeroes: Success\n');
  },
};

const flush: Command = {
  name: 'flush',
  summary: 'Flush a namespace (volatile write cache to media)',
  options: { 'namespace-id': { type: 'string', short: 'n', default: '1' } },
  optionHelp: { 'namespace-id': 'namespace ID (default 1)' },
  nsidOnN: true,
  help: 'nvmf flush -t tcp -a ADDR -s PORT --nqn SUBNQN -n NSID',
  async run(ctx) {
    const nsid = nsidOption(ctx.values, 1);
    await withController(ctx.trid, async (c) => {
      const io = await c.createIoQpair(4);
      await io.flushAsync(nsid);
    });
    process.stderr.write('flush: Success\n');
  },
};

/** "0,100,200" → numbers (comma-separated, like nvme-cli's list options). */
function numberList(name: string, text: string | undefined, max: number): number[] {
  if (text === undefined) throw new UsageError(`--${name} is required`);
  return text.split(',').map((part) => parseInteger(name, part, 0, max));
}

const dsm: Command = {
  name: 'dsm',
  summary: 'Dataset Management (deallocate with --ad) over block ranges',
  options: {
    'namespace-id': { type: 'string', short: 'n', default: '1' },
    slbs: { type: 'string', short: 's' },
    blocks: { type: 'string', short: 'b' },
    ad: { type: 'boolean', short: 'd', default: false },
    idw: { type: 'boolean', short: 'w', default: false },
    idr: { type: 'boolean', short: 'r', default: false },
  },
  optionHelp: {
    'namespace-id': 'namespace ID (default 1)',
    slbs: 'first LBA of each range, comma-separated',
    blocks: 'blocks in each range, comma-separated (1-based)',
    ad: 'attribute: deallocate',
    idw: 'attribute: integral dataset for write',
    idr: 'attribute: integral dataset for read',
  },
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf dsm -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA,… -b BLOCKS,… [--ad] [--idw] [--idr]',
  async run(ctx) {
    const nsid = nsidOption(ctx.values, 1);
    const slbs = numberList('slbs', ctx.values.slbs as string | undefined, Number.MAX_SAFE_INTEGER);
    const blocks = numberList('blocks', ctx.values.blocks as string | undefined, 0xffffffff);
    if (slbs.length !== blocks.length)
      throw new UsageError(`--slbs has ${slbs.length} ranges but --blocks has ${blocks.length}`);
    if (slbs.length > Dsm.MAX_RANGES) throw new UsageError(`at most ${Dsm.MAX_RANGES} ranges`);
    const attributes =
      (ctx.values.idr ? Dsm.ATTR_INTEGRAL_READ : 0) |
      (ctx.values.idw ? Dsm.ATTR_INTEGRAL_WRITE : 0) |
      (ctx.values.ad ? Dsm.ATTR_DEALLOCATE : 0);
    const ranges = slbs.map((lba, i): [number, number] => [lba, blocks[i]]);
    await withController(ctx.trid, async (c) => {
      const io = await c.createIoQpair(4);
      await io.dsmAsync(nsid, ranges, attributes);
    });
    process.stderr.write('dsm: Success\n');
  },
};

const COMMANDS: Command[] = [
  discover,
  connect,
  identify,
  idNs,
  listNs,
  getLog,
  getFeature,
  smartLog,
  errorLog,
  read,
  write,
  compare,
  writeZeroes,
  flush,
  dsm,
];
const ALIASES: Record<string, string> = { 'id-ctrl': 'identify' };

function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 1;
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)} ${c.summary}`);
  return [
    'usage: nvmf <command> [options]',
    '',
    'NVMe over TCP from the command line (nvme-cli habits). The host is this',
    'process: each command connects, does its work and disconnects.',
    '',
    'commands:',
    ...lines,
    '',
    "'nvmf <command> --help' shows a command's options.",
    'Exit status: 0 success, 1 NVMe or transport error, 2 bad arguments.',
    '',
  ].join('\n');
}

function commandUsage(cmd: Command): string {
  const own = Object.entries(cmd.options)
    .map(([name, o]) => {
      const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ' N' : ''}`;
      return `  ${flag.padEnd(23)}${cmd.optionHelp?.[name] ?? ''}`;
    })
    .join('\n');
  return `usage: ${cmd.help}\n\n${cmd.summary}\n\n${own ? `options:\n${own}\n\n` : ''}${CONNECT_HELP(cmd)}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(mainUsage());
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS.find((c) => c.name === (ALIASES[name] ?? name));
  if (cmd === undefined) {
    process.stderr.write(`nvmf: unknown command "${name}"\n\n${mainUsage()}`);
    return 2;
  }
  let values: Values;
  try {
    values = parseArgs({
      args: rest,
      options: { ...connectOptions(cmd), ...cmd.options },
      strict: true,
      allowPositionals: false,
    }).values as Values;
  } catch (err) {
    if (!isParseArgsError(err)) throw err;
    process.stderr.write(`nvmf ${cmd.name}: ${err.message}\n\n${commandUsage(cmd)}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(commandUsage(cmd));
    return 0;
  }
  try {
    const format = values['output-format'];
    if (format !== 'normal' && format !== 'json')
      throw new UsageError(`--output-format must be normal or json, not "${format}"`);
    const trid = transportIdFrom(cmd, values);
    await cmd.run({ values, json: format === 'json', trid, out: (t) => process.stdout.write(t) });
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`nvmf ${cmd.name}: ${err.message}\n\n${commandUsage(cmd)}`);
      return 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`nvmf ${cmd.name}: ${message}\n`);
    return 1;
  }
}

function isEntryPoint(): boolean {
  if (import.meta.main) return true;
  // imported by the bin/nvmf.mjs shim (or a symlink named nvmf)
  const script = process.argv[1] ? basename(process.argv[1]) : '';
  return script === 'nvmf' || script === 'nvmf.mjs';
}

if (isEntryPoint()) {
  // `nvmf … | head`: a closed pipe ends the output quietly
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  exitWhenFlushed(await main(process.argv.slice(2)));
}
