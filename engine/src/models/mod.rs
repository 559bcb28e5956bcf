//! Model graphs: shared layers and the Qwen-VL text towers.

pub mod layers;
pub mod qwen_text;
