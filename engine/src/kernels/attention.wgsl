// attention.wgsl: causal scaled dot-product attention with grouped KV heads over a KV cache,
// for prefill (many queries) and decode (one), with an online softmax (FlashAttention's
// running max and sum), so no score matrix is stored.
//   out[t, h] = Σ_j softmax_j(q[t,h]·k[j,g]·scale) v[j,g],  j ≤ past + t,  g = h / (heads / kv_heads)
//
// | binding | name | shape                                   | access     |
// |---------|------|-----------------------------------------|------------|
// | 0       | p    | Params                                  | uniform    |
// | 1       | q    | [tokens, heads, head_dim] f32           | read       |
// | 2       | k    | [context, kv_heads, head_dim] f32 cache | read       |
// | 3       | v    | [context, kv_heads, head_dim] f32 cache | read       |
// | 4       | out  | [tokens, heads, head_dim] f32           | read_write |
//
// One workgroup of WG threads per (head = wid.x, token = wid.y): keys in chunks of WG, one key
// per thread for the scores, then each thread accumulates head_dim / WG output dimensions.
// head_dim ≤ MAX_HEAD_DIM (mirrored by kernels::attention::MAX_HEAD_DIM).

struct Params {
    tokens: u32,
    past: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
const DIMS_PER_THREAD: u32 = 4u; // MAX_HEAD_DIM / WG
var<workgroup> qs: array<f32, 256>;
var<workgroup> probs: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn attention(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let g = h / (p.heads / p.kv_heads);
    let kv_stride = p.kv_heads * hd;
    let qbase = (t * p.heads + h) * hd;
    for (var d = li; d < hd; d += WG) {
        qs[d] = q[qbase + d] * p.scale;
    }
    workgroupBarrier();
    let n_keys = p.past + t + 1u;
    var m = NEG_BIG;
    var l = 0.0;
    var acc: array<f32, 4>;
    for (var r = 0u; r < DIMS_PER_THREAD; r++) {
        acc[r] = 0.0;
    }
    for (var j0 = 0u; j0 < n_keys; j0 += WG) {
        let j = j0 + li;
        var s = NEG_BIG;
        if (j < n_keys) {
            let kb = j * kv_stride + g * hd;
            var dot = 0.0;
            for (var d = 0u; d < hd; d++) {
                dot += qs[d] * k[kb + d];
            }
            s = dot;
        }
        red[li] = s;
        workgroupBarrier();
        for (var st = WG / 2u; st > 0u; st >>= 1u) {
            if (li < st) {
                red[li] = max(red[li], red[li + st]);
            }
            workgroupBarrier();
        }
        let m_new = max(m, red[0]);
        workgroupBarrier();
        var pj = 0.0;
        if (j < n_keys) {
            pj = exp(s - m_new);
        }
        probs[li] = pj;
        red[li] = pj;
        workgroupBarrier();
        for (var st = WG / 2u; st > 0u; st >>= 1u) {
            if (li < st) {
                red[li] += red[li + st];
            }
            workgroupBarrier();
        }
        let corr = exp(m - m_new);
        l = l * corr + red[0];
        let chunk = min(WG, n_keys - j0);
        for (var r = 0u; r < DIMS_PER_THREAD; r++) {
            let d = li + r * WG;
            if (d < hd) {
                var a = acc[r] * corr;
                for (var jj = 0u; jj < chunk; jj++) {
                    a += probs[jj] * v[(j0 + jj) * kv_stride + g * hd + d];
                }
                acc[r] = a;
            }
        }
        m = m_new;
        workgroupBarrier();
    }
    for (var r = 0u; r < DIMS_PER_THREAD; r++) {
        let d = li + r * WG;
        if (d < hd) {
            out[qbase + d] = acc[r] / l;
        }
    }
}
