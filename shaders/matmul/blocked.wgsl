// matmul, variant 3 of 4: register-blocked, barrier-free (the default on GPUs).
//
// Changes from tiled: no workgroup memory and no barriers. Each invocation
// computes an 8 x 16 block of C in 32 vec4 accumulators; per 4-wide step
// along k it loads 8 vec4 of A and 16 vec4 of B and does 128 vec4 FMAs, so
// the block itself is the cache. CPU drivers such as llvmpipe run a workgroup
// as a loop over SIMD chunks of invocations and pay a coroutine switch per
// chunk at every barrier: removing the barriers and enlarging the register
// block is what makes this several times faster than tiled there.
//
// Consecutive invocations (the SIMD lanes) take consecutive row blocks while
// the column block comes from workgroup_id.y, so all lanes read the same B
// addresses (one broadcast load) and only the A loads differ per lane.
//
// Indices are clamped to the last row / column instead of branching, so
// every load is in range and the host may compile this module without
// runtime bounds checks; values computed from clamped reads are never stored.
//
// The block is written out in full (32 named accumulators, 16 named B
// values) rather than as loops over local arrays: a CPU driver that does not
// unroll those loops keeps a dynamically indexed array in memory, and the
// written-out form measured 1.8x faster on llvmpipe. Explicit fma() keeps
// the multiply-adds fused.

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

// op(A)[row, kk .. kk + 4], row already clamped, kk + 3 < K.
fn a4(base: u32, row: u32, kk: u32) -> vec4<f32> {
    if TRANS_A {
        return vec4<f32>(a[base + kk * p.m + row], a[base + (kk + 1u) * p.m + row],
                         a[base + (kk + 2u) * p.m + row], a[base + (kk + 3u) * p.m + row]);
    }
    let i = base + row * p.k + kk;
    return vec4<f32>(a[i], a[i + 1u], a[i + 2u], a[i + 3u]);
}

// op(A)[row, kk].
fn a1(base: u32, row: u32, kk: u32) -> f32 {
    if TRANS_A {
        return a[base + kk * p.m + row];
    }
    return a[base + row * p.k + kk];
}

// op(B)[kk, cols], for four clamped column indices.
fn b4(base: u32, kk: u32, cols: vec4<u32>) -> vec4<f32> {
    if TRANS_B {
        let i = base + cols * p.k + kk;
        return vec4<f32>(b[i.x], b[i.y], b[i.z], b[i.w]);
    }
    let i = base + kk * p.n + cols;
    return vec4<f32>(b[i.x], b[i.y], b[i.z], b[i.w]);
}

