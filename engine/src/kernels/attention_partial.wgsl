@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;

var<workgroup> qs: array<f32, 256>;
var<workgroup> probs: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn attention_partial(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let h = wid.x;
    let t = wid.y;
    let split = wid.z;
    let hd = p.head_dim;
    let g = h / (p.heads / p.kv_heads);
    let kv_stride = p.kv_heads * hd;
    let qbase = (t * p.heads + h) * hd;
    for (var d = li; d < hd; d += WG) {
        qs[d] = q[qbase + d] * p.scale;
    }
    workgroupBarrier();
    let n_keys = select(p.past, p.past + t + 1u, p.causal != 0u);
    let j_begin = split * p.keys_per_split;
    let j_end = min(n_keys, j_begin + p.keys_per_split);
    var m = NEG_BIG;
    var l = 0.0;
    var acc: array<f32, 4>;
    for (var r = 0u; r < DIMS_PER_THREAD; r++) {
        acc[r] = 0.0;
    }
    for (var j0 = j_begin; j0 < j_end; j0 += WG) {
        let j = j0 + li;
        var s = NEG_BIG;
        if (j < j_end) {
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
        if (j < j_end) {
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
        let chunk = min(WG, j_end - j0);
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
    // A split past the causal end keeps (NEG_BIG, 0, 0): it weighs nothing in the merge.
    let row = (t * p.heads + h) * p.splits + split;
    for (var r = 0u; r < DIMS_PER_THREAD; r++) {
        let d = li + r * WG;
        if (d < hd) {
            partial[row * hd + d] = acc[r];
        }
    }
    if (li == 0u) {
        partial[p.ml_offset + 2u * row] = m;
        partial[p.ml_offset + 2u * row + 1u] = l;
    }
}
