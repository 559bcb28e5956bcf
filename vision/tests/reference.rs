//! The preprocessing against transformers' `Qwen2VLImageProcessor` (PIL backend), from
//! `tests/fixtures/vision/reference.json` (made by `make_vision_fixtures.py`).

use std::path::PathBuf;

use qwglm_vision::{decode, from_rgba, patchify, resize, smart_resize, DecodeLimits, PreprocessConfig, VisionError};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vision")
}

#[derive(serde::Deserialize)]
struct Reference {
    configs: std::collections::HashMap<String, RawConfig>,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct RawConfig {
    patch_size: usize,
    merge_size: usize,
    temporal_patch_size: usize,
    size: Size,
    image_mean: [f32; 3],
    image_std: [f32; 3],
}

#[derive(serde::Deserialize)]
struct Size {
    shortest_edge: usize,
    longest_edge: usize,
}

#[derive(serde::Deserialize)]
struct Case {
    case: String,
    config: String,
    image: String,
    source_size: [usize; 2],
    resized: [usize; 2],
    grid_thw: [usize; 3],
    pixels: Option<String>,
    pixels_shape: Option<[usize; 2]>,
}

fn reference() -> Reference {
    serde_json::from_slice(&std::fs::read(dir().join("reference.json")).unwrap()).unwrap()
}

fn config(r: &RawConfig) -> PreprocessConfig {
    PreprocessConfig {
        patch_size: r.patch_size,
        merge_size: r.merge_size,
        temporal_patch_size: r.temporal_patch_size,
        min_pixels: r.size.shortest_edge,
        max_pixels: r.size.longest_edge,
        image_mean: r.image_mean,
        image_std: r.image_std,
    }
}

/// Every format decodes (with its EXIF rotation), and smart_resize picks transformers' size.
#[test]
fn decode_and_smart_resize_match() {
    let r = reference();
    for c in &r.cases {
        let cfg = config(&r.configs[&c.config]);
        let img = decode(&std::fs::read(dir().join(&c.image)).unwrap(), DecodeLimits::default()).unwrap();
        assert_eq!([img.height() as usize, img.width() as usize], c.source_size, "{}: decoded size", c.case);
        let (h, w) =
            smart_resize(img.height() as usize, img.width() as usize, cfg.factor(), cfg.min_pixels, cfg.max_pixels)
                .unwrap();
        assert_eq!([h, w], c.resized, "{}: smart_resize", c.case);
        let p = patchify(&resize(&img, h, w), &cfg).unwrap();
        assert_eq!(p.grid_thw, c.grid_thw, "{}: grid", c.case);
    }
}

/// Our decode + bicubic resize against PIL's, in 8-bit levels. The `image` crate's Catmull-Rom
/// is PIL's bicubic kernel, but PIL works in fixed point and rounds after each pass, and JPEG
/// decoders differ by a level here and there. Measured over the fixtures (Pillow 13, image
/// 0.25.10): mean |Δ| at most 0.49 levels, max 16 at sharp edges; the bounds leave some margin.
#[test]
fn bicubic_resize_is_close_to_pil() {
    let r = reference();
    let mut worst_mean: f64 = 0.0;
    for c in &r.cases {
        let img = decode(&std::fs::read(dir().join(&c.image)).unwrap(), DecodeLimits::default()).unwrap();
        let ours = resize(&img, c.resized[0], c.resized[1]);
        let pil = std::fs::read(dir().join(format!("{}.rgb", c.case))).unwrap();
        assert_eq!(ours.as_raw().len(), pil.len(), "{}", c.case);
        let diffs: Vec<i32> = ours.as_raw().iter().zip(&pil).map(|(a, b)| (*a as i32 - *b as i32).abs()).collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let max = *diffs.iter().max().unwrap();
        eprintln!("{}: mean |Δ| {mean:.3}, max {max}", c.case);
        worst_mean = worst_mean.max(mean);
        assert!(mean <= 0.75 && max <= 24, "{}: mean {mean}, max {max}", c.case);
    }
    eprintln!("worst mean |Δ| over all cases: {worst_mean:.3} levels");
}

/// Rescale, normalisation and the patch layout reproduce `pixel_values` exactly (up to the f16
/// the fixture is stored in) when fed PIL's resized pixels.
#[test]
fn patch_layout_matches_pixel_values() {
    let r = reference();
    let mut checked = 0;
    for c in r.cases.iter().filter(|c| c.pixels.is_some()) {
        let cfg = config(&r.configs[&c.config]);
        let [h, w] = c.resized;
        let pil = std::fs::read(dir().join(format!("{}.rgb", c.case))).unwrap();
        let img = image::RgbImage::from_raw(w as u32, h as u32, pil).unwrap();
        let p = patchify(&img, &cfg).unwrap();
        let raw = std::fs::read(dir().join(c.pixels.as_ref().unwrap())).unwrap();
        let want: Vec<f32> = raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
        let [rows, dim] = c.pixels_shape.unwrap();
        assert_eq!((p.data.len(), p.patch_dim(&cfg)), (rows * dim, dim), "{}", c.case);
        for (i, (a, b)) in p.data.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 2e-3,
                "{}: element {i} (patch {}, offset {}): {a} vs {b}",
                c.case,
                i / dim,
                i % dim
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn smart_resize_edges() {
    // Python rounds ties to even: 70 / 28 = 2.5 → 2.
    assert_eq!(smart_resize(50, 70, 28, 3136, 1 << 30).unwrap(), (56, 56));
    // Over the cap: scaled down, still multiples of the factor.
    let (h, w) = smart_resize(1080, 1920, 32, 65536, 1280 * 720).unwrap();
    assert!(h * w <= 1280 * 720 && h % 32 == 0 && w % 32 == 0, "{h}x{w}");
    // MODELS.md: 1280x720 with Qwen2-VL → 1288x728; with Qwen3-VL → 1280x704.
    assert_eq!(smart_resize(720, 1280, 28, 3136, 12_845_056).unwrap(), (728, 1288));
    assert_eq!(smart_resize(720, 1280, 32, 65536, 16_777_216).unwrap(), (704, 1280));
    assert!(matches!(smart_resize(1, 300, 28, 3136, 1 << 20), Err(VisionError::AspectRatio { .. })));
    assert!(matches!(smart_resize(0, 10, 28, 3136, 1 << 20), Err(VisionError::Empty)));
}

#[test]
fn bad_images_are_clear_errors() {
    assert!(matches!(decode(b"not an image", DecodeLimits::default()), Err(VisionError::Decode(_))));
    let png = std::fs::read(dir().join("gradient_84x56.png")).unwrap();
    assert!(matches!(decode(&png[..png.len() / 2], DecodeLimits::default()), Err(VisionError::Decode(_))));
    assert!(matches!(decode(&png, DecodeLimits { max_pixels: 100 }), Err(VisionError::TooLarge { .. })));
    assert!(matches!(from_rgba(4, 4, vec![0; 10]), Err(VisionError::FrameSize { .. })));
}

#[test]
fn canvas_frames_composite_on_white() {
    // One opaque red pixel, one fully transparent pixel.
    let img = from_rgba(2, 1, vec![255, 0, 0, 255, 0, 0, 0, 0]).unwrap();
    assert_eq!(img.as_raw(), &[255, 0, 0, 255, 255, 255]);
}

#[test]
fn preprocessor_config_json() {
    let j = br#"{"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2,
        "size": {"shortest_edge": 65536, "longest_edge": 16777216}, "image_mean": [0.5,0.5,0.5], "image_std": [0.5,0.5,0.5]}"#;
    assert_eq!(PreprocessConfig::from_json(j, PreprocessConfig::qwen2_vl()).unwrap(), PreprocessConfig::qwen3_vl());
    assert!(PreprocessConfig::from_json(br#"{"patch_size": 0}"#, PreprocessConfig::qwen2_vl()).is_err());
}
