// The keyring (SPDK's lib/keyring + module/keyring/file): named keys whose
// bytes live in files. A key is added by name and path; its file must be an
// absolute path, owned by this user and unreadable by group and others (the
// secret stays where the administrator put it), and it is read again, with the
// same checks, each time the key is used. Users take a reference; a key removed
// while referenced stays usable by them (SPDK's "removed" state) and goes with
// the last reference. Names and paths are public (RPC output, save_config);
// the bytes never leave this module except to the caller that asked for them.
//
// Owned by the app thread, like the other registries.

import { readFileSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { NvmfTsError } from '../util/errors.ts';

/** What a key file may hold at most (a DHHC-1 secret of 64 bytes is ~100 characters). */
const MAX_KEY_FILE_BYTES = 4096;

/** A keyring operation failed; `errno` is the negative errno SPDK answers with (the keyring RPCs' JSON-RPC code). */
export class KeyringError extends NvmfTsError {
  declare readonly code: 'NVMF_ERR_KEYRING';
  readonly errno: number;
  constructor(message: string, errno: number) {
    super('NVMF_ERR_KEYRING', message);
    this.errno = errno;
  }
}

const EPERM = -1;
const ENOENT = -2;
const EEXIST = -17;
const ENODEV = -19;
const ENOBUFS = -105;

export interface KeyInfo {
  name: string;
  module: 'keyring_file';
  removed: boolean;
  probed: boolean;
  refcnt: number;
  path: string;
}

interface Entry {
  name: string;
  path: string;
  removed: boolean;
  /** references held by users (subsystem hosts, bdev_nvme controllers) */
  refs: number;
}

/** Checks a key file as SPDK's file keyring does; returns its size. */
function checkKeyFile(path: string): number {
  if (!isAbsolute(path)) throw new KeyringError(`Non-absolute paths are not allowed: ${path}`, EPERM);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KeyringError(
      `Could not stat key file '${path}': ${code ?? String(e)}`,
      code === 'ENOENT' ? ENOENT : EPERM,
    );
  }
  if (!st.isFile()) throw new KeyringError(`Key file '${path}' is not a regular file`, EPERM);
  if ((st.mode & 0o077) !== 0)
    throw new KeyringError(
      `Invalid permissions of key file '${path}': 0${(st.mode & 0o777).toString(8)} required: 0${(st.mode & 0o700).toString(8)}`,
      EPERM,
    );
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new KeyringError(`Invalid owner of key file '${path}': ${st.uid}, must be: ${uid}`, EPERM);
  if (st.size > MAX_KEY_FILE_BYTES)
    throw new KeyringError(`Invalid key file '${path}' size: ${st.size} > ${MAX_KEY_FILE_BYTES}`, ENOBUFS);
  return st.size;
}

export class Keyring {
  private readonly keys = new Map<string, Entry>();

  /** keyring_file_add_key: the file is checked now (and again at every use). */
  addFileKey(name: string, path: string): void {
    if (name === '') throw new KeyringError('Key name must not be empty', -22);
    const existing = this.keys.get(name);
    if (existing && !existing.removed) throw new KeyringError(`Key '${name}' already exists`, EEXIST);
    checkKeyFile(path);
    this.keys.set(name, { name, path, removed: false, refs: 0 });
  }

  /** keyring_file_remove_key: gone for new users; existing references keep it until put. */
  removeKey(name: string): void {
    const e = this.keys.get(name);
    if (!e || e.removed) throw new KeyringError(`Key '${name}' does not exist`, ENODEV);
    e.removed = true;
    if (e.refs === 0) this.keys.delete(name);
  }

  has(name: string): boolean {
    const e = this.keys.get(name);
    return e !== undefined && !e.removed;
  }

  /** A reference for a user that will read the key later (checks the file now). */
  get(name: string): KeyRef {
    const e = this.keys.get(name);
    if (!e || e.removed) throw new KeyringError(`Key '${name}' does not exist`, ENOENT);
    checkKeyFile(e.path);
    e.refs++;
    let put = false;
    return {
      name,
      read: () => {
        if (put) throw new KeyringError(`Key '${name}' was released`, ENODEV);
        return this.readEntry(e);
      },
      put: () => {
        if (put) return;
        put = true;
        e.refs--;
        if (e.removed && e.refs === 0 && this.keys.get(name) === e) this.keys.delete(name);
      },
    };
  }

  /** The key's text (trimmed), read from its file now. */
  read(name: string): string {
    const e = this.keys.get(name);
    if (!e || e.removed) throw new KeyringError(`Key '${name}' does not exist`, ENOENT);
    return this.readEntry(e);
  }

  private readEntry(e: Entry): string {
    checkKeyFile(e.path);
    let text: string;
    try {
      text = readFileSync(e.path, 'latin1');
    } catch (err) {
      throw new KeyringError(
        `Could not open key '${e.name}': ${(err as NodeJS.ErrnoException).code}`,
        ENOENT,
      );
    }
    const trimmed = text.trim();
    if (trimmed === '') throw new KeyringError(`Could not load key '${e.name}': the file is empty`, -5);
    return trimmed;
  }

  /** keyring_get_keys: names, paths and states, never the bytes. */
  list(): KeyInfo[] {
    return [...this.keys.values()].map((e) => ({
      name: e.name,
      module: 'keyring_file',
      removed: e.removed,
      probed: false,
      refcnt: e.refs,
      path: e.path,
    }));
  }

  /** save_config: the live (not removed) keys, as keyring_file_add_key parameters. */
  configEntries(): { name: string; path: string }[] {
    return [...this.keys.values()].filter((e) => !e.removed).map((e) => ({ name: e.name, path: e.path }));
  }

  clear(): void {
    this.keys.clear();
  }
}

/** A user's handle on a key: read it when needed, put it when done. */
export interface KeyRef {
  readonly name: string;
  read(): string;
  put(): void;
}

let appKeyring: Keyring | null = null;

/** The target's keyring (app thread). */
export function keyring(): Keyring {
  appKeyring ??= new Keyring();
  return appKeyring;
}
