//! Speech recognition with Whisper: audio at 16 kHz → 30 s windows → log-mel (`qwglm_audio`) →
//! encoder → greedy (or sampled) decoding with the rules of transformers'
//! `WhisperForConditionalGeneration.generate`: the prompt (start of transcript, language token
//! given or detected, task, `<|notimestamps|>` unless timestamps are asked for), the
//! begin-suppressed and suppressed tokens, and `WhisperTimeStampLogitsProcessor`'s timestamp
//! rules, applied in that order.
//!
//! Windows follow transformers' seek loop (short and long audio alike): each pass decodes 30 s
//! of features from `seek`, and `seek` moves to its last timestamp pair.
//!
//! Beyond transformers' defaults, while the no-speech gate is on: a recording of digital
//! silence yields no transcript without running the model, and a pass whose no-speech probability is above the threshold while its
//! average log-probability is below the floor is skipped (transformers' `no_speech_threshold`
//! with `logprob_threshold`, on by default here as in faster-whisper: the gate against the
//! "Thank you." that Whisper says to silence).
//!
//! Not yet: the temperature fallback on compression ratio and log-probability, and conditioning
//! on the previous window's text.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use qwglm_audio::MelConfig;
use serde::Serialize;

use crate::chat::Tokenizer;
use crate::error::{EngineError, LoadError};
use crate::formats::ctranslate2;
use crate::formats::whisper::{self, SpeechTokens, WhisperConfig};
use crate::generate::{top_k, Sampler, SamplingParams, TextStream};
use crate::gpu::Gpu;
use crate::load::{read_optional, ByteSource, TensorIndex};
use crate::models::layers::KvCache;
use crate::models::layers::{LoadProgress, Loader, CHUNK_BYTES};
use crate::models::whisper::{DecoderScratch, WhisperModel, WINDOW_FRAMES};

/// Translate into English or transcribe in the spoken language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[default]
    Transcribe,
    Translate,
}

/// What to decode.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct TranscribeOptions {
    /// A language code (`en`, `de`) or name; `None` detects it (multilingual models).
    pub language: Option<String>,
    pub task: Task,
    pub timestamps: bool,
    /// 0 decodes greedily.
    pub temperature: f32,
    pub seed: u64,
    /// Most tokens per window; `None` as the model's generation config says.
    pub max_new_tokens: Option<usize>,
    /// Drop a window whose no-speech probability exceeds this while its average log-probability
    /// is below `logprob_threshold`; `None` keeps every window (transformers' default).
    pub no_speech_threshold: Option<f32>,
    pub logprob_threshold: f32,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: None,
            task: Task::Transcribe,
            timestamps: false,
            temperature: 0.0,
            seed: 0,
            max_new_tokens: None,
            no_speech_threshold: Some(0.6),
            logprob_threshold: -1.0,
        }
    }
}

/// One generated token as it streams out.
#[derive(Clone, Debug, Serialize)]
pub struct SpeechToken {
    pub id: u32,
    /// New text this token completes (empty for timestamps and partial characters).
    pub text: String,
    /// The five highest raw logits of this step.
    #[serde(skip)]
    pub top: Vec<(u32, f32)>,
}

/// A stretch of the transcript with its times in seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Its tokens, timestamps included.
    #[serde(skip)]
    pub tokens: Vec<u32>,
}

/// The result of a whole recording.
#[derive(Clone, Debug, Serialize)]
pub struct Transcript {
    pub text: String,
    pub language: Option<String>,
    pub segments: Vec<Segment>,
    pub audio_s: f64,
    /// The tokens of every segment in order: transformers' `generate` output.
    #[serde(skip)]
    pub tokens: Vec<u32>,
    /// Per window: the decoder prompt and the generated ids (timestamps included, end of text
    /// excluded).
    #[serde(skip)]
    pub windows: Vec<WindowResult>,
}

