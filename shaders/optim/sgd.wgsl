// SGD with momentum and weight decay, in place, one element per invocation
// (PyTorch's rule): d = g + wd * w;  v = momentum * v + d;  w -= lr * v.
//
// The whole update is one pass over the parameter, its gradient and its
// momentum buffer: three reads and two writes per element, nothing else.

struct Params {
    n: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;

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
    let d = g[i] + p.weight_decay * w[i];
    let vel = p.momentum * v[i] + d;
    v[i] = vel;
    w[i] -= p.lr * vel;
}
