//! Reference for `kernels::elementwise`.

use crate::kernels::elementwise::Act;

/// `out[t, i] = silu(gu[t, i]) · gu[t, inter + i]`, `silu(a) = a / (1 + e^(−a))`.
pub fn silu_mul(gu: &[f32], tokens: usize, inter: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(tokens * inter);
    for t in 0..tokens {
        let row = &gu[t * 2 * inter..(t + 1) * 2 * inter];
        for i in 0..inter {
            let a = row[i] as f64;
            out.push((a / (1.0 + (-a).exp())) as f32 * row[inter + i]);
        }
    }
    out
}

/// The activation `act` of every element, computed in f64.
pub fn activation(x: &[f32], act: Act) -> Vec<f32> {
    x.iter()
        .map(|&a| {
            let a = a as f64;
            let y = match act {
                Act::Gelu => 0.5 * a * (1.0 + erf(a / std::f64::consts::SQRT_2)),
                Act::GeluTanh => {
                    0.5 * a * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (a + 0.044715 * a.powi(3))).tanh())
                }
                Act::QuickGelu => a / (1.0 + (-1.702 * a).exp()),
            };
            y as f32
        })
        .collect()
}

/// erf by its Maclaurin series (|x| < 3) or the asymptotic continued fraction beyond: far
/// more precise than f32 needs, and independent of the kernel's approximation.
fn erf(x: f64) -> f64 {
    let ax = x.abs();
    let v = if ax < 3.0 {
        let (mut term, mut sum, mut n) = (ax, ax, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -ax * ax / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // erfc(x) = e^(−x²) / √π · 1 / (x + (1/2) / (x + (2/2) / (x + (3/2) / (x + …))))
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (ax + f);
        }
        1.0 - (-ax * ax).exp() / std::f64::consts::PI.sqrt() / (ax + f)
    };
    v.copysign(x)
}
