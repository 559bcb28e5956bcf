//! Image and screen-frame preprocessing for the Qwen-VL vision towers, as transformers'
//! `Qwen2VLImageProcessor` does it: decode (PNG, JPEG, WebP, GIF's first frame, or raw RGBA
//! from a canvas), EXIF orientation, alpha composited on white, `smart_resize` to multiples of
//! patch × merge within the pixel caps, bicubic resampling, rescale and normalise, and the
//! flattened patch layout with `grid_thw`. Pure functions on bytes and slices: no GPU, the same
//! natively and in wasm.

mod preprocess;

pub use image::{Rgb, RgbImage};
pub use preprocess::{
    decode, from_rgba, patchify, preprocess, resize, smart_resize, DecodeLimits, Patches, PreprocessConfig,
};

/// Why an image could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("cannot decode the image: {0}")]
    Decode(String),
    #[error("image of {width}x{height} is larger than the {max_pixels}-pixel limit")]
    TooLarge { width: u32, height: u32, max_pixels: u64 },
    #[error("image of {width}x{height} has an aspect ratio above 200")]
    AspectRatio { width: usize, height: usize },
    #[error("image has no pixels")]
    Empty,
    #[error("frame of {width}x{height} needs {expected} RGBA bytes, got {got}")]
    FrameSize { width: u32, height: u32, expected: usize, got: usize },
    #[error("preprocessor_config.json: {0}")]
    Config(String),
}
