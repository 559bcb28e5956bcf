//! Weight and config file formats: safetensors, GGUF and CTranslate2 headers, Hugging Face
//! configs.

pub mod ctranslate2;
pub mod gguf;
pub mod gguf_model;
pub mod hf_config;
pub mod safetensors;
pub mod whisper;
