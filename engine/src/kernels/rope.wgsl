// rope.wgsl: rotary position embedding with the multimodal (M-RoPE) layout of Qwen2-VL,
// Qwen2.5-VL (chunked sections) and Qwen3-VL (interleaved sections), NeoX rotate-half:
//   out[i]        = x[i]·cos θ − x[i+half]·sin θ
//   out[i + half] = x[i+half]·cos θ + x[i]·sin θ,   θ = pos[axis(i)]·inv_freq[i]
// axis(i): chunked: T for i < s0, H for i < s0+s1, else W (apply_multimodal_rotary_pos_emb);
// interleaved: H where i%3 == 1 and i < 3·s1, W where i%3 == 2 and i < 3·s2, else T
// (apply_interleaved_mrope). inv_freq is computed on the host as transformers does.
//
// | binding | name      | shape                               | access     |
// |---------|-----------|-------------------------------------|------------|
// | 0       | p         | Params                              | uniform    |
// | 1       | x         | [tokens, heads, head_dim] f32       | read       |
// | 2       | positions | [3, tokens] i32 (T, H, W)           | read       |
// | 3       | inv_freq  | [head_dim / 2] f32                  | read       |
// | 4       | y         | same layout from element dst_offset | read_write |
//
// One invocation per (token, head, i < half), 256 per workgroup, flat grid.

struct Params {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    dst_offset: u32,
    s0: u32,
    s1: u32,
    s2: u32,
    interleaved: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn rope_axis(i: u32) -> u32 {
    if (p.interleaved != 0u) {
        if (i % 3u == 1u && i < 3u * p.s1) {
            return 1u;
        }
        if (i % 3u == 2u && i < 3u * p.s2) {
            return 2u;
        }
        return 0u;
    }
    if (i < p.s0) {
        return 0u;
    }
    if (i < p.s0 + p.s1) {
        return 1u;
    }
    return 2u;
}

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
    let pos = f32(positions[rope_axis(i) * p.tokens + t]);
    let angle = pos * inv_freq[i];
    let c = cos(angle);
    let s = sin(angle);
    let base = th * p.head_dim;
    let x1 = x[base + i];
    let x2 = x[base + i + half];
    y[p.dst_offset + base + i] = x1 * c - x2 * s;
    y[p.dst_offset + base + i + half] = x2 * c + x1 * s;
}
