//! Reference for `kernels::conv`: torch.nn.Conv1d as plain loops.

use crate::kernels::conv::Geometry;

/// # Shapes
/// `x` `[c_in, t_in]` (or `[t_in, c_in]` when `time_major`), `w` `[c_out, c_in, k]`,
/// `b` `[c_out]` → `[t_out, c_out]`.
pub fn conv1d(
    x: &[f32],
    time_major: bool,
    w: &[f32],
    b: Option<&[f32]>,
    c_out: usize,
    t_in: usize,
    g: &Geometry,
) -> Vec<f32> {
    let (c_in, k) = (g.in_channels, g.kernel_size);
    let t_out = g.t_out(t_in);
    let at = |c: usize, s: usize| if time_major { x[s * c_in + c] } else { x[c * t_in + s] };
    let mut y = vec![0.0; t_out * c_out];
    for t in 0..t_out {
        for o in 0..c_out {
            let mut acc = b.map_or(0.0, |b| b[o] as f64);
            for c in 0..c_in {
                for j in 0..k {
                    let s = (t * g.stride + j * g.dilation) as isize - g.padding as isize;
                    if s >= 0 && (s as usize) < t_in {
                        acc += w[(o * c_in + c) * k + j] as f64 * at(c, s as usize) as f64;
                    }
                }
            }
            y[t * c_out + o] = acc as f32;
        }
    }
    y
}
