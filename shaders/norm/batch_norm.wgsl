// Batch normalisation over (N, C, L) with L = H * W (1 for (N, C) inputs):
// every channel c is normalised with statistics over its N * L values.
//
// `stats`           one workgroup per channel: batch mean and 1/sqrt(var + eps)
//                   with the biased variance, and the running estimates
//                   updated in place with the unbiased variance (PyTorch's rule).
//                   With MOMENTS, the mean and the biased variance themselves
//                   and no update: a rank's share of synchronised batch norm,
//                   combined over the ranks on the host.
// `update_running`  one invocation per channel: the running estimates moved
//                   towards a given mean and unbiased variance (synchronised
//                   batch norm's global ones).
// `eval_stats`      one invocation per channel: the same two vectors from the
//                   running estimates, so eval mode reuses `normalize`.
// `normalize`       workgroups (channel, slice): y = (x - mean) * invstd (* gamma + beta).
// `backward_reduce` one workgroup per channel: dbeta = sum dy, dgamma = sum dy * xhat.
// `backward_input`  workgroups (channel, slice):
//                   dx = gamma * invstd * (dy - (dbeta + xhat * dgamma) / count)
//                   in training mode, count = total * L (total: the samples
//                   of the whole batch, across ranks when synchronised) (the statistics depend on x), and
//                   gamma * invstd * dy in eval mode.
//
// With RELU, batch norm and the relu after it are one op: `normalize`
// writes max(y, 0), and the backward kernels take dy where y > 0 and 0
// elsewhere, recomputing y from x with the forward's own expression
// (`pre_relu`). That saves the relu's two passes over the activation (one
// each way) and the normalised activation it would have kept.
//
// Every kernel keeps one channel per workgroup (workgroup_id.x), so the
// channel's statistics and parameters are workgroup-uniform loads; the
// element-wise ones cut the channel's N * L values into slices
// (workgroup_id.y) that their invocations stride through. Indexed per
// element instead, each invocation loaded them for its own channel: on
// llvmpipe a load whose address may differ per lane is a loop over the
// lanes, and the backward made nine of them per element.
//
// The per-channel sums use a two-pass mean / variance and a tree in
// workgroup memory: a handful of barriers per channel, against N * L loads.
//
// C and L are override constants, so each layer shape gets its own pipeline
// and the index arithmetic (element -> channel, channel value -> element)
// divides by constants, which compile to a multiply and a shift. Divisors
// read from a uniform stay integer divisions: on CPU drivers, which have no
// vector integer divide, those are one scalar division per lane and cost
// more than the loads they address.

override AFFINE: bool = true;
override TRAIN: bool = true;
override MOMENTS: bool = false;
override RELU: bool = false;
override C: u32 = 1u;
override L: u32 = 1u;

struct Params {
    n: u32,
    momentum: f32,
    eps: f32,
    total: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> partial: array<f32, 256>;

// The sum of `v` over the workgroup, returned to every invocation.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if lid < s {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// Index of the i-th value of channel c.
fn at(c: u32, i: u32) -> u32 {
    return ((i / L) * C + c) * L + i % L;
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> invstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;

@compute @workgroup_size(256)
fn stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let count = p.n * L;
    var s = 0.0;
    for (var i = lid; i < count; i += 256u) {
        s += x[at(c, i)];
    }
    let mu = workgroup_sum(lid, s) / f32(count);
    var q = 0.0;
    for (var i = lid; i < count; i += 256u) {
        let d = x[at(c, i)] - mu;
        q += d * d;
    }
    let var_biased = workgroup_sum(lid, q) / f32(count);
    if lid == 0u && MOMENTS {
        mean[c] = mu;
        invstd[c] = var_biased;
    } else if lid == 0u {
        mean[c] = mu;
        invstd[c] = 1.0 / sqrt(var_biased + p.eps);
        let unbiased = var_biased * f32(count) / f32(max(count, 2u) - 1u);
        running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mu;
        running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
    }
}

@compute @workgroup_size(64)
fn eval_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if c >= C {
        return;
    }
    mean[c] = running_mean[c];
    invstd[c] = 1.0 / sqrt(running_var[c] + p.eps);
}

