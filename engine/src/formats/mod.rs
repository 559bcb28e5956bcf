//! Weight and config file formats: safetensors and GGUF headers, Hugging Face configs.

pub mod gguf;
pub mod gguf_model;
pub mod hf_config;
pub mod safetensors;
