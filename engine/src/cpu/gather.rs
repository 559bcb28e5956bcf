//! Reference for `kernels::gather`.

/// `dst[map[e,0]] (+)= Σ_j wt[e,j] · src[map[e,1+j]]`, returning the whole new `dst`.
pub fn gather_rows(
    map: &[u32],
    wt: Option<&[f32]>,
    src: &[f32],
    dst: &[f32],
    taps: usize,
    dim: usize,
    accumulate: bool,
) -> Vec<f32> {
    let mut out = dst.to_vec();
    for (e, m) in map.chunks(1 + taps).enumerate() {
        let o = m[0] as usize * dim;
        for d in 0..dim {
            let mut acc = 0.0f64;
            for j in 0..taps {
                let w = wt.map_or(1.0, |w| w[e * taps + j]) as f64;
                acc += w * src[m[1 + j] as usize * dim + d] as f64;
            }
            out[o + d] = if accumulate { (acc + dst[o + d] as f64) as f32 } else { acc as f32 };
        }
    }
    out
}
