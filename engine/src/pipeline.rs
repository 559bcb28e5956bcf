//! A loaded chat model: weights on the GPU, tokenizer, chat template and generation defaults,
//! with one entry point that streams a reply. Conversation state (the KV cache) lives in a
//! [`Session`] owned by the caller, so a failed or cancelled turn only drops its own state.

use std::rc::Rc;

use serde::Serialize;

use qwglm_vision::{PreprocessConfig, RgbImage};

use crate::chat::{ChatTemplate, Message, Tokenizer};
use crate::error::{EngineError, LoadError};
use crate::formats::hf_config::{Family, ModelConfig};
use crate::generate::{top_k, Sampler, SamplingParams, StopReason, StopRules, TextStream};
use crate::gpu::{now_ms, Gpu};
use crate::load::{ByteSource, GenerationConfig, ModelFiles};
use crate::models::layers::KvCache;
use crate::models::layers::{LoadProgress, Loader, CHUNK_BYTES};
use crate::models::qwen_text::{Scratch, Step, StepVision, TextModel};
use crate::models::qwen_vision::{VisionInput, VisionModel, VisionOutput};
use crate::prompt::{ImageInput, Prompt};

/// Load-time choices.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// KV cache length in tokens (capped by the model's `max_position_embeddings`).
    pub max_context: usize,
    /// Largest prefill chunk; bounds the activation buffers.
    pub prefill_chunk: usize,
    /// Quantize the weights to Q8_0 or Q4_0 on load.
    pub quantize: Option<crate::tensor::DType>,
    /// The weight file, when not `model.safetensors` or its index (e.g. a `.gguf`).
    pub weights: Option<String>,
    /// A llama.cpp `mmproj` GGUF with the vision tower.
    pub mmproj: Option<String>,
    /// File bytes read at a time while weights stream to the GPU: the bound on the host
    /// memory loading holds (twice this, while a chunk is converted).
    pub chunk_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_context: 4096,
            prefill_chunk: 256,
            quantize: None,
            weights: None,
            mmproj: None,
            chunk_bytes: CHUNK_BYTES,
        }
    }
}

/// One generated token as it streams out.
#[derive(Clone, Debug, Serialize)]
pub struct TokenEvent {
    pub id: u32,
    /// New text this token completes (empty while a character is still partial).
    pub text: String,
    /// The five highest raw logits of this step.
    pub top: Vec<(u32, f32)>,
}

/// How a generation went.
#[derive(Clone, Debug, Serialize)]
pub struct GenerationSummary {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    /// Milliseconds of the vision tower within the prefill (0 without new images).
    pub vision_ms: f64,
    pub decode_tokens_per_s: f64,
    pub stop: StopReason,
    pub text: String,
}

/// The vision tower's output for a prompt, and per prompt token the output row that replaces
/// its embedding.
type EncodedImages = (VisionOutput, Vec<Option<u32>>);

/// The per-conversation state: KV cache, activations, the keys of the tokens the cache holds
/// (`Prompt::keys`) and the M-RoPE position of the next token.
pub struct Session {
    kv: KvCache,
    scratch: Scratch,
    cached: Vec<u64>,
    next_position: i32,
    /// GPU bytes of its KV cache and scratch buffers.
    pub gpu_bytes: u64,
}

pub struct ChatModel {
    gpu: Rc<Gpu>,
    pub config: ModelConfig,
    pub text: TextModel,
    /// `None` for a text-only checkpoint.
    pub vision: Option<VisionModel>,
    /// How images are resized and laid out for the vision tower.
    pub preprocess: PreprocessConfig,
    pub tokenizer: Tokenizer,
    template: ChatTemplate,
    pub generation: GenerationConfig,
    options: LoadOptions,
    /// GPU bytes of the weights and tables the load created.
    pub gpu_bytes: u64,
}