// Writes one row of the block, skipping columns and rows past the edge.
fn store4(base: u32, row: u32, col0: u32, v: vec4<f32>) {
    if row >= p.m {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if col0 + j < p.n {
            c[base + row * p.n + col0 + j] = v[j];
        }
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row0 = gid.x * 8u;
    let col0 = wid.y * 16u;
    let base_a = wid.z * p.stride_a;
    let base_b = wid.z * p.stride_b;
    // Clamped indices: every load is in range; rows and columns past the
    // edge compute values that are never stored.
    let r0 = min(row0 + 0u, p.m - 1u);
    let r1 = min(row0 + 1u, p.m - 1u);
    let r2 = min(row0 + 2u, p.m - 1u);
    let r3 = min(row0 + 3u, p.m - 1u);
    let r4 = min(row0 + 4u, p.m - 1u);
    let r5 = min(row0 + 5u, p.m - 1u);
    let r6 = min(row0 + 6u, p.m - 1u);
    let r7 = min(row0 + 7u, p.m - 1u);
    let last_col = vec4<u32>(p.n - 1u);
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    let n0 = min(vec4<u32>(col0 + 0u) + lanes, last_col);
    let n1 = min(vec4<u32>(col0 + 4u) + lanes, last_col);
    let n2 = min(vec4<u32>(col0 + 8u) + lanes, last_col);
    let n3 = min(vec4<u32>(col0 + 12u) + lanes, last_col);

    var c00 = vec4<f32>(); var c01 = vec4<f32>(); var c02 = vec4<f32>(); var c03 = vec4<f32>();
    var c10 = vec4<f32>(); var c11 = vec4<f32>(); var c12 = vec4<f32>(); var c13 = vec4<f32>();
    var c20 = vec4<f32>(); var c21 = vec4<f32>(); var c22 = vec4<f32>(); var c23 = vec4<f32>();
    var c30 = vec4<f32>(); var c31 = vec4<f32>(); var c32 = vec4<f32>(); var c33 = vec4<f32>();
    var c40 = vec4<f32>(); var c41 = vec4<f32>(); var c42 = vec4<f32>(); var c43 = vec4<f32>();
    var c50 = vec4<f32>(); var c51 = vec4<f32>(); var c52 = vec4<f32>(); var c53 = vec4<f32>();
    var c60 = vec4<f32>(); var c61 = vec4<f32>(); var c62 = vec4<f32>(); var c63 = vec4<f32>();
    var c70 = vec4<f32>(); var c71 = vec4<f32>(); var c72 = vec4<f32>(); var c73 = vec4<f32>();
    let k4 = p.k & ~3u;
    for (var kk = 0u; kk < k4; kk += 4u) {
        let b00 = b4(base_b, kk + 0u, n0); let b01 = b4(base_b, kk + 0u, n1); let b02 = b4(base_b, kk + 0u, n2); let b03 = b4(base_b, kk + 0u, n3);
        let b10 = b4(base_b, kk + 1u, n0); let b11 = b4(base_b, kk + 1u, n1); let b12 = b4(base_b, kk + 1u, n2); let b13 = b4(base_b, kk + 1u, n3);
        let b20 = b4(base_b, kk + 2u, n0); let b21 = b4(base_b, kk + 2u, n1); let b22 = b4(base_b, kk + 2u, n2); let b23 = b4(base_b, kk + 2u, n3);
        let b30 = b4(base_b, kk + 3u, n0); let b31 = b4(base_b, kk + 3u, n1); let b32 = b4(base_b, kk + 3u, n2); let b33 = b4(base_b, kk + 3u, n3);
        let x0 = a4(base_a, r0, kk);
        c00 = fma(vec4<f32>(x0.w), b30, fma(vec4<f32>(x0.z), b20, fma(vec4<f32>(x0.y), b10, fma(vec4<f32>(x0.x), b00, c00))));
        c01 = fma(vec4<f32>(x0.w), b31, fma(vec4<f32>(x0.z), b21, fma(vec4<f32>(x0.y), b11, fma(vec4<f32>(x0.x), b01, c01))));
        c02 = fma(vec4<f32>(x0.w), b32, fma(vec4<f32>(x0.z), b22, fma(vec4<f32>(x0.y), b12, fma(vec4<f32>(x0.x), b02, c02))));
        c03 = fma(vec4<f32>(x0.w), b33, fma(vec4<f32>(x0.z), b23, fma(vec4<f32>(x0.y), b13, fma(vec4<f32>(x0.x), b03, c03))));
        let x1 = a4(base_a, r1, kk);
        c10 = fma(vec4<f32>(x1.w), b30, fma(vec4<f32>(x1.z), b20, fma(vec4<f32>(x1.y), b10, fma(vec4<f32>(x1.x), b00, c10))));
        c11 = fma(vec4<f32>(x1.w), b31, fma(vec4<f32>(x1.z), b21, fma(vec4<f32>(x1.y), b11, fma(vec4<f32>(x1.x), b01, c11))));
        c12 = fma(vec4<f32>(x1.w), b32, fma(vec4<f32>(x1.z), b22, fma(vec4<f32>(x1.y), b12, fma(vec4<f32>(x1.x), b02, c12))));
        c13 = fma(vec4<f32>(x1.w), b33, fma(vec4<f32>(x1.z), b23, fma(vec4<f32>(x1.y), b13, fma(vec4<f32>(x1.x), b03, c13))));
        let x2 = a4(base_a, r2, kk);
        c20 = fma(vec4<f32>(x2.w), b30, fma(vec4<f32>(x2.z), b20, fma(vec4<f32>(x2.y), b10, fma(vec4<f32>(x2.x), b00, c20))));
        c21 = fma(vec4<f32>(x2.w), b31, fma(vec4<f32>(x2.z), b21, fma(vec4<f32>(x2.y), b11, fma(vec4<f32>(x2.x), b01, c21))));
        c22 = fma(vec4<f32>(x2.w), b32, fma(vec4<f32>(x2.z), b22, fma(vec4<f32>(x2.y), b12, fma(vec4<f32>(x2.x), b02, c22))));
        c23 = fma(vec4<f32>(x2.w), b33, fma(vec4<f32>(x2.z), b23, fma(vec4<f32>(x2.y), b13, fma(vec4<f32>(x2.x), b03, c23))));
        let x3 = a4(base_a, r3, kk);
        c30 = fma(vec4<f32>(x3.w), b30, fma(vec4<f32>(x3.z), b20, fma(vec4<f32>(x3.y), b10, fma(vec4<f32>(x3.x), b00, c30))));
        c31 = fma(vec4<f32>(x3.w), b31, fma(vec4<f32>(x3.z), b21, fma(vec4<f32>(x3.y), b11, fma(vec4<f32>(x3.x), b01, c31))));
        c32 = fma(vec4<f32>(x3.w), b32, fma(vec4<f32>(x3.z), b22, fma(vec4<f32>(x3.y), b12, fma(vec4<f32>(x3.x), b02, c32))));
        c33 = fma(vec4<f32>(x3.w), b33, fma(vec4<f32>(x3.z), b23, fma(vec4<f32>(x3.y), b13, fma(vec4<f32>(x3.x), b03, c33))));
        let x4 = a4(base_a, r4, kk);
        c40 = fma(vec4<f32>(x4.w), b30, fma(vec4<f32>(x4.z), b20, fma(vec4<f32>(x4.y), b10, fma(vec4<f32>(x4.x), b00, c40))));
        c41 = fma(vec4<f32>(x4.w), b31, fma(vec4<f32>(x4.z), b21, fma(vec4<f32>(x4.y), b11, fma(vec4<f32>(x4.x), b01, c41))));
        c42 = fma(vec4<f32>(x4.w), b32, fma(vec4<f32>(x4.z), b22, fma(vec4<f32>(x4.y), b12, fma(vec4<f32>(x4.x), b02, c42))));
        c43 = fma(vec4<f32>(x4.w), b33, fma(vec4<f32>(x4.z), b23, fma(vec4<f32>(x4.y), b13, fma(vec4<f32>(x4.x), b03, c43))));
        let x5 = a4(base_a, r5, kk);
        c50 = fma(vec4<f32>(x5.w), b30, fma(vec4<f32>(x5.z), b20, fma(vec4<f32>(x5.y), b10, fma(vec4<f32>(x5.x), b00, c50))));
        c51 = fma(vec4<f32>(x5.w), b31, fma(vec4<f32>(x5.z), b21, fma(vec4<f32>(x5.y), b11, fma(vec4<f32>(x5.x), b01, c51))));
        c52 = fma(vec4<f32>(x5.w), b32, fma(vec4<f32>(x5.z), b22, fma(vec4<f32>(x5.y), b12, fma(vec4<f32>(x5.x), b02, c52))));
        c53 = fma(vec4<f32>(x5.w), b33, fma(vec4<f32>(x5.z), b23, fma(vec4<f32>(x5.y), b13, fma(vec4<f32>(x5.x), b03, c53))));
        let x6 = a4(base_a, r6, kk);
        c60 = fma(vec4<f32>(x6.w), b30, fma(vec4<f32>(x6.z), b20, fma(vec4<f32>(x6.y), b10, fma(vec4<f32>(x6.x), b00, c60))));
        c61 = fma(vec4<f32>(x6.w), b31, fma(vec4<f32>(x6.z), b21, fma(vec4<f32>(x6.y), b11, fma(vec4<f32>(x6.x), b01, c61))));
        c62 = fma(vec4<f32>(x6.w), b32, fma(vec4<f32>(x6.z), b22, fma(vec4<f32>(x6.y), b12, fma(vec4<f32>(x6.x), b02, c62))));
        c63 = fma(vec4<f32>(x6.w), b33, fma(vec4<f32>(x6.z), b23, fma(vec4<f32>(x6.y), b13, fma(vec4<f32>(x6.x), b03, c63))));
        let x7 = a4(base_a, r7, kk);
        c70 = fma(vec4<f32>(x7.w), b30, fma(vec4<f32>(x7.z), b20, fma(vec4<f32>(x7.y), b10, fma(vec4<f32>(x7.x), b00, c70))));
        c71 = fma(vec4<f32>(x7.w), b31, fma(vec4<f32>(x7.z), b21, fma(vec4<f32>(x7.y), b11, fma(vec4<f32>(x7.x), b01, c71))));
        c72 = fma(vec4<f32>(x7.w), b32, fma(vec4<f32>(x7.z), b22, fma(vec4<f32>(x7.y), b12, fma(vec4<f32>(x7.x), b02, c72))));
        c73 = fma(vec4<f32>(x7.w), b33, fma(vec4<f32>(x7.z), b23, fma(vec4<f32>(x7.y), b13, fma(vec4<f32>(x7.x), b03, c73))));
    }
    // The k % 4 leftover steps, one at a time.
    for (var kk = k4; kk < p.k; kk++) {
        let t0 = b4(base_b, kk, n0); let t1 = b4(base_b, kk, n1); let t2 = b4(base_b, kk, n2); let t3 = b4(base_b, kk, n3);
        let x0 = a1(base_a, r0, kk);
        c00 = fma(vec4<f32>(x0), t0, c00); c01 = fma(vec4<f32>(x0), t1, c01); c02 = fma(vec4<f32>(x0), t2, c02); c03 = fma(vec4<f32>(x0), t3, c03);
        let x1 = a1(base_a, r1, kk);
        c10 = fma(vec4<f32>(x1), t0, c10); c11 = fma(vec4<f32>(x1), t1, c11); c12 = fma(vec4<f32>(x1), t2, c12); c13 = fma(vec4<f32>(x1), t3, c13);
        let x2 = a1(base_a, r2, kk);
        c20 = fma(vec4<f32>(x2), t0, c20); c21 = fma(vec4<f32>(x2), t1, c21); c22 = fma(vec4<f32>(x2), t2, c22); c23 = fma(vec4<f32>(x2), t3, c23);
        let x3 = a1(base_a, r3, kk);
        c30 = fma(vec4<f32>(x3), t0, c30); c31 = fma(vec4<f32>(x3), t1, c31); c32 = fma(vec4<f32>(x3), t2, c32); c33 = fma(vec4<f32>(x3), t3, c33);
        let x4 = a1(base_a, r4, kk);
        c40 = fma(vec4<f32>(x4), t0, c40); c41 = fma(vec4<f32>(x4), t1, c41); c42 = fma(vec4<f32>(x4), t2, c42); c43 = fma(vec4<f32>(x4), t3, c43);
        let x5 = a1(base_a, r5, kk);
        c50 = fma(vec4<f32>(x5), t0, c50); c51 = fma(vec4<f32>(x5), t1, c51); c52 = fma(vec4<f32>(x5), t2, c52); c53 = fma(vec4<f32>(x5), t3, c53);
        let x6 = a1(base_a, r6, kk);
        c60 = fma(vec4<f32>(x6), t0, c60); c61 = fma(vec4<f32>(x6), t1, c61); c62 = fma(vec4<f32>(x6), t2, c62); c63 = fma(vec4<f32>(x6), t3, c63);
        let x7 = a1(base_a, r7, kk);
        c70 = fma(vec4<f32>(x7), t0, c70); c71 = fma(vec4<f32>(x7), t1, c71); c72 = fma(vec4<f32>(x7), t2, c72); c73 = fma(vec4<f32>(x7), t3, c73);
    }

    let base_c = wid.z * p.stride_c;
    store4(base_c, row0 + 0u, col0 + 0u, c00);
    store4(base_c, row0 + 0u, col0 + 4u, c01);
    store4(base_c, row0 + 0u, col0 + 8u, c02);
    store4(base_c, row0 + 0u, col0 + 12u, c03);
    store4(base_c, row0 + 1u, col0 + 0u, c10);
    store4(base_c, row0 + 1u, col0 + 4u, c11);
    store4(base_c, row0 + 1u, col0 + 8u, c12);
    store4(base_c, row0 + 1u, col0 + 12u, c13);
    store4(base_c, row0 + 2u, col0 + 0u, c20);
    store4(base_c, row0 + 2u, col0 + 4u, c21);
    store4(base_c, row0 + 2u, col0 + 8u, c22);
    store4(base_c, row0 + 2u, col0 + 12u, c23);
    store4(base_c, row0 + 3u, col0 + 0u, c30);
    store4(base_c, row0 + 3u, col0 + 4u, c31);
    store4(base_c, row0 + 3u, col0 + 8u, c32);
    store4(base_c, row0 + 3u, col0 + 12u, c33);
    store4(base_c, row0 + 4u, col0 + 0u, c40);
    store4(base_c, row0 + 4u, col0 + 4u, c41);
    store4(base_c, row0 + 4u, col0 + 8u, c42);
    store4(base_c, row0 + 4u, col0 + 12u, c43);
    store4(base_c, row0 + 5u, col0 + 0u, c50);
    store4(base_c, row0 + 5u, col0 + 4u, c51);
    store4(base_c, row0 + 5u, col0 + 8u, c52);
    store4(base_c, row0 + 5u, col0 + 12u, c53);
    store4(base_c, row0 + 6u, col0 + 0u, c60);
    store4(base_c, row0 + 6u, col0 + 4u, c61);
    store4(base_c, row0 + 6u, col0 + 8u, c62);
    store4(base_c, row0 + 6u, col0 + 12u, c63);
    store4(base_c, row0 + 7u, col0 + 0u, c70);
    store4(base_c, row0 + 7u, col0 + 4u, c71);
    store4(base_c, row0 + 7u, col0 + 8u, c72);
    store4(base_c, row0 + 7u, col0 + 12u, c73);
}
