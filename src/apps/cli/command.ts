// What every `nvmf` command shares: its description (Command), what it runs
// with (Context), the connect options and their help, the transport ID they
// make, and one connection per command (withController).

import { readFileSync } from 'node:fs';
import type { ParseArgsOptionsConfig } from 'node:util';
import {
  type DhchapHostOptions,
  DISCOVERY_NQN,
  hostIdForHostNqn,
  NvmeController,
  type TransportId,
} from '../../nvme/index.ts';
import { UsageError } from '../../util/errors.ts';
import { Cns, decodeNsidList } from '../../wire/identify.ts';
import { parseInteger } from './args.ts';

export type Values = Record<string, string | boolean | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** the command's own options (the connect options are added to every command) */
  options: ParseArgsOptionsConfig;
  /** -n is the namespace ID here (nvme-cli's habit); the subsystem NQN is then --nqn */
  nsidOnN?: boolean;
  /** -s is the starting block here; the service ID is then --trsvcid */
  slbaOnS?: boolean;
  /** -t and -a are this command's own (nvme-cli's resv-acquire / resv-release: rtype, action);
   * the transport and address are then --transport and --traddr */
  ownsTandA?: boolean;
  /** discovery commands connect to the discovery NQN and take no --nqn */
  discovery?: boolean;
  help: string;
  /** one line per own option, for --help */
  optionHelp?: Record<string, string>;
  run(ctx: Context): Promise<void>;
}

/** Where a command connects, and with which DH-HMAC-CHAP secrets (nvme-cli's --dhchap-secret / -ctrl-secret). */
export interface CliTransportId extends TransportId {
  dhchap?: DhchapHostOptions;
}

export interface Context {
  values: Values;
  json: boolean;
  trid: CliTransportId;
  out(text: string): void;
}

export const NSID_ALL = 0xffffffff;

export function connectOptions(cmd: Command): ParseArgsOptionsConfig {
  const o: ParseArgsOptionsConfig = {
    transport: cmd.ownsTandA
      ? { type: 'string', default: 'tcp' }
      : { type: 'string', short: 't', default: 'tcp' },
    traddr: cmd.ownsTandA ? { type: 'string' } : { type: 'string', short: 'a' },
    trsvcid: { type: 'string', default: '4420' },
    hostnqn: { type: 'string', short: 'q' },
    hostid: { type: 'string', short: 'I' },
    'hdr-digest': { type: 'boolean', short: 'g', default: false },
    'data-digest': { type: 'boolean', short: 'G', default: false },
    'dhchap-secret': { type: 'string', short: 'S' },
    'dhchap-ctrl-secret': { type: 'string', short: 'C' },
    tls: { type: 'boolean', default: false },
    'tls-key': { type: 'string' },
    'output-format': { type: 'string', short: 'o', default: 'normal' },
    help: { type: 'boolean', short: 'h', default: false },
  };
  if (!cmd.slbaOnS) o.trsvcid = { type: 'string', short: 's', default: '4420' };
  if (!cmd.discovery) o.nqn = cmd.nsidOnN ? { type: 'string' } : { type: 'string', short: 'n' };
  return o;
}

export const CONNECT_HELP = (cmd: Command) => {
  const s = cmd.slbaOnS ? '    --trsvcid' : '-s, --trsvcid';
  const n = cmd.nsidOnN ? '    --nqn    ' : '-n, --nqn    ';
  const t = cmd.ownsTandA ? '    --transport' : '-t, --transport';
  const a = cmd.ownsTandA ? '    --traddr   ' : '-a, --traddr   ';
  return [
    'connect options:',
    `  ${t} TYPE     tcp (default) or rdma`,
    `  ${a} ADDR     target address (required)`,
    `  ${s} PORT       target port (default 4420)`,
    cmd.discovery ? null : `  ${n} NQN        subsystem NQN (required)`,
    '  -q, --hostnqn NQN        host NQN',
    '  -I, --hostid UUID        host identifier (default: the one of the host NQN, see docs/tools.md)',
    '  -g, --hdr-digest         header digest (CRC32C)',
    '  -G, --data-digest        data digest (CRC32C)',
    '  -S, --dhchap-secret KEY  DH-HMAC-CHAP host secret (DHHC-1:..:), used when the controller asks',
    '  -C, --dhchap-ctrl-secret KEY  DH-HMAC-CHAP controller secret: the controller must prove itself',
    '      --tls                TLS 1.3 secure channel (needs --tls-key)',
    '      --tls-key KEY|FILE   the TLS PSK, interchange format (NVMeTLSkey-1:01:...:), or a file holding it',
    '  -o, --output-format FMT  normal or json',
  ]
    .filter((l) => l !== null)
    .join('\n');
};

