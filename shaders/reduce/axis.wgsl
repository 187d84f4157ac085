// Sum over the middle axis of a contiguous [outer, len, inner] view, times a
// scale: out[o, i] = scale * sum_l x[o, l, i].
//
// Used when the reduced axis is not the innermost one (inner > 1), e.g. the
// batch axis of an [N, D] matrix. One invocation per output walks the axis;
// neighbouring invocations read neighbouring addresses, so the loads
// coalesce on a GPU and vectorise on a CPU driver. Reducing the innermost
// axis goes through rows.wgsl instead.

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = (wid.y * nwg.x + wid.x) * 256u + lid;
    if j >= p.outer * p.inner {
        return;
    }
    let o = j / p.inner;
    let i = j % p.inner;
    let base = o * p.len * p.inner + i;
    // Two accumulators halve the length of each f32 addition chain.
    var even = 0.0;
    var odd = 0.0;
    var l = 0u;
    for (; l + 1u < p.len; l += 2u) {
        even += x[base + l * p.inner];
        odd += x[base + (l + 1u) * p.inner];
    }
    if l < p.len {
        even += x[base + l * p.inner];
    }
    out[j] = (even + odd) * p.scale;
}