/// What one 30 s window produced.
#[derive(Clone, Debug, Serialize)]
pub struct WindowResult {
    pub prompt: Vec<u32>,
    pub generated: Vec<u32>,
    pub no_speech_prob: f32,
    pub avg_logprob: f32,
    /// Dropped as no speech (silence, or the no-speech gate).
    pub skipped: bool,
    /// The five highest raw logits of every step, the end-of-text step included.
    pub top5: Vec<Vec<(u32, f32)>>,
}

/// Load-time choices for a recognizer.
#[derive(Clone, Debug)]
pub struct SpeechLoadOptions {
    /// Quantize the weights to Q8_0 or Q4_0 on load.
    pub quantize: Option<crate::tensor::DType>,
    pub chunk_bytes: u64,
}

impl Default for SpeechLoadOptions {
    fn default() -> Self {
        SpeechLoadOptions { quantize: None, chunk_bytes: CHUNK_BYTES }
    }
}

/// A loaded Whisper with its tokenizer and decoding rules.
pub struct Recognizer {
    gpu: Rc<Gpu>,
    pub model: WhisperModel,
    pub tokenizer: Tokenizer,
    pub tokens: SpeechTokens,
    pub mel: MelConfig,
    /// Decoder caches kept between recordings (a call finding them taken makes its own).
    decoder: RefCell<Option<(KvCache, DecoderScratch)>>,
    /// GPU bytes of the weights and the kept decoder caches.
    resident_bytes: u64,
    /// GPU bytes one window's encoder pass allocated (0 before the first).
    window_bytes: Cell<u64>,
}

/// Peak amplitude under which a window is digital silence.
const SILENCE_PEAK: f32 = 1e-4;
/// Seconds per timestamp token.
const TIME_PRECISION: f64 = 0.02;

