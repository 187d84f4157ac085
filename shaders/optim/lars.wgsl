// LARS (You et al. 2017), as the VICReg and Barlow Twins reference code
// applies it, in place:
//   d = g + wd * w
//   q = eta * |w| / |d|   (1 where either norm is 0)
//   mu = momentum * mu + q * d;   w -= lr * mu
// Biases and normalisation parameters skip the decay and the adaptation
// (the override ADAPT is false for them; d = g, q = 1).
//
// Two entry points: `prepare` writes d, whose squared norm (and that of w)
// the host then reduces on the GPU with reduce/rows.wgsl into `norms`;
// `update` reads the two norms and applies the step. Nothing comes back to
// the CPU: the trust ratio is computed by every invocation from the norms.

override ADAPT: bool = true;

struct Params {
    n: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    eta: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> d: array<f32>;
@group(0) @binding(4) var<storage, read_write> mu: array<f32>;
@group(0) @binding(5) var<storage, read> w_norm2: array<f32>;
@group(0) @binding(6) var<storage, read> d_norm2: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn prepare(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    d[i] = g[i] + p.weight_decay * w[i];
}

@compute @workgroup_size(256)
fn update(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    var q = 1.0;
    if ADAPT {
        let w_norm = sqrt(w_norm2[0]);
        let d_norm = sqrt(d_norm2[0]);
        if w_norm > 0.0 && d_norm > 0.0 {
            q = p.eta * w_norm / d_norm;
        }
    }
    let vel = p.momentum * mu[i] + q * d[i];
    mu[i] = vel;
    w[i] -= p.lr * vel;
}
