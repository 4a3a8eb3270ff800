// File bdev: data written and flushed survives a SIGKILL of the process and
// is read back by a new process.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const node = process.execPath;
const script = new URL('./fixtures/aio-writer.ts', import.meta.url).pathname;

test('aio: write + flush, SIGKILL, restart, read back', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nvmf-ts-aio-kill-'));
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, Buffer.alloc(1 << 20));
  try {
    const child = spawn(node, [script, 'write', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const flushed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 20000);
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('flushed')) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.on('exit', () => resolve(false));
    });
    assert.equal(flushed, true, 'the writer reported its flush');
    const exited = new Promise((r) => child.on('exit', (_c, sig) => r(sig)));
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    const reader = spawn(node, [script, 'read', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    reader.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise((r) => reader.on('exit', r));
    assert.equal(code, 0);
    assert.equal(out.trim(), 'match');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
