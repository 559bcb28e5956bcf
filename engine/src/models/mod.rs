//! Model graphs: shared layers, the Qwen-VL text and vision towers, and Whisper.

pub mod layers;
pub mod qwen_text;
pub mod qwen_vision;
pub mod whisper;