impl Recognizer {
    /// Reads a Whisper folder: Hugging Face (`config.json` with `model_type: whisper`,
    /// `model.safetensors`) or faster-whisper (CTranslate2 `model.bin`), with `tokenizer.json`.
    pub async fn load<S: ByteSource>(
        gpu: Rc<Gpu>,
        src: &S,
        options: SpeechLoadOptions,
        progress: &mut dyn FnMut(&LoadProgress),
    ) -> Result<Self, EngineError> {
        let config = read_optional(src, "config.json").await?;
        let ct2 = src.size("model.bin").await.ok().flatten().is_some();
        let (cfg, tensors, ct2_config) = if ct2 {
            let header = ctranslate2::read_header(src, "model.bin").await?;
            let (cfg, entries) = whisper::from_ctranslate2("model.bin", &header)?;
            (cfg, TensorIndex { entries, ..Default::default() }, config)
        } else {
            let bytes = config.ok_or_else(|| LoadError::NotFound { file: src.describe("config.json") })?;
            let kind: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| LoadError::Json { file: "config.json".into(), message: e.to_string() })?;
            if kind.get("model_type").and_then(|t| t.as_str()) != Some("whisper") {
                let t = kind.get("model_type").and_then(|t| t.as_str()).unwrap_or("none");
                return Err(
                    LoadError::Architecture(format!("{t} is not a speech recognizer (expected whisper)")).into()
                );
            }
            (WhisperConfig::parse(&bytes)?, TensorIndex::open(src, None, None).await?, None)
        };
        let tok_bytes = read_optional(src, "tokenizer.json")
            .await?
            .ok_or_else(|| LoadError::NotFound { file: src.describe("tokenizer.json") })?;
        let tokenizer = Tokenizer::from_bytes(&tok_bytes)?;
        let generation = read_optional(src, "generation_config.json").await?;
        let tokens =
            SpeechTokens::new(&cfg, generation.as_deref(), ct2_config.as_deref(), &|t| tokenizer.token_id(t), &|id| {
                tokenizer.id_token(id)
            })?;
        let mut mel = MelConfig::whisper(cfg.num_mel_bins);
        if let Some(b) = read_optional(src, "preprocessor_config.json").await? {
            let v: serde_json::Value = serde_json::from_slice(&b)
                .map_err(|e| LoadError::Json { file: "preprocessor_config.json".into(), message: e.to_string() })?;
            if let Some(n) = v.get("feature_size").and_then(|n| n.as_u64()) {
                mel.feature_size = n as usize;
            }
        }
        if mel.feature_size != cfg.num_mel_bins {
            return Err(LoadError::Config(format!(
                "preprocessor feature_size {} differs from num_mel_bins {}",
                mel.feature_size, cfg.num_mel_bins
            ))
            .into());
        }
        let allocated_before = gpu.allocated_bytes();
        let names = WhisperModel::tensor_names(&cfg);
        if let Some(missing) = names.iter().find(|n| !tensors.contains(n)) {
            return Err(LoadError::MissingTensor(missing.clone()).into());
        }
        let mut loader = Loader {
            gpu: &gpu,
            src,
            index: &tensors,
            bytes_done: 0,
            bytes_total: tensors.bytes_of(&names),
            progress,
            quantize: options.quantize,
            chunk_bytes: options.chunk_bytes.max(1),
            written: 0,
        };
        let model = WhisperModel::load(&mut loader, &cfg).await?;
        let decoder = (model.new_cache(&gpu)?, model.new_scratch(&gpu)?);
        gpu.check()?;
        let resident_bytes = gpu.allocated_bytes() - allocated_before;
        Ok(Recognizer {
            gpu,
            model,
            tokenizer,
            tokens,
            mel,
            decoder: RefCell::new(Some(decoder)),
            resident_bytes,
            window_bytes: Cell::new(0),
        })
    }

    /// GPU memory the recognizer holds (weights, decoder caches) plus what one window's
    /// encoder pass allocates while it runs (known after the first window).
    pub fn gpu_bytes(&self) -> u64 {
        self.resident_bytes + self.window_bytes.get()
    }

    /// The token of a language given as a code (`en`) or a token (`<|en|>`).
    fn language_token(&self, language: &str) -> Result<u32, EngineError> {
        let code = language.trim().trim_start_matches("<|").trim_end_matches("|>").to_lowercase();
        self.tokens.languages.get(&code).copied().ok_or_else(|| {
            let known: Vec<&str> = self.tokens.languages.keys().map(String::as_str).collect();
            EngineError::Input(format!("language {language:?} is not one of this model's: {}", known.join(", ")))
        })
    }

    /// Transcribes mono 16 kHz samples; `on_token` sees every generated token (a pass's
    /// tokens after its last timestamp pair are decoded again by the next pass, as
    /// transformers does, so the final text comes from the segments).
    ///
    /// transformers' seek loop: features of the whole recording (at least 30 s); a pass decodes
    /// the 3000 frames from `seek` (zero-padded); its tokens split into segments at timestamp
    /// pairs, and `seek` moves to the last pair's time, or by the whole window when the pass ends
    /// in a single timestamp or has none.
    pub async fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        on_token: &mut dyn FnMut(&SpeechToken),
    ) -> Result<Transcript, EngineError> {
        if samples.is_empty() {
            return Err(EngineError::Input("the recording is empty".into()));
        }
        if !self.tokens.multilingual
            && (opts.task == Task::Translate || opts.language.as_deref().is_some_and(|l| l != "en"))
        {
            return Err(EngineError::Input(
                "this model is English-only: it neither translates nor takes another language".into(),
            ));
        }
        let audio_s = samples.len() as f64 / self.mel.sampling_rate as f64;
        let silent = samples.iter().fold(0.0f32, |m, s| m.max(s.abs())) < SILENCE_PEAK;
        if silent && opts.no_speech_threshold.is_some() {
            let none = WindowResult {
                prompt: Vec::new(),
                generated: Vec::new(),
                no_speech_prob: 1.0,
                avg_logprob: 0.0,
                skipped: true,
                top5: Vec::new(),
            };
            return Ok(Transcript {
                text: String::new(),
                language: None,
                segments: Vec::new(),
                audio_s,
                tokens: Vec::new(),
                windows: vec![none],
            });
        }
        let (mel, max_frames) = qwglm_audio::log_mel_padded(samples, &self.mel);
        // Over 30 s, windows are found by timestamps: transformers turns them on for long-form.
        let long_form = TranscribeOptions { timestamps: opts.timestamps || max_frames > WINDOW_FRAMES, ..opts.clone() };
        let opts = &long_form;
        let kept = self.decoder.borrow_mut().take();
        let (kv, scratch) = match kept {
            Some(d) => d,
            None => (self.model.new_cache(&self.gpu)?, self.model.new_scratch(&self.gpu)?),
        };
        let result = self.transcribe_windows(&mel, max_frames, opts, &kv, &scratch, on_token).await;
        *self.decoder.borrow_mut() = Some((kv, scratch));
        let (windows, segments, language) = result?;
        let text = segments.iter().map(|s| s.text.as_str()).collect::<String>().trim().to_string();
        let tokens = segments.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        Ok(Transcript { text, language, segments, audio_s, tokens, windows })
    }

    /// The seek loop over the features of the whole recording.
    async fn transcribe_windows(
        &self,
        mel: &[f32],
        max_frames: usize,
        opts: &TranscribeOptions,
        kv: &KvCache,
        scratch: &DecoderScratch,
        on_token: &mut dyn FnMut(&SpeechToken),
    ) -> Result<(Vec<WindowResult>, Vec<Segment>, Option<String>), EngineError> {
        let bins = self.mel.feature_size;
        let mut windows = Vec::new();
        let mut segments = Vec::new();
        let mut language: Option<(String, u32)> = None;
        let mut seek = 0usize;
        while seek < max_frames {
            let seek_num = (max_frames - seek).min(WINDOW_FRAMES);
            let time_offset = seek as f64 * TIME_PRECISION / 2.0;
            let mut window = vec![0.0f32; bins * WINDOW_FRAMES];
            for b in 0..bins {
                let row = &mel[b * max_frames + seek..b * max_frames + seek + seek_num];
                window[b * WINDOW_FRAMES..b * WINDOW_FRAMES + seek_num].copy_from_slice(row);
            }
            let (r, lang) =
                self.decode_window(&window, opts, language.as_ref().map(|l| l.1), kv, scratch, on_token).await?;
            language = language.or(lang);
            let advance = if r.skipped {
                seek_num
            } else {
                let (segs, offset) = self.retrieve_segments(&r.generated, time_offset, seek_num)?;
                segments.extend(segs);
                offset
            };
            windows.push(r);
            // A pass that ends on a pair at <|0.00|> would not move: go on by the window.
            seek += if advance == 0 { seek_num } else { advance };
        }
        Ok((windows, segments, language.map(|l| l.0)))
    }

    /// The processed scores of a step (begin-suppress, suppress, timestamp rules) from `logits`.
    fn process(&self, logits: &mut [f32], generated: &[u32], timestamps: bool) {
        let t = &self.tokens;
        let ninf = f32::NEG_INFINITY;
        if generated.is_empty() {
            for &id in &t.begin_suppress_tokens {
                logits[id as usize] = ninf;
            }
        }
        for &id in &t.suppress_tokens {
            logits[id as usize] = ninf;
        }
        if !timestamps {
            return;
        }
        let tb = t.timestamp_begin as usize;
        logits[t.no_timestamps as usize] = ninf;
        let last_ts = generated.last().is_some_and(|&i| i as usize >= tb);
        let penult_ts = generated.len() < 2 || generated[generated.len() - 2] as usize >= tb;
        if last_ts {
            if penult_ts {
                logits[tb..].fill(ninf);
            } else {
                logits[..t.eot as usize].fill(ninf);
            }
        }
        let stamps: Vec<u32> = generated.iter().copied().filter(|&i| i as usize >= tb).collect();
        let mut floor = tb;
        if let Some(&last) = stamps.last() {
            floor = if last_ts && !penult_ts { last as usize } else { last as usize + 1 };
        }
        let n = logits.len();
        logits[tb..floor.min(n)].fill(ninf);
        if generated.is_empty() {
            logits[..tb].fill(ninf);
            if let Some(m) = t.max_initial_timestamp_index {
                let last_allowed = tb + m as usize;
                if last_allowed + 1 < logits.len() {
                    logits[last_allowed + 1..].fill(ninf);
                }
            }
        }
        // Sample a timestamp when their total probability beats every text token.
        let lse = |v: &[f32]| {
            let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if m == f32::NEG_INFINITY {
                m
            } else {
                m + v.iter().map(|x| (x - m).exp()).sum::<f32>().ln()
            }
        };
        let total = lse(logits);
        let ts_logprob = lse(&logits[tb..]) - total;
        let max_text = logits[..tb].iter().copied().fold(f32::NEG_INFINITY, f32::max) - total;
        if ts_logprob > max_text {
            logits[..tb].fill(ninf);
        }
    }

    async fn decode_window(
        &self,
        mel: &[f32],
        opts: &TranscribeOptions,
        detected: Option<u32>,
        kv: &crate::models::layers::KvCache,
        s: &crate::models::whisper::DecoderScratch,
        on_token: &mut dyn FnMut(&SpeechToken),
    ) -> Result<(WindowResult, Option<(String, u32)>), EngineError> {
        let t = &self.tokens;
        let gpu = &self.gpu;
        let before = gpu.allocated_bytes();
        let (_enc, cross) = self.model.encode(gpu, mel)?;
        self.window_bytes.set(gpu.allocated_bytes() - before);
        let vocab = self.model.cfg.vocab_size;
        // The start token alone first: its logits give the no-speech probability and the
        // detected language.
        self.model.decode(gpu, &[t.sot], 0, kv, &cross, s)?;
        let first = gpu.read_f32(&s.logits, 0, vocab).await?;
        let no_speech_prob = softmax_at(&first, t.no_speech as usize);
        let mut prompt = vec![t.sot];
        let language;
        if t.multilingual {
            let lang = match (&opts.language, detected) {
                (Some(l), _) => self.language_token(l)?,
                (None, Some(id)) => id,
                (None, None) => *t
                    .languages
                    .values()
                    .max_by(|a, b| first[**a as usize].total_cmp(&first[**b as usize]))
                    .ok_or_else(|| EngineError::Input("the model lists no languages".into()))?,
            };
            language = t.languages.iter().find(|(_, &id)| id == lang).map(|(c, _)| (c.clone(), lang));
            prompt.push(lang);
            let task = match opts.task {
                Task::Transcribe => t.transcribe,
                Task::Translate => t.translate,
            };
            prompt.push(task.ok_or_else(|| EngineError::Input(format!("the model has no {:?} token", opts.task)))?);
        } else {
            language = Some(("en".to_string(), t.sot));
        }
        if !opts.timestamps {
            prompt.push(t.no_timestamps);
        }
        let mut logits = if prompt.len() > 1 {
            self.model.decode(gpu, &prompt[1..], 1, kv, &cross, s)?;
            gpu.read_f32(&s.logits, 0, vocab).await?
        } else {
            first
        };
        let room = t.max_length.min(self.model.cfg.max_target_positions).saturating_sub(prompt.len());
        let max_new = opts.max_new_tokens.or(t.max_new_tokens).unwrap_or(room).min(room);
        let mut sampler =
            Sampler::new(SamplingParams { temperature: opts.temperature, seed: opts.seed, ..Default::default() });
        let mut generated = Vec::new();
        let mut stream = TextStream::default();
        let mut logprob_sum = 0.0f64;
        let mut steps = 0usize;
        let mut top5 = Vec::new();
        loop {
            let top = top_k(&logits, 5);
            top5.push(top.clone());
            self.process(&mut logits, &generated, opts.timestamps);
            let id = sampler.sample(&logits, &[]);
            logprob_sum += log_softmax_at(&logits, id as usize) as f64;
            steps += 1;
            if id == t.eot {
                break;
            }
            let text = if id < t.eot { stream.push(&self.tokenizer, id)?.unwrap_or_default() } else { String::new() };
            on_token(&SpeechToken { id, text, top });
            generated.push(id);
            if generated.len() >= max_new {
                break;
            }
            let past = prompt.len() + generated.len() - 1;
            self.model.decode(gpu, &[id], past, kv, &cross, s)?;
            logits = gpu.read_f32(&s.logits, 0, vocab).await?;
        }
        let avg_logprob = (logprob_sum / steps.max(1) as f64) as f32;
        let skipped =
            opts.no_speech_threshold.is_some_and(|th| no_speech_prob > th && avg_logprob < opts.logprob_threshold);
        Ok((WindowResult { prompt, generated, no_speech_prob, avg_logprob, skipped, top5 }, language))
    }

    /// transformers' `_retrieve_segment`: the segments of a pass's tokens (end of text
    /// removed) and how many frames `seek` moves on.
    fn retrieve_segments(
        &self,
        seq: &[u32],
        time_offset: f64,
        seek_num: usize,
    ) -> Result<(Vec<Segment>, usize), EngineError> {
        let tb = self.tokens.timestamp_begin;
        let is_ts: Vec<bool> = seq.iter().map(|&id| id >= tb).collect();
        let pos = |id: u32| id as f64 - tb as f64;
        let single_ending = is_ts.len() >= 2 && !is_ts[is_ts.len() - 2] && is_ts[is_ts.len() - 1];
        let mut slices: Vec<usize> =
            (0..is_ts.len().saturating_sub(1)).filter(|&i| is_ts[i] && is_ts[i + 1]).map(|i| i + 1).collect();
        let text = |ids: &[u32]| -> Result<String, EngineError> {
            let text_ids: Vec<u32> = ids.iter().copied().filter(|&id| id < self.tokens.eot).collect();
            Ok(self.tokenizer.decode(&text_ids)?)
        };
        let mut out = Vec::new();
        if slices.is_empty() {
            let mut last = (seek_num as f64 * 0.01 / TIME_PRECISION).trunc();
            if let Some(&id) = seq.iter().rev().find(|&&id| id >= tb) {
                if id != tb {
                    last = pos(id);
                }
            }
            let end = time_offset + last * TIME_PRECISION;
            out.push(Segment { start: time_offset, end, text: text(seq)?, tokens: seq.to_vec() });
            return Ok((out, seek_num));
        }
        if single_ending {
            slices.push(seq.len());
        } else if let Some(l) = slices.last_mut() {
            *l += 1;
        }
        let mut last_slice = 0;
        for (i, &cur) in slices.iter().enumerate() {
            let toks = &seq[last_slice..cur];
            let is_last = i == slices.len() - 1;
            let end_at = if !is_last || single_ending { toks.len() - 1 } else { toks.len().saturating_sub(2) };
            out.push(Segment {
                start: time_offset + pos(toks[0]) * TIME_PRECISION,
                end: time_offset + pos(toks[end_at]) * TIME_PRECISION,
                text: text(toks)?,
                tokens: toks.to_vec(),
            });
            last_slice = cur;
        }
        let offset = if single_ending { seek_num } else { (seq[last_slice - 2] - tb) as usize * 2 };
        Ok((out, offset))
    }
}

fn softmax_at(v: &[f32], i: usize) -> f32 {
    log_softmax_at(v, i).exp()
}

fn log_softmax_at(v: &[f32], i: usize) -> f32 {
    let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = m + v.iter().map(|x| (x - m).exp()).sum::<f32>().ln();
    v[i] - lse
}
