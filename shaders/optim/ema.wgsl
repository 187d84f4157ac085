// Exponential moving average, in place, one element per invocation:
// target = m * target + (1 - m) * online.
//
// The update of an EMA target network (BYOL's target encoder and
// projector) after each optimiser step, over its parameters and its batch
// norm running statistics. Written as target + (1 - m) * (online - target),
// the form PyTorch's lerp uses, so m = 1 leaves the target bit for bit.

struct Params {
    n: u32,
    momentum: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> average: array<f32>;
@group(0) @binding(2) var<storage, read> online: array<f32>;

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
    let t = average[i];
    average[i] = t + (1.0 - p.momentum) * (online[i] - t);
}
