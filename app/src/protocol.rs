//! Messages between the page and the engine worker. A request travels as an object
//! `{json, buffers}`: the [`Request`] as JSON and, for a chat with pictures, one `Uint8Array`
//! per [`ImageRef`] (for microphone audio, one of f32 samples) moved as a transferable (pixels
//! and samples never go through JSON). Events come back as JSON strings. Every [`Request`] but
//! [`Request::Audio`] is answered by exactly one [`Event::Done`] or [`Event::Error`] with its
//! id, with any number of `Progress`, `Token` or `Partial` events before it; an `Audio` chunk
//! is answered only when it fails. The worker holds one model per [`ModelRole`], all on one
//! GPU device. It announces itself with one `Started` event once it listens; a module worker
//! drops messages that arrive earlier.

use qwglm_engine::chat::Message;
use qwglm_engine::generate::SamplingParams;
pub use qwglm_engine::hub::{DownloadProgress, Repo, StoredModel};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Request {
    /// Load the model of a role: from the Hub into the browser's model cache and from there
    /// to the GPU, or straight from a base URL. The role's previous model is dropped first.
    Load {
        id: u64,
        #[serde(default)]
        role: ModelRole,
        source: ModelSource,
        max_context: usize,
    },
    /// List the models in the browser's cache.
    Storage { id: u64 },
    /// Delete a cached model.
    DeleteStored { id: u64, repo: Repo },
    /// Answer the last user message of `messages`; `params` overrides the model defaults.
    /// `images` are the pictures of the messages' image parts in order, their bytes in the
    /// request's buffers; `max_pixels` caps their resized size.
    Chat {
        id: u64,
        messages: Vec<Message>,
        #[serde(default)]
        images: Vec<ImageRef>,
        max_pixels: Option<usize>,
        params: Option<SamplingParams>,
    },
    /// Stop request `target` (a running chat or a listening turn, whose audio is dropped).
    Cancel { id: u64, target: u64 },
    /// Drop the model of a role and free its GPU memory.
    Unload {
        id: u64,
        #[serde(default)]
        role: ModelRole,
    },
    /// Start a spoken turn for the speech recognizer: [`Request::Audio`] chunks at
    /// `sample_rate` follow, `Partial` events give the text so far (when `partial`), and
    /// [`Request::EndTurn`] makes it answer with the final transcript.
    Listen { id: u64, sample_rate: u32, language: Option<String>, partial: bool },
    /// Samples for listening turn `target`: the request's one buffer holds mono f32
    /// little-endian samples at the turn's rate.
    Audio { id: u64, target: u64 },
    /// The speaker is done: turn `target` transcribes everything it heard and finishes.
    EndTurn { id: u64, target: u64 },
}

/// What a loaded model is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelRole {
    #[default]
    Chat,
    /// Speech recognition.
    Speech,
}

/// Where a model comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum ModelSource {
    /// A Hub repository, downloaded into the origin-private file system (resumable, verified)
    /// and loaded from there; `gguf` picks the GGUF of that quantization tag (with the
    /// repository's mmproj), else the safetensors weights, quantized on load to `quantize`.
    Hub { repo: Repo, gguf: Option<String>, quantize: Option<String> },
    /// A base URL in the Hub's layout (`…/<repo>/resolve/<revision>`), streamed by range with
    /// no cache.
    Url { base_url: String },
}

impl Request {
    pub fn id(&self) -> u64 {
        match self {
            Request::Storage { id } | Request::DeleteStored { id, .. } => *id,
            Request::Load { id, .. }
            | Request::Chat { id, .. }
            | Request::Cancel { id, .. }
            | Request::Unload { id, .. }
            | Request::Listen { id, .. }
            | Request::Audio { id, .. }
            | Request::EndTurn { id, .. } => *id,
        }
    }
}

/// One picture of a conversation: a key the page gave it (equal key, equal picture) and, for
/// a raw RGBA frame from a canvas, its size (else the bytes are an image file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRef {
    pub key: u64,
    pub rgba: Option<(u32, u32)>,
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
    /// Whether the model has a vision tower (images can be sent).
    #[serde(default)]
    pub vision: bool,
    pub defaults: SamplingParams,
}

/// What a loaded speech recognizer reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeechInfo {
    /// `Whisper` and its size (`d_model`, layers).
    pub family: String,
    /// Whether it takes languages other than English (and translates).
    pub multilingual: bool,
    pub adapter: String,
}

/// The final text of a spoken turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnTranscript {
    pub text: String,
    pub language: Option<String>,
    /// Seconds of audio heard.
    pub audio_s: f64,
    /// Time the final transcription took after the end of the turn.
    pub elapsed_ms: f64,
}

/// GPU memory held by the worker's models (weights, caches and working buffers) in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuMemory {
    pub chat: u64,
    pub speech: u64,
}

/// Numbers of a finished turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    #[serde(default)]
    pub vision_ms: f64,
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
    /// Download progress of a Hub model.
    Download {
        id: u64,
        progress: DownloadProgress,
    },
    /// The cached models, and the origin's storage use and quota in bytes.
    Stored {
        id: u64,
        models: Vec<StoredModel>,
        usage: Option<f64>,
        quota: Option<f64>,
    },
    Token {
        id: u64,
        text: String,
    },
    /// The whole text heard so far in listening turn `id` (replaces the previous one).
    Partial {
        id: u64,
        text: String,
    },
    /// Voice activity in listening turn `id`: speech began, or it ended and the hangover of
    /// silence after it passed (the page may end the turn).
    Voice {
        id: u64,
        speaking: bool,
    },
    Done {
        id: u64,
        #[serde(flatten)]
        outcome: Outcome,
    },
    Error {
        id: u64,
        kind: ErrorKind,
        message: String,
    },
}

/// What a finished request reports, by kind of request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// A loaded chat model.
    #[serde(default)]
    pub model: Option<ModelInfo>,
    /// A finished chat turn.
    #[serde(default)]
    pub stats: Option<TurnStats>,
    /// A loaded speech recognizer.
    #[serde(default)]
    pub speech: Option<SpeechInfo>,
    /// A finished spoken turn (`None` when it was cancelled).
    #[serde(default)]
    pub transcript: Option<TurnTranscript>,
    /// After a load or unload, and after a spoken turn: what the models hold now.
    #[serde(default)]
    pub memory: Option<GpuMemory>,
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