impl ChatModel {
    /// Reads the model folder from `src` and streams the text tower's weights to the GPU.
    pub async fn load<S: ByteSource>(
        gpu: Rc<Gpu>,
        src: &S,
        options: LoadOptions,
        progress: &mut dyn FnMut(&LoadProgress),
    ) -> Result<Self, EngineError> {
        let allocated_before = gpu.allocated_bytes();
        let files = ModelFiles::open(src, options.weights.as_deref(), options.mmproj.as_deref()).await?;
        let tokenizer = Tokenizer::from_bytes(&files.tokenizer_json)?;
        let template = ChatTemplate::new(&files.chat_template)?;
        let cfg = &files.config;
        // Qwen3-VL and transformers 5 checkpoints nest the text tower under
        // `model.language_model.`; the Qwen2/2.5-VL checkpoints on the Hub use `model.`.
        let prefix = if files.tensors.contains("model.language_model.embed_tokens.weight") {
            "model.language_model."
        } else {
            "model."
        };
        let max_context = options.max_context.min(cfg.text.max_position_embeddings).max(1);
        TextModel::check_limits(&cfg.text, &gpu, max_context, options.prefill_chunk)?;
        let mut names = TextModel::tensor_names(&cfg.text, prefix);
        if let Some(missing) = names.iter().find(|n| !files.tensors.contains(n)) {
            return Err(LoadError::MissingTensor(missing.clone()).into());
        }
        // The vision tower, when the checkpoint has one (a text-only GGUF has not).
        let vision_prefix =
            if files.tensors.contains("model.visual.patch_embed.proj.weight") { "model.visual." } else { "visual." };
        let vision_cfg =
            cfg.vision.as_ref().filter(|_| files.tensors.contains(&format!("{vision_prefix}patch_embed.proj.weight")));
        if let Some(v) = vision_cfg {
            let split = VisionModel::split_qkv(&files.tensors, vision_prefix);
            let vision_names = VisionModel::tensor_names(v, vision_prefix, split);
            if let Some(missing) = vision_names.iter().find(|n| !files.tensors.contains(n)) {
                return Err(LoadError::MissingTensor(missing.clone()).into());
            }
            names.extend(vision_names);
        }
        let mut loader = Loader {
            gpu: &gpu,
            src,
            index: &files.tensors,
            bytes_done: 0,
            bytes_total: files.tensors.bytes_of(&names),
            progress,
            quantize: options.quantize,
            chunk_bytes: options.chunk_bytes.max(1),
            written: 0,
        };
        let text = TextModel::load(&mut loader, &cfg.text, prefix).await?;
        let vision = match vision_cfg {
            Some(v) => Some(VisionModel::load(&mut loader, v, vision_prefix).await?),
            None => None,
        };
        gpu.check()?;
        let gpu_bytes = gpu.allocated_bytes() - allocated_before;
        Ok(ChatModel {
            gpu_bytes,
            gpu,
            config: files.config,
            text,
            vision,
            preprocess: files.preprocess,
            tokenizer,
            template,
            generation: files.generation,
            options: LoadOptions { max_context, ..options },
        })
    }

    /// The device the model lives on.
    pub fn gpu(&self) -> &Rc<Gpu> {
        &self.gpu
    }

    pub fn family(&self) -> Family {
        self.config.family
    }

    /// The KV cache length of a session in tokens: the asked context, capped by the model's.
    pub fn max_context(&self) -> usize {
        self.options.max_context
    }

    /// A fresh conversation state sized from the context length.
    pub fn new_session(&self) -> Result<Session, EngineError> {
        let before = self.gpu.allocated_bytes();
        let kv = self.text.new_cache(&self.gpu, self.options.max_context)?;
        let scratch = self.text.new_scratch(&self.gpu, self.options.prefill_chunk)?;
        Ok(Session {
            kv,
            scratch,
            cached: Vec::new(),
            next_position: 0,
            gpu_bytes: self.gpu.allocated_bytes() - before,
        })
    }

    /// The vision tower, or the error a text-only checkpoint gives for images.
    fn vision_tower(&self) -> Result<&VisionModel, EngineError> {
        self.vision
            .as_ref()
            .ok_or_else(|| EngineError::Input("this model has no vision tower, so it cannot read images".into()))
    }

