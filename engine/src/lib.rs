//! qwglm's engine: a wgpu runtime with our own WGSL kernels, weight formats, the Qwen-VL model
//! graphs, tokenizer, chat templates and generation. It knows nothing of the UI or the page;
//! the same code runs natively (Vulkan/Metal/DX12) and in a browser worker (WebGPU).

pub mod bench;
pub mod chat;
pub mod cpu;
pub mod error;
pub mod formats;
pub mod generate;
pub mod gpu;
pub mod hub;
#[cfg(target_arch = "wasm32")]
pub mod hub_web;
pub mod kernels;
pub mod load;
pub mod models;
pub mod pipeline;
pub mod prompt;
pub mod speech;
pub mod tensor;

pub use error::{EngineError, LoadError};
pub use gpu::Gpu;
