//! Messages between the page and the engine worker, as JSON strings over `postMessage`.
//! Every [`Request`] is answered by exactly one [`Event::Done`] or [`Event::Error`] with its id,
//! with any number of `Progress` or `Token` events before it. The worker announces itself with
//! one `Started` event once it listens; a module worker drops messages that arrive earlier.

use qwglm_engine::chat::Message;
use qwglm_engine::generate::SamplingParams;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Request {
    /// Load a model from a base URL in the Hub's layout (`…/<repo>/resolve/<revision>`).
    Load { id: u64, base_url: String, max_context: usize },
    /// Answer the last user message of `messages`; `params` overrides the model defaults.
    Chat { id: u64, messages: Vec<Message>, params: Option<SamplingParams> },
    /// Stop request `target` (a running chat).
    Cancel { id: u64, target: u64 },
    /// Drop the model and free its GPU memory.
    Unload { id: u64 },
}

impl Request {
    pub fn id(&self) -> u64 {
        match self {
            Request::Load { id, .. }
            | Request::Chat { id, .. }
            | Request::Cancel { id, .. }
            | Request::Unload { id } => *id,
        }
    }
}

/// What a loaded model reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub family: String,
    pub adapter: String,
    pub layers: usize,
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub max_context: usize,
    pub defaults: SamplingParams,
}

/// Numbers of a finished turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    pub decode_tokens_per_s: f64,
    pub stop: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// The worker's handler is installed; requests sent before this are queued by the page.
    Started,
    Progress {
        id: u64,
        bytes_done: u64,
        bytes_total: u64,
        tensor: String,
    },
    Token {
        id: u64,
        text: String,
    },
    Done {
        id: u64,
        model: Option<ModelInfo>,
        stats: Option<TurnStats>,
    },
    Error {
        id: u64,
        kind: ErrorKind,
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// WebGPU is missing or no adapter/device could be had.
    NoGpu,
    /// The model could not be loaded (network, format, size).
    Load,
    /// The turn failed; the conversation is intact.
    Generate,
    /// The request was malformed or came at the wrong time.
    Request,
}