    /// Resizes, normalises and lays out an image for this model's vision tower. `max_pixels`
    /// lowers the processor's own cap (the app's pixel budget for screen frames).
    pub fn prepare_image(&self, image: &RgbImage, max_pixels: Option<usize>) -> Result<ImageInput, EngineError> {
        self.vision_tower()?;
        let mut cfg = self.preprocess.clone();
        if let Some(m) = max_pixels {
            cfg.max_pixels = cfg.max_pixels.min(m).max(cfg.min_pixels);
        }
        let p = qwglm_vision::preprocess(image, &cfg)?;
        Ok(ImageInput::new(p.data, p.grid_thw))
    }

    /// The rendered prompt for `messages` with the assistant turn opened. `images` are the
    /// pictures of the messages' image parts, in order.
    pub fn prompt(&self, messages: &[Message], images: &[ImageInput]) -> Result<Prompt, EngineError> {
        let text = self.template.render(messages, true)?;
        let ids = self.tokenizer.encode(&text)?;
        if !images.is_empty() {
            self.vision_tower()?;
        }
        let merge = self.vision.as_ref().map_or(2, |v| v.cfg.spatial_merge_size);
        Prompt::build(text, &ids, self.config.image_token_id, images, merge)
    }

    /// EOS ids: the generation config's, else the tokenizer's `<|im_end|>` and `<|endoftext|>`.
    pub fn eos_ids(&self) -> Vec<u32> {
        if !self.generation.eos_token_id.is_empty() {
            return self.generation.eos_token_id.clone();
        }
        ["<|im_end|>", "<|endoftext|>"].iter().filter_map(|t| self.tokenizer.token_id(t)).collect()
    }

    /// Generates a reply to `prompt`, calling `on_token` for every token; it returns `false`
    /// to cancel. The session's cache is reused for the longest common prefix with what it
    /// already holds (same tokens, same images), so a follow-up turn only prefills the new
    /// tokens and only new images go through the vision tower.
    pub async fn generate(
        &self,
        session: &mut Session,
        prompt: &Prompt,
        params: &SamplingParams,
        on_token: &mut dyn FnMut(&TokenEvent) -> bool,
    ) -> Result<GenerationSummary, EngineError> {
        let capacity = session.kv.capacity;
        let n = prompt.ids.len();
        if n == 0 {
            return Err(EngineError::Input("empty prompt".into()));
        }
        if n >= capacity {
            return Err(EngineError::ContextFull { tokens: n, context: capacity });
        }
        let vocab = self.text.cfg.vocab_size;
        let t0 = now_ms();
        // Reuse the cached prefix, but always run at least the last prompt token for logits.
        let common = session.cached.iter().zip(&prompt.keys).take_while(|(a, b)| a == b).count().min(n - 1);
        session.cached.truncate(common);
        let vision = self.encode_images(prompt, common)?;
        let vision_ms = now_ms() - t0;
        let mut pos = common;
        let chunk = session.scratch.max_tokens;
        while pos < n {
            let end = (pos + chunk).min(n);
            let map = vision.as_ref().map(|(out, rows)| {
                let map: Vec<u32> =
                    (pos..end).filter_map(|p| rows[p].map(|r| [(p - pos) as u32, r])).flatten().collect();
                (out, map)
            });
            let step_vision =
                map.as_ref().map(|(out, map)| StepVision { embeds: &out.embeds, deepstack: &out.deepstack, map });
            let positions = prompt.positions_of(pos, end);
            self.append(session, &prompt.ids[pos..end], &prompt.keys[pos..end], &positions, step_vision, end == n)?;
            pos = end;
        }
        session.next_position = prompt.next_position();
        let mut logits = self.read_logits(session, vocab).await?;
        let prefill_ms = now_ms() - t0;

        let stop_rules = StopRules {
            eos: self.eos_ids(),
            max_new_tokens: params.max_new_tokens.min(capacity - n),
            ignore_eos: params.ignore_eos,
        };
        if stop_rules.max_new_tokens == 0 {
            return Ok(GenerationSummary {
                prompt_tokens: n,
                generated_tokens: 0,
                prefill_ms,
                vision_ms,
                decode_tokens_per_s: 0.0,
                stop: StopReason::Length,
                text: String::new(),
            });
        }
        let mut sampler = Sampler::new(params.clone());
        let mut history = prompt.ids.clone();
        let mut stream = TextStream::default();
        let mut text = String::new();
        let mut generated = 0;
        let t1 = now_ms();
        let stop = loop {
            let id = sampler.sample(&logits, &history);
            generated += 1;
            history.push(id);
            let delta = stream.push(&self.tokenizer, id)?.unwrap_or_default();
            text.push_str(&delta);
            let event = TokenEvent { id, text: delta, top: top_k(&logits, 5) };
            let keep_going = on_token(&event);
            if let Some(reason) = stop_rules.check(id, generated) {
                break reason;
            }
            if !keep_going {
                break StopReason::Cancelled;
            }
            let p = session.next_position;
            self.append(session, &[id], &[id as u64], &[p, p, p], None, true)?;
            session.next_position += 1;
            logits = self.read_logits(session, vocab).await?;
        };
        if let Some(rest) = stream.finish(&self.tokenizer)? {
            text.push_str(&rest);
            on_token(&TokenEvent { id: u32::MAX, text: rest, top: Vec::new() });
        }
        let decode_s = (now_ms() - t1) / 1000.0;
        Ok(GenerationSummary {
            prompt_tokens: n,
            generated_tokens: generated,
            prefill_ms,
            vision_ms,
            decode_tokens_per_s: if decode_s > 0.0 { generated as f64 / decode_s } else { 0.0 },
            stop,
            text,
        })
    }

