// conv.wgsl: 1-D convolution (torch.nn.Conv1d) lowered to a matrix product: `im2col` lays the
// receptive field of every output step out as one row, and the Linear kernels multiply those
// rows by the kernel flattened to [c_out, c_in · k] (one weight kernel for every dtype).
//   cols[t, c · k + j] = x(c, t · stride + j · dilation − padding)   (0 outside the input)
// x(c, s) sits at element c · c_stride + s · t_stride of `x`, so the input may be channel-major
// ([c_in, t_in], a log-mel spectrogram or a waveform) or time-major ([t_in, c_in], the output of
// the previous convolution).
//
// | binding | name | shape                  | access     |
// |---------|------|------------------------|------------|
// | 0       | p    | Params                 | uniform    |
// | 1       | x    | c_in · t_in f32        | read       |
// | 2       | cols | [t_out, c_in · k] f32  | read_write |
//
// One invocation per element of `cols`, 256 per workgroup, flat grid.

struct Params {
    c_in: u32,
    t_in: u32,
    k: u32,
    stride: u32,
    padding: u32,
    dilation: u32,
    t_out: u32,
    c_stride: u32,
    t_stride: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

@compute @workgroup_size(256)
fn im2col(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + li;
    let width = p.c_in * p.k;
    if (i >= p.t_out * width) {
        return;
    }
    let t = i / width;
    let c = (i % width) / p.k;
    let j = i % p.k;
    // Signed source step: negative in the left padding.
    let s = i32(t * p.stride + j * p.dilation) - i32(p.padding);
    var v = 0.0;
    if (s >= 0 && u32(s) < p.t_in) {
        v = x[c * p.c_stride + u32(s) * p.t_stride];
    }
    cols[i] = v;
}
