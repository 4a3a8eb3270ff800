// Node side of the real-host interop harness: boots QEMU guests through run-guest,
// runs the kernel reference target, starts our nvmf_tgt, and talks JSON-RPC to it.
// The bash scripts next to this file do the QEMU work; see docs/interop.md.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { hkdfSync } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { rdmaAvailability } from '../../../src/rdma/index.ts';
import { pollUntil, spawnTarget } from '../../lib/index.ts';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export { freePort } from '../../lib/index.ts';

export const LIB_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(LIB_DIR, '../../..');
export const RUN_GUEST = join(LIB_DIR, 'run-guest');
export const REFERENCE_TARGET = join(LIB_DIR, 'reference-target');
export const SETUP_SCRIPT = join(REPO_ROOT, 'scripts/setup-interop.sh');
export const HOST_CHECKS_SCRIPT = join(REPO_ROOT, 'test/interop/guest/host-checks.sh');
export const NODE_BIN = join(REPO_ROOT, 'node_modules/.bin/node');
export const NVMF_TGT = join(REPO_ROOT, 'bin/nvmf_tgt.mjs');
export const CACHE_DIR = process.env.NVMF_INTEROP_CACHE ?? '/var/cache/nvmf-ts-interop';
/** How a guest reaches the host's 127.0.0.1 through QEMU's user network. */
export const GUEST_HOST_IP = '10.0.2.2';

/**
 * The guest images setup-interop.sh builds: `bookworm` (Debian 12, kernel 6.1, NVMe/TCP
 * and soft-RoCE NVMe/RDMA; the default) and `trixie` (Debian 13, kernel 6.12 with NVMe
 * in-band authentication and TLS, nvme-cli 2.13, tlshd).
 */
export type GuestFlavour = 'bookworm' | 'trixie';

/** The folder of a flavour's image (bookworm's is the cache folder itself). */
export function imageDir(flavour: GuestFlavour): string {
  return flavour === 'bookworm' ? CACHE_DIR : join(CACHE_DIR, flavour);
}

/** What is missing to run a guest of that flavour, as sentences naming the fix; empty when ready. */
export function missingPrerequisites(flavour: GuestFlavour = 'bookworm'): string[] {
  const problems: string[] = [];
  const qemu = process.env.NVMF_INTEROP_QEMU ?? 'qemu-system-x86_64';
  if (spawnSync('sh', ['-c', `command -v ${qemu}`]).status !== 0) {
    problems.push(`${qemu} not found: run "sudo bash scripts/setup-interop.sh"`);
  }
  for (const file of ['vmlinuz', 'initramfs.img']) {
    const path = join(imageDir(flavour), file);
    if (!existsSync(path)) {
      problems.push(`${flavour} guest image ${path} missing: run "sudo bash scripts/setup-interop.sh"`);
    }
  }
  return problems;
}

export type GuestRunOptions = {
  /** Path of a guest script (runs as root in the guest). */
  script: string;
  /** Which guest image boots (default bookworm, or $NVMF_INTEROP_FLAVOUR). */
  flavour?: GuestFlavour;
  env?: Record<string, string>;
  /** HOST[:GUEST] file copies. */
  files?: string[];
  /** HOSTPORT:GUESTPORT forwards (host side binds 127.0.0.1). */
  forwards?: string[];
  timeoutSeconds?: number;
  /** Guest RAM (default 1024 MiB, or $NVMF_INTEROP_MEM); run-guest refuses too little for the initramfs. */
  memoryMiB?: number;
  /**
   * Share this repository read-only at /project over virtio-9p (run-guest -P, bookworm):
   * the project's Node.js is on the guest's PATH and PROJECT_DIR=/project.
   */
  withProject?: boolean;
  /** Called with each line the guest script prints, as it arrives. */
  onLine?: (line: string) => void;
};

export type GuestRunResult = {
  /** The guest script's exit status; 124 timeout; 125 no status (boot or QEMU failure). */
  code: number;
  stdout: string;
  /** run-guest's own progress lines and, on failure, the guest kernel console. */
  stderr: string;
};

/** Boots a guest, runs the script in it, resolves when the guest has powered off. */
export function runGuest(options: GuestRunOptions): Promise<GuestRunResult> {
  const args: string[] = ['-t', String(options.timeoutSeconds ?? 300)];
  if (options.flavour) args.push('-F', options.flavour);
  if (options.memoryMiB !== undefined) args.push('-m', String(options.memoryMiB));
  if (options.withProject) args.push('-P');
  for (const [name, value] of Object.entries(options.env ?? {})) args.push('-e', `${name}=${value}`);
  for (const file of options.files ?? []) args.push('-f', file);
  for (const forward of options.forwards ?? []) args.push('-p', forward);
  args.push(options.script);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(RUN_GUEST, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      partial += chunk;
      let newline = partial.indexOf('\n');
      while (newline >= 0) {
        const line = partial.slice(0, newline);
        partial = partial.slice(newline + 1);
        options.onLine?.(line);
        newline = partial.indexOf('\n');
      }
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (partial !== '') options.onLine?.(partial);
      resolvePromise({ code: code ?? (signal ? 128 : 125), stdout, stderr });
    });
  });
}

