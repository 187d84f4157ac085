// Tiles of a Gram-like product P = op(A) · op(B) (M x N, reduced over K), the
// engine behind the VICReg covariance and the Barlow Twins cross-correlation.
// The full product (D x D for embeddings of width D) is never stored: each
// entry point consumes its 8 x 16 register block at once.
//
//   penalty      P is never written. Each invocation turns its block into one
//                number, sum w_off * c^2 off the diagonal + w_diag * (c - t)^2
//                on it (c = acc_scale * P), and writes it to a partial sum.
//                With `symmetric` set (P = XᵀX) blocks below the diagonal
//                are skipped and off-diagonal entries above it count twice,
//                which halves the work.
//   grad_strip   Writes a strip of rows of dPenalty/dc, scaled by the upstream
//                gradient g[0]: the backward walks P in strips of bounded
//                height, so its memory is one strip, not D x D.
//   accumulate   out += scale * P: multiplies a strip back into a gradient.
//
// Operands are strided views (offset, row stride, k stride) so one kernel
// reads XᵀX, Xᵀ·Y, X·S and X·Sᵀ without transposing anything.
//
// Why it is fast on CPU drivers (see LAVAPIPE.md): like matmul/blocked, each
// invocation keeps an 8 x 16 block in 32 vec4 accumulators and uses no
// workgroup memory and no barrier; consecutive invocations take consecutive
// row blocks and share the column block, so B loads are broadcasts. Load
// indices are clamped to the last row / column, so every load is in range.

const RB: u32 = 8u;  // rows of P per invocation
const CB: u32 = 16u; // columns of P per invocation (4 vec4)
// Small workgroups: a loss over a 256-wide embedding still spreads over
// several workgroups, i.e. over every CPU core.
const WG: u32 = 16u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // Row `r` of this product is row `r + diag_off` of the whole matrix: an
    // entry is diagonal when r + diag_off == column.
    diag_off: u32,
    a_off: u32,
    a_rs: u32,
    a_ks: u32,
    b_off: u32,
    b_ks: u32,
    b_cs: u32,
    out_off: u32,
    out_ld: u32,
    symmetric: u32,
    acc_scale: f32,
    w_off: f32,
    w_diag: f32,
    t_diag: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;

// acc[r * 4 + q][l] = sum_k A(row0 + r, k) * B(k, col0 + 4q + l).
fn block_product(row0: u32, col0: u32, acc: ptr<function, array<vec4<f32>, 32>>) {
    var rows: array<u32, 8>;
    for (var r = 0u; r < RB; r++) {
        rows[r] = p.a_off + min(row0 + r, p.m - 1u) * p.a_rs;
    }
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    var cols: array<vec4<u32>, 4>;
    for (var q = 0u; q < 4u; q++) {
        let c = min(vec4<u32>(col0 + 4u * q) + lanes, vec4<u32>(p.n - 1u));
        cols[q] = vec4<u32>(p.b_off) + c * p.b_cs;
    }
    let k4 = p.k & ~3u;
    for (var kk = 0u; kk < k4; kk += 4u) {
        var bv: array<vec4<f32>, 16>; // bv[s * 4 + q] = B(kk + s, cols[q])
        for (var s = 0u; s < 4u; s++) {
            for (var q = 0u; q < 4u; q++) {
                let i = cols[q] + (kk + s) * p.b_ks;
                bv[s * 4u + q] = vec4<f32>(b[i.x], b[i.y], b[i.z], b[i.w]);
            }
        }
        for (var r = 0u; r < RB; r++) {
            let i = rows[r] + kk * p.a_ks;
            let av = vec4<f32>(a[i], a[i + p.a_ks], a[i + 2u * p.a_ks], a[i + 3u * p.a_ks]);
            for (var q = 0u; q < 4u; q++) {
                (*acc)[r * 4u + q] += av.x * bv[q] + av.y * bv[4u + q]
                                    + av.z * bv[8u + q] + av.w * bv[12u + q];
            }
        }
    }
    for (var kk = k4; kk < p.k; kk++) {
        var bv: array<vec4<f32>, 4>;
        for (var q = 0u; q < 4u; q++) {
            let i = cols[q] + kk * p.b_ks;
            bv[q] = vec4<f32>(b[i.x], b[i.y], b[i.z], b[i.w]);
        }
        for (var r = 0u; r < RB; r++) {
            let av = a[rows[r] + kk * p.a_ks];
            for (var q = 0u; q < 4u; q++) {
                (*acc)[r * 4u + q] += av * bv[q];
            }
        }
    }
}

@compute @workgroup_size(WG)
fn penalty(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = gid.x * RB;
    let col0 = wid.y * CB;
    // Every invocation owns one partial sum, written even when it is zero.
    let slot = p.out_off + (wid.y * nwg.x + wid.x) * WG + lid;
    let below = p.symmetric != 0u && col0 + CB <= row0 + p.diag_off;
    var total = 0.0;
    if row0 < p.m && !below {
        var acc: array<vec4<f32>, 32>;
        block_product(row0, col0, &acc);
        for (var r = 0u; r < RB; r++) {
            let row = row0 + r;
            for (var q = 0u; q < 4u; q++) {
                for (var l = 0u; l < 4u; l++) {
                    let col = col0 + 4u * q + l;
                    if row >= p.m || col >= p.n {
                        continue;
                    }
                    let c = acc[r * 4u + q][l] * p.acc_scale;
                    let at = row + p.diag_off;
                    if at == col {
                        total += p.w_diag * (c - p.t_diag) * (c - p.t_diag);
                    } else if p.symmetric == 0u {
                        total += p.w_off * c * c;
                    } else if at < col {
                        total += 2.0 * p.w_off * c * c;
                    }
                }
            }
        }
    }
    out[slot] = total;
}

@compute @workgroup_size(WG)
fn grad_strip(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row0 = gid.x * RB;
    let col0 = wid.y * CB;
    if row0 >= p.m {
        return;
    }
    var acc: array<vec4<f32>, 32>;
    block_product(row0, col0, &acc);
    // d/dc of w (c - t)^2 is 2 w (c - t).
    let s = 2.0 * p.scale * g[0];
    for (var r = 0u; r < RB; r++) {
        let row = row0 + r;
        for (var q = 0u; q < 4u; q++) {
            for (var l = 0u; l < 4u; l++) {
                let col = col0 + 4u * q + l;
                if row >= p.m || col >= p.n {
                    continue;
                }
                let c = acc[r * 4u + q][l] * p.acc_scale;
                let d = select(p.w_off * c, p.w_diag * (c - p.t_diag), row + p.diag_off == col);
                out[p.out_off + row * p.out_ld + col] = s * d;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn accumulate(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row0 = gid.x * RB;
    let col0 = wid.y * CB;
    if row0 >= p.m {
        return;
    }
    var acc: array<vec4<f32>, 32>;
    block_product(row0, col0, &acc);
    for (var r = 0u; r < RB; r++) {
        let row = row0 + r;
        for (var q = 0u; q < 4u; q++) {
            for (var l = 0u; l < 4u; l++) {
                let col = col0 + 4u * q + l;
                if row < p.m && col < p.n {
                    let i = p.out_off + row * p.out_ld + col;
                    out[i] += p.scale * acc[r * 4u + q][l];
                }
            }
        }
    }
}
