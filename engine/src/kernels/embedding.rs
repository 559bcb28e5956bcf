//! Launcher for `embedding.wgsl`: row gather from an embedding table (or one row shard of it).

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::{grid, Recorder};
use crate::tensor::DType;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub dim: u32,
    pub row_start: u32,
    pub rows: u32,
}

/// Writes `y[t] = table[ids[t] - row_start]` for the ids this shard holds.
///
/// # Shapes
/// `ids` `[tokens]` u32; `table` `[rows, dim]` of `dtype`; `y` `[tokens, dim]` f32.
#[allow(clippy::too_many_arguments)]
pub fn embedding(
    rec: &mut Recorder<'_>,
    ids: &wgpu::Buffer,
    tokens: u32,
    table: &wgpu::Buffer,
    dtype: DType,
    row_start: u32,
    rows: u32,
    dim: u32,
    y: &wgpu::Buffer,
) -> Result<(), EngineError> {
    let kernel = Kernel::new(Family::Embedding, "embedding", &[false, false, true]).with_weights(dtype);
    rec.dispatch(&kernel, &Params { tokens, dim, row_start, rows }, &[ids, table, y], grid(tokens))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, encode_weights, gpu, gpu_test, random};

    /// A table split into two shards at `split` rows, as large vocabularies are.
    async fn check(vocab: usize, dim: usize, split: usize, dtype: DType) {
        let g = gpu().await;
        let table = random(vocab * dim, 11);
        let (bytes, eff) = encode_weights(&table, dtype);
        let row_bytes = dtype.row_bytes(dim);
        let ids: Vec<u32> = vec![0, (vocab - 1) as u32, 3, split as u32, (split - 1) as u32];
        let want = cpu::embedding::embedding(&eff, &ids, dim);
        let idb = g.upload("ids", bytemuck::cast_slice(&ids)).unwrap();
        let yb = g.buffer("y", (ids.len() * dim * 4) as u64).unwrap();
        let mut rec = g.recorder();
        let mut keep = Vec::new();
        for (start, rows) in [(0, split), (split, vocab - split)] {
            let tb = g.upload("table", &bytes[start * row_bytes..(start + rows) * row_bytes]).unwrap();
            embedding(&mut rec, &idb, ids.len() as u32, &tb, dtype, start as u32, rows as u32, dim as u32, &yb)
                .unwrap();
            keep.push(tb);
        }
        rec.submit().unwrap();
        let got = g.read_f32(&yb, 0, ids.len() * dim).await.unwrap();
        assert_close(&got, &want, 0.0, &format!("embedding {dtype:?}"));
    }

    gpu_test!(embedding_f32_sharded, check(50, 33, 20, DType::F32));
    gpu_test!(embedding_f16_sharded, check(40, 300, 18, DType::F16));
    gpu_test!(embedding_bf16_sharded, check(40, 64, 10, DType::BF16));
    gpu_test!(embedding_q8_0_sharded, check(30, 96, 7, DType::Q8_0));
    gpu_test!(embedding_q4_0_sharded, check(30, 64, 13, DType::Q4_0));
    gpu_test!(embedding_q4_k_sharded, check(12, 256, 5, DType::Q4_K));
    gpu_test!(embedding_q6_k_sharded, check(12, 512, 7, DType::Q6_K));
}
