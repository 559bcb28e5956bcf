// Hub downloads into the browser's cache: a model repository served by `qwglm serve` in the
// Hub's layout (tree API, Range requests) with a 256 MiB weight file sent at a limited rate.
// The page downloads it, is reloaded halfway, resumes with a Range request, verifies and
// loads it; a later visit loads it with the server unreachable; the storage view lists and
// deletes it; a full storage quota is a clear message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { root, startServer, launch, withPage, setGreedy, replyText } from './harness.mjs';

const fixture = path.join(root, 'tests/fixtures/qwen3_vl');
const reference = JSON.parse(readFileSync(path.join(fixture, 'reference.json'), 'utf8'));
const PAD = 256 << 20;
let models;
let server;
let browser;

/** The Qwen3-VL fixture with an extra 256 MiB tensor (pseudo-random f16) in its weights. */
function bigRepo(dir) {
  const repo = path.join(dir, 'big');
  mkdirSync(repo, { recursive: true });
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.json',
    'generation_config.json', 'preprocessor_config.json']) {
    copyFileSync(path.join(fixture, f), path.join(repo, f));
  }
  const file = readFileSync(path.join(fixture, 'model.safetensors'));
  const n = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + n).toString());
  const data = file.subarray(8 + n);
  header['zz.padding'] = { dtype: 'F16', shape: [PAD / 2], data_offsets: [data.length, data.length + PAD] };
  const h = Buffer.from(JSON.stringify(header));
  const pad = Buffer.alloc(PAD);
  let x = 0x12345678;
  for (let i = 0; i < PAD; i += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    pad.writeUInt32LE((x & 0xbfffbfff) >>> 0, i);
  }
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path.join(repo, 'model.safetensors'), Buffer.concat([len, h, data, pad]));
}

before(async () => {
  models = path.join(tmpdir(), `qwglm-e2e-hub-${process.pid}`);
  rmSync(models, { recursive: true, force: true });
  bigRepo(models);
  server = await startServer({ models, rate: 24 << 20 });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.stop();
  rmSync(models, { recursive: true, force: true });
});

const status = (page) => page.getByTestId('model-status');
const hubUrl = () => `${server.base}/?endpoint=${encodeURIComponent(`${server.base}/models`)}&repo=big`;

/** Clicks Load and waits until the model is ready or failed. */
async function loadChosen(page, timeout = 180_000) {
  await page.getByTestId('load-model').click();
  await status(page).filter({ hasText: /Ready|Could not/ }).waitFor({ timeout });
}

test('a Hub download resumes after a reload, is cached, and loads offline', async () => {
  await withPage(browser, hubUrl(), async (page) => {
    const ranges = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/model.safetensors')) ranges.push(r.headers()['range'] ?? 'none');
    });
    await page.getByTestId('load-model').click();
    // Halfway through the weights, the page goes away.
    await status(page).filter({ hasText: /Downloading model\.safetensors.*\((2|3|4)\d%\)/ }).waitFor({ timeout: 60_000 });
    assert.match(await status(page).textContent(), /MiB\/s · .* left/, 'rate and time left are shown');
    await page.reload();
    await loadChosen(page);
    assert.match(await status(page).textContent(), /Ready: Qwen3Vl/);
    const resumed = ranges.slice(1).find((r) => /^bytes=\d+-$/.test(r) && r !== 'bytes=0-');
    assert.ok(resumed, `the second visit asked for the rest only: ${ranges.join(', ')}`);
    assert.ok(Number(resumed.match(/\d+/)[0]) > PAD / 5, `resumed from ${resumed}`);

    // The model works.
    await setGreedy(page, reference.max_new_tokens);
    const c = reference.cases[0];
    await page.getByTestId('composer-input').fill(c.prompt);
    await page.getByTestId('send').click();
    assert.equal(await replyText(page, 0, 120_000), c.greedy_text);

    // Next visit with the server unreachable: everything comes from the cache.
    await page.route(`${server.base}/models/**`, (r) => r.abort());
    await page.reload();
    await loadChosen(page);
    assert.match(await status(page).textContent(), /Ready: Qwen3Vl/);
    await page.unroute(`${server.base}/models/**`);

    // The storage view lists it with its size, and deletes it.
    await page.getByTestId('storage-toggle').click();
    const row = page.getByTestId('stored-model');
    await row.waitFor();
    assert.match(await row.textContent(), /big @ main.*(25[6-9]|26\d)\.\d MiB · \d+ files complete/);
    assert.match(await page.getByTestId('storage-quota').textContent(), /used of/);
    await page.getByTestId('delete-stored').click();
    await page.getByTestId('storage-empty').waitFor();
  });
});

test('the catalogue shows each variant\'s download size and GPU memory before downloading', async () => {
  await withPage(browser, `${server.base}/`, async (page) => {
    const info = page.getByTestId('variant-info');
    assert.match(await info.textContent(),
      /^Qwen\/Qwen3-VL-2B-Instruct-GGUF · download 1\.93 GB · about 3\.2 GB of GPU memory at 4096 tokens of context$/);
    await page.getByTestId('model-choice').selectOption('qwen2.5-vl-3b-bf16-q8');
    assert.match(await info.textContent(), /Qwen2.5-VL-3B-Instruct · download 7\.51 GB · about 4\.6 GB/);
    await page.getByTestId('model-choice').selectOption('custom-url');
    assert.equal(await info.count(), 0);
    await page.getByTestId('model-url').waitFor();
  });
});

test('a full storage quota is a clear message and nothing is marked complete', async () => {
  await withPage(browser, hubUrl(), async (page) => {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.base, quotaSize: 64 << 20 });
    await loadChosen(page, 120_000);
    assert.match(await status(page).textContent(), /storage for this site is full/);
    assert.equal(await page.getByTestId('load-model').textContent(), 'Retry');
    await page.getByTestId('storage-toggle').click();
    const row = page.getByTestId('stored-model');
    await row.waitFor();
    assert.match(await row.textContent(), /files complete/);
    assert.doesNotMatch(await row.textContent(), /2[5-9]\d\.\d MiB/, 'the weights are not all there');
    await page.getByTestId('delete-stored').click();
    await page.getByTestId('storage-empty').waitFor();
  });
});
