// Pictures and screen sharing end to end with the tiny Qwen3-VL fixture: a pasted picture gets
// transformers' greedy answer; a shared (fake) screen gets the answer the native engine gives
// for the very frame the page sent; denied and ended shares are clear messages.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { root, startServer, launch, withPage, qwglmBinary, loadFixture, setGreedy, replyText } from './harness.mjs';

const reference = JSON.parse(readFileSync(path.join(root, 'tests/fixtures/qwen3_vl/reference.json'), 'utf8'));
const exact = reference.image_cases.find((c) => c.name === 'exact');
const SCREEN_ARGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--auto-select-desktop-capture-source=Entire screen', '--auto-accept-this-tab-capture'];
let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch(SCREEN_ARGS);
});

after(async () => {
  await browser?.close();
  server?.stop();
});

async function loadGreedy(page) {
  await loadFixture(page, server);
  assert.match(await page.getByTestId('model-status').textContent(), /Ready: Qwen3Vl/);
  await setGreedy(page, reference.max_new_tokens);
}

const reply = replyText;

test('a pasted picture gets the reference answer', async () => {
  await withPage(browser, `${server.base}/`, async (page) => {
    await loadGreedy(page);
    const png = readFileSync(path.join(root, 'tests/fixtures/images', exact.images[0])).toString('base64');
    await page.getByTestId('composer-input').evaluate((el, b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'screen.png', { type: 'image/png' }));
      el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, png);
    await page.getByTestId('attachment').waitFor();
    await page.getByTestId('composer-input').fill(exact.prompt);
    await page.getByTestId('send').click();
    assert.equal(await reply(page), exact.greedy_text);
    assert.equal(await page.getByTestId('message-image').count(), 1);
    assert.equal(await page.getByTestId('attachment').count(), 0, 'the composer is cleared');
  });
});

test('a shared screen is answered from the frame the page sent', async () => {
  await withPage(browser, `${server.base}/`, async (page) => {
    await loadGreedy(page);
    await page.getByTestId('share-screen').click();
    await page.waitForFunction(() => document.querySelector('[data-testid=screen-preview]')?.videoWidth > 0,
      null, { timeout: 30_000 });
    const question = 'What is on my screen right now?';
    await page.getByTestId('composer-input').fill(question);
    await page.getByTestId('send').click();
    const answer = await reply(page);
    // The frame went with the message (auto-capture); run the same pixels natively.
    const src = await page.getByTestId('message-image').getAttribute('src');
    assert.match(src, /^data:image\/png;base64,/);
    const dir = mkdtempSync(path.join(tmpdir(), 'qwglm-frame-'));
    const frame = path.join(dir, 'frame.png');
    writeFileSync(frame, Buffer.from(src.split(',')[1], 'base64'));
    const native = execFileSync(qwglmBinary(), ['generate', '--model', path.join(root, 'tests/fixtures/qwen3_vl'),
      '--image', frame, '--prompt', question, '--temperature', '0',
      '--max-new-tokens', String(reference.max_new_tokens)], { encoding: 'utf8' });
    assert.ok(answer.length > 0);
    assert.equal(answer, native.replace(/\n$/, ''), 'the page and the native engine agree on this frame');

    // Stopping the share releases the stream and brings the button back.
    const tracks = await page.evaluate(() => {
      const v = document.querySelector('[data-testid=screen-preview]');
      window.sharedTracks = v.srcObject.getTracks();
      return window.sharedTracks.length;
    });
    assert.ok(tracks > 0);
    await page.getByTestId('stop-share').click();
    await page.getByTestId('share-screen').waitFor();
    assert.deepEqual(await page.evaluate(() => window.sharedTracks.map((t) => t.readyState)), ['ended']);
  });
});

test('an ended or denied share is a clear message and the chat goes on', async () => {
  await withPage(browser, `${server.base}/`, async (page) => {
    await page.getByTestId('share-screen').click();
    await page.getByTestId('screen-preview').waitFor();
    // The browser's own "Stop sharing" ends the track.
    await page.evaluate(() => {
      const t = document.querySelector('[data-testid=screen-preview]').srcObject.getVideoTracks()[0];
      t.stop();
      t.dispatchEvent(new Event('ended'));
    });
    await page.getByTestId('screen-notice').filter({ hasText: 'Screen sharing ended.' }).waitFor();
    await page.getByTestId('share-screen').waitFor();

    // A refused permission.
    await page.evaluate(() => {
      navigator.mediaDevices.getDisplayMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
    });
    await page.getByTestId('share-screen').click();
    await page.getByTestId('screen-notice').filter({ hasText: /not allowed: Permission denied/ }).waitFor();
    assert.equal(await page.getByTestId('screen-preview').count(), 0);
  });
});
