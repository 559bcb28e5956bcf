// rope.wgsl: rotary position embedding, NeoX rotate-half, from a cos/sin table:
//   y[i]        = x[i]·cos[t,i] − x[i+half]·sin[t,i]
//   y[i + half] = x[i+half]·cos[t,i] + x[i]·sin[t,i]
// The table holds the multimodal (M-RoPE) angles of Qwen2/2.5-VL (chunked sections) and
// Qwen3-VL (interleaved), built once per step on the host by `kernels::rope::rope_table`, as
// transformers builds `position_embeddings` once per forward. Building it here instead would
// rely on WGSL's sin/cos, whose error bound (2^-11 within [-π, π], none outside) SwiftShader
// really shows.
//
// | binding | name    | shape                                   | access     |
// |---------|---------|-----------------------------------------|------------|
// | 0       | p       | Params                                  | uniform    |
// | 1       | x       | rows of src_stride from src_offset, each [heads, head_dim] | read |
// | 2       | cos_sin | [2, tokens, head_dim / 2] f32 (cos, sin) | read       |
// | 3       | y       | [tokens, heads, head_dim] f32 from element dst_offset | read_write |
//
// A strided source lets the vision towers rotate q and k straight out of their fused qkv rows.
//
// One invocation per (token, head, i < half), 256 per workgroup, flat grid.

struct Params {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    dst_offset: u32,
    src_offset: u32,
    src_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_sin: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn rope(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let half = p.head_dim / 2u;
    let idx = flat_group(wid, nwg) * 256u + li;
    if (idx >= p.tokens * p.heads * half) {
        return;
    }
    let i = idx % half;
    let th = idx / half;
    let t = th / p.heads;
    let c = cos_sin[t * half + i];
    let s = cos_sin[(p.tokens + t) * half + i];
    let base = th * p.head_dim;
    let src = p.src_offset + t * p.src_stride + (th % p.heads) * p.head_dim;
    let x1 = x[src + i];
    let x2 = x[src + i + half];
    y[p.dst_offset + base + i] = x1 * c - x2 * s;
    y[p.dst_offset + base + i + half] = x2 * c + x1 * s;
}
