// Barlow Twins, the parts around the cross-correlation: batch normalisation
// without affine parameters, x = (z - mean) / sqrt(var + eps) with the
// biased variance (as BatchNorm1d(affine=False) in training), and its
// backward. The cross-correlation C = xaᵀ xb / N, its penalty and dL/dC are
// tiles of gram.wgsl.
//
//   normalize    one invocation per column of one branch: two passes (mean,
//                then centred squares) and a third writing x; the std is kept
//                for the backward. Consecutive invocations read consecutive
//                addresses of each row.
//   bn_backward  one invocation per column: with dx the gradient w.r.t. the
//                normalised column, dz = (dx - mean(dx) - x mean(dx x)) / std.

struct Params {
    n: u32,
    d: u32,
    branch: u32,
    _pad0: u32,
    eps: f32,
    _pad1: f32,
    _pad2: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> za: array<f32>;
@group(0) @binding(2) var<storage, read> zb: array<f32>;
// [n, d] normalised embeddings of one branch, and [2, d] stds.
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> sd: array<f32>;
@group(0) @binding(5) var<storage, read> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;

fn z_at(i: u32) -> f32 {
    if p.branch == 0u {
        return za[i];
    }
    return zb[i];
}

@compute @workgroup_size(64)
fn normalize(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if j >= p.d {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < p.n; i++) {
        s += z_at(i * p.d + j);
    }
    let mean = s / f32(p.n);
    var ss = 0.0;
    for (var i = 0u; i < p.n; i++) {
        let c = z_at(i * p.d + j) - mean;
        ss += c * c;
    }
    let sdev = sqrt(ss / f32(p.n) + p.eps);
    sd[p.branch * p.d + j] = sdev;
    for (var i = 0u; i < p.n; i++) {
        x[i * p.d + j] = (z_at(i * p.d + j) - mean) / sdev;
    }
}

@compute @workgroup_size(64)
fn bn_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if j >= p.d {
        return;
    }
    var mean_dx = 0.0;
    var mean_dx_x = 0.0;
    for (var i = 0u; i < p.n; i++) {
        let k = i * p.d + j;
        mean_dx += dx[k];
        mean_dx_x += dx[k] * x[k];
    }
    mean_dx /= f32(p.n);
    mean_dx_x /= f32(p.n);
    let inv_std = 1.0 / sd[p.branch * p.d + j];
    for (var i = 0u; i < p.n; i++) {
        let k = i * p.d + j;
        dz[k] = (dx[k] - mean_dx - x[k] * mean_dx_x) * inv_std;
    }
}
