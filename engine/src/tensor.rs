//! Element types and host-side tensors. GPU activations are always f32; weights keep the
//! storage type of their file (or are quantized on load) and are widened inside the kernels
//! that read them.

use crate::error::LoadError;

/// Storage type of a weight tensor (quantized names as in ggml).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[allow(non_camel_case_types)]
pub enum DType {
    F32,
    F16,
    BF16,
    /// ggml Q8_0 (32 values: f16 scale, 32 × i8), repacked to 36 bytes per block.
    Q8_0,
    /// ggml Q4_0 (32 values: f16 scale, 16 bytes of nibbles), repacked to 20 bytes per block.
    Q4_0,
    /// ggml Q4_K (256 values in ggml's 144-byte block, already word-aligned).
    Q4_K,
    /// ggml Q6_K (256 values), repacked from 210 to 212 bytes per block (scale first).
    Q6_K,
}

/// Values per K-quant super-block.
pub const QK_K: usize = 256;

/// Values per quantization block of the legacy ggml types.
pub const QK: usize = 32;

impl DType {
    /// Bytes of one value (for the unquantized types).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q8_0 | DType::Q4_0 | DType::Q4_K | DType::Q6_K => 0,
        }
    }

    /// Values per block (1 for the plain types).
    pub fn block_len(self) -> usize {
        match self {
            DType::Q8_0 | DType::Q4_0 => QK,
            DType::Q4_K | DType::Q6_K => QK_K,
            _ => 1,
        }
    }

    /// Bytes of a row of `cols` values on the GPU (`cols` a multiple of [`QK`] when quantized).
    pub fn row_bytes(self, cols: usize) -> usize {
        match self {
            DType::Q8_0 => cols / QK * 36,
            DType::Q4_0 => cols / QK * 20,
            DType::Q4_K => cols / QK_K * 144,
            DType::Q6_K => cols / QK_K * 212,
            d => cols * d.size_bytes(),
        }
    }

    pub fn is_quantized(self) -> bool {
        matches!(self, DType::Q8_0 | DType::Q4_0 | DType::Q4_K | DType::Q6_K)
    }

    /// The safetensors name of the type (`"F32"`, `"F16"`, `"BF16"`).
    pub fn from_safetensors(name: &str) -> Option<Self> {
        match name {
            "F32" => Some(DType::F32),
            "F16" => Some(DType::F16),
            "BF16" => Some(DType::BF16),
            _ => None,
        }
    }

    /// `f16`, `bf16`, `f32`, `q8_0`, `q4_0`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "f32" => Some(DType::F32),
            "f16" => Some(DType::F16),
            "bf16" => Some(DType::BF16),
            "q8_0" => Some(DType::Q8_0),
            "q4_0" => Some(DType::Q4_0),
            "q4_k" => Some(DType::Q4_K),
            "q6_k" => Some(DType::Q6_K),
            _ => None,
        }
    }
}

/// A tensor in host memory: raw little-endian bytes, for the quantized types in the repacked
/// GPU layout.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl HostTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values widened to f32 (dequantized for the quantized types).
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&self.data),
            DType::F16 => self.data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            DType::BF16 => {
                self.data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            }
            DType::Q8_0 => self
                .data
                .chunks_exact(36)
                .flat_map(|b| {
                    let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                    b[4..36].iter().map(move |q| d * (*q as i8) as f32)
                })
                .collect(),
            DType::Q4_0 => self
                .data
                .chunks_exact(20)
                .flat_map(|b| {
                    let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                    let qs = &b[4..20];
                    let lo = qs.iter().map(move |q| d * ((q & 15) as f32 - 8.0));
                    let hi = qs.iter().map(move |q| d * ((q >> 4) as f32 - 8.0));
                    lo.chain(hi).collect::<Vec<_>>()
                })
                .collect(),
            DType::Q4_K => self.data.chunks_exact(144).flat_map(dequantize_q4_k).collect(),
            DType::Q6_K => self.data.chunks_exact(212).flat_map(dequantize_q6_k).collect(),
        }
    }

    /// Fails unless the shape is exactly `want`.
    pub fn expect_shape(&self, want: &[usize]) -> Result<(), LoadError> {
        if self.shape != want {
            return Err(LoadError::Shape {
                tensor: self.name.clone(),
                expected: want.to_vec(),
                found: self.shape.clone(),
            });
        }
        Ok(())
    }

    /// This tensor quantized to `to` (Q8_0 or Q4_0) with ggml's reference rounding
    /// (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`), in the repacked GPU layout.
    /// The last dimension must be a multiple of [`QK`].
    pub fn quantize(&self, to: DType) -> Result<HostTensor, LoadError> {
        let cols = *self.shape.last().unwrap_or(&0);
        if !matches!(to, DType::Q8_0 | DType::Q4_0) || !cols.is_multiple_of(QK) || self.dtype.is_quantized() {
            return Err(LoadError::DType {
                tensor: self.name.clone(),
                dtype: format!("{:?} to {to:?} with rows of {cols}", self.dtype),
            });
        }
        let x = self.to_f32();
        let mut data = Vec::with_capacity(to.row_bytes(x.len()));
        for block in x.chunks_exact(QK) {
            match to {
                DType::Q8_0 => {
                    let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let d = amax / 127.0;
                    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                    data.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
                    data.extend_from_slice(&[0, 0]);
                    data.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
                }
                _ => {
                    // The value of largest magnitude, with its sign, maps to −8.
                    let max = block.iter().fold(0f32, |m, v| if v.abs() > m.abs() { *v } else { m });
                    let d = max / -8.0;
                    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                    data.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
                    data.extend_from_slice(&[0, 0]);
                    let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
                    data.extend((0..QK / 2).map(|j| q(block[j]) | (q(block[j + QK / 2]) << 4)));
                }
            }
        }
        Ok(HostTensor { name: self.name.clone(), dtype: to, shape: self.shape.clone(), data })
    }
}

