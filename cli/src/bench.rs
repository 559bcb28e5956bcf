//! `qwglm bench`: load, prefill and decode speed on real model shapes with synthetic weights,
//! against the read bandwidth measured in the same run.

use anyhow::{bail, Result};
use qwglm_engine::bench::{self, BenchOptions};
use qwglm_engine::tensor::DType;
use qwglm_engine::Gpu;

#[derive(clap::Args)]
pub struct Args {
    /// Model shape: qwen3-vl-2b, qwen3-vl-4b, qwen2-vl-2b, qwen2.5-vl-3b, or a speech
    /// recognizer: whisper-tiny, whisper-base, whisper-small, whisper-large-v3-turbo.
    #[arg(long, default_value = "qwen3-vl-2b")]
    synthetic: String,
    /// Weight type: f16, bf16, f32 (a safetensors checkpoint) or q8_0, q4_0, q4_k, q6_k (a GGUF
    /// checkpoint of that type).
    #[arg(long, default_value = "f16")]
    quant: String,
    /// Prompt lengths to time (repeatable).
    #[arg(long = "prefill-tokens", default_values_t = [512usize, 2048])]
    prefill_tokens: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    decode_tokens: usize,
    /// Tokens already in the KV cache while decoding.
    #[arg(long, default_value_t = 1024)]
    context: usize,
    /// Largest prefill chunk per forward step.
    #[arg(long, default_value_t = 512)]
    prefill_chunk: usize,
    /// End with one JSON line of the figures.
    #[arg(long)]
    json: bool,
    /// Image sizes for the vision-tower timing, WIDTHxHEIGHT (repeatable).
    #[arg(long = "vision-size", default_values_t = ["448x448".to_string(), "1280x720".to_string()])]
    vision_sizes: Vec<String>,
    /// Skip the vision tower.
    #[arg(long)]
    no_vision: bool,
    /// Skip the text tower (load, prefill, decode).
    #[arg(long)]
    vision_only: bool,
}

pub fn run(a: Args) -> Result<()> {
    let Some(dtype) = DType::parse(&a.quant) else {
        bail!("--quant {}: expected f16, bf16, f32, q8_0, q4_0, q4_k or q6_k", a.quant)
    };
    if a.prefill_chunk == 0 || a.decode_tokens == 0 {
        bail!("--prefill-chunk and --decode-tokens must be at least 1");
    }
    let opts = BenchOptions {
        model: a.synthetic.clone(),
        dtype,
        prefill_tokens: a.prefill_tokens.clone(),
        decode_tokens: a.decode_tokens,
        context: a.context,
        prefill_chunk: a.prefill_chunk,
    };
    let mut sizes = Vec::new();
    for s in &a.vision_sizes {
        match s.split_once('x').map(|(w, h)| (w.parse::<u32>(), h.parse::<u32>())) {
            Some((Ok(w), Ok(h))) if w > 0 && h > 0 => sizes.push((w, h)),
            _ => bail!("--vision-size {s}: expected WIDTHxHEIGHT"),
        }
    }
    if a.no_vision {
        sizes.clear();
    }
    if a.synthetic.starts_with("whisper") {
        return speech(&a, dtype);
    }
    bench::preset_config(&a.synthetic)?;
    pollster::block_on(async {
        let gpu = Gpu::new().await?;
        eprintln!("adapter: {} ({})", gpu.adapter.name, gpu.adapter.backend);
        let vision = if sizes.is_empty() {
            Vec::new()
        } else {
            bench::run_vision(&gpu, &a.synthetic, dtype, &sizes, 3, &mut |msg| eprintln!("… {msg}")).await?
        };
        for v in &vision {
            let [t, h, w] = v.grid_thw;
            println!(
                "vision {:>4}x{:<4}  {:.1} ms per image ({} tokens, grid {t}x{h}x{w})",
                v.width, v.height, v.ms_per_image, v.tokens
            );
        }
        if a.vision_only {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"model": a.synthetic, "adapter": gpu.adapter.name, "vision": vision})
                );
            }
            return Ok(());
        }
        let r = bench::run(&gpu, &opts, &mut |msg| eprintln!("… {msg}")).await?;
        println!("model            {} ({}, {:.2} GB synthetic checkpoint)", r.model, r.quant, r.checkpoint_gb);
        println!("load             {:.2} s", r.load_s);
        for (n, tps) in &r.prefill {
            println!("prefill {n:>6}   {tps:.1} tokens/s");
        }
        println!("decode @ {:>5}   {:.1} tokens/s", r.decode_context, r.decode_tokens_per_s);
        println!("read bandwidth   {:.1} GB/s", r.read_bandwidth_gb_s);
        println!("bytes per token  {:.1} MB (weights + KV)", r.bytes_per_token as f64 / 1e6);
        println!("roofline ratio   {:.3}", r.roofline_ratio);
        println!("decode kernels, one at a time:");
        for (what, us, gbs) in &r.kernels {
            println!("  {what:<36} {us:>9.1} µs  {gbs:>8.1} GB/s");
        }
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "model": r.model, "quant": r.quant, "adapter": r.adapter,
                    "prefill_tokens_per_s": r.prefill_tokens_per_s,
                    "decode_tokens_per_s": r.decode_tokens_per_s,
                    "read_bandwidth_gb_s": r.read_bandwidth_gb_s,
                    "roofline_ratio": r.roofline_ratio,
                    "load_s": r.load_s, "prefill": r.prefill, "decode_context": r.decode_context,
                    "kernels": r.kernels, "vision": vision,
                })
            );
        }
        Ok(())
    })
}

/// A speech-recognizer shape: encoder per 30 s window, decoder steps, real-time factor.
fn speech(a: &Args, dtype: DType) -> Result<()> {
    // The shape is checked before the GPU opens, so a bad name is one error line.
    bench::whisper_config(&a.synthetic)?;
    pollster::block_on(async {
        let gpu = Gpu::new().await?;
        eprintln!("adapter: {} ({})", gpu.adapter.name, gpu.adapter.backend);
        let r =
            bench::run_speech(&gpu, &a.synthetic, dtype, a.decode_tokens, 3, &mut |msg| eprintln!("… {msg}")).await?;
        println!("model            {} ({}, {:.2} GB synthetic checkpoint)", r.model, r.quant, r.checkpoint_gb);
        println!("load             {:.2} s", r.load_s);
        println!("encode 30 s      {:.1} ms per window", r.encode_ms);
        println!("decode           {:.1} tokens/s", r.decode_tokens_per_s);
        println!("real-time factor {:.4} (encode + {} tokens per 30 s window)", r.rtf, bench::TOKENS_PER_WINDOW);
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        }
        Ok(())
    })
}
