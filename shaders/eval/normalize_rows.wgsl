// L2-normalises rows start .. start + count of a [rows, d] matrix into a fresh
// [count, d] matrix: y[r] = x[start + r] / max(|x[start + r]|, 1e-12).
//
// The kNN evaluation compares features by cosine similarity; with unit rows
// that is a plain matmul. Taking a row range lets the host cut the query set
// into chunks without a separate copy. One invocation per row, as in
// layer_norm.wgsl: rows are short (a few hundred features), so a row per
// invocation keeps every lane busy without barriers. The 1e-12 floor (as in
// PyTorch's F.normalize) maps an all-zero row to zeros instead of NaN.

struct Params {
    start: u32,
    count: u32,
    d: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = gid.y * nwg.x * 64u + gid.x;
    if r >= p.count {
        return;
    }
    let src = (p.start + r) * p.d;
    let dst = r * p.d;
    var s = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let v = x[src + j];
        s += v * v;
    }
    let inv = 1.0 / max(sqrt(s), 1e-12);
    for (var j = 0u; j < p.d; j++) {
        y[dst + j] = x[src + j] * inv;
    }
}
