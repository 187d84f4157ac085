// Softmax cross-entropy of `rows` rows of `classes` logits against class
// indices (stored as f32, as every tensor is).
//
// `forward`   one invocation per row: the log-sum-exp with the row maximum
//             subtracted first (so exp never overflows), kept for the
//             backward, and loss[r] = lse[r] - x[r, label[r]]. The host
//             averages the per-row losses with the reduce kernel.
// `backward`  one invocation per element: dx = g (softmax - onehot) / rows,
//             with softmax = exp(x - lse) from the saved lse, so the backward
//             needs no second pass over the row.
// The target is found by comparing each column with the label rather than by
// indexing with it: a label outside 0..classes then selects no column (the
// row's loss is its lse) instead of reading another row.

struct Params {
    rows: u32,
    classes: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;

@compute @workgroup_size(64)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = gid.y * nwg.x * 64u + gid.x;
    if r >= p.rows {
        return;
    }
    let base = r * p.classes;
    var m = x[base];
    for (var j = 1u; j < p.classes; j++) {
        m = max(m, x[base + j]);
    }
    let label = u32(labels[r]);
    var s = 0.0;
    var target_logit = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        let v = x[base + j];
        s += exp(v - m);
        target_logit = select(target_logit, v, j == label);
    }
    let l = m + log(s);
    lse[r] = l;
    loss[r] = l - target_logit;
}

@group(0) @binding(1) var<storage, read> bx: array<f32>;
@group(0) @binding(2) var<storage, read> blabels: array<f32>;
@group(0) @binding(3) var<storage, read> blse: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if i >= p.rows * p.classes {
        return;
    }
    let r = i / p.classes;
    let j = i % p.classes;
    let onehot = select(0.0, 1.0, j == u32(blabels[r]));
    dx[i] = g[0] * (exp(bx[i] - blse[r]) - onehot) / f32(p.rows);
}
