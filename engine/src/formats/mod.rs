//! Weight and config file formats: safetensors headers and Hugging Face configs.

pub mod hf_config;
pub mod safetensors;
