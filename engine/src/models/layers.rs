//! Building blocks shared by the models: GPU weights (split into row shards that fit the
//! adapter's storage-binding limit), `Linear`, `RmsNorm`, `LayerNorm`, and the weight loader
//! that streams tensors from a [`ByteSource`] one at a time.

use crate::error::{EngineError, LoadError};
use crate::gpu::{Gpu, Recorder};
use crate::kernels::{layer_norm, matmul, norm};
use crate::load::{ByteSource, TensorIndex};
use crate::tensor::{DType, HostTensor};

/// Load progress: bytes of weights uploaded so far, of the total, and the current tensor.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadProgress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub tensor: String,
}

/// Streams named tensors from a checkpoint to the GPU, reporting progress.
pub struct Loader<'a, S: ByteSource> {
    pub gpu: &'a Gpu,
    pub src: &'a S,
    pub index: &'a TensorIndex,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub progress: &'a mut dyn FnMut(&LoadProgress),
    /// Quantize 2-D weights whose rows are whole blocks to this type on load.
    pub quantize: Option<DType>,
}

impl<S: ByteSource> Loader<'_, S> {
    pub async fn tensor(&mut self, name: &str) -> Result<HostTensor, LoadError> {
        let t = self.index.read(self.src, name).await?;
        self.bytes_done += t.data.len() as u64;
        (self.progress)(&LoadProgress {
            bytes_done: self.bytes_done,
            bytes_total: self.bytes_total,
            tensor: name.to_string(),
        });
        Ok(t)
    }

    /// A 2-D weight `[rows, cols]`, kept in its file's storage type or quantized on load. A
    /// tensor `[rows, …]` whose trailing dimensions hold `cols` values (a Conv3d kernel) is
    /// taken as its flattened rows.
    pub async fn weight(&mut self, name: &str, rows: usize, cols: usize) -> Result<Weight, EngineError> {
        let mut t = self.tensor(name).await?;
        if t.shape.len() > 2 && t.shape[0] == rows && t.shape[1..].iter().product::<usize>() == cols {
            t.shape = vec![rows, cols];
        }
        t.expect_shape(&[rows, cols])?;
        Weight::upload(self.gpu, &self.maybe_quantize(t)?)
    }

    fn maybe_quantize(&self, t: HostTensor) -> Result<HostTensor, EngineError> {
        match self.quantize {
            Some(q) if t.shape.last().is_some_and(|c| c % crate::tensor::QK == 0) && !t.dtype.is_quantized() => {
                Ok(t.quantize(q)?)
            }
            _ => Ok(t),
        }
    }

    /// A 1-D f32 vector of `len` (norm weights, biases), widened from any storage type.
    pub async fn vector(&mut self, name: &str, len: usize) -> Result<wgpu::Buffer, EngineError> {
        let t = self.tensor(name).await?;
        t.expect_shape(&[len])?;
        self.gpu.upload(name, bytemuck::cast_slice(&t.to_f32()))
    }
}

/// One row range of a weight, in its own buffer.
pub struct Shard {
    pub buf: wgpu::Buffer,
    pub row_start: usize,
    pub rows: usize,
}

/// A 2-D weight on the GPU, split by rows where it exceeds one storage binding.
pub struct Weight {
    pub shards: Vec<Shard>,
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
}

impl Weight {
    /// Bytes of the weight on the GPU.
    pub fn bytes(&self) -> u64 {
        (self.rows * self.dtype.row_bytes(self.cols)) as u64
    }