    /// Runs the vision tower on the prompt's images that reach past the cached prefix `from`,
    /// all in one forward; returns its output and, per prompt token, the output row that
    /// replaces its embedding.
    fn encode_images(&self, prompt: &Prompt, from: usize) -> Result<Option<EncodedImages>, EngineError> {
        let todo: Vec<_> = prompt.images.iter().filter(|im| im.start + im.tokens > from).collect();
        if todo.is_empty() {
            return Ok(None);
        }
        let vision = self.vision_tower()?;
        let patches: Vec<f32> = todo.iter().flat_map(|im| im.input.patches.iter().copied()).collect();
        let grids: Vec<[usize; 3]> = todo.iter().map(|im| im.input.grid_thw).collect();
        let out = vision.forward(&self.gpu, &VisionInput { patches: &patches, grids: &grids })?;
        // Merged token u of the concatenation belongs to image j at its (u − first_j)-th pad.
        let mut token_of_unit = Vec::with_capacity(out.tokens);
        for im in &todo {
            token_of_unit.extend(im.start..im.start + im.tokens);
        }
        let mut rows = vec![None; prompt.ids.len()];
        for (r, &u) in out.unit_of_row.iter().enumerate() {
            rows[token_of_unit[u as usize]] = Some(r as u32);
        }
        Ok(Some((out, rows)))
    }

    /// Runs `ids` after what the session's cache holds and records their `keys` there; on
    /// failure the cache is marked empty, so the next turn prefills from scratch.
    fn append(
        &self,
        session: &mut Session,
        ids: &[u32],
        keys: &[u64],
        positions: &[i32],
        vision: Option<StepVision<'_>>,
        logits: bool,
    ) -> Result<(), EngineError> {
        let past = session.cached.len();
        let step = Step { ids, positions, past, logits, vision };
        if let Err(e) = self.text.forward(&self.gpu, &step, &session.kv, &session.scratch) {
            session.cached.clear();
            return Err(e);
        }
        session.cached.extend_from_slice(keys);
        Ok(())
    }

    async fn read_logits(&self, session: &Session, vocab: usize) -> Result<Vec<f32>, EngineError> {
        self.gpu.read_f32(&session.scratch.logits, 0, vocab).await
    }
}
