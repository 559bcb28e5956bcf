//! Launcher for `elementwise.wgsl`: the SiLU-gated product on a fused gate/up output, and the
//! GELU-family activations of the vision towers.

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::{grid, Recorder};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub inter: u32,
    pub act: u32,
    pub _pad: u32,
}

/// An activation function by its transformers name (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// `nn.GELU()`, "gelu": `0.5 a (1 + erf(a / √2))`.
    Gelu,
    /// "gelu_pytorch_tanh": `0.5 a (1 + tanh(√(2/π) (a + 0.044715 a³)))`.
    GeluTanh,
    /// "quick_gelu": `a · sigmoid(1.702 a)`.
    QuickGelu,
}

impl Act {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Act::Gelu),
            "gelu_pytorch_tanh" | "gelu_new" => Some(Act::GeluTanh),
            "quick_gelu" => Some(Act::QuickGelu),
            _ => None,
        }
    }

    fn code(self) -> u32 {
        match self {
            Act::Gelu => 0,
            Act::GeluTanh => 1,
            Act::QuickGelu => 2,
        }
    }
}

/// # Shapes
/// `x` `[n]` → `out` `[n]`.
pub fn activation(
    rec: &mut Recorder<'_>,
    act: Act,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: u32,
) -> Result<(), EngineError> {
    let kernel = Kernel::new(Family::Elementwise, "activation", &[false, true]);
    let params = Params { n, inter: 0, act: act.code(), _pad: 0 };
    rec.dispatch(&kernel, &params, &[x, out], grid(n.div_ceil(256)))
}

/// # Shapes
/// `gate_up` `[tokens, 2 · inter]` (gate then up in each row) → `out` `[tokens, inter]`.
pub fn silu_mul(
    rec: &mut Recorder<'_>,
    gate_up: &wgpu::Buffer,
    out: &wgpu::Buffer,
    tokens: u32,
    inter: u32,
) -> Result<(), EngineError> {
    let kernel = Kernel::new(Family::Elementwise, "silu_mul", &[false, true]);
    let n = tokens * inter;
    rec.dispatch(&kernel, &Params { n, inter, act: 0, _pad: 0 }, &[gate_up, out], grid(n.div_ceil(256)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(tokens: usize, inter: usize) {
        let g = gpu().await;
        let gu: Vec<f32> = random(tokens * 2 * inter, 51).iter().map(|v| v * 8.0).collect();
        let want = cpu::elementwise::silu_mul(&gu, tokens, inter);
        let gb = g.upload("gate_up", bytemuck::cast_slice(&gu)).unwrap();
        let ob = g.buffer("out", (tokens * inter * 4) as u64).unwrap();
        let mut rec = g.recorder();
        silu_mul(&mut rec, &gb, &ob, tokens as u32, inter as u32).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&ob, 0, tokens * inter).await.unwrap();
        assert_close(&got, &want, 1e-5, "silu_mul");
    }

    async fn check_act(act: Act, n: usize) {
        let g = gpu().await;
        let x: Vec<f32> = random(n, 52).iter().map(|v| v * 12.0).collect();
        let want = cpu::elementwise::activation(&x, act);
        let xb = g.upload("x", bytemuck::cast_slice(&x)).unwrap();
        let ob = g.buffer("out", (n * 4) as u64).unwrap();
        let mut rec = g.recorder();
        activation(&mut rec, act, &xb, &ob, n as u32).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&ob, 0, n).await.unwrap();
        assert_close(&got, &want, 2e-6 * 12.0, &format!("{act:?}"));
    }

    gpu_test!(activation_gelu_erf, check_act(Act::Gelu, 1001));
    gpu_test!(activation_gelu_tanh, check_act(Act::GeluTanh, 257));
    gpu_test!(activation_quick_gelu, check_act(Act::QuickGelu, 3));
    gpu_test!(silu_mul_odd, check(3, 259));
    gpu_test!(silu_mul_one, check(1, 1));
    gpu_test!(silu_mul_many_rows, check(70, 96));
}
