//! Audio for the voice conversation: WAV, resampling, log-mel features, voice activity and the
//! text-to-speech front end. Pure Rust, no GPU.
//!
//! Not implemented yet: the voice issue fills this crate. It exists now so the workspace has
//! its final shape and the crate-boundary test covers it.
