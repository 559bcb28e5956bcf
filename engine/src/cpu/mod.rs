//! Plain-Rust references for every kernel, written as plain loops that read like the formulas
//! in the kernel headers. The kernel tests compare the WGSL against these.

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod embedding;
pub mod gather;
pub mod matmul;
pub mod norm;
pub mod reduce;
pub mod rope;
