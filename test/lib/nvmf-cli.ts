// The nvmf CLI (bin/nvmf.mjs) as a child process, for the tests that drive it.

import { execFile } from 'node:child_process';

const CLI = new URL('../../bin/nvmf.mjs', import.meta.url).pathname;

/**
 * Runs `nvmf ARGS` (30 s at most) with `input` on its stdin and its host identity kept
 * under `configHome` (XDG_CONFIG_HOME, not ~/.config). `code` is 99 when it ended with none.
 */
export function runNvmf(
  args: string[],
  configHome: string,
  input: Buffer | string = '',
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { timeout: 30_000, encoding: 'buffer', env: { ...process.env, XDG_CONFIG_HOME: configHome } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 99) : 0, stdout, stderr: stderr.toString() }),
    );
    child.stdin?.end(input);
  });
}