// Here `mean` holds the mean and `invstd` the unbiased variance to move
// the running estimates towards.
@compute @workgroup_size(64)
fn update_running(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if c >= C {
        return;
    }
    running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mean[c];
    running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * invstd[c];
}

// The normalised value that RELU clamps: `normalize`'s output before the
// relu, and what the backward kernels recompute for the relu's mask.
fn pre_relu(x: f32, mean: f32, invstd: f32, gamma: f32, beta: f32) -> f32 {
    var v = (x - mean) * invstd;
    if AFFINE {
        v = v * gamma + beta;
    }
    return v;
}

@group(0) @binding(1) var<storage, read> nx: array<f32>;
@group(0) @binding(2) var<storage, read> nmean: array<f32>;
@group(0) @binding(3) var<storage, read> ninvstd: array<f32>;
// Without the affine transform the host binds the mean here; never read.
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wid.x;
    let m = nmean[c];
    let s = ninvstd[c];
    let g = gamma[c];
    let b = beta[c];
    for (var i = wid.y * 256u + lid; i < p.n * L; i += nwg.y * 256u) {
        let j = at(c, i);
        var v = pre_relu(nx[j], m, s, g, b);
        if RELU {
            v = max(v, 0.0);
        }
        y[j] = v;
    }
}

@group(0) @binding(1) var<storage, read> bx: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> bmean: array<f32>;
@group(0) @binding(4) var<storage, read> binvstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;
// For RELU's mask (the host binds the mean without the affine transform).
@group(0) @binding(7) var<storage, read> rgamma: array<f32>;
@group(0) @binding(8) var<storage, read> rbeta: array<f32>;

@compute @workgroup_size(256)
fn backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let count = p.n * L;
    let mu = bmean[c];
    let invstd = binvstd[c];
    let gm = rgamma[c];
    let bt = rbeta[c];
    var sd = 0.0;
    var sdx = 0.0;
    for (var i = lid; i < count; i += 256u) {
        let j = at(c, i);
        let v = bx[j];
        var g = dy[j];
        if RELU && pre_relu(v, mu, invstd, gm, bt) <= 0.0 {
            g = 0.0;
        }
        sd += g;
        sdx += g * (v - mu);
    }
    let total_dy = workgroup_sum(lid, sd);
    let total_dyx = workgroup_sum(lid, sdx);
    if lid == 0u {
        dbeta[c] = total_dy;
        dgamma[c] = total_dyx * invstd;
    }
}

@group(0) @binding(1) var<storage, read> ix: array<f32>;
@group(0) @binding(2) var<storage, read> idy: array<f32>;
@group(0) @binding(3) var<storage, read> imean: array<f32>;
@group(0) @binding(4) var<storage, read> iinvstd: array<f32>;
// Without the affine transform the host binds the mean here; never read.
@group(0) @binding(5) var<storage, read> igamma: array<f32>;
@group(0) @binding(6) var<storage, read> idgamma: array<f32>;
@group(0) @binding(7) var<storage, read> idbeta: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
// For RELU's mask (the host binds the mean without the affine transform).
@group(0) @binding(9) var<storage, read> ibeta: array<f32>;

@compute @workgroup_size(256)
fn backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wid.x;
    let m = imean[c];
    let s = iinvstd[c];
    let gm = igamma[c];
    let bt = ibeta[c];
    var scale = s;
    if AFFINE {
        scale *= gm;
    }
    let db = idbeta[c];
    let dg = idgamma[c];
    for (var i = wid.y * 256u + lid; i < p.n * L; i += nwg.y * 256u) {
        let j = at(c, i);
        let v = ix[j];
        var g = idy[j];
        if RELU && pre_relu(v, m, s, gm, bt) <= 0.0 {
            g = 0.0;
        }
        if TRAIN {
            let xhat = (v - m) * s;
            g -= (db + xhat * dg) / f32(p.total * L);
        }
        dx[j] = scale * g;
    }
}