/**
 * Runs a guest script in the bookworm image with this repository shared at /project
 * (run-guest -P), as the tests of our RDMA code do; first fails, naming the fix, when the
 * image or the built RDMA addon is missing.
 */
export function runProjectGuest(
  options: Omit<GuestRunOptions, 'flavour' | 'withProject'>,
): Promise<GuestRunResult> {
  const missing = missingPrerequisites('bookworm');
  assert.deepEqual(missing, [], `interop prerequisites missing:\n  ${missing.join('\n  ')}`);
  const addon = rdmaAvailability();
  assert.ok(addon.available, addon.available ? '' : addon.reason);
  return runGuest({ ...options, flavour: 'bookworm', withProject: true });
}

export type CheckResult = {
  pass: boolean;
  detail: string;
  /** What the guest printed between the previous CHECK line and this one. */
  evidence: string;
};

/**
 * A PSK in the NVMe/TCP interchange format: "NVMeTLSkey-1:01:" (SHA-256; "02:" SHA-384)
 * and the base64 of the key followed by its CRC-32, little-endian.
 */
export function tlsInterchangeKey(key: Buffer): string {
  const hash = key.length === 48 ? '02' : '01';
  assert.ok(key.length === 32 || key.length === 48, 'a TLS PSK has 32 (SHA-256) or 48 (SHA-384) bytes');
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(key));
  return `NVMeTLSkey-1:${hash}:${Buffer.concat([key, crc]).toString('base64')}:`;
}

/** TLS 1.3 HKDF-Expand-Label after an HKDF-Extract with a zero salt (node's hkdf does both). */
function hkdfExpandLabel(
  digest: string,
  secret: Buffer,
  label: string,
  context: string,
  length: number,
): Buffer {
  const labelBytes = Buffer.from(`tls13 ${label}`);
  const contextBytes = Buffer.from(context);
  const info = Buffer.alloc(4 + labelBytes.length + contextBytes.length);
  info.writeUInt16BE(length, 0);
  info[2] = labelBytes.length;
  labelBytes.copy(info, 3);
  info[3 + labelBytes.length] = contextBytes.length;
  contextBytes.copy(info, 4 + labelBytes.length);
  return Buffer.from(hkdfSync(digest, secret, Buffer.alloc(0), info, length));
}

/**
 * The TLS PSK an interchange key gives a host and subsystem, derived as the NVMe/TCP
 * transport specification and SPDK do (the guest's nvme-tls-psk too; nvme-cli 2.13
 * derives another): retained PSK from the key and the host NQN, then the TLS PSK
 * from the retained PSK and the identity "NVMe0R0<hash> <hostnqn> <subnqn>".
 */
export function tlsPskFromInterchangeKey(
  interchangeKey: string,
  hostNqn: string,
  subNqn: string,
): { identity: string; retained: Buffer; tlsPsk: Buffer } {
  const match = /^NVMeTLSkey-1:(01|02):([A-Za-z0-9+/=]+):$/.exec(interchangeKey);
  assert.ok(match, `not a TLS PSK interchange key: ${interchangeKey}`);
  const digest = match[1] === '01' ? 'sha256' : 'sha384';
  const raw = Buffer.from(match[2], 'base64');
  const key = raw.subarray(0, raw.length - 4);
  assert.equal(raw.readUInt32LE(raw.length - 4), crc32(key), 'interchange key CRC-32 mismatch');
  assert.equal(
    key.length,
    digest === 'sha256' ? 32 : 48,
    `a ${digest} interchange key has the hash's length`,
  );
  const identity = `NVMe0R${match[1]} ${hostNqn} ${subNqn}`;
  const retained = hkdfExpandLabel(digest, key, 'HostNQN', hostNqn, key.length);
  const tlsPsk = hkdfExpandLabel(digest, retained, 'nvme-tls-psk', identity, key.length);
  return { identity, retained, tlsPsk };
}

