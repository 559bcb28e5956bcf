//! The steps of `Qwen2VLImageProcessor` (transformers `image_processing_qwen2_vl.py`).

use image::{imageops::FilterType, DynamicImage, ImageDecoder, ImageReader, RgbImage, RgbaImage};

use crate::VisionError;

/// The processor's settings (`preprocessor_config.json`).
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    pub patch_size: usize,
    pub merge_size: usize,
    pub temporal_patch_size: usize,
    pub min_pixels: usize,
    pub max_pixels: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
}

impl PreprocessConfig {
    /// Qwen2-VL and Qwen2.5-VL: patch 14, CLIP statistics, the published pixel caps.
    pub fn qwen2_vl() -> Self {
        PreprocessConfig {
            patch_size: 14,
            merge_size: 2,
            temporal_patch_size: 2,
            min_pixels: 3136,
            max_pixels: 12_845_056,
            image_mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            image_std: [0.268_629_54, 0.261_302_6, 0.275_777_1],
        }
    }

    /// Qwen3-VL: patch 16, mean and std 0.5.
    pub fn qwen3_vl() -> Self {
        PreprocessConfig {
            patch_size: 16,
            min_pixels: 65_536,
            max_pixels: 16_777_216,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            ..Self::qwen2_vl()
        }
    }

    /// Reads `preprocessor_config.json` over `defaults` (pixel caps as `min_pixels` /
    /// `max_pixels` or `size: {shortest_edge, longest_edge}`).
    pub fn from_json(bytes: &[u8], defaults: Self) -> Result<Self, VisionError> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| VisionError::Config(e.to_string()))?;
        let int = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
        let three = |k: &str| -> Option<[f32; 3]> {
            let a = v.get(k)?.as_array()?;
            Some([a.first()?.as_f64()? as f32, a.get(1)?.as_f64()? as f32, a.get(2)?.as_f64()? as f32])
        };
        let size = |k: &str| v.get("size").and_then(|s| s.get(k)).and_then(|x| x.as_u64()).map(|x| x as usize);
        let c = PreprocessConfig {
            patch_size: int("patch_size").unwrap_or(defaults.patch_size),
            merge_size: int("merge_size").unwrap_or(defaults.merge_size),
            temporal_patch_size: int("temporal_patch_size").unwrap_or(defaults.temporal_patch_size),
            min_pixels: int("min_pixels").or(size("shortest_edge")).unwrap_or(defaults.min_pixels),
            max_pixels: int("max_pixels").or(size("longest_edge")).unwrap_or(defaults.max_pixels),
            image_mean: three("image_mean").unwrap_or(defaults.image_mean),
            image_std: three("image_std").unwrap_or(defaults.image_std),
        };
        if c.patch_size == 0 || c.merge_size == 0 || c.temporal_patch_size == 0 || c.image_std.contains(&0.0) {
            return Err(VisionError::Config(format!("degenerate settings {c:?}")));
        }
        Ok(c)
    }

    /// Side of the resize grid: patch × merge (28 or 32).
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }
}

/// Caps checked from the image header, before any pixel is decoded.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_pixels: 64 << 20 }
    }
}

/// Decodes PNG, JPEG, WebP or GIF (first frame) bytes to RGB: EXIF orientation applied, alpha
/// composited on white, grayscale and palette images expanded.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<RgbImage, VisionError> {
    let err = |e: image::ImageError| VisionError::Decode(e.to_string());
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| VisionError::Decode(e.to_string()))?;
    let mut decoder = reader.into_decoder().map_err(err)?;
    let (width, height) = decoder.dimensions();
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(VisionError::TooLarge { width, height, max_pixels: limits.max_pixels });
    }
    if width == 0 || height == 0 {
        return Err(VisionError::Empty);
    }
    let orientation = decoder.orientation().map_err(err)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(err)?;
    img.apply_orientation(orientation);
    Ok(over_white(img.to_rgba8()))
}

/// An RGBA frame (a canvas's `ImageData`, a screen capture) as RGB on white.
pub fn from_rgba(width: u32, height: u32, rgba: Vec<u8>) -> Result<RgbImage, VisionError> {
    let expected = width as usize * height as usize * 4;
    if width == 0 || height == 0 {
        return Err(VisionError::Empty);
    }
    let got = rgba.len();
    let img =
        RgbaImage::from_raw(width, height, rgba).ok_or(VisionError::FrameSize { width, height, expected, got })?;
    Ok(over_white(img))
}

