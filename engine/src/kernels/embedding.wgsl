// embedding.wgsl: y[t, :] = table[ids[t], :] for ids inside this table shard
// (torch.nn.Embedding; a large table is split into row shards, one dispatch each).
//
// | binding | name | shape                                    | access     |
// |---------|------|------------------------------------------|------------|
// | 0       | p    | Params                                   | uniform    |
// | 1       | ids  | [tokens] u32                             | read       |
// | 2       | w    | [rows, dim] WStore, rows row_start..     | read       |
// | 3       | y    | [tokens, dim] f32                        | read_write |
//
// One workgroup of 256 per token (flat grid); the weight type comes from weights_*.wgsl.

struct Params {
    tokens: u32,
    dim: u32,
    row_start: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<WStore>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn embedding(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_group(wid, nwg);
    if (t >= p.tokens) {
        return;
    }
    let id = ids[t];
    if (id < p.row_start || id >= p.row_start + p.rows) {
        return;
    }
    let src = (id - p.row_start) * p.dim;
    for (var d = li; d < p.dim; d += 256u) {
        y[t * p.dim + d] = load_w(src + d);
    }
}
