// Repacks conv2d weights w[o, c, ky, kx] for the implicit GEMM kernels:
// wp[(tap * rows + r) * cols16 + col] = w[r * stride_r + col * stride_col + tap]
// with tap = ky * kw + kx, zero where col >= cols. cols16 is cols rounded up
// to 16, so one 16-wide register block reads four contiguous, aligned vec4.
//
// Forward: r = c, col = o (stride_r = taps, stride_col = c * taps).
// Input gradient: r = o, col = c (stride_r = c * taps, stride_col = taps).

struct Params {
    rows: u32,
    cols: u32,
    cols16: u32,
    taps: u32,
    stride_r: u32,
    stride_col: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> wp: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    if i >= p.taps * p.rows * p.cols16 {
        return;
    }
    let col = i % p.cols16;
    let r = (i / p.cols16) % p.rows;
    let tap = i / (p.cols16 * p.rows);
    var v = 0.0;
    if col < p.cols {
        v = w[r * p.stride_r + col * p.stride_col + tap];
    }
    wp[i] = v;
}
