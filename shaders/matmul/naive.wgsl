// matmul, variant 1 of 4: naive.
//
// C[m, n] = sum_k op(A)[m, k] * op(B)[k, n], one output per invocation, every
// operand read straight from global memory. op(X) is X or its transpose,
// chosen by the override constants TRANS_A / TRANS_B, so a backward pass
// multiplies by a transpose without materialising it. workgroup_id.z selects
// a matrix of a batch; a batch stride of 0 shares an operand.
//
// This is the readable reference and the baseline the other variants are
// measured against: each A element is loaded N times and each B element M
// times, so it is bound by memory traffic everywhere.

override TRANS_A: bool = false;
override TRANS_B: bool = false;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad0: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// op(A)[row, kk] for the matrix of the batch starting at `base`.
fn a_at(base: u32, row: u32, kk: u32) -> f32 {
    if TRANS_A {
        return a[base + kk * p.m + row];
    }
    return a[base + row * p.k + kk];
}

// op(B)[kk, col].
fn b_at(base: u32, kk: u32, col: u32) -> f32 {
    if TRANS_B {
        return b[base + col * p.k + kk];
    }
    return b[base + kk * p.n + col];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if row >= p.m || col >= p.n {
        return;
    }
    let base_a = gid.z * p.stride_a;
    let base_b = gid.z * p.stride_b;
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc += a_at(base_a, row, kk) * b_at(base_b, kk, col);
    }
    c[gid.z * p.stride_c + row * p.n + col] = acc;
}
