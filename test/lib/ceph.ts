// A throw-away Ceph cluster for a test file: scripts/ceph-cluster.sh in a
// temp folder, on free monitor ports (other clusters may run beside it), the
// pool "rbd" ready; stopped by its daemons' PIDs. Without Ceph's packages the
// start fails with what to install, under CI=true too (never a skip).

import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './child-target.ts';

const SCRIPT = new URL('../../scripts/ceph-cluster.sh', import.meta.url).pathname;

export const CEPH_PACKAGES = 'ceph-mon ceph-mgr ceph-osd ceph-common librbd-dev librados-dev';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Which of Ceph's commands this machine lacks (empty: all there). */
export function missingCephTools(): string[] {
  const out: string[] = [];
  for (const t of ['ceph-mon', 'ceph-mgr', 'ceph-osd', 'ceph', 'rbd']) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    } catch {
      out.push(t);
    }
  }
  return out;
}

export class CephCluster {
  readonly dir: string;
  readonly conf: string;
  readonly keyring: string;
  /** seconds from start to HEALTH_OK, as measured */
  startSeconds = 0;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(dir: string, env: NodeJS.ProcessEnv) {
    this.dir = dir;
    this.conf = join(dir, 'ceph.conf');
    this.keyring = join(dir, 'keyring');
    this.env = env;
  }

  /** Start a cluster (about 8 s on 2 CPUs); fails with what to install when Ceph is missing. */
  static async start(): Promise<CephCluster> {
    const missing = missingCephTools();
    if (missing.length > 0) {
      throw new Error(
        `Ceph is not installed (missing ${missing.join(', ')}): apt-get install -y --no-install-recommends ${CEPH_PACKAGES}`,
      );
    }
    const dir = mkdtempSync(join(tmpdir(), 'nvmf-ts-ceph-'));
    const env = {
      ...process.env,
      CEPH_V2_PORT: String(await freePort()),
      CEPH_V1_PORT: String(await freePort()),
    };
    const c = new CephCluster(join(dir, 'cluster'), env);
    const t0 = performance.now();
    try {
      await run('bash', [SCRIPT, 'start', c.dir], env, 180_000);
    } catch (e) {
      await c.stop();
      throw e;
    }
    c.startSeconds = (performance.now() - t0) / 1000;
    return c;
  }

  /** Run the rbd CLI against this cluster; its stdout. */
  rbd(...args: string[]): Promise<string> {
    return run('rbd', ['-c', this.conf, ...args], this.env, 120_000);
  }

  /** Run the ceph CLI against this cluster; its stdout. */
  ceph(...args: string[]): Promise<string> {
    return run('ceph', ['-c', this.conf, '--connect-timeout', '15', ...args], this.env, 120_000);
  }

  /** Create an image of `sizeMb` MiB in pool rbd (layering only: see scripts/ceph-cluster.sh). */
  async createImage(name: string, sizeMb: number): Promise<void> {
    await this.rbd('create', '--size', String(sizeMb), '--image-feature', 'layering', `rbd/${name}`);
  }

  /** The image's bytes [offset, offset+length) read by `rbd export` (librbd's own reader). */
  async exportRange(name: string, offset: number, length: number): Promise<Buffer> {
    const file = join(this.dir, `export-${name}-${process.hrtime.bigint()}`);
    await this.rbd('export', `rbd/${name}`, file);
    try {
      return readFileSync(file).subarray(offset, offset + length);
    } finally {
      rmSync(file, { force: true });
    }
  }

  /** PID of a daemon (osd.0, mgr.x, mon.a) from its pid file. */
  pid(daemon: 'osd.0' | 'mgr.x' | 'mon.a'): number {
    return Number(readFileSync(join(this.dir, 'run', `${daemon}.pid`), 'utf8').trim());
  }

  /** Stop the daemons by their PIDs and remove the folder. */
  async stop(): Promise<void> {
    try {
      await run('bash', [SCRIPT, 'stop', this.dir], this.env, 60_000);
    } finally {
      rmSync(join(this.dir, '..'), { recursive: true, force: true });
    }
  }
}
