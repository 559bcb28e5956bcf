//! Building blocks shared by the models: GPU weights (split into row shards that fit the
//! adapter's storage-binding limit), `Linear`, `RmsNorm`, `LayerNorm`, the KV cache, and the weight loader
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
    /// File bytes read per chunk while a weight streams in ([`CHUNK_BYTES`] by default).
    pub chunk_bytes: u64,
    /// Bytes queued for the GPU since the last flush.
    pub written: u64,
}

/// File bytes read per chunk while a weight streams to the GPU by default: with the converted
/// copy, the bound on the host memory the loader holds at once.
pub const CHUNK_BYTES: u64 = 16 << 20;

/// Bytes of queued writes after which the loader waits for the GPU to take them, so staging
/// copies do not pile up over a multi-gigabyte load.
const FLUSH_BYTES: u64 = 256 << 20;

impl<S: ByteSource> Loader<'_, S> {
    pub async fn tensor(&mut self, name: &str) -> Result<HostTensor, LoadError> {
        let t = self.index.read(self.src, name).await?;
        self.bytes_done += t.data.len() as u64;
        self.report(name);
        Ok(t)
    }

    fn report(&mut self, tensor: &str) {
        (self.progress)(&LoadProgress {
            bytes_done: self.bytes_done,
            bytes_total: self.bytes_total,
            tensor: tensor.to_string(),
        });
    }

    /// A 2-D weight `[rows, cols]`, kept in its file's storage type or quantized on load. A
    /// tensor `[rows, …]` whose trailing dimensions hold `cols` values (a Conv3d kernel) is
    /// taken as its flattened rows.
    pub async fn weight(&mut self, name: &str, rows: usize, cols: usize) -> Result<Weight, EngineError> {
        self.stacked_weight(&[name], rows, cols).await
    }

    /// Weights of equal shape `[rows, cols]` stacked by rows into one GPU weight, streamed in
    /// chunks of at most `chunk_bytes` of file bytes: each chunk is read, repacked or
    /// quantized, and written into the shard buffers before the next is read, so host memory
    /// never holds more than one chunk (twice, while it is converted), whatever the tensor's
    /// size.
    pub async fn stacked_weight(&mut self, names: &[&str], rows: usize, cols: usize) -> Result<Weight, EngineError> {
        let mut dtype = None;
        for name in names {
            let (d, shape) = self.index.info(name)?;
            if shape.first() != Some(&rows) || shape[1..].iter().product::<usize>() != cols {
                return Err(
                    LoadError::Shape { tensor: name.to_string(), expected: vec![rows, cols], found: shape }.into()
                );
            }
            match dtype {
                None => dtype = Some(d),
                Some(first) if first != d => {
                    return Err(
                        LoadError::DType { tensor: name.to_string(), dtype: format!("{d:?} beside {first:?}") }.into()
                    )
                }
                _ => {}
            }
        }
        let dtype = dtype.ok_or_else(|| EngineError::Op { op: "weight".into(), message: "no tensors".into() })?;
        let target = match self.quantize {
            Some(q) if cols.is_multiple_of(crate::tensor::QK) && !dtype.is_quantized() => q,
            _ => dtype,
        };
        let weight = Weight::alloc(self.gpu, names[0], target, rows * names.len(), cols)?;
        let row_bytes = target.row_bytes(cols);
        if names.len() > 1 && !(rows * row_bytes).is_multiple_of(4) {
            return Err(EngineError::Op {
                op: names.join("+"),
                message: format!("cannot stack {rows} rows of {row_bytes} bytes at word-aligned offsets"),
            });
        }
        for (k, name) in names.iter().enumerate() {
            let file_row = self.index.file_row_bytes(name)?.max(1);
            // An even number of rows per chunk keeps packed 16-bit rows word-aligned; a row
            // longer than a chunk goes alone when it is whole words.
            let fit = (self.chunk_bytes / file_row) as usize;
            let step = if fit >= 2 {
                fit / 2 * 2
            } else if row_bytes.is_multiple_of(4) {
                1
            } else {
                2
            };
            let mut r = 0;
            while r < rows {
                let n = step.min(rows - r);
                let mut t = self.index.read_rows(self.src, name, r, n).await?;
                t.shape = vec![n, cols];
                self.bytes_done += n as u64 * file_row;
                let t = self.maybe_quantize(t)?;
                weight.write_rows(self.gpu, k * rows + r, &t.data);
                self.written += t.data.len() as u64;
                if self.written >= FLUSH_BYTES {
                    self.gpu.flush_writes()?;
                    self.written = 0;
                }
                self.report(name);
                r += n;
            }
        }
        Ok(weight)
    }

    fn maybe_quantize(&self, t: HostTensor) -> Result<HostTensor, EngineError> {
        match self.quantize {
            Some(q) if t.shape.last().is_some_and(|c| c % crate::tensor::QK == 0) && !t.dtype.is_quantized() => {
                Ok(t.quantize(q)?)
            }
            _ => Ok(t),
        }
    }

    /// A small table `[rows, cols]` as f32 (position embeddings), widened from any storage type.
    pub async fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<wgpu::Buffer, EngineError> {
        let t = self.tensor(name).await?;
        t.expect_shape(&[rows, cols])?;
        self.gpu.upload(name, bytemuck::cast_slice(&t.to_f32()))
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

    /// Zeroed shard buffers for `rows × cols` values of `dtype`, each within one storage
    /// binding.
    pub fn alloc(gpu: &Gpu, label: &str, dtype: DType, rows: usize, cols: usize) -> Result<Self, EngineError> {
        let row_bytes = dtype.row_bytes(cols) as u64;
        let limit = gpu.adapter.max_storage_binding_bytes.min(gpu.adapter.max_buffer_bytes);
        // Even row counts keep every shard of packed 16-bit values word-aligned.
        let per_shard = ((limit / row_bytes.max(1)) as usize / 2 * 2).min(rows.max(1));
        if per_shard == 0 {
            return Err(EngineError::TooLarge { what: format!("one row of {label}"), bytes: row_bytes, limit });
        }
        let mut shards = Vec::new();
        let mut start = 0;
        while start < rows {
            let n = per_shard.min(rows - start);
            shards.push(Shard { buf: gpu.buffer(label, n as u64 * row_bytes)?, row_start: start, rows: n });
            start += n;
        }
        Ok(Weight { shards, dtype, rows, cols })
    }

    /// Writes whole rows from row `start` (in this weight's storage layout), across shards.
    pub fn write_rows(&self, gpu: &Gpu, start: usize, data: &[u8]) {
        let row_bytes = self.dtype.row_bytes(self.cols);
        let end = start + data.len() / row_bytes.max(1);
        for s in &self.shards {
            let (a, b) = (start.max(s.row_start), end.min(s.row_start + s.rows));
            if a < b {
                let bytes = &data[(a - start) * row_bytes..(b - start) * row_bytes];
                gpu.write(&s.buf, ((a - s.row_start) * row_bytes) as u64, bytes);
            }
        }
    }

    /// A weight from a tensor in memory (tests and benches).
    pub fn upload(gpu: &Gpu, t: &HostTensor) -> Result<Self, EngineError> {
        let [rows, cols] = t.shape[..] else {
            return Err(
                LoadError::Shape { tensor: t.name.clone(), expected: vec![0, 0], found: t.shape.clone() }.into()
            );
        };
        let w = Self::alloc(gpu, &t.name, t.dtype, rows, cols)?;
        w.write_rows(gpu, 0, &t.data);
        Ok(w)
    }
}