    pub fn upload(gpu: &Gpu, t: &HostTensor) -> Result<Self, EngineError> {
        let (rows, cols) = match t.shape[..] {
            [r, c] => (r, c),
            _ => {
                return Err(
                    LoadError::Shape { tensor: t.name.clone(), expected: vec![0, 0], found: t.shape.clone() }.into()
                )
            }
        };
        let row_bytes = t.dtype.row_bytes(cols) as u64;
        let limit = gpu.adapter.max_storage_binding_bytes.min(gpu.adapter.max_buffer_bytes);
        // Even row counts keep every shard of packed 16-bit values word-aligned.
        let per_shard = ((limit / row_bytes.max(1)) as usize / 2 * 2).min(rows.max(1));
        if per_shard == 0 {
            return Err(EngineError::TooLarge { what: format!("one row of {}", t.name), bytes: row_bytes, limit });
        }
        let mut shards = Vec::new();
        let mut start = 0;
        while start < rows {
            let n = per_shard.min(rows - start);
            let bytes = &t.data[start * row_bytes as usize..(start + n) * row_bytes as usize];
            shards.push(Shard { buf: gpu.upload(&t.name, bytes)?, row_start: start, rows: n });
            start += n;
        }
        Ok(Weight { shards, dtype: t.dtype, rows, cols })
    }
}

/// `y = x · Wᵀ + b` (torch.nn.Linear).
pub struct Linear {
    pub weight: Weight,
    pub bias: Option<wgpu::Buffer>,
}

/// Where a Linear writes: element offset and row stride of the output buffer, and whether it
/// adds to what is there (a residual connection).
#[derive(Clone, Copy)]
pub struct OutAt {
    pub offset: usize,
    pub stride: usize,
    pub accumulate: bool,
}

impl OutAt {
    /// Rows of `stride` elements from the start of the buffer, overwritten.
    pub fn rows(stride: usize) -> Self {
        OutAt { offset: 0, stride, accumulate: false }
    }

    /// Rows of `stride` elements added to what the buffer holds.
    pub fn residual(stride: usize) -> Self {
        OutAt { offset: 0, stride, accumulate: true }
    }
}

impl Linear {
    pub async fn load<S: ByteSource>(
        l: &mut Loader<'_, S>,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self, EngineError> {
        let weight = l.weight(&format!("{prefix}.weight"), out_features, in_features).await?;
        let bias = if bias { Some(l.vector(&format!("{prefix}.bias"), out_features).await?) } else { None };
        if bias.is_some() && weight.shards.len() > 1 {
            return Err(EngineError::Op {
                op: prefix.to_string(),
                message: "a biased Linear larger than one storage binding".into(),
            });
        }
        Ok(Linear { weight, bias })
    }

