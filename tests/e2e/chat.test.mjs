// The chat page end to end: load the tiny Qwen3-VL fixture from a local Hub-layout server,
// send a message, and see the streamed reply equal transformers' greedy text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { root, startServer, launch, withPage, loadFixture as loadFixtureFrom, setGreedy } from './harness.mjs';

const reference = JSON.parse(readFileSync(path.join(root, 'tests/fixtures/qwen3_vl/reference.json'), 'utf8'));
let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

const loadFixture = (page, family) => loadFixtureFrom(page, server, family);

test('a message gets the reference greedy reply, streamed into the page', async () => {
  await withPage(browser, `${server.base}/`, async (page) => {
      await loadFixture(page);
      assert.match(await page.getByTestId('model-status').textContent(), /Ready: Qwen3Vl/);
      await setGreedy(page, reference.max_new_tokens);

      const c = reference.cases[0];
      await page.getByTestId('composer-input').fill(c.prompt);
      await page.getByTestId('send').click();
      const reply = page.getByTestId('message-assistant').first();
      await reply.and(page.locator('[data-state=done]')).waitFor({ timeout: 120_000 });
      const text = await reply.getByTestId('message-text').textContent();
      assert.equal(text, c.greedy_text);
      assert.equal(await page.getByTestId('message-user').getByTestId('message-text').textContent(), c.prompt);
      assert.match(await reply.getByTestId('message-stats').textContent(), /12 tokens at/);

      // A second turn answers too, and the first stays on screen.
      await page.getByTestId('composer-input').fill('And then?');
      await page.keyboard.press('Enter');
      await page.getByTestId('message-assistant').nth(1).and(page.locator('[data-state=done]')).waitFor({ timeout: 120_000 });
      assert.equal(await page.getByTestId('message-user').count(), 2);
      assert.equal(await reply.getByTestId('message-text').textContent(), c.greedy_text);
  });
});

test('a model that cannot be loaded says why and offers a retry', async () => {
  await withPage(browser, `${server.base}/`, async (page) => {
      await loadFixture(page, 'no_such_model');
      const status = await page.getByTestId('model-status').textContent();
      assert.match(status, /Could not load the model: .*not found/);
      assert.equal(await page.getByTestId('load-model').textContent(), 'Retry');
      // The retry with a good URL works.
      await loadFixture(page, 'qwen2_vl');
      assert.match(await page.getByTestId('model-status').textContent(), /Ready: Qwen2Vl/);
  });
});

test('without WebGPU the page says so instead of breaking', async () => {
  const plain = await launch(['--disable-features=WebGPU', '--disable-webgpu']);
  try {
    const page = await plain.newPage();
    await page.addInitScript(() => { Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }); });
    await page.goto(`${server.base}/`);
    await page.getByTestId('webgpu-missing').waitFor();
    assert.equal(await page.getByTestId('load-model').isDisabled(), true);
  } finally {
    await plain.close();
  }
});

async function setSetting(page, testid, value) {
  const details = page.locator('details.settings');
  if (!(await details.evaluate((d) => d.open))) await details.locator('summary').click();
  await page.getByTestId(testid).fill(String(value));
  await page.getByTestId(testid).dispatchEvent('change');
}

test('Stop ends a reply early and the chat goes on', async () => {
  await withPage(browser, `${server.base}/`, async (page) => {
      await loadFixture(page);
      await setSetting(page, 'max-tokens', 4000);
      await page.getByTestId('composer-input').fill('Tell me a long story.');
      await page.getByTestId('send').click();
      const reply = page.getByTestId('message-assistant').first();
      await reply.getByTestId('message-text').filter({ hasText: /./ }).waitFor();
      await page.getByTestId('stop').click();
      await reply.and(page.locator('[data-state=stopped]')).waitFor({ timeout: 60_000 });
      assert.match(await reply.getByTestId('message-stats').textContent(), /stopped/);
      await setSetting(page, 'max-tokens', 4);
      await page.getByTestId('composer-input').fill('Short, please.');
      await page.getByTestId('send').click();
      await page.getByTestId('message-assistant').nth(1).and(page.locator('[data-state=done]')).waitFor({ timeout: 60_000 });
  });
});

test('a failed turn shows its error and loses nothing of the conversation', async () => {
  await withPage(browser, `${server.base}/`, async (page) => {
      await setSetting(page, 'context', 256);
      await setSetting(page, 'max-tokens', 4);
      await loadFixture(page);
      await page.getByTestId('composer-input').fill('Hello!');
      await page.getByTestId('send').click();
      const first = page.getByTestId('message-assistant').first();
      await first.and(page.locator('[data-state=done]')).waitFor({ timeout: 60_000 });
      const firstText = await first.getByTestId('message-text').textContent();

      const long = 'The quick brown fox jumps over the lazy dog. '.repeat(60);
      await page.getByTestId('composer-input').fill(long);
      await page.getByTestId('send').click();
      const error = page.getByTestId('turn-error');
      await error.waitFor({ timeout: 60_000 });
      assert.match(await error.textContent(), /context/);
      assert.equal(await page.getByTestId('retry').count(), 1);
      // Everything said so far is still there, the long message included.
      const users = await page.getByTestId('message-user').getByTestId('message-text').allTextContents();
      assert.deepEqual(users, ['Hello!', long]);
      assert.equal(await first.getByTestId('message-text').textContent(), firstText);
      assert.equal(await page.getByTestId('send').isVisible(), true);
  });
});
