// Layer normalisation over the last dimension (length d) of `rows` rows,
// with a learned per-feature gamma and beta (PyTorch's LayerNorm).
//
// `forward`         one invocation per row: mean and variance in one pass with
//                   Welford's update (stable where sum / sum-of-squares cancels),
//                   then y = (x - mean) * rstd * gamma + beta; mean and rstd are
//                   kept for the backward.
// `backward_input`  one invocation per row:
//                   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.
// `backward_params` one invocation per feature: dgamma = sum dy * xhat, dbeta = sum dy.
// Rows are short (a few hundred features), so a row per invocation keeps
// every lane busy without barriers.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if r >= p.rows {
        return;
    }
    let base = r * p.d;
    var mu = 0.0;
    var m2 = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let v = x[base + j];
        let delta = v - mu;
        mu += delta / f32(j + 1u);
        m2 += delta * (v - mu);
    }
    let rs = 1.0 / sqrt(m2 / f32(p.d) + p.eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (var j = 0u; j < p.d; j++) {
        y[base + j] = (x[base + j] - mu) * rs * gamma[j] + beta[j];
    }
}

@group(0) @binding(1) var<storage, read> bx: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> bgamma: array<f32>;
@group(0) @binding(4) var<storage, read> bmean: array<f32>;
@group(0) @binding(5) var<storage, read> brstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if r >= p.rows {
        return;
    }
    let base = r * p.d;
    let mu = bmean[r];
    let rs = brstd[r];
    var sg = 0.0;
    var sgx = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let g = dy[base + j] * bgamma[j];
        sg += g;
        sgx += g * (bx[base + j] - mu) * rs;
    }
    let mg = sg / f32(p.d);
    let mgx = sgx / f32(p.d);
    for (var j = 0u; j < p.d; j++) {
        let xhat = (bx[base + j] - mu) * rs;
        dx[base + j] = rs * (dy[base + j] * bgamma[j] - mg - xhat * mgx);
    }
}

@group(0) @binding(1) var<storage, read> px: array<f32>;
@group(0) @binding(2) var<storage, read> pdy: array<f32>;
@group(0) @binding(3) var<storage, read> pmean: array<f32>;
@group(0) @binding(4) var<storage, read> prstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;

@compute @workgroup_size(64)
fn backward_params(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if j >= p.d {
        return;
    }
    var sg = 0.0;
    var sb = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let i = r * p.d + j;
        sb += pdy[i];
        sg += pdy[i] * (px[i] - pmean[r]) * prstd[r];
    }
    dgamma[j] = sg;
    dbeta[j] = sb;
}
