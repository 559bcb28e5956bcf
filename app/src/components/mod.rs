//! UI components, one per file.

pub mod composer;
pub mod message_list;
pub mod model_bar;
pub mod screen_share;
pub mod settings;
pub mod storage;
pub mod voice;
