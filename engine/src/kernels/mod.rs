//! WGSL kernels: one `.wgsl` file per family (a shared header first where entry points need
//! separate modules), included once here, specialised by prepending a weight-storage file
//! (`weights_<type>.wgsl`) where a kernel reads weights. Each family has a thin launcher module
//! and a plain-Rust reference in `crate::cpu` with the same name; the tests at the bottom of
//! each launcher run both.

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod embedding;
pub mod gather;
pub mod layer_norm;
pub mod matmul;
pub mod norm;
pub mod reduce;
pub mod rope;

#[cfg(test)]
pub(crate) mod testing;

use crate::error::EngineError;
use crate::tensor::DType;

/// The kernel source files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Matmul,
    Embedding,
    Norm,
    LayerNorm,
    Rope,
    /// The split-key pass of attention (`attention.wgsl` + `attention_partial.wgsl`).
    AttentionPartial,
    /// The merge of the splits (`attention.wgsl` + `attention_combine.wgsl`).
    AttentionCombine,
    /// Non-causal attention within blocks (the vision towers).
    AttentionBlocks,
    /// 1-D convolution lowered to a product (`im2col`).
    Conv,
    Gather,
    Elementwise,
    Reduce,
}

const COMMON: &str = include_str!("common.wgsl");

/// The WGSL files of a family, in order (a shared header first where entry points of one
/// family need different binding tables and so separate modules).
fn family_sources(f: Family) -> &'static [&'static str] {
    match f {
        Family::Matmul => &[include_str!("matmul.wgsl")],
        Family::Embedding => &[include_str!("embedding.wgsl")],
        Family::Norm => &[include_str!("norm.wgsl")],
        Family::LayerNorm => &[include_str!("layer_norm.wgsl")],
        Family::Rope => &[include_str!("rope.wgsl")],
        Family::AttentionPartial => &[include_str!("attention.wgsl"), include_str!("attention_partial.wgsl")],
        Family::AttentionCombine => &[include_str!("attention.wgsl"), include_str!("attention_combine.wgsl")],
        Family::AttentionBlocks => &[include_str!("attention_blocks.wgsl")],
        Family::Conv => &[include_str!("conv.wgsl")],
        Family::Gather => &[include_str!("gather.wgsl")],
        Family::Elementwise => &[include_str!("elementwise.wgsl")],
        Family::Reduce => &[include_str!("reduce.wgsl")],
    }
}

fn weights_source(d: DType) -> &'static str {
    match d {
        DType::F32 => include_str!("weights_f32.wgsl"),
        DType::F16 => include_str!("weights_f16.wgsl"),
        DType::BF16 => include_str!("weights_bf16.wgsl"),
        DType::Q8_0 => include_str!("weights_q8_0.wgsl"),
        DType::Q4_0 => include_str!("weights_q4_0.wgsl"),
        DType::Q4_K => include_str!("weights_q4_k.wgsl"),
        DType::Q6_K => include_str!("weights_q6_k.wgsl"),
    }
}

/// One entry point with its specialisation: the pipeline cache key.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub family: Family,
    pub entry: &'static str,
    /// Storage bindings 1.. in order; `true` where the kernel writes.
    pub bindings: &'static [bool],
    /// Storage type of the `w` binding, for kernels that read weights.
    pub weights: Option<DType>,
}

impl Kernel {
    pub fn new(family: Family, entry: &'static str, bindings: &'static [bool]) -> Self {
        Kernel { family, entry, bindings, weights: None }
    }

    pub fn with_weights(mut self, d: DType) -> Self {
        self.weights = Some(d);
        self
    }

    pub fn key(&self) -> String {
        let mut k = format!("{:?}::{}", self.family, self.entry);
        if let Some(d) = self.weights {
            k.push_str(&format!("<{d:?}>"));
        }
        k
    }
}

/// The full WGSL text of `kernel`: common helpers, the weight-storage file if any, the family.
pub fn source(kernel: &Kernel) -> Result<String, EngineError> {
    let body: String = family_sources(kernel.family).concat();
    let reads_weights = body.contains("array<WStore>");
    let mut s = String::from(COMMON);
    match (kernel.weights, reads_weights) {
        (Some(d), true) => s.push_str(weights_source(d)),
        (None, false) => {}
        (Some(_), false) | (None, true) => {
            return Err(EngineError::Shader {
                kernel: kernel.key(),
                message: "weight storage type given to a kernel without weights, or missing".into(),
            })
        }
    }
    s.push_str(&body);
    Ok(s)
}