    /// Linears of equal shape `[out_features, in_features]` stacked by rows into one weight
    /// `[parts · out_features, in_features]` (and their biases into one vector), so one
    /// dispatch computes them all.
    pub async fn load_stacked<S: ByteSource>(
        l: &mut Loader<'_, S>,
        prefixes: &[&str],
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self, EngineError> {
        let mut stacked: Option<HostTensor> = None;
        for p in prefixes {
            let t = l.tensor(&format!("{p}.weight")).await?;
            t.expect_shape(&[out_features, in_features])?;
            match &mut stacked {
                None => stacked = Some(t),
                Some(s) if s.dtype == t.dtype => {
                    s.data.extend_from_slice(&t.data);
                    s.shape[0] += out_features;
                }
                Some(s) => {
                    return Err(LoadError::DType {
                        tensor: t.name.clone(),
                        dtype: format!("{:?} beside {:?}", t.dtype, s.dtype),
                    }
                    .into())
                }
            }
        }
        let t = stacked.ok_or_else(|| EngineError::Op { op: "load_stacked".into(), message: "no tensors".into() })?;
        let weight = Weight::upload(l.gpu, &l.maybe_quantize(t)?)?;
        let bias = if bias {
            let mut all = Vec::with_capacity(prefixes.len() * out_features);
            for p in prefixes {
                let b = l.tensor(&format!("{p}.bias")).await?;
                b.expect_shape(&[out_features])?;
                all.extend(b.to_f32());
            }
            if weight.shards.len() > 1 {
                return Err(EngineError::Op {
                    op: prefixes.join("+"),
                    message: "a biased Linear larger than one storage binding".into(),
                });
            }
            Some(l.gpu.upload(&format!("{}.bias", prefixes[0]), bytemuck::cast_slice(&all))?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// # Shapes
    /// `x` `[m, in]` from element `x_offset` → `y[out.offset + row · out.stride + col]`.
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        x: &wgpu::Buffer,
        x_offset: usize,
        m: usize,
        y: &wgpu::Buffer,
        out: OutAt,
    ) -> Result<(), EngineError> {
        self.weight.linear(rec, x, x_offset, m, self.bias.as_ref(), y, out)
    }
}

impl Weight {
    /// This weight as a Linear layer, one dispatch per shard (a tied LM head uses the
    /// embedding table this way).
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &self,
        rec: &mut Recorder<'_>,
        x: &wgpu::Buffer,
        x_offset: usize,
        m: usize,
        bias: Option<&wgpu::Buffer>,
        y: &wgpu::Buffer,
        out: OutAt,
    ) -> Result<(), EngineError> {
        for s in &self.shards {
            matmul::linear(
                rec,
                matmul::Linear {
                    x,
                    x_offset: x_offset as u32,
                    m: m as u32,
                    k: self.cols as u32,
                    w: &s.buf,
                    w_dtype: self.dtype,
                    n: s.rows as u32,
                    bias,
                    y,
                    y_offset: (out.offset + s.row_start) as u32,
                    y_stride: out.stride as u32,
                    accumulate: out.accumulate,
                },
            )?;
        }
        Ok(())
    }
}

/// Qwen2RMSNorm over the last dimension.
pub struct RmsNorm {
    pub weight: wgpu::Buffer,
    pub dim: usize,
    pub eps: f32,
}

impl RmsNorm {
    pub async fn load<S: ByteSource>(
        l: &mut Loader<'_, S>,
        name: &str,
        dim: usize,
        eps: f32,
    ) -> Result<Self, EngineError> {
        Ok(RmsNorm { weight: l.vector(&format!("{name}.weight"), dim).await?, dim, eps })
    }

    /// # Shapes
    /// `x` `[rows, dim]` → `y` `[rows, dim]`.
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        rows: usize,
    ) -> Result<(), EngineError> {
        norm::rms_norm(rec, x, &self.weight, y, rows as u32, self.dim as u32, self.eps)
    }
}

/// torch.nn.LayerNorm over the last dimension, with weight and bias.
pub struct LayerNorm {
    pub weight: wgpu::Buffer,
    pub bias: wgpu::Buffer,
    pub dim: usize,
    pub eps: f32,
}

impl LayerNorm {
    pub async fn load<S: ByteSource>(
        l: &mut Loader<'_, S>,
        name: &str,
        dim: usize,
        eps: f32,
    ) -> Result<Self, EngineError> {
        let weight = l.vector(&format!("{name}.weight"), dim).await?;
        let bias = l.vector(&format!("{name}.bias"), dim).await?;
        Ok(LayerNorm { weight, bias, dim, eps })
    }

    /// # Shapes
    /// `x` `[rows, dim]` → `y` `[rows, dim]`.
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        rows: usize,
    ) -> Result<(), EngineError> {
        layer_norm::layer_norm(rec, x, &self.weight, &self.bias, y, rows as u32, self.dim as u32, self.eps)
    }
}

/// The norm a block uses: LayerNorm (Qwen2-VL, Qwen3-VL vision) or RMSNorm (Qwen2.5-VL vision).
pub enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
}

impl Norm {
    /// Loads `{name}.weight` (and `{name}.bias` for LayerNorm).
    pub async fn load<S: ByteSource>(
        l: &mut Loader<'_, S>,
        name: &str,
        dim: usize,
        eps: f32,
        rms: bool,
    ) -> Result<Self, EngineError> {
        Ok(if rms {
            Norm::Rms(RmsNorm::load(l, name, dim, eps).await?)
        } else {
            Norm::Layer(LayerNorm::load(l, name, dim, eps).await?)
        })
    }

    /// # Shapes
    /// `x` `[rows, dim]` → `y` `[rows, dim]`.
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        rows: usize,
    ) -> Result<(), EngineError> {
        match self {
            Norm::Layer(n) => n.forward(rec, x, y, rows),
            Norm::Rms(n) => n.forward(rec, x, y, rows),
        }
    }
}