/** The "CHECK <name> PASS|FAIL <why>" lines of host-checks.sh, by name (last one wins). */
export function parseChecks(stdout: string): Map<string, CheckResult> {
  const checks = new Map<string, CheckResult>();
  let evidence: string[] = [];
  for (const rawLine of stdout.split('\n')) {
    const line = rawLine.trimEnd();
    const match = /^CHECK (\S+) (PASS|FAIL)(?: (.*))?$/.exec(line);
    if (match) {
      checks.set(match[1], {
        pass: match[2] === 'PASS',
        detail: match[3] ?? '',
        evidence: evidence.join('\n'),
      });
      evidence = [];
    } else {
      evidence.push(line);
    }
  }
  return checks;
}

/** Where guest transcripts are kept for a human reading after the run. */
export const RUN_DIR = process.env.NVMF_INTEROP_RUNDIR ?? '/tmp/nvmf-ts-interop';

/**
 * Save the guest's transcript as RUN_DIR/<transcriptName>, then one subtest per
 * expected CHECK (a missing line, i.e. the guest died first, fails too) and one
 * for the guest script's exit status. `logNote` adds the target's log to failures.
 */
export async function reportGuestChecks(
  t: { test: (name: string, fn: () => void) => Promise<void>; diagnostic: (message: string) => void },
  run: GuestRunResult,
  expected: string[],
  transcriptName: string,
  logNote: () => string,
): Promise<void> {
  const transcript = join(RUN_DIR, transcriptName);
  mkdirSync(RUN_DIR, { recursive: true });
  writeFileSync(transcript, `${run.stdout}\n--- run-guest stderr ---\n${run.stderr}`);
  t.diagnostic(`guest transcript: ${transcript}`);
  const checks = parseChecks(run.stdout);
  for (const name of expected) {
    await t.test(name, () => {
      const check = checks.get(name);
      assert.ok(
        check,
        `guest printed no result for ${name} (guest exit ${run.code}); run-guest stderr:\n${run.stderr.slice(-4000)}`,
      );
      assert.ok(
        check.pass,
        `${name}: ${check.detail}\n--- guest output ---\n${check.evidence.slice(-6000)}${logNote()}`,
      );
    });
  }
  await t.test('guest script exit status', () => {
    assert.equal(run.code, 0, `guest exit ${run.code}; run-guest stderr:\n${run.stderr.slice(-4000)}`);
  });
}

/** The lines of a guest's output from the one starting "== <heading>" to the next heading. */
export function outputSection(stdout: string, heading: string): string {
  const lines = stdout.split('\n');
  const start = lines.findIndex((line) => line.startsWith(`== ${heading}`));
  if (start < 0) return '';
  const end = lines.findIndex((line, i) => i > start && line.startsWith('== '));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

/** True once something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolvePromise(false);
    });
    socket.once('error', () => resolvePromise(false));
  });
}

export type ReferenceTargetOptions = {
  port: number;
  nqn: string;
  restrictedNqn: string;
  allowedHostNqn: string;
  /** Which guest image runs nvmet (default bookworm: kernel 6.1). */
  flavour?: GuestFlavour;
};

/** Boots the Linux kernel target (nvmet-tcp) in a background guest on 127.0.0.1:port. */
export function startReferenceTarget(options: ReferenceTargetOptions): void {
  const result = spawnSync(
    REFERENCE_TARGET,
    [
      'start',
      '--port',
      String(options.port),
      '--nqn',
      options.nqn,
      '--restricted-nqn',
      options.restrictedNqn,
      '--allowed-host',
      options.allowedHostNqn,
      '--ttl',
      '1800',
      ...(options.flavour ? ['--flavour', options.flavour] : []),
    ],
    { encoding: 'utf8', timeout: 330_000 },
  );
  if (result.status !== 0) {
    throw new Error(`reference-target start failed (exit ${result.status}):\n${result.stderr}`);
  }
}

export function stopReferenceTarget(port: number): void {
  spawnSync(REFERENCE_TARGET, ['stop', '--port', String(port)], { encoding: 'utf8', timeout: 30_000 });
}

export type TargetConfigOptions = {
  port: number;
  nqn: string;
  restrictedNqn: string;
  allowedHostNqn: string;
  /** the transport's zcopy option: larger writes land in the malloc bdev's memory */
  zcopy?: boolean;
};

/**
 * The JSON config (SPDK's save_config shape) our nvmf_tgt replays for the tests: what
 * config/default.json sets up (TCP transport, 64 MiB Malloc0 as nsid 1 of an
 * allow-any-host subsystem, listeners on it and on discovery), on the test's port,
 * plus a second subsystem with a 16 MiB Malloc1 that only one host NQN may use.
 */
