// Sum of each row of a contiguous [rows, len] view, times a scale:
// out[r] = scale * sum(x[r * len .. min((r + 1) * len, total)]).
// With the override SQUARE the elements are squared first (for norms).
//
// `main`: one workgroup per row. Each invocation first adds a strided slice
// of the row serially (so any length works, power of two or not), then the
// 64 partial sums meet in a tree in workgroup memory. The tree adds numbers of
// similar magnitude, which keeps the f32 error near that of pairwise
// summation. An empty row sums to 0. The host reduces a very long vector in
// two levels: chunks to partial sums, then the partial sums, each level
// through this kernel.
//
// `short`: one invocation per row, for rows of at most 64 values (a global
// average pool's 7 x 7 planes), adding them in `main`'s order. There a
// workgroup per row left most of its lanes idle and paid six barriers for
// a few loads: 32 768 rows of 49 took 27 ms on llvmpipe.

const WG: u32 = 64u;

override SQUARE: bool = false;

struct Params {
    len: u32,
    total: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.y * nwg.x + wid.x;
    let start = row * p.len;
    let end = min(start + p.len, p.total);
    var acc = 0.0;
    for (var i = start + lid; i < end; i += WG) {
        let v = x[i];
        acc += select(v, v * v, SQUARE);
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width /= 2u) {
        if lid < width {
            partial[lid] += partial[lid + width];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        out[row] = partial[0] * p.scale;
    }
}

@compute @workgroup_size(WG)
fn short(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wid.y * nwg.x + wid.x) * WG + lid;
    // As many rows as `main` would have workgroups: at least one.
    if row >= max((p.total + p.len - 1u) / p.len, 1u) {
        return;
    }
    let start = row * p.len;
    let end = min(start + p.len, p.total);
    // `main`'s tree, added in the same order: value i of the row sits in
    // slot i of 64 (zeros past the row), slot l takes slot l + width for
    // width = 32, 16, ..., 1. So both kernels give the same bits.
    var acc: array<f32, 32>;
    for (var l = 0u; l < 32u; l++) {
        var v = 0.0;
        if start + l < end {
            let a = x[start + l];
            v = select(a, a * a, SQUARE);
        }
        if start + l + 32u < end {
            let b = x[start + l + 32u];
            v += select(b, b * b, SQUARE);
        }
        acc[l] = v;
    }
    for (var width = 16u; width > 0u; width /= 2u) {
        for (var l = 0u; l < width; l++) {
            acc[l] += acc[l + width];
        }
    }
    out[row] = acc[0] * p.scale;
}
