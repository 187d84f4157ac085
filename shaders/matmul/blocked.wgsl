// matmul, variant 3 of 3: register-blocked, barrier-free (the CPU variant).
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

override TRANS_A: bool = false;
override TRANS_B: bool = false;

const RB: u32 = 8u;  // rows of C per invocation
const CB: u32 = 16u; // columns of C per invocation (4 vec4)

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

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row0 = gid.x * RB;
    let col0 = wid.y * CB;
    if row0 >= p.m {
        return;
    }
    let base_a = wid.z * p.stride_a;
    let base_b = wid.z * p.stride_b;

    var rows: array<u32, 8>;
    for (var r = 0u; r < RB; r++) {
        rows[r] = min(row0 + r, p.m - 1u);
    }
    let last_col = vec4<u32>(p.n - 1u);
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    var cols: array<vec4<u32>, 4>;
    for (var q = 0u; q < 4u; q++) {
        cols[q] = min(vec4<u32>(col0 + 4u * q) + lanes, last_col);
    }

    var acc: array<vec4<f32>, 32>; // acc[r * 4 + q] = C[row0 + r, col0 + 4q .. 4q + 4]
    let k4 = p.k & ~3u;
    for (var kk = 0u; kk < k4; kk += 4u) {
        var bv: array<vec4<f32>, 16>; // bv[s * 4 + q] = op(B)[kk + s, cols[q]]
        for (var s = 0u; s < 4u; s++) {
            for (var q = 0u; q < 4u; q++) {
                bv[s * 4u + q] = b4(base_b, kk + s, cols[q]);
            }
        }
        for (var r = 0u; r < RB; r++) {
            let av = a4(base_a, rows[r], kk);
            for (var q = 0u; q < 4u; q++) {
                acc[r * 4u + q] += av.x * bv[q] + av.y * bv[4u + q]
                                 + av.z * bv[8u + q] + av.w * bv[12u + q];
            }
        }
    }
    // The k % 4 leftover steps, one at a time.
    for (var kk = k4; kk < p.k; kk++) {
        var bv: array<vec4<f32>, 4>;
        for (var q = 0u; q < 4u; q++) {
            bv[q] = b4(base_b, kk, cols[q]);
        }
        for (var r = 0u; r < RB; r++) {
            let av = a1(base_a, rows[r], kk);
            for (var q = 0u; q < 4u; q++) {
                acc[r * 4u + q] += av * bv[q];
            }
        }
    }

    let base_c = wid.z * p.stride_c;
    for (var r = 0u; r < RB; r++) {
        let row = row0 + r;
        if row >= p.m {
            break;
        }
        for (var q = 0u; q < 4u; q++) {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + 4u * q + j;
                if col < p.n {
                    c[base_c + row * p.n + col] = acc[r * 4u + q][j];
                }
            }
        }
    }
}