export function transportIdFrom(cmd: Command, v: Values): CliTransportId {
  if (v.transport !== 'tcp' && v.transport !== 'rdma')
    throw new UsageError(`--transport ${v.transport}: tcp or rdma`);
  if (typeof v.traddr !== 'string' || v.traddr === '')
    throw new UsageError(`--traddr${cmd.ownsTandA ? '' : ' (-a)'} is required`);
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
  const trid: CliTransportId = { traddr: v.traddr, trsvcid: String(port), subnqn };
  if (v.transport === 'rdma') trid.trtype = 'rdma';
  if (typeof v.hostnqn === 'string') trid.hostnqn = v.hostnqn;
  if (typeof v.hostid === 'string') {
    if (!/^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$/i.test(v.hostid))
      throw new UsageError(`--hostid must be a UUID, not "${v.hostid}"`);
    trid.hostid = v.hostid;
  } else if (trid.hostnqn !== undefined) {
    // one host NQN, one host ID, in every invocation: separate commands act as one host
    // (one reservation registrant), not as the system's host ID under several NQNs
    trid.hostid = hostIdForHostNqn(trid.hostnqn);
  }
  if (v['hdr-digest']) trid.hdgst = true;
  if (v['data-digest']) trid.ddgst = true;
  if (v['dhchap-ctrl-secret'] !== undefined && v['dhchap-secret'] === undefined)
    throw new UsageError('--dhchap-ctrl-secret (-C) needs --dhchap-secret (-S)');
  if (typeof v['dhchap-secret'] === 'string') {
    trid.dhchap = { dhchapSecret: v['dhchap-secret'] };
    if (typeof v['dhchap-ctrl-secret'] === 'string') trid.dhchap.dhchapCtrlrSecret = v['dhchap-ctrl-secret'];
  }
  const key = tlsKeyOption(v);
  if (key !== undefined) trid.tlsKey = key;
  return trid;
}

/** --tls-key (implies --tls): the interchange text itself or a file holding it. */
function tlsKeyOption(v: Values): string | undefined {
  const k = v['tls-key'];
  if (typeof k !== 'string') {
    if (v.tls === true) throw new UsageError('--tls needs --tls-key (a PSK, or a file holding one)');
    return undefined;
  }
  if (k.startsWith('NVMeTLSkey-1:')) return k;
  try {
    return readFileSync(k, 'latin1').trim();
  } catch (e) {
    throw new UsageError(
      `--tls-key ${k}: neither a PSK (NVMeTLSkey-1:..) nor a readable file (${(e as NodeJS.ErrnoException).code})`,
    );
  }
}

/** Connect, run `fn`, always disconnect. */
export async function withController<T>(
  trid: CliTransportId,
  fn: (c: NvmeController) => Promise<T>,
): Promise<T> {
  const { dhchap, ...plain } = trid;
  // one command and gone: no asynchronous events to wait for
  const ctrlr = await NvmeController.connect(plain, {
    connectTimeoutMs: 10000,
    asyncEvents: false,
    ...dhchap,
  });
  try {
    return await fn(ctrlr);
  } finally {
    await ctrlr.disconnect();
  }
}

export function nsidOption(v: Values, fallback: number): number {
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

export async function activeNamespaces(ctrlr: NvmeController): Promise<number[]> {
  return decodeNsidList(await ctrlr.identify(Cns.ACTIVE_NS_LIST, 0));
}
