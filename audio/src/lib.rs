//! Audio for the voice conversation: WAV in and out, resampling to the models' 16 kHz,
//! Whisper's log-mel features, and voice activity (Silero VAD with a turn detector). Pure Rust
//! on slices, no GPU; identical natively and in wasm.
//!
//! Not here yet (see the speech issues): the text front end of speech synthesis.

pub mod mel;
pub mod resample;
pub mod vad;
pub mod wav;

pub use mel::{log_mel, log_mel_padded, MelConfig};
pub use resample::{resample, Resampler};
pub use wav::{read_wav, write_wav, Pcm};

/// The rate every speech recognizer here takes.
pub const SAMPLE_RATE_HZ: u32 = 16_000;

/// Why audio could not be read or converted.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("not a WAV file we can read: {0}")]
    Wav(String),
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    #[error("the recording is empty (no samples)")]
    Empty,
    #[error("resampling from {from_hz} Hz failed: {message}")]
    Resample { from_hz: u32, message: String },
    #[error("{0}")]
    Model(String),
}
