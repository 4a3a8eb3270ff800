// Transport IDs: what names a controller to connect to (address, port,
// subsystem NQN, host NQN and ID, digests), and their string form, the one
// SPDK's tools take:
//   "trtype:tcp adrfam:ipv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.…"
// Keys are case-insensitive, pairs are separated by spaces, a value runs to
// the next space. Unknown keys are an error (a typo must not be ignored).

import { InvalidArgumentError } from '../util/errors.ts';
import { DISCOVERY_NQN } from '../wire/discovery.ts';
import { uuidToBytes } from '../wire/identify.ts';
import { defaultHostIdentity } from './host-identity.ts';

export interface TransportId {
  /** the transport, tcp or rdma in any case (absent: tcp) */
  trtype?: string;
  traddr: string;
  trsvcid: string;
  subnqn: string;
  hostnqn?: string;
  /** 16-byte host identifier as a UUID string */
  hostid?: string;
  hdgst?: boolean;
  ddgst?: boolean;
  /**
   * The TLS 1.3 secure channel (NVMe/TCP TP 8011): the configured PSK in the interchange
   * format ("NVMeTLSkey-1:01:…:"), from which each queue derives its identity and TLS PSK
   * for hostnqn and subnqn. A secret: never printed (formatTransportId leaves it out) and
   * not part of the string form.
   */
  tlsKey?: string;
}

const KNOWN_KEYS = new Set([
  'trtype',
  'adrfam',
  'traddr',
  'trsvcid',
  'subnqn',
  'hostnqn',
  'hostid',
  'hdgst',
  'ddgst',
  'priority',
]);

function parseBool(key: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === '1' || v === 'true' || v === 'yes' || v === 'on') return true;
  if (v === '0' || v === 'false' || v === 'no' || v === 'off') return false;
  throw new InvalidArgumentError(`transport ID: ${key} must be true or false, not "${value}"`);
}

/**
 * Parse a transport ID string. `trtype` tcp (the default) or rdma,
 * `adrfam` ipv4 or ipv6; `trsvcid` defaults to 4420 and `subnqn` to the
 * discovery NQN, as in SPDK.
 */
export function parseTransportId(text: string): TransportId {
  const fields = new Map<string, string>();
  for (const pair of text.trim().split(/\s+/)) {
    if (pair === '') continue;
    const colon = pair.indexOf(':');
    const eq = pair.indexOf('=');
    const sep = colon < 0 ? eq : eq < 0 ? colon : Math.min(colon, eq);
    if (sep <= 0) throw new InvalidArgumentError(`transport ID: "${pair}" is not key:value`);
    const key = pair.slice(0, sep).toLowerCase();
    const value = pair.slice(sep + 1);
    if (!KNOWN_KEYS.has(key)) throw new InvalidArgumentError(`transport ID: unknown key "${key}"`);
    if (value === '') throw new InvalidArgumentError(`transport ID: ${key} has no value`);
    fields.set(key, value);
  }
  const trtype = (fields.get('trtype') ?? 'tcp').toLowerCase();
  if (trtype !== 'tcp' && trtype !== 'rdma')
    throw new InvalidArgumentError(`transport ID: trtype ${trtype} is not supported (tcp, rdma)`);
  const adrfam = (fields.get('adrfam') ?? 'ipv4').toLowerCase();
  if (adrfam !== 'ipv4' && adrfam !== 'ipv6')
    throw new InvalidArgumentError(`transport ID: adrfam ${adrfam} is not supported (ipv4, ipv6)`);
  const traddr = fields.get('traddr');
  if (traddr === undefined) throw new InvalidArgumentError('transport ID: traddr is required');
  const trsvcid = fields.get('trsvcid') ?? '4420';
  const port = Number(trsvcid);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new InvalidArgumentError(`transport ID: trsvcid ${trsvcid} is not a TCP port`);
  const trid: TransportId = { traddr, trsvcid, subnqn: fields.get('subnqn') ?? DISCOVERY_NQN };
  if (trtype === 'rdma') trid.trtype = 'rdma';
  const hostnqn = fields.get('hostnqn');
  if (hostnqn !== undefined) trid.hostnqn = hostnqn;
  const hostid = fields.get('hostid');
  if (hostid !== undefined) trid.hostid = hostid;
  const hdgst = fields.get('hdgst');
  if (hdgst !== undefined) trid.hdgst = parseBool('hdgst', hdgst);
  const ddgst = fields.get('ddgst');
  if (ddgst !== undefined) trid.ddgst = parseBool('ddgst', ddgst);
  return trid;
}

/** Whether a transport ID names NVMe/RDMA (its trtype is rdma, in any case). */
export function isRdmaTransportId(trid: TransportId): boolean {
  return trid.trtype?.toLowerCase() === 'rdma';
}

/** The string form of a transport ID (round-trips through parseTransportId). */
export function formatTransportId(trid: TransportId): string {
  const adrfam = trid.traddr.includes(':') ? 'ipv6' : 'ipv4';
  let s = `trtype:${(trid.trtype ?? 'tcp').toLowerCase()} adrfam:${adrfam} traddr:${trid.traddr} trsvcid:${trid.trsvcid} subnqn:${trid.subnqn}`;
  if (trid.hostnqn) s += ` hostnqn:${trid.hostnqn}`;
  if (trid.hostid) s += ` hostid:${trid.hostid}`;
  if (trid.hdgst) s += ' hdgst:true';
  if (trid.ddgst) s += ' ddgst:true';
  return s;
}

/** The transport ID (parsed if a string) with hostnqn and hostid filled in from the defaults. */
export function resolveTransportId(trid: TransportId | string): TransportId {
  const t = typeof trid === 'string' ? parseTransportId(trid) : { ...trid };
  const trtype = (t.trtype ?? 'tcp').toLowerCase();
  if (trtype !== 'tcp' && trtype !== 'rdma')
    throw new InvalidArgumentError(`transport ID: trtype ${t.trtype} is not supported (tcp, rdma)`);
  if (t.hostnqn === undefined || t.hostid === undefined) {
    const id = defaultHostIdentity();
    t.hostnqn ??= id.hostnqn;
    t.hostid ??= id.hostid;
  }
  return t;
}

/** The 16 bytes of a host ID given as a UUID string; throws when it is not one. */
export function hostIdBytes(uuid: string): Buffer {
  const bytes = uuidToBytes(uuid);
  if (bytes === null) throw new InvalidArgumentError(`hostid is not a UUID: ${uuid}`);
  return bytes;
}
