// attention.wgsl: scaled dot-product attention with grouped KV heads over a KV cache, causal
// (a decoder's self-attention) or over every key (cross-attention on an encoder's output),
// split over the keys (flash-decoding): each workgroup runs an online softmax (FlashAttention's
// running max and sum) over one slice of keys, and a second pass merges the slices, so a
// single decoded token still spreads over many workgroups and no score matrix is stored.
//   out[t, h] = Σ_j softmax_j(q[t,h]·k[j,g]·scale) v[j,g],  g = h / (heads / kv_heads),
//   j ≤ past + t when `causal`, else j < past (`past` is then the key count)
//
// `attention_partial`, one workgroup of WG threads per (head = wid.x, token = wid.y,
// split = wid.z); keys of the split in chunks of WG, one key per thread for the scores, then
// each thread accumulates head_dim / WG output dimensions:
// | binding | name    | shape                                           | access     |
// |---------|---------|-------------------------------------------------|------------|
// | 0       | p       | Params                                          | uniform    |
// | 1       | q       | [tokens, heads, head_dim] f32                   | read       |
// | 2       | k       | [context, kv_heads, head_dim] f32 cache         | read       |
// | 3       | v       | [context, kv_heads, head_dim] f32 cache         | read       |
// | 4       | partial | acc [rows, head_dim] then (max, sum) [rows, 2]  | read_write |
// rows are (token · heads + head) · splits + split; (max, sum) start at element ml_offset.
//
// `attention_combine`, one workgroup per (head = wid.x, token = wid.y):
// | 1       | partial | as above                                        | read       |
// | 2       | out     | [tokens, heads, head_dim] f32                   | read_write |
// head_dim ≤ MAX_HEAD_DIM (mirrored by kernels::attention::MAX_HEAD_DIM).

struct Params {
    tokens: u32,
    past: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    scale: f32,
    splits: u32,
    keys_per_split: u32,
    ml_offset: u32,
    causal: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
const DIMS_PER_THREAD: u32 = 4u; // MAX_HEAD_DIM / WG
