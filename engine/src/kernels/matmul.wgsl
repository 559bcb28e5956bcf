// matmul.wgsl: y = x · Wᵀ + b, the Linear layer (torch.nn.Linear).
//
// | binding | name | shape                               | access     |
// |---------|------|-------------------------------------|------------|
// | 0       | p    | Params                              | uniform    |
// | 1       | x    | [m, k] f32 from element x_offset    | read       |
// | 2       | w    | [n, k] WStore (weights_*.wgsl)      | read       |
// | 3       | bias | [n] f32 (unused when has_bias == 0) | read       |
// | 4       | y    | y[y_offset + row * y_stride + col]  | read_write |
// With accumulate = 1 the result is added to what y holds (the residual stream).
//
// `matvec`: workgroup of 256 = MV_ROWS output columns × 32 lanes; one x row per wid.y.
// `matvec8`: the same with 8 consecutive weights per lane and step (k a multiple of 8), so a
// warp reads whole 256–1024-byte runs of a row: the decode path.
// `matmul`: 64×64 output tile per workgroup, 256 threads of 4×4, k in steps of 16.
// The weight type is specialised by prepending one weights_*.wgsl file.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
    x_offset: u32,
    y_offset: u32,
    y_stride: u32,
    // 1: y += x · Wᵀ (+ b), the residual add folded into the epilogue.
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<WStore>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// The epilogue of every entry: bias, then the residual add when asked, then the store.
fn store_y(row: u32, col: u32, value: f32) {
    var v = value;
    if (p.has_bias != 0u) {
        v += bias[col];
    }
    let at = p.y_offset + row * p.y_stride + col;
    if (p.accumulate != 0u) {
        v += y[at];
    }
    y[at] = v;
}

const MV_ROWS: u32 = 8u;
const MV_LANES: u32 = 32u;
var<workgroup> mv_partial: array<f32, 256>;

// Sums the 32 lanes' partial dot products of each of the workgroup's rows and stores them.
fn mv_finish(li: u32, row: u32, col: u32, partial: f32) {
    let lane = li % MV_LANES;
    mv_partial[li] = partial;
    workgroupBarrier();
    for (var s = MV_LANES / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            mv_partial[li] += mv_partial[li + s];
        }
        workgroupBarrier();
    }
    if (lane == 0u && col < p.n) {
        store_y(row, col, mv_partial[li]);
    }
}

@compute @workgroup_size(256)
fn matvec(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let lane = li % MV_LANES;
    let r = li / MV_LANES;
    let col = wid.x * MV_ROWS + r;
    let row = wid.y;
    var acc = 0.0;
    if (col < p.n) {
        let xb = p.x_offset + row * p.k;
        let wb = col * p.k;
        for (var kk = lane; kk < p.k; kk += MV_LANES) {
            acc += x[xb + kk] * load_w(wb + kk);
        }
    }
    mv_finish(li, row, col, acc);
}

@compute @workgroup_size(256)
fn matvec8(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let lane = li % MV_LANES;
    let r = li / MV_LANES;
    let col = wid.x * MV_ROWS + r;
    let row = wid.y;
    var acc = vec4<f32>(0.0);
    if (col < p.n) {
        let xb = p.x_offset + row * p.k;
        let wb = col * p.k;
        for (var kk = lane * 8u; kk < p.k; kk += MV_LANES * 8u) {
            let xa = vec4<f32>(x[xb + kk], x[xb + kk + 1u], x[xb + kk + 2u], x[xb + kk + 3u]);
            let xc = vec4<f32>(x[xb + kk + 4u], x[xb + kk + 5u], x[xb + kk + 6u], x[xb + kk + 7u]);
            acc += load_w4(wb + kk) * xa + load_w4(wb + kk + 4u) * xc;
        }
    }
    mv_finish(li, row, col, acc.x + acc.y + acc.z + acc.w);
}

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> xs: array<f32, 1024>; // [TK][TM]
var<workgroup> ws: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(256)
fn matmul(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let tr = (li / 16u) * 4u;
    let tc = (li % 16u) * 4u;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var i = 0u; i < 4u; i++) {
            let e = li + i * 256u;
            let r = e / TK;
            let kk = e % TK;
            let gk = k0 + kk;
            var xv = 0.0;
            if (row0 + r < p.m && gk < p.k) {
                xv = x[p.x_offset + (row0 + r) * p.k + gk];
            }
            xs[kk * TM + r] = xv;
            var wv = 0.0;
            if (col0 + r < p.n && gk < p.k) {
                wv = load_w((col0 + r) * p.k + gk);
            }
            ws[kk * TN + r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a = vec4<f32>(xs[kk * TM + tr], xs[kk * TM + tr + 1u], xs[kk * TM + tr + 2u], xs[kk * TM + tr + 3u]);
            let b = vec4<f32>(ws[kk * TN + tc], ws[kk * TN + tc + 1u], ws[kk * TN + tc + 2u], ws[kk * TN + tc + 3u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i * 4u + 0u] += a[i] * b.x;
                acc[i * 4u + 1u] += a[i] * b.y;
                acc[i * 4u + 2u] += a[i] * b.z;
                acc[i * 4u + 3u] += a[i] * b.w;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + tr + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tc + j;
            if (row < p.m && col < p.n) {
                store_y(row, col, acc[i * 4u + j]);
            }
        }
    }
}
