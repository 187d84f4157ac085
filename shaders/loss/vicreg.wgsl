// VICReg (Bardes, Ponce, LeCun 2022), the parts that are not a Gram product:
// per-column statistics, the final combination of the three terms, and the
// invariance and variance parts of the gradient. The covariance term and its
// gradient are tiles of a Gram product computed by gram.wgsl: of the D x D
// C = ZcᵀZc / (N-1), or, when the batch is smaller than the width, of the
// N x N K = Zc Zcᵀ / (N-1), which is D/N times cheaper. |C|² = |K|², and
// Zc·C = K·Zc, so the off-diagonal sum and Zc·C_off follow once the
// diagonal, C_jj = var_j, is taken out (`batch_gram` set).
//
//   stats      one invocation per column of one branch: the mean, the
//              centred column (Zc, written for the covariance tiles), the
//              unbiased variance, std = sqrt(var + eps) and the hinge
//              relu(gamma - std); branch 0 also sums (za - zb)^2. Two passes
//              over the column (mean, then centred squares) keep the variance
//              exact for near-collapsed batches, where var + eps is what
//              keeps 1 / std finite. Consecutive invocations read consecutive
//              addresses of each row.
//   finish     one invocation: the loss and its terms from the sums.
//   grad_init  one invocation per element: the invariance and variance parts
//              of dL/dz (and, on the batch Gram path, the diagonal part of
//              the covariance's), scaled by the upstream gradient g[0]. The
//              Gram product part is added on top by gram.wgsl strips.

struct Params {
    n: u32,
    d: u32,
    branch: u32,
    batch_gram: u32,
    eps: f32,
    gamma: f32,
    w_inv: f32,
    w_var: f32,
    w_cov: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> za: array<f32>;
@group(0) @binding(2) var<storage, read> zb: array<f32>;
// [n, d] centred embeddings of one branch.
@group(0) @binding(3) var<storage, read_write> zc: array<f32>;
// [2, d] per-column unbiased variance of each branch.
@group(0) @binding(4) var<storage, read_write> variance: array<f32>;
// [5, d] per-column sum (za - zb)^2, hinge of branch a, hinge of branch b,
// and the squared variances var_a^2, var_b^2 (the diagonal of C, squared).
@group(0) @binding(5) var<storage, read_write> colsum: array<f32>;
@group(0) @binding(6) var<storage, read> g: array<f32>;
@group(0) @binding(7) var<storage, read_write> dz: array<f32>;
// [3] column sums reduced over columns, and the covariance penalty sum.
@group(0) @binding(8) var<storage, read> sums: array<f32>;
@group(0) @binding(9) var<storage, read> cov_sum: array<f32>;
// The loss and its three unweighted terms, each of shape [].
@group(0) @binding(10) var<storage, read_write> loss: array<f32>;
@group(0) @binding(11) var<storage, read_write> inv_term: array<f32>;
@group(0) @binding(12) var<storage, read_write> var_term: array<f32>;
@group(0) @binding(13) var<storage, read_write> cov_term: array<f32>;

fn z_at(i: u32) -> f32 {
    if p.branch == 0u {
        return za[i];
    }
    return zb[i];
}

@compute @workgroup_size(64)
fn stats(@builtin(global_invocation_id) gid: vec3<u32>) {
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
        zc[i * p.d + j] = c;
        ss += c * c;
    }
    let v = ss / f32(p.n - 1u);
    variance[p.branch * p.d + j] = v;
    colsum[(1u + p.branch) * p.d + j] = max(p.gamma - sqrt(v + p.eps), 0.0);
    colsum[(3u + p.branch) * p.d + j] = v * v;
    if p.branch == 0u {
        var q = 0.0;
        for (var i = 0u; i < p.n; i++) {
            let e = za[i * p.d + j] - zb[i * p.d + j];
            q += e * e;
        }
        colsum[j] = q;
    }
}

@compute @workgroup_size(1)
fn finish() {
    let d = f32(p.d);
    let inv = sums[0] / (f32(p.n) * d);
    // Mean over columns, averaged over the two branches.
    let hinge = (sums[1] + sums[2]) / (2.0 * d);
    var off = cov_sum[0];
    if p.batch_gram != 0u {
        off -= sums[3] + sums[4];
    }
    let cov = off / d;
    inv_term[0] = inv;
    var_term[0] = hinge;
    cov_term[0] = cov;
    loss[0] = p.w_inv * inv + p.w_var * hinge + p.w_cov * cov;
}

@compute @workgroup_size(256)
fn grad_init(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    if i >= p.n * p.d {
        return;
    }
    let j = i % p.d;
    let n = f32(p.n);
    let d = f32(p.d);
    // d/dz of mean (za - zb)^2: +-2 (za - zb) / (n d).
    let sign = select(-1.0, 1.0, p.branch == 0u);
    var v = sign * p.w_inv * 2.0 * (za[i] - zb[i]) / (n * d);
    // d/dz of relu(gamma - std) / (2 d) with std = sqrt(sum zc^2 / (n-1) + eps):
    // -zc / ((n - 1) std) / (2 d) where the hinge is active. The mean's own
    // gradient vanishes because the centred column sums to zero.
    let var_j = variance[p.branch * p.d + j];
    let sdev = sqrt(var_j + p.eps);
    if sdev < p.gamma {
        v -= p.w_var * zc[i] / ((n - 1.0) * sdev * 2.0 * d);
    }
    // The batch Gram path adds K·Zc = Zc·C; Zc·C_off is that minus Zc·diag(var).
    if p.batch_gram != 0u {
        v -= p.w_cov * 4.0 / (d * (n - 1.0)) * zc[i] * var_j;
    }
    dz[i] = g[0] * v;
}