export function targetConfig(options: TargetConfigOptions): object {
  const listenAddress = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(options.port) };
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 131072, block_size: 512 } },
          { method: 'bdev_malloc_create', params: { name: 'Malloc1', num_blocks: 32768, block_size: 512 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP', zcopy: options.zcopy === true } },
          {
            method: 'nvmf_create_subsystem',
            params: {
              nqn: options.nqn,
              allow_any_host: true,
              serial_number: 'SPDK00000000000001',
              model_number: 'SPDK bdev Controller',
            },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: options.nqn, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
          },
          {
            method: 'nvmf_create_subsystem',
            params: {
              nqn: options.restrictedNqn,
              allow_any_host: false,
              serial_number: 'SPDK00000000000002',
              model_number: 'SPDK bdev Controller',
            },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: options.restrictedNqn, namespace: { nsid: 1, bdev_name: 'Malloc1' } },
          },
          {
            method: 'nvmf_subsystem_add_host',
            params: { nqn: options.restrictedNqn, host: options.allowedHostNqn },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: 'nqn.2014-08.org.nvmexpress.discovery', listen_address: listenAddress },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: options.nqn, listen_address: listenAddress },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: options.restrictedNqn, listen_address: listenAddress },
          },
        ],
      },
    ],
  };
}

export type RunningTarget = {
  port: number;
  rpcSocket: string;
  logPath: string;
  process: ChildProcess;
  /** Whether the process is still running. */
  alive(): boolean;
  /** The last lines of its log. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
};

/**
 * Starts our nvmf_tgt (`node bin/nvmf_tgt.mjs -m <mask> -r <sock> --json <config>`, through
 * test/lib's spawnTarget) and resolves once it accepts TCP connections on 127.0.0.1:port.
 * Its output also goes to a log file in its temporary folder, kept for post-mortems.
 */
export async function startNvmfTgt(options: {
  port: number;
  config: object;
  cpuMask?: string;
  startTimeoutMs?: number;
}): Promise<RunningTarget> {
  if (!existsSync(NVMF_TGT)) throw new Error(`${NVMF_TGT} does not exist (the target is not built yet)`);
  const dir = mkdtempSync(join(tmpdir(), 'nvmf-interop-'));
  const configPath = join(dir, 'config.json');
  const rpcSocket = join(dir, 'rpc.sock');
  const logPath = join(dir, 'nvmf_tgt.log');
  writeFileSync(configPath, `${JSON.stringify(options.config, null, 2)}\n`);
  const spawned = spawnTarget({ cores: options.cpuMask ?? '0x3', rpcPath: rpcSocket, configPath });
  const toFile = (d: Buffer) => appendFileSync(logPath, d);
  spawned.child.stdout?.on('data', toFile);
  spawned.child.stderr?.on('data', toFile);
  const logTail = (lines = 40) => spawned.log().split('\n').slice(-lines).join('\n');
  const target: RunningTarget = {
    port: options.port,
    rpcSocket,
    logPath,
    process: spawned.child,
    alive: spawned.alive,
    logTail,
    stop: async () => {
      await spawned.stop('SIGINT', 10_000);
    },
  };
  const listening = await pollUntil(
    async () => {
      if (!spawned.alive()) {
        throw new Error(
          `nvmf_tgt exited during start-up (exit ${spawned.child.exitCode}); log ${logPath}:\n${logTail()}`,
        );
      }
      return canConnect(options.port);
    },
    { timeoutMs: options.startTimeoutMs ?? 30_000, intervalMs: 200 },
  );
  if (!listening) {
    await target.stop();
    throw new Error(
      `nvmf_tgt did not listen on 127.0.0.1:${options.port} in time; log ${logPath}:\n${logTail()}`,
    );
  }
  return target;
}

/** Removes a temporary folder made by startNvmfTgt (keeps it when asked to, for logs). */
export function removeTargetFiles(target: RunningTarget): void {
  rmSync(dirname(target.logPath), { recursive: true, force: true });
}

let nextRpcId = 1;

/** One JSON-RPC 2.0 call over a Unix socket; rejects on an error response or timeout. */
export function rpcCall(
  socketPath: string,
  method: string,
  params?: unknown,
  timeoutMs = 10_000,
): Promise<unknown> {
  const request: Record<string, unknown> = { jsonrpc: '2.0', method, id: nextRpcId++ };
  if (params !== undefined) request.params = params;
  return new Promise((resolvePromise, reject) => {
    const socket = createConnection(socketPath);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`RPC ${method}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(request)));
    socket.on('data', (chunk: string) => {
      text += chunk;
      let response: { result?: unknown; error?: { code: number; message: string } };
      try {
        response = JSON.parse(text);
      } catch {
        return; // not complete yet
      }
      clearTimeout(timer);
      socket.end();
      if (response.error)
        reject(new Error(`RPC ${method}: ${response.error.code} ${response.error.message}`));
      else resolvePromise(response.result);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`RPC ${method}: ${error.message}`));
    });
  });
}
