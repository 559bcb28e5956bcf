// attention_blocks.wgsl: non-causal multi-head attention over variable-length blocks (the
// vision towers' `cu_seqlens`: one block per image, or per window in Qwen2.5-VL):
//   out[i, h] = Σ_{j ∈ [lo_i, hi_i)} softmax_j(scale · q[i, h] · k[j, h]) · v[j, h]
// with an online softmax over key tiles, so no score matrix is ever stored.
//
// | binding | name   | shape                                              | access     |
// |---------|--------|----------------------------------------------------|------------|
// | 0       | p      | Params                                             | uniform    |
// | 1       | q      | rows of q_stride from q_offset, [heads, head_dim]  | read       |
// | 2       | k      | rows of k_stride from k_offset, [heads, head_dim]  | read       |
// | 3       | v      | rows of v_stride from v_offset, [heads, head_dim]  | read       |
// | 4       | bounds | [tokens, 2] u32 key range per query, then          | read       |
// |         |        | [tiles, 2] the union of the ranges of each tile    |            |
// | 5       | out    | [tokens, heads, head_dim] f32, or with splits the   | read_write |
//  |         |        | partial rows of `attention_combine` (see below)    |            |
//
// Workgroup of WG = 64 threads = 64 consecutive queries of one head (x: query tile, y: head).
// Each thread keeps its query and accumulator in private arrays; the workgroup stages KT keys
// and values at a time in workgroup memory. head_dim ≤ MAX_HEAD_DIM (Rust `BLOCK_MAX_HEAD_DIM`).
//
// With splits > 1 (z: split) each workgroup covers keys_per_split of its tile's keys and
// writes, per (query, head, split) row r = (i · heads + h) · splits + split, the unnormalised
// accumulator at out[r · head_dim ..] and (max, sum) at out[ml_offset + 2r ..], which
// `attention_combine` merges. Splits give long blocks more workgroups, and keep each
// invocation's loops short (llvmpipe ends a shader after 65535 loop iterations in all).

struct Params {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    scale: f32,
    q_offset: u32,
    q_stride: u32,
    k_offset: u32,
    k_stride: u32,
    v_offset: u32,
    v_stride: u32,
    splits: u32,
    keys_per_split: u32,
    ml_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> bounds: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
const KT: u32 = 16u;
const MAX_HEAD_DIM: u32 = 128u;
var<workgroup> ks: array<f32, 2048>; // KT · MAX_HEAD_DIM
var<workgroup> vs: array<f32, 2048>;

@compute @workgroup_size(64)
fn attention_blocks(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let tile = wid.x;
    let h = wid.y;
    let hd = p.head_dim;
    let i = tile * WG + li;
    let valid = i < p.tokens;
    var qv: array<f32, MAX_HEAD_DIM>;
    var acc: array<f32, MAX_HEAD_DIM>;
    var lo = 0u;
    var hi = 0u;
    if (valid) {
        let qb = p.q_offset + i * p.q_stride + h * hd;
        for (var d = 0u; d < hd; d++) {
            qv[d] = q[qb + d] * p.scale;
            acc[d] = 0.0;
        }
        lo = bounds[2u * i];
        hi = bounds[2u * i + 1u];
    }
    var t_lo = bounds[2u * p.tokens + 2u * tile];
    var t_hi = bounds[2u * p.tokens + 2u * tile + 1u];
    let split = wid.z;
    if (p.splits > 1u) {
        t_lo = min(t_hi, t_lo + split * p.keys_per_split);
        t_hi = min(t_hi, t_lo + p.keys_per_split);
    }
    var m = NEG_BIG;
    var l = 0.0;
    var s: array<f32, KT>;
    for (var j0 = t_lo; j0 < t_hi; j0 += KT) {
        let n = min(KT, t_hi - j0);
        for (var e = li; e < n * hd; e += WG) {
            let jj = e / hd;
            let d = e % hd;
            ks[e] = k[p.k_offset + (j0 + jj) * p.k_stride + h * hd + d];
            vs[e] = v[p.v_offset + (j0 + jj) * p.v_stride + h * hd + d];
        }
        workgroupBarrier();
        if (valid) {
            var m_new = m;
            for (var jj = 0u; jj < n; jj++) {
                let j = j0 + jj;
                var dot = NEG_BIG;
                if (j >= lo && j < hi) {
                    dot = 0.0;
                    for (var d = 0u; d < hd; d++) {
                        dot += qv[d] * ks[jj * hd + d];
                    }
                    m_new = max(m_new, dot);
                }
                s[jj] = dot;
            }
            let corr = exp(m - m_new);
            l *= corr;
            for (var d = 0u; d < hd; d++) {
                acc[d] *= corr;
            }
            for (var jj = 0u; jj < n; jj++) {
                let j = j0 + jj;
                if (j >= lo && j < hi) {
                    let pj = exp(s[jj] - m_new);
                    l += pj;
                    for (var d = 0u; d < hd; d++) {
                        acc[d] += pj * vs[jj * hd + d];
                    }
                }
            }
            m = m_new;
        }
        workgroupBarrier();
    }
    if (valid && p.splits > 1u) {
        let row = (i * p.heads + h) * p.splits + split;
        for (var d = 0u; d < hd; d++) {
            out[row * hd + d] = acc[d];
        }
        out[p.ml_offset + 2u * row] = m;
        out[p.ml_offset + 2u * row + 1u] = l;
    } else if (valid) {
        let ob = (i * p.heads + h) * hd;
        let inv = 1.0 / max(l, 1e-30);
        for (var d = 0u; d < hd; d++) {
            out[ob + d] = acc[d] * inv;
        }
    }
}
