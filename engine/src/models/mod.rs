//! Model graphs: shared layers and the Qwen-VL text and vision towers.

pub mod layers;
pub mod qwen_text;
pub mod qwen_vision;
