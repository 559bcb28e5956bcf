//! Element types and host-side tensors. GPU activations are always f32; weights keep the
//! storage type of their file (or are quantized on load) and are widened inside the kernels
//! that read them.

use crate::error::LoadError;

/// Storage type of a weight tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DType {
    F32,
    F16,
    BF16,
    /// ggml Q8_0 (32 values: f16 scale, 32 × i8), repacked to 36 bytes per block.
    Q8_0,
    /// ggml Q4_0 (32 values: f16 scale, 16 bytes of nibbles), repacked to 20 bytes per block.
    Q4_0,
}

/// Values per quantization block of the legacy ggml types.
pub const QK: usize = 32;

impl DType {
    /// Bytes of one value (for the unquantized types).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q8_0 | DType::Q4_0 => 0,
        }
    }

    /// Bytes of a row of `cols` values on the GPU (`cols` a multiple of [`QK`] when quantized).
    pub fn row_bytes(self, cols: usize) -> usize {
        match self {
            DType::Q8_0 => cols / QK * 36,
            DType::Q4_0 => cols / QK * 20,
            d => cols * d.size_bytes(),
        }
    }

    pub fn is_quantized(self) -> bool {
        matches!(self, DType::Q8_0 | DType::Q4_0)
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
        if !to.is_quantized() || cols % QK != 0 || self.dtype.is_quantized() {
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
