//! `qwglm`: the engine on the command line. `generate` runs a chat turn; `transcribe` turns a
//! recording into text; `bench` measures
//! speed on real shapes; `serve` serves the
//! built site and model folders in the Hub's `/resolve/` layout (local use and tests).

mod bench;
mod generate;
mod serve;
mod transcribe;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "qwglm", version, about = "Private multimodal assistant engine (Qwen-VL on wgpu)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a reply to one user message.
    Generate(generate::Args),
    /// Transcribe (or translate) a recording with a Whisper model.
    Transcribe(transcribe::Args),
    /// Measure load, prefill and decode speed on real shapes with synthetic weights.
    Bench(bench::Args),
    /// Serve the built site and local model folders over HTTP.
    Serve(serve::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Transcribe(a) => transcribe::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Bench(a) => bench::run(a),
    };
    if let Err(e) = result {
        // One clear line: the error and its causes.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