/// One Q4_K block (ggml layout) to its 256 values (`dequantize_row_q4_K`).
pub fn dequantize_q4_k(b: &[u8]) -> Vec<f32> {
    let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    let dmin = half::f16::from_le_bytes([b[2], b[3]]).to_f32();
    let q = &b[4..16];
    let scale_min = |j: usize| -> (f32, f32) {
        if j < 4 {
            ((q[j] & 63) as f32, (q[j + 4] & 63) as f32)
        } else {
            (((q[j + 4] & 15) | ((q[j - 4] >> 6) << 4)) as f32, ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as f32)
        }
    };
    let qs = &b[16..144];
    let mut y = Vec::with_capacity(256);
    for c in 0..4 {
        let (s1, m1) = scale_min(2 * c);
        let (s2, m2) = scale_min(2 * c + 1);
        y.extend(qs[32 * c..32 * c + 32].iter().map(|v| d * s1 * (v & 15) as f32 - dmin * m1));
        y.extend(qs[32 * c..32 * c + 32].iter().map(|v| d * s2 * (v >> 4) as f32 - dmin * m2));
    }
    y
}

/// One Q6_K block (the engine's 212-byte layout: d, ql, qh, scales) to its 256 values
/// (`dequantize_row_q6_K`).
pub fn dequantize_q6_k(b: &[u8]) -> Vec<f32> {
    let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    let (ql, qh, sc) = (&b[4..132], &b[132..196], &b[196..212]);
    let mut y = vec![0f32; 256];
    for n in 0..2 {
        let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 15) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            for (k, q) in [q1, q2, q3, q4].into_iter().enumerate() {
                y[128 * n + 32 * k + l] = d * (sc[is + 2 * k] as i8) as f32 * q as f32;
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(x: &[f32]) -> HostTensor {
        HostTensor {
            name: "t".into(),
            dtype: DType::F32,
            shape: vec![x.len() / 32, 32],
            data: bytemuck::cast_slice(x).to_vec(),
        }
    }

    #[test]
    fn quantize_round_trips_within_half_a_step() {
        let x: Vec<f32> = (0..128).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        for (to, steps) in [(DType::Q8_0, 127.0), (DType::Q4_0, 8.0)] {
            let q = tensor(&x).quantize(to).unwrap();
            assert_eq!(q.data.len(), to.row_bytes(128));
            let y = q.to_f32();
            for (b, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
                let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
                let step = amax / steps;
                for (a, c) in xs.iter().zip(ys) {
                    // Half a step, plus the f16 rounding of the scale at the extreme levels. Q4_0's
                    // levels are −8…7: values of the sign opposite to the block's extreme clip at
                    // 7 steps, up to a whole step away.
                    let clipped = to == DType::Q4_0 && a.abs() > 7.0 * step;
                    let bound = if clipped { step } else { step * 0.5 } + amax * 8e-3;
                    assert!((a - c).abs() <= bound, "{to:?} block {b}: {a} → {c}");
                }
            }
        }
    }

    /// Our K-quant dequantizers against the `gguf` package's on random blocks.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn k_quants_dequantize_like_gguf() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/kquants");
        for (name, dtype) in [("q4_k", DType::Q4_K), ("q6_k", DType::Q6_K)] {
            let raw = std::fs::read(dir.join(format!("{name}.blocks"))).unwrap();
            let want: Vec<f32> = bytemuck::pod_collect_to_vec(&std::fs::read(dir.join(format!("{name}.f32"))).unwrap());
            let data = crate::formats::gguf::repack_blocks(dtype, &raw);
            let t = HostTensor { name: name.into(), dtype, shape: vec![want.len() / QK_K, QK_K], data };
            let got = t.to_f32();
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{name} value {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn quantize_matches_ggml_on_known_values() {
        // Q8_0 of 0, 1/127, …: d = 31/127 · …, each value lands on its own integer.
        let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
        let q = tensor(&x).quantize(DType::Q8_0).unwrap();
        assert_eq!(&q.data[4..8], &[0, 4, 8, 12]);
        // Q4_0: max = 31 → d = −31/8; x = 0 → q = 8, x = 31 → q = 0.
        let q = tensor(&x).quantize(DType::Q4_0).unwrap();
        assert_eq!(q.data[4] & 15, 8);
        assert_eq!(q.data[4 + 15] >> 4, 0);
        assert!(tensor(&x[..31].iter().chain([0.0].iter()).copied().collect::<Vec<_>>()).quantize(DType::F16).is_err());
    }
}