/// `Image.alpha_composite(white, image).convert("RGB")`, as transformers' `convert_to_rgb`.
fn over_white(img: RgbaImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut out = RgbImage::new(w, h);
    for (o, p) in out.pixels_mut().zip(img.pixels()) {
        let a = p[3] as u32;
        for c in 0..3 {
            o[c] = ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// The size transformers' `smart_resize` picks: both sides multiples of `factor`, the area
/// within `[min_pixels, max_pixels]`, the aspect ratio kept as closely as possible. Rounding is
/// Python's (ties to even).
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize), VisionError> {
    if height == 0 || width == 0 {
        return Err(VisionError::Empty);
    }
    if height.max(width) as f64 / height.min(width) as f64 > 200.0 {
        return Err(VisionError::AspectRatio { width, height });
    }
    let f = factor as f64;
    let (h, w) = (height as f64, width as f64);
    let mut h_bar = ((h / f).round_ties_even() * f) as usize;
    let mut w_bar = ((w / f).round_ties_even() * f) as usize;
    if h_bar * w_bar > max_pixels {
        let beta = (h * w / max_pixels as f64).sqrt();
        h_bar = factor.max(((h / beta / f).floor() * f) as usize);
        w_bar = factor.max(((w / beta / f).floor() * f) as usize);
    } else if h_bar * w_bar < min_pixels {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = ((h * beta / f).ceil() * f) as usize;
        w_bar = ((w * beta / f).ceil() * f) as usize;
    }
    Ok((h_bar, w_bar))
}

/// Bicubic resampling (Catmull-Rom, a = −0.5, with the support widened when shrinking, as
/// PIL's `BICUBIC` does). Pixel values differ from PIL's by a level or two: see the tests.
pub fn resize(img: &RgbImage, height: usize, width: usize) -> RgbImage {
    if img.height() as usize == height && img.width() as usize == width {
        return img.clone();
    }
    image::imageops::resize(img, width as u32, height as u32, FilterType::CatmullRom)
}

/// Flattened patches of one image and its `(t, h, w)` patch grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Patches {
    /// `[t · h · w, 3 · temporal_patch_size · patch² ]`, each row ordered (channel, frame, y, x).
    pub data: Vec<f32>,
    pub grid_thw: [usize; 3],
}

impl Patches {
    pub fn patch_dim(&self, cfg: &PreprocessConfig) -> usize {
        3 * cfg.temporal_patch_size * cfg.patch_size * cfg.patch_size
    }
}

/// Rescales (÷255), normalises and lays out an image whose sides are multiples of the factor;
/// the still image is repeated over the temporal patch. Patches go in merge-block order: for
/// each 2×2 block of patches (row-major), its four patches, so four consecutive rows form one
/// merged token.
pub fn patchify(img: &RgbImage, cfg: &PreprocessConfig) -> Result<Patches, VisionError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (p, m, t) = (cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size);
    if w == 0 || h == 0 || w % (p * m) != 0 || h % (p * m) != 0 {
        return Err(VisionError::Config(format!("{w}x{h} is not a multiple of {}", p * m)));
    }
    let (gh, gw) = (h / p, w / p);
    let dim = 3 * t * p * p;
    let raw = img.as_raw();
    let norm: Vec<[f32; 3]> = (0..3).map(|c| [1.0 / 255.0, cfg.image_mean[c], cfg.image_std[c]]).collect();
    let mut data = vec![0f32; gh * gw * dim];
    let mut row = 0;
    for by in 0..gh / m {
        for bx in 0..gw / m {
            for my in 0..m {
                for mx in 0..m {
                    let (py, px) = (by * m + my, bx * m + mx);
                    let out = &mut data[row * dim..(row + 1) * dim];
                    for (c, [scale, mean, std]) in norm.iter().enumerate() {
                        for y in 0..p {
                            for x in 0..p {
                                let v = raw[((py * p + y) * w + px * p + x) * 3 + c] as f32;
                                let v = (v * scale - mean) / std;
                                for f in 0..t {
                                    out[((c * t + f) * p + y) * p + x] = v;
                                }
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }
    Ok(Patches { data, grid_thw: [1, gh, gw] })
}

/// `smart_resize`, `resize` and `patchify` in one.
pub fn preprocess(img: &RgbImage, cfg: &PreprocessConfig) -> Result<Patches, VisionError> {
    let (h, w) =
        smart_resize(img.height() as usize, img.width() as usize, cfg.factor(), cfg.min_pixels, cfg.max_pixels)?;
    patchify(&resize(img, h, w), cfg)
}
