//! Launcher for `gather.wgsl`: weighted row gather-scatter (vision rows into a text step, and
//! Qwen3-VL's resampled position table).

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::{grid, Recorder};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub entries: u32,
    pub taps: u32,
    pub dim: u32,
    pub accumulate: u32,
    pub weighted: u32,
    pub _pad: [u32; 3],
}

/// One gather: `entries` rows of `dim`, each the `wt`-weighted sum of `taps` source rows.
///
/// # Shapes
/// `map` `[entries, 1 + taps]` u32 (destination row, then source rows); `wt` `[entries, taps]`
/// f32 or `None` for weights of 1; `src` `[rows, dim]`, `dst` `[rows', dim]` f32.
pub struct GatherRows<'a> {
    pub map: &'a wgpu::Buffer,
    pub wt: Option<&'a wgpu::Buffer>,
    pub src: &'a wgpu::Buffer,
    pub dst: &'a wgpu::Buffer,
    pub entries: u32,
    pub taps: u32,
    pub dim: u32,
    /// Add to what `dst` holds instead of overwriting.
    pub accumulate: bool,
}

pub fn gather_rows(rec: &mut Recorder<'_>, a: GatherRows<'_>) -> Result<(), EngineError> {
    let kernel = Kernel::new(Family::Gather, "gather_rows", &[false, false, false, true]);
    let params = Params {
        entries: a.entries,
        taps: a.taps,
        dim: a.dim,
        accumulate: a.accumulate as u32,
        weighted: a.wt.is_some() as u32,
        _pad: [0; 3],
    };
    let n = a.entries * a.dim;
    rec.dispatch(&kernel, &params, &[a.map, a.wt.unwrap_or(a.map), a.src, a.dst], grid(n.div_ceil(256)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(entries: usize, taps: usize, dim: usize, weighted: bool, accumulate: bool) {
        let g = gpu().await;
        let (src_rows, dst_rows) = (13, entries + 3);
        let src = random(src_rows * dim, 61);
        let dst0 = random(dst_rows * dim, 62);
        // Distinct destinations in shuffled order, sources anywhere.
        let mut map = Vec::new();
        for e in 0..entries {
            map.push(((e * 7 + 2) % dst_rows) as u32);
            map.extend((0..taps).map(|j| ((e * 5 + j * 3) % src_rows) as u32));
        }
        let wt = random(entries * taps, 63);
        let want = cpu::gather::gather_rows(&map, weighted.then_some(&wt[..]), &src, &dst0, taps, dim, accumulate);
        let mb = g.upload("map", bytemuck::cast_slice(&map)).unwrap();
        let wb = g.upload("wt", bytemuck::cast_slice(&wt)).unwrap();
        let sb = g.upload("src", bytemuck::cast_slice(&src)).unwrap();
        let db = g.upload("dst", bytemuck::cast_slice(&dst0)).unwrap();
        let mut rec = g.recorder();
        let args = GatherRows {
            map: &mb,
            wt: weighted.then_some(&wb),
            src: &sb,
            dst: &db,
            entries: entries as u32,
            taps: taps as u32,
            dim: dim as u32,
            accumulate,
        };
        gather_rows(&mut rec, args).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&db, 0, dst0.len()).await.unwrap();
        assert_close(&got, &want, 1e-6, &format!("gather_rows e{entries} taps{taps} d{dim}"));
    }

    gpu_test!(gather_place_rows, check(5, 1, 64, false, false));
    gpu_test!(gather_add_rows, check(7, 1, 33, false, true));
    gpu_test!(gather_bilinear_taps, check(9, 4, 40, true, true));
}