/// `y = x · Wᵀ + b` (torch.nn.Linear).
pub struct Linear {
    pub weight: Weight,
    /// The bias cut like the weight: one buffer per shard (none without a bias).
    pub bias: Vec<wgpu::Buffer>,
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
        let bias = if bias { Some(l.tensor(&format!("{prefix}.bias")).await?) } else { None };
        Self::new(l.gpu, weight, bias.map(|b| b.expect_shape(&[out_features]).map(|_| b.to_f32())).transpose()?)
    }

    /// The layer with `bias` (of all output rows) cut per weight shard.
    fn new(gpu: &Gpu, weight: Weight, bias: Option<Vec<f32>>) -> Result<Self, EngineError> {
        let bias = match bias {
            Some(b) => weight
                .shards
                .iter()
                .map(|s| gpu.upload("bias", bytemuck::cast_slice(&b[s.row_start..s.row_start + s.rows])))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
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
        let names: Vec<String> = prefixes.iter().map(|p| format!("{p}.weight")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let weight = l.stacked_weight(&names, out_features, in_features).await?;
        let bias = if bias {
            let mut all = Vec::with_capacity(prefixes.len() * out_features);
            for p in prefixes {
                let b = l.tensor(&format!("{p}.bias")).await?;
                b.expect_shape(&[out_features])?;
                all.extend(b.to_f32());
            }
            Some(all)
        } else {
            None
        };
        Self::new(l.gpu, weight, bias)
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
        self.weight.linear(rec, x, x_offset, m, &self.bias, y, out)
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
        bias: &[wgpu::Buffer],
        y: &wgpu::Buffer,
        out: OutAt,
    ) -> Result<(), EngineError> {
        for (i, s) in self.shards.iter().enumerate() {
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
                    bias: bias.get(i),
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

/// Keys and values of every attention layer for one conversation or utterance.
///
/// # Shapes
/// each of `k[layer]`, `v[layer]`: `[capacity, kv_dim]` f32 (`kv_dim` = kv_heads · head_dim).
pub struct KvCache {
    pub k: Vec<wgpu::Buffer>,
    pub v: Vec<wgpu::Buffer>,
    pub capacity: usize,
}

impl KvCache {
    pub fn new(gpu: &Gpu, layers: usize, capacity: usize, kv_dim: usize) -> Result<Self, EngineError> {
        let bytes = (capacity * kv_dim * 4) as u64;
        let mut k = Vec::with_capacity(layers);
        let mut v = Vec::with_capacity(layers);
        for _ in 0..layers {
            k.push(gpu.buffer("kv.k", bytes)?);
            v.push(gpu.buffer("kv.v", bytes)?);
        }
        Ok(KvCache { k, v, capacity })
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
