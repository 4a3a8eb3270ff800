// The host's NQN and host ID, generated once and kept, the way nvme-cli keeps
// /etc/nvme/hostnqn and /etc/nvme/hostid. Order of precedence per field:
//   1. env NVMF_TS_HOSTNQN / NVMF_TS_HOSTID
//   2. /etc/nvme/hostnqn, /etc/nvme/hostid (the system's identity, shared with nvme-cli)
//   3. $XDG_CONFIG_HOME/nvmf-ts/hostnqn|hostid (default ~/.config/nvmf-ts/), created on first use
// When the config directory cannot be written, a per-process identity is used
// so that every queue of one process still presents the same host.

import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface HostIdentity {
  /** e.g. nqn.2014-08.org.nvmexpress:uuid:<uuid> */
  hostnqn: string;
  /** 16-byte host identifier as a UUID string */
  hostid: string;
}

export interface HostIdentityOptions {
  /** environment to read (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** where the system files live (default /etc/nvme); tests point it at an empty directory */
  etcDir?: string;
}

/** Kept for compatibility; the default host NQN now comes from defaultHostIdentity(). */
export const DEFAULT_HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NQN_UUID_PREFIX = 'nqn.2014-08.org.nvmexpress:uuid:';

let processFallback: HostIdentity | null = null;

function readFirstLine(path: string): string | null {
  try {
    const line = readFileSync(path, 'utf8').split('\n')[0].trim();
    return line === '' ? null : line;
  } catch {
    return null;
  }
}

/** Create `path` with `value` unless it exists (then its content wins: another process was first). */
function createOnce(path: string, value: string): string {
  try {
    writeFileSync(path, `${value}\n`, { flag: 'wx', mode: 0o644 });
    return value;
  } catch (err) {
    const existing = readFirstLine(path);
    if (existing !== null) return existing;
    throw err;
  }
}

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'nvmf-ts');
}

/** The UUID inside an NQN of the uuid form, or null. */
export function uuidOfHostNqn(nqn: string): string | null {
  if (!nqn.startsWith(NQN_UUID_PREFIX)) return null;
  const uuid = nqn.slice(NQN_UUID_PREFIX.length);
  return UUID_RE.test(uuid) ? uuid.toLowerCase() : null;
}

/** The default host NQN and host ID (see the file comment for where they come from). */
export function defaultHostIdentity(opts: HostIdentityOptions = {}): HostIdentity {
  const env = opts.env ?? process.env;
  const etcDir = opts.etcDir ?? '/etc/nvme';
  let hostnqn = env.NVMF_TS_HOSTNQN || readFirstLine(join(etcDir, 'hostnqn'));
  let hostid = env.NVMF_TS_HOSTID || readFirstLine(join(etcDir, 'hostid'));
  if (hostid !== null && !UUID_RE.test(hostid)) hostid = null; // a malformed file is ignored, not sent
  if (hostnqn !== null && hostid !== null) return { hostnqn, hostid };
  const dir = configDir(env);
  hostnqn ??= readFirstLine(join(dir, 'hostnqn'));
  hostid ??= readFirstLine(join(dir, 'hostid'));
  if (hostid !== null && !UUID_RE.test(hostid)) hostid = null;
  if (hostnqn !== null && hostid !== null) return { hostnqn, hostid };
  // generate what is missing; a new pair shares one UUID, as nvme-cli's gen-hostnqn does
  const uuid = (hostnqn && uuidOfHostNqn(hostnqn)) || hostid || randomUUID();
  try {
    mkdirSync(dir, { recursive: true });
    hostnqn ??= createOnce(join(dir, 'hostnqn'), `${NQN_UUID_PREFIX}${uuid}`);
    hostid ??= createOnce(join(dir, 'hostid'), uuid);
    return { hostnqn, hostid };
  } catch {
    processFallback ??= { hostnqn: `${NQN_UUID_PREFIX}${uuid}`, hostid: uuid };
    return { hostnqn: hostnqn ?? processFallback.hostnqn, hostid: hostid ?? processFallback.hostid };
  }
}

/**
 * The host ID of host NQN `hostnqn` when none is given: the UUID of a `uuid:` NQN; the
 * default identity's host ID for the default NQN; otherwise a UUID derived from the NQN
 * (SHA-256, version 8 bits), the same on every call and machine. So separate processes
 * that name the same host NQN present the same host, which reservations (one registrant
 * per host ID) and the target's duplicate-host checks depend on.
 */
export function hostIdForHostNqn(hostnqn: string, opts: HostIdentityOptions = {}): string {
  const own = uuidOfHostNqn(hostnqn);
  if (own !== null) return own;
  const def = defaultHostIdentity(opts);
  if (def.hostnqn === hostnqn) return def.hostid;
  const h = createHash('sha256').update(`nvmf-ts host id\0${hostnqn}`).digest();
  h[6] = (h[6] & 0x0f) | 0x80; // version 8: custom
  h[8] = (h[8] & 0x3f) | 0x80; // RFC 4122 variant
  const x = h.toString('hex', 0, 16);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
