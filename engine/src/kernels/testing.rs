//! Test helpers shared by the kernel tests: a device, seeded inputs, weight encoding and a
//! closeness check that names the first failing index.

use std::rc::Rc;

use rand::{Rng, SeedableRng};

use crate::gpu::Gpu;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
use crate::tensor::DType;

/// Runs one async test body natively (pollster) and in the browser (wasm-bindgen-test).
macro_rules! gpu_test {
    ($name:ident, $body:expr) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            pollster::block_on($body)
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            $body.await
        }
    };
}
pub(crate) use gpu_test;

pub async fn gpu() -> Rc<Gpu> {
    match Gpu::new().await {
        Ok(g) => g,
        Err(e) => panic!("kernel tests need a GPU adapter (lavapipe natively): {e}"),
    }
}

/// Values in [-1, 1) from a seeded ChaCha stream.
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

/// The bytes of `w` stored as `dtype` (quantized types: `w.len()` a multiple of the block), and
/// the values those bytes hold (what the GPU sees). K-quants get random blocks instead of `w`.
pub fn encode_weights(w: &[f32], dtype: DType) -> (Vec<u8>, Vec<f32>) {
    match dtype {
        DType::F32 => (bytemuck::cast_slice(w).to_vec(), w.to_vec()),
        DType::F16 => {
            let h: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
            (bytemuck::cast_slice(&h).to_vec(), h.iter().map(|v| v.to_f32()).collect())
        }
        DType::BF16 => {
            let h: Vec<half::bf16> = w.iter().map(|&v| half::bf16::from_f32(v)).collect();
            (bytemuck::cast_slice(&h).to_vec(), h.iter().map(|v| v.to_f32()).collect())
        }
        DType::Q8_0 | DType::Q4_0 => {
            let t = crate::tensor::HostTensor {
                name: "w".into(),
                dtype: DType::F32,
                shape: vec![w.len() / 32, 32],
                data: bytemuck::cast_slice(w).to_vec(),
            };
            let q = t.quantize(dtype).expect("rows of whole blocks");
            let eff = q.to_f32();
            (q.data, eff)
        }
        DType::Q4_K | DType::Q6_K => {
            // No K-quant quantizer here: random blocks (in the engine's layout) with small f16
            // scales, seeded by the size; the reference multiplies what they decode to.
            let n_blocks = w.len() / crate::tensor::QK_K;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(w.len() as u64);
            let (size, scales): (usize, &[usize]) = if dtype == DType::Q4_K { (144, &[0, 2]) } else { (212, &[0]) };
            let mut data: Vec<u8> = (0..n_blocks * size).map(|_| rng.random::<u8>()).collect();
            for b in 0..n_blocks {
                for &o in scales {
                    let d = half::f16::from_f32(rng.random::<f32>() * 0.01 + 1e-3).to_le_bytes();
                    data[b * size + o..b * size + o + 2].copy_from_slice(&d);
                }
            }
            let t =
                crate::tensor::HostTensor { name: "w".into(), dtype, shape: vec![n_blocks, crate::tensor::QK_K], data };
            let eff = t.to_f32();
            (t.data, eff)
        }
    }
}

/// Fails on the first element where `|got − want| > tol · max(1, |want|)`, or on NaN.
pub fn assert_close(got: &[f32], want: &[f32], tol: f32, label: &str) {
    assert_eq!(got.len(), want.len(), "{label}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= tol * w.abs().max(1.0);
        assert!(ok && !g.is_nan(), "{label}: index {i}: got {g}, want {w} (tolerance {tol})");
    }
}
