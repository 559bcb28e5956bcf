//! A loaded chat model: weights on the GPU, tokenizer, chat template and generation defaults,
//! with one entry point that streams a reply. Conversation state (the KV cache) lives in a
//! [`Session`] owned by the caller, so a failed or cancelled turn only drops its own state.

use std::rc::Rc;

use serde::Serialize;

use crate::chat::{ChatTemplate, Message, Tokenizer};
use crate::error::{EngineError, LoadError};
use crate::formats::hf_config::{Family, ModelConfig};
use crate::generate::{top_k, Sampler, SamplingParams, StopReason, StopRules, TextStream};
use crate::gpu::{now_ms, Gpu};
use crate::load::{ByteSource, GenerationConfig, ModelFiles};
use crate::models::layers::{LoadProgress, Loader};
use crate::models::qwen_text::{text_positions, KvCache, Scratch, Step, TextModel};

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
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { max_context: 4096, prefill_chunk: 256, quantize: None, weights: None }
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
    pub decode_tokens_per_s: f64,
    pub stop: StopReason,
    pub text: String,
}

/// The per-conversation state: KV cache, activations and the ids the cache holds.
pub struct Session {
    kv: KvCache,
    scratch: Scratch,
    cached: Vec<u32>,
}

pub struct ChatModel {
    gpu: Rc<Gpu>,
    pub config: ModelConfig,
    pub text: TextModel,
    pub tokenizer: Tokenizer,
    template: ChatTemplate,
    pub generation: GenerationConfig,
    options: LoadOptions,
}

impl ChatModel {
    /// Reads the model folder from `src` and streams the text tower's weights to the GPU.
    pub async fn load<S: ByteSource>(
        gpu: Rc<Gpu>,
        src: &S,
        options: LoadOptions,
        progress: &mut dyn FnMut(&LoadProgress),
    ) -> Result<Self, EngineError> {
        let files = ModelFiles::open(src, options.weights.as_deref()).await?;
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
        let names = TextModel::tensor_names(&cfg.text, prefix);
        if let Some(missing) = names.iter().find(|n| !files.tensors.contains(n)) {
            return Err(LoadError::MissingTensor(missing.clone()).into());
        }
        let mut loader = Loader {
            gpu: &gpu,
            src,
            index: &files.tensors,
            bytes_done: 0,
            bytes_total: files.tensors.bytes_of(&names),
            progress,
            quantize: options.quantize,
        };
        let text = TextModel::load(&mut loader, &cfg.text, prefix).await?;
        gpu.check()?;
        let max_context = options.max_context.min(cfg.text.max_position_embeddings).max(1);
        Ok(ChatModel {
            gpu,
            config: files.config,
            text,
            tokenizer,
            template,
            generation: files.generation,
            options: LoadOptions { max_context, ..options },
        })
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
        Ok(Session {
            kv: self.text.new_cache(&self.gpu, self.options.max_context)?,
            scratch: self.text.new_scratch(&self.gpu, self.options.prefill_chunk)?,
            cached: Vec::new(),
        })
    }

    /// The rendered prompt for `messages` with the assistant turn opened, and its ids.
    pub fn prompt(&self, messages: &[Message]) -> Result<(String, Vec<u32>), EngineError> {
        if messages.iter().any(|m| m.content.iter().any(|p| matches!(p, crate::chat::Part::Image {}))) {
            return Err(EngineError::Input("vision not implemented yet: images cannot be sent to the model".into()));
        }
        let text = self.template.render(messages, true)?;
        let ids = self.tokenizer.encode(&text)?;
        Ok((text, ids))
    }

    /// EOS ids: the generation config's, else the tokenizer's `<|im_end|>` and `<|endoftext|>`.
    pub fn eos_ids(&self) -> Vec<u32> {
        if !self.generation.eos_token_id.is_empty() {
            return self.generation.eos_token_id.clone();
        }
        ["<|im_end|>", "<|endoftext|>"].iter().filter_map(|t| self.tokenizer.token_id(t)).collect()
    }

    /// Generates a reply to `prompt` ids, calling `on_token` for every token; it returns
    /// `false` to cancel. The session's cache is reused for the longest common prefix with
    /// what it already holds, so a follow-up turn only prefills the new tokens.
    pub async fn generate(
        &self,
        session: &mut Session,
        prompt: &[u32],
        params: &SamplingParams,
        on_token: &mut dyn FnMut(&TokenEvent) -> bool,
    ) -> Result<GenerationSummary, EngineError> {
        let capacity = session.kv.capacity;
        if prompt.is_empty() {
            return Err(EngineError::Input("empty prompt".into()));
        }
        if prompt.len() >= capacity {
            return Err(EngineError::ContextFull { tokens: prompt.len(), context: capacity });
        }
        let vocab = self.text.cfg.vocab_size;
        let t0 = now_ms();
        // Reuse the cached prefix, but always run at least the last prompt token for logits.
        let common = session.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count().min(prompt.len() - 1);
        session.cached.truncate(common);
        let mut pos = common;
        let chunk = session.scratch.max_tokens;
        while pos < prompt.len() {
            let end = (pos + chunk).min(prompt.len());
            self.append(session, &prompt[pos..end], end == prompt.len())?;
            pos = end;
        }
        let mut logits = self.read_logits(session, vocab).await?;
        let prefill_ms = now_ms() - t0;

        let stop_rules = StopRules {
            eos: self.eos_ids(),
            max_new_tokens: params.max_new_tokens.min(capacity - prompt.len()),
            ignore_eos: params.ignore_eos,
        };
        if stop_rules.max_new_tokens == 0 {
            return Ok(GenerationSummary {
                prompt_tokens: prompt.len(),
                generated_tokens: 0,
                prefill_ms,
                decode_tokens_per_s: 0.0,
                stop: StopReason::Length,
                text: String::new(),
            });
        }
        let mut sampler = Sampler::new(params.clone());
        let mut history = prompt.to_vec();
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
            self.append(session, &[id], true)?;
            logits = self.read_logits(session, vocab).await?;
        };
        if let Some(rest) = stream.finish(&self.tokenizer)? {
            text.push_str(&rest);
            on_token(&TokenEvent { id: u32::MAX, text: rest, top: Vec::new() });
        }
        let decode_s = (now_ms() - t1) / 1000.0;
        Ok(GenerationSummary {
            prompt_tokens: prompt.len(),
            generated_tokens: generated,
            prefill_ms,
            decode_tokens_per_s: if decode_s > 0.0 { generated as f64 / decode_s } else { 0.0 },
            stop,
            text,
        })
    }

    /// Runs `ids` after what the session's cache holds and records them there; on failure the
    /// cache is marked empty, so the next turn prefills from scratch.
    fn append(&self, session: &mut Session, ids: &[u32], logits: bool) -> Result<(), EngineError> {
        let past = session.cached.len();
        let positions = text_positions(past, ids.len());
        let step = Step { ids, positions: &positions, past, logits };
        if let Err(e) = self.text.forward(&self.gpu, &step, &session.kv, &session.scratch) {
            session.cached.clear();
            return Err(e);
        }
        session.cached.extend_from_slice(ids);
        Ok(())
    }

    async fn read_logits(&self, session: &Session, vocab: usize) -> Result<Vec<f32>, EngineError> {
        self.gpu.read_f32(&session.scratch.logits, 0, vocab).await
    }
}
