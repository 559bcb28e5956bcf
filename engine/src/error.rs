//! Error types of the engine: [`LoadError`] for files and weights, [`EngineError`] for
//! everything that runs.

use thiserror::Error;

/// A model or file could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{file}: not found")]
    NotFound { file: String },
    #[error("{file}: {message}")]
    Io { file: String, message: String },
    #[error("{file}: invalid JSON: {message}")]
    Json { file: String, message: String },
    #[error("config.json: {0}")]
    Config(String),
    #[error("unsupported architecture {0:?} (expected qwen2_vl, qwen2_5_vl or qwen3_vl)")]
    Architecture(String),
    #[error("{file}: malformed safetensors: {message}")]
    Safetensors { file: String, message: String },
    #[error("{file}: malformed GGUF: {message}")]
    Gguf { file: String, message: String },
    #[error("tensor {0} is missing from the checkpoint")]
    MissingTensor(String),
    #[error("tensor {tensor}: expected shape {expected:?}, found {found:?}")]
    Shape { tensor: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor {tensor}: unsupported dtype {dtype}")]
    DType { tensor: String, dtype: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
}

/// Running a model failed.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("no usable GPU adapter: {0}")]
    NoAdapter(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("kernel {kernel} failed to compile: {message}")]
    Shader { kernel: String, message: String },
    #[error("{what} needs {bytes} bytes, more than the adapter allows ({limit})")]
    TooLarge { what: String, bytes: u64, limit: u64 },
    #[error("{op}: {message}")]
    Op { op: String, message: String },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("prompt of {tokens} tokens does not fit the context of {context} tokens")]
    ContextFull { tokens: usize, context: usize },
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Image(#[from] qwglm_vision::VisionError),
}
