@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn attention_combine(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let row0 = (t * p.heads + h) * p.splits;
    var mx = NEG_BIG;
    for (var s = 0u; s < p.splits; s++) {
        mx = max(mx, partial[p.ml_offset + 2u * (row0 + s)]);
    }
    var total = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        let r = p.ml_offset + 2u * (row0 + s);
        total += partial[r + 1u] * exp(partial[r] - mx);
    }
    for (var d = li; d < hd; d += WG) {
        var a = 0.0;
        for (var s = 0u; s < p.splits; s++) {
            a += partial[(row0 + s) * hd + d] * exp(partial[p.ml_offset + 2u * (row0 + s)] - mx);
        }
        out[(t * p.heads + h) * hd + d] = a / total;
    }
}
