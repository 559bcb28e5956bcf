//! `qwglm transcribe`: a WAV file (any rate, any channel count) through a Whisper model.
//! Plain output is the text; `--json` prints one line per generated token `{"id", "text"}`
//! and then `{"done": true, "text", "language", "segments", "audio_s", "elapsed_ms", "rtf"}`.

use std::io::Write;

use anyhow::{bail, Context, Result};
use qwglm_engine::load::{ByteSource, DirSource, HttpSource};
use qwglm_engine::speech::{Recognizer, SpeechLoadOptions, Task, TranscribeOptions};
use qwglm_engine::tensor::DType;
use qwglm_engine::Gpu;

#[derive(clap::Args)]
pub struct Args {
    /// Whisper folder (Hugging Face or faster-whisper/CTranslate2 layout), or its HTTP base URL
    /// in the Hub layout (…/<repo>/resolve/<revision>).
    #[arg(long)]
    model: String,
    /// A WAV file: 8/16/24/32-bit integer or 32-bit float PCM, any rate and channel count.
    #[arg(long)]
    audio: std::path::PathBuf,
    /// Language code (en, de, …); detected when not given (multilingual models).
    #[arg(long)]
    language: Option<String>,
    #[arg(long, value_enum, default_value = "transcribe")]
    task: TaskArg,
    /// Segments with start and end times.
    #[arg(long)]
    timestamps: bool,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Skip a window whose no-speech probability exceeds this while its average
    /// log-probability is below -1 (a negative value keeps every window).
    #[arg(long, default_value_t = 0.6)]
    no_speech_threshold: f32,
    /// Quantize the weights on load: q8_0 or q4_0.
    #[arg(long)]
    quant: Option<String>,
    /// One JSON line per token, then a summary line.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TaskArg {
    Transcribe,
    Translate,
}

pub fn run(a: Args) -> Result<()> {
    let file = std::fs::File::open(&a.audio).with_context(|| format!("--audio {}", a.audio.display()))?;
    let pcm = qwglm_audio::read_wav(std::io::BufReader::new(file))
        .with_context(|| format!("--audio {}", a.audio.display()))?;
    let samples = qwglm_audio::resample(&pcm.samples, pcm.sample_rate_hz, qwglm_audio::SAMPLE_RATE_HZ)?;
    if a.model.starts_with("http://") || a.model.starts_with("https://") {
        pollster::block_on(transcribe(&a, HttpSource::new(&a.model), &samples))
    } else {
        let dir = std::path::PathBuf::from(&a.model);
        if !dir.is_dir() {
            bail!("--model {}: no such folder", dir.display());
        }
        pollster::block_on(transcribe(&a, DirSource(dir), &samples))
    }
}

async fn transcribe<S: ByteSource>(a: &Args, src: S, samples: &[f32]) -> Result<()> {
    let quantize = match a.quant.as_deref() {
        None => None,
        Some(q) => match DType::parse(q) {
            Some(d @ (DType::Q8_0 | DType::Q4_0)) => Some(d),
            _ => bail!("--quant {q}: expected q8_0 or q4_0"),
        },
    };
    let gpu = Gpu::new().await?;
    let rec = Recognizer::load(gpu, &src, SpeechLoadOptions { quantize, ..Default::default() }, &mut |_| {}).await?;
    let opts = TranscribeOptions {
        language: a.language.clone(),
        task: match a.task {
            TaskArg::Transcribe => Task::Transcribe,
            TaskArg::Translate => Task::Translate,
        },
        timestamps: a.timestamps,
        temperature: a.temperature,
        seed: a.seed,
        no_speech_threshold: (a.no_speech_threshold >= 0.0).then_some(a.no_speech_threshold),
        ..Default::default()
    };
    let start = qwglm_engine::gpu::now_ms();
    let mut out = std::io::stdout().lock();
    let json = a.json;
    let t = rec
        .transcribe(samples, &opts, &mut |tok| {
            if json {
                let line = serde_json::json!({ "id": tok.id, "text": tok.text });
                let _ = writeln!(out, "{line}");
            }
        })
        .await?;
    let elapsed_ms = qwglm_engine::gpu::now_ms() - start;
    if json {
        let segments: Vec<_> =
            t.segments.iter().map(|s| serde_json::json!({ "start": s.start, "end": s.end, "text": s.text })).collect();
        let line = serde_json::json!({
            "done": true,
            "text": t.text,
            "language": t.language,
            "segments": segments,
            "audio_s": t.audio_s,
            "elapsed_ms": elapsed_ms,
            "rtf": elapsed_ms / 1000.0 / t.audio_s.max(1e-9),
        });
        writeln!(out, "{line}")?;
    } else if a.timestamps {
        for s in &t.segments {
            writeln!(out, "[{:.2} → {:.2}] {}", s.start, s.end, s.text.trim())?;
        }
    } else {
        writeln!(out, "{}", t.text)?;
    }
    Ok(())
}
