// AdamW (Loshchilov & Hutter; PyTorch's rule), in place, one element per
// invocation:
//   w *= 1 - lr * wd
//   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
//   w -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
// with the bias corrections bc = 1 - beta^t computed on the host per step.
// Decoupled decay: the decay does not pass through the moment estimates.

struct Params {
    n: u32,
    lr: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias_correction1: f32,
    bias_correction2_sqrt: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    if i >= p.n {
        return;
    }
    let grad = g[i];
    let m1 = p.beta1 * m[i] + (1.0 - p.beta1) * grad;
    let v1 = p.beta2 * v[i] + (1.0 - p.beta2) * grad * grad;
    m[i] = m1;
    v[i] = v1;
    let decayed = w[i] * (1.0 - p.lr * p.weight_decay);
    let denom = sqrt(v1) / p.bias_correction2_sqrt + p.eps;
    w[i] = decayed - (p.lr / p.bias_correction1) * m1 / denom;
}
