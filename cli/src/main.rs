//! `qwglm`: the engine on the command line. `generate` runs a chat turn; `serve` serves the
//! built site and model folders in the Hub's `/resolve/` layout (local use and tests).

mod generate;
mod serve;

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
    /// Serve the built site and local model folders over HTTP.
    Serve(serve::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Serve(a) => serve::run(a),
    };
    if let Err(e) = result {
        // One clear line: the error and its causes.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
