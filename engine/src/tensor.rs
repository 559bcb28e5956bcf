//! Element types and host-side tensors. GPU activations are always f32; weights keep the
//! storage type of their file and are widened inside the kernels that read them.

use crate::error::LoadError;

/// Storage type of a weight tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DType {
    F32,
    F16,
    BF16,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
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
}

/// A tensor in host memory, as read from a weight file: raw little-endian bytes.
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

    /// The values widened to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&self.data),
            DType::F16 => self.data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            DType::BF16 => {
                self.data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            }
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
}
