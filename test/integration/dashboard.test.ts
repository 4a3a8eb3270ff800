// The live dashboard in a real browser: Debian's chromium driven by playwright-core,
// headless. The page loads from the target alone (no other origin is asked for
// anything), lists the subsystem, and its numbers move while a load runs. A
// screenshot is kept in test-artifacts/dashboard.png.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { type ChildTarget, GoodHost, startChildTarget, TEST_NQN, waitFor } from '../lib/index.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;

let tgt: ChildTarget;
let port: number;
before(async () => {
  tgt = await startChildTarget({ args: ['--metrics-port', '0'] });
  port = (await tgt.call<{ port: number }>('metrics_get_status')).port;
});
after(async () => {
  await tgt.stop();
});

test('the dashboard loads offline, lists the subsystem and its numbers move under load', async () => {
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: the dashboard test drives Debian's chromium (apt-get install chromium; .ci/run installs it)`,
  );
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const host = await GoodHost.connect({ port: tgt.port });
  try {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const origin = `http://127.0.0.1:${port}`;
    const foreign: string[] = [];
    const failed: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(origin)) foreign.push(r.url());
    });
    page.on('requestfailed', (r) => {
      if (!r.url().endsWith('/events')) failed.push(r.url());
    });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const resp = await page.goto(`${origin}/`);
    assert.equal(resp?.status(), 200);

    // the subsystem is listed once the first frame arrived
    // (the predicates run in the page, so they are given as source text)
    await page.waitForFunction(
      `document.querySelector('#subsystems tbody')?.textContent?.includes(${JSON.stringify(TEST_NQN)})`,
      undefined,
      { timeout: 15_000 },
    );
    assert.equal(await page.textContent('#status'), 'live');
    // uPlot drew its charts (the library came from the target, not a CDN)
    assert.equal(await page.locator('.uplot').count(), 3);

    // numbers move while the host runs
    host.start();
    await page.waitForFunction('window.lastFrame?.subsystems.some((s) => s.iops > 0) === true', undefined, {
      timeout: 15_000,
    });
    const iopsText = await page.textContent('#total-iops');
    assert.notEqual(iopsText, '0', 'total IOPS shown');
    assert.match((await page.textContent('#hosts tbody')) ?? '', /nqn\.2014-08\.org\.nvmexpress/);
    assert.match((await page.textContent('#reactors tbody')) ?? '', /%/);
    await waitFor('a few more rounds', () => host.rounds > 20, { timeoutMs: 15_000 });

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });
    assert.ok(existsSync(`${ARTIFACTS}dashboard.png`));
    assert.deepEqual(foreign, [], 'every asset comes from the target');
    assert.deepEqual(failed, []);
    assert.deepEqual(pageErrors, []);
  } finally {
    await host.stop();
    await host.ctrlr.disconnect().catch(() => {});
    await browser.close();
  }
});
