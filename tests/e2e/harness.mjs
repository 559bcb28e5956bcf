// Shared pieces of the browser tests: `qwglm serve` over the built site and the fixtures, and
// headless Chromium with a SwiftShader WebGPU adapter (flags from ENVIRONMENT.md).
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader',
];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export function qwglmBinary() {
  for (const p of ['target/release/qwglm', 'target/debug/qwglm']) {
    const full = path.join(root, p);
    if (existsSync(full)) return full;
  }
  throw new Error('build the qwglm binary first (cargo build -p qwglm-cli)');
}

/** Starts `qwglm serve` on a free loopback port (model folders from `models`, sent at `rate`
 * bytes/s when given); resolves once it accepts connections. */
export async function startServer({ models = path.join(root, 'tests/fixtures'), rate = 0 } = {}) {
  const port = await freePort();
  const proc = spawn(qwglmBinary(), ['serve', '--site', path.join(root, 'dist'),
    '--models', models, '--port', String(port), '--rate', String(rate)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${base}/index.html`);
      if (r.ok) return { base, stop: () => proc.kill() };
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill();
  throw new Error('qwglm serve did not start');
}

export async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/** A page that records console errors and failed requests, for messages when a test fails. */
export async function openPage(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const log = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => log.push(`requestfailed: ${r.url()}`));
  await page.goto(url);
  return { page, log, close: () => context.close() };
}

/** Runs `body(page)` on a fresh page; a failure carries the page's console log. */
export async function withPage(browser, url, body) {
  const { page, log, close } = await openPage(browser, url);
  try {
    await body(page);
  } catch (e) {
    throw new Error(`${e.message}\n--- page log ---\n${log.join('\n')}`);
  } finally {
    await close();
  }
}

/** Loads `tests/fixtures/<family>` from `server` in the page and waits for its status. */
export async function loadFixture(page, server, family = 'qwen3_vl') {
  await page.getByTestId('model-choice').selectOption('custom-url');
  await page.getByTestId('model-url').fill(`${server.base}/models/${family}/resolve/main`);
  await page.getByTestId('load-model').click();
  await page.getByTestId('model-status').filter({ hasText: /Ready|Could not/ }).waitFor({ timeout: 120_000 });
}

/** Greedy replies of `maxTokens` tokens, set in the settings panel. */
export async function setGreedy(page, maxTokens) {
  await page.locator('details.settings summary').click();
  await page.getByTestId('temperature').fill('0');
  await page.getByTestId('temperature').dispatchEvent('change');
  await page.getByTestId('max-tokens').fill(String(maxTokens));
  await page.getByTestId('max-tokens').dispatchEvent('change');
}

/** The text of assistant message `n` once it is done (within `timeout` ms). */
export async function replyText(page, n = 0, timeout = 180_000) {
  const r = page.getByTestId('message-assistant').nth(n);
  await r.and(page.locator('[data-state=done]')).waitFor({ timeout });
  return r.getByTestId('message-text').textContent();
}
