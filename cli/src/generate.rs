//! `qwglm generate`: one user message (images first, then text) through the model's chat
//! template, streamed to stdout; `--json` prints one line per token and a summary line.

use std::io::Write;

use anyhow::{bail, Context, Result};
use qwglm_engine::chat::{Message, Part, Role};
use qwglm_engine::generate::SamplingParams;
use qwglm_engine::load::{ByteSource, DirSource, HttpSource};
use qwglm_engine::pipeline::{ChatModel, LoadOptions};
use qwglm_engine::tensor::DType;
use qwglm_engine::Gpu;
use qwglm_vision::DecodeLimits;

/// Largest image decoded, in pixels (a 64-megapixel photo), checked from the header.
const MAX_IMAGE_PIXELS: u64 = 64 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// Model folder, or HTTP base URL in the Hub layout (…/<repo>/resolve/<revision>).
    #[arg(long)]
    model: String,
    /// Image files, placed before the text in the user message.
    #[arg(long)]
    image: Vec<std::path::PathBuf>,
    #[arg(long)]
    prompt: String,
    #[arg(long)]
    system: Option<String>,
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// 0 is greedy; default: the model's generation_config.json.
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long)]
    repetition_penalty: Option<f32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep generating past end-of-sequence tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// One JSON line per token, then a summary line.
    #[arg(long)]
    json: bool,
    /// KV cache length in tokens.
    #[arg(long, default_value_t = 4096)]
    context: usize,
    /// Quantize the weights on load: q8_0 or q4_0.
    #[arg(long)]
    quant: Option<String>,
    /// Weight file in the model folder when not model.safetensors (e.g. model-q4_0.gguf).
    #[arg(long)]
    weights: Option<String>,
    /// A llama.cpp `mmproj` GGUF in the model folder with the vision tower (for a GGUF
    /// text model; config, tokenizer and template come from the GGUFs when the folder has
    /// no Hugging Face files).
    #[arg(long)]
    mmproj: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    for img in &a.image {
        std::fs::metadata(img).with_context(|| format!("--image {}", img.display()))?;
    }
    if a.model.starts_with("http://") || a.model.starts_with("https://") {
        pollster::block_on(generate(&a, HttpSource::new(&a.model)))
    } else {
        let dir = std::path::PathBuf::from(&a.model);
        if !dir.is_dir() {
            bail!("--model {}: no such folder", dir.display());
        }
        pollster::block_on(generate(&a, DirSource(dir)))
    }
}

async fn generate<S: ByteSource>(a: &Args, src: S) -> Result<()> {
    let gpu = Gpu::new().await?;
    let quantize = match a.quant.as_deref() {
        None => None,
        Some(q) => match DType::parse(q) {
            Some(d) if d.is_quantized() => Some(d),
            _ => bail!("--quant {q}: expected q8_0 or q4_0"),
        },
    };
    let options = LoadOptions {
        max_context: a.context,
        quantize,
        weights: a.weights.clone(),
        mmproj: a.mmproj.clone(),
        ..Default::default()
    };
    let model =
        ChatModel::load(gpu, &src, options, &mut |_| {}).await.with_context(|| format!("loading {}", a.model))?;
    let mut params = SamplingParams::from_generation_config(&model.generation);
    if let Some(t) = a.temperature {
        params.temperature = t;
    }
    if let Some(k) = a.top_k {
        params.top_k = k;
    }
    if let Some(p) = a.top_p {
        params.top_p = p;
    }
    if let Some(r) = a.repetition_penalty {
        params.repetition_penalty = r;
    }
    params.seed = a.seed;
    params.max_new_tokens = a.max_new_tokens;
    params.ignore_eos = a.ignore_eos;

    let mut messages = Vec::new();
    if let Some(s) = &a.system {
        messages.push(Message::text(Role::System, s));
    }
    let mut content: Vec<Part> = a.image.iter().map(|_| Part::Image {}).collect();
    content.push(Part::Text { text: a.prompt.clone() });
    messages.push(Message { role: Role::User, content });
    let mut images = Vec::new();
    for path in &a.image {
        let bytes = std::fs::read(path).with_context(|| format!("--image {}", path.display()))?;
        let img = qwglm_vision::decode(&bytes, DecodeLimits { max_pixels: MAX_IMAGE_PIXELS })
            .with_context(|| format!("--image {}", path.display()))?;
        images.push(model.prepare_image(&img, None).with_context(|| format!("--image {}", path.display()))?);
    }
    let prompt = model.prompt(&messages, &images)?;

    let mut session = model.new_session()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_err = None;
    let summary = model
        .generate(&mut session, &prompt, &params, &mut |ev| {
            let r = if a.json {
                if ev.id == u32::MAX {
                    // Held-back text flushed at the end belongs to the last token's line.
                    Ok(())
                } else {
                    let top: Vec<(u32, f32)> = ev.top.clone();
                    writeln!(out, "{}", serde_json::json!({"id": ev.id, "text": ev.text, "top": top}))
                }
            } else {
                write!(out, "{}", ev.text).and_then(|_| out.flush())
            };
            if let Err(e) = r {
                write_err = Some(e);
                return false;
            }
            true
        })
        .await?;
    if let Some(e) = write_err {
        return Err(e).context("writing to stdout");
    }
    if a.json {
        let line = serde_json::json!({
            "done": true,
            "prompt_tokens": summary.prompt_tokens,
            "generated_tokens": summary.generated_tokens,
            "prefill_ms": summary.prefill_ms,
            "vision_ms": summary.vision_ms,
            "decode_tokens_per_s": summary.decode_tokens_per_s,
            "stop": summary.stop,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(out)?;
        eprintln!(
            "[{} prompt tokens, prefill {:.1} ms; {} tokens at {:.1} tokens/s; stop: {:?}]",
            summary.prompt_tokens,
            summary.prefill_ms,
            summary.generated_tokens,
            summary.decode_tokens_per_s,
            summary.stop
        );
    }
    Ok(())
}
