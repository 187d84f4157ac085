// InfoNCE / NT-Xent (SimCLR) over 2N embeddings (two views of N images),
// without ever storing the 2N x 2N similarity matrix.
//
// With u_i = z_i / |z_i| and s_ij = u_i · u_j / tau, anchor i's positive is
// its other view p(i) = i +- N and its negatives are every other j != i:
//   loss = mean_i (lse_i - s_i,p(i)),  lse_i = log sum_{j != i} exp(s_ij).
//
//   normalize  one invocation per row: u and |z| (kept for the backward).
//   forward    each invocation owns 8 anchor rows and streams over column
//              tiles of 16, as flash attention does: an 8 x 16 block of s in
//              registers, then an online log-sum-exp (running max and sum,
//              one rescale per tile) and the positive logit. Only lse and the
//              per-row loss are written.
//   backward   recomputes each block of s and forms
//                W_ij = exp(s_ij - lse_i) + exp(s_ij - lse_j)   (j != i)
//              (row i's softmax plus the column side: s_ij also appears in
//              anchor j's softmax), then adds W · u[cols] into the owned rows
//              of dU. Each invocation writes only its own rows: no atomics.
//   finish     one invocation per row: dU_i = (W·u)_i - 2 u_p(i), scaled by
//              g / (2N tau), then through the normalisation,
//              dz = (dU - u (u · dU)) / |z|.
//
// Why it is fast on CPU drivers: the same barrier-free 8 x 16 register block
// as matmul/blocked; all lanes of a workgroup walk the same column tile, so
// column loads are broadcasts, and the exps are 1/D of the multiply-adds.

const RB: u32 = 8u;
const CB: u32 = 16u;
// Small workgroups so that a batch of 256 pairs still spans every core.
const WG: u32 = 16u;
const NEG_BIG: f32 = -3.0e38;

struct Params {
    n: u32,
    d: u32,
    _pad0: u32,
    _pad1: u32,
    inv_tau: f32,
    // g-independent factor of dU: 1 / (2N tau).
    coef: f32,
    eps: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> za: array<f32>;
@group(0) @binding(2) var<storage, read> zb: array<f32>;
// [2N, d] normalised rows (za's rows first), and [2N] norms.
@group(0) @binding(3) var<storage, read_write> u: array<f32>;
@group(0) @binding(4) var<storage, read_write> norms: array<f32>;
// [2N] log-sum-exp over each anchor's 2N - 1 candidates, and its loss.
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(7) var<storage, read> g: array<f32>;
// [2N, d] accumulated W · u.
@group(0) @binding(8) var<storage, read_write> du: array<f32>;
@group(0) @binding(9) var<storage, read_write> dza: array<f32>;
@group(0) @binding(10) var<storage, read_write> dzb: array<f32>;

fn rows_total() -> u32 {
    return 2u * p.n;
}

fn partner(i: u32) -> u32 {
    return select(i - p.n, i + p.n, i < p.n);
}

fn z_at(i: u32, k: u32) -> f32 {
    if i < p.n {
        return za[i * p.d + k];
    }
    return zb[(i - p.n) * p.d + k];
}

@compute @workgroup_size(64)
fn normalize(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= rows_total() {
        return;
    }
    var ss = 0.0;
    for (var k = 0u; k < p.d; k++) {
        let v = z_at(i, k);
        ss += v * v;
    }
    // As torch's F.normalize: a zero row stays finite.
    let norm = max(sqrt(ss), p.eps);
    norms[i] = norm;
    for (var k = 0u; k < p.d; k++) {
        u[i * p.d + k] = z_at(i, k) / norm;
    }
}

// acc[r * 4 + q][l] = u[row0 + r] · u[col0 + 4q + l] (indices clamped).
fn sim_block(row0: u32, col0: u32, acc: ptr<function, array<vec4<f32>, 32>>) {
    let last = rows_total() - 1u;
    var rows: array<u32, 8>;
    for (var r = 0u; r < RB; r++) {
        rows[r] = min(row0 + r, last) * p.d;
    }
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    var cols: array<vec4<u32>, 4>;
    for (var q = 0u; q < 4u; q++) {
        cols[q] = min(vec4<u32>(col0 + 4u * q) + lanes, vec4<u32>(last)) * p.d;
    }
    let d4 = p.d & ~3u;
    for (var kk = 0u; kk < d4; kk += 4u) {
        var bv: array<vec4<f32>, 16>; // bv[s * 4 + q] = u[cols[q], kk + s]
        for (var s = 0u; s < 4u; s++) {
            for (var q = 0u; q < 4u; q++) {
                let i = cols[q] + kk + s;
                bv[s * 4u + q] = vec4<f32>(u[i.x], u[i.y], u[i.z], u[i.w]);
            }
        }
        for (var r = 0u; r < RB; r++) {
            let i = rows[r] + kk;
            let av = vec4<f32>(u[i], u[i + 1u], u[i + 2u], u[i + 3u]);
            for (var q = 0u; q < 4u; q++) {
                (*acc)[r * 4u + q] += av.x * bv[q] + av.y * bv[4u + q]
                                    + av.z * bv[8u + q] + av.w * bv[12u + q];
            }
        }
    }
    for (var kk = d4; kk < p.d; kk++) {
        var bv: array<vec4<f32>, 4>;
        for (var q = 0u; q < 4u; q++) {
            let i = cols[q] + kk;
            bv[q] = vec4<f32>(u[i.x], u[i.y], u[i.z], u[i.w]);
        }
        for (var r = 0u; r < RB; r++) {
            let av = u[rows[r] + kk];
            for (var q = 0u; q < 4u; q++) {
                (*acc)[r * 4u + q] += av * bv[q];
            }
        }
    }
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = rows_total();
    let row0 = gid.x * RB;
    if row0 >= t {
        return;
    }
    var run_max: array<f32, 8>;
    var run_sum: array<f32, 8>;
    var pos: array<f32, 8>;
    for (var r = 0u; r < RB; r++) {
        run_max[r] = NEG_BIG;
    }
    for (var col0 = 0u; col0 < t; col0 += CB) {
        var acc: array<vec4<f32>, 32>;
        sim_block(row0, col0, &acc);
        for (var r = 0u; r < RB; r++) {
            let i = row0 + r;
            let mine = partner(min(i, t - 1u));
            var tile_max = NEG_BIG;
            for (var c = 0u; c < CB; c++) {
                let j = col0 + c;
                let s = acc[r * 4u + c / 4u][c % 4u] * p.inv_tau;
                if j < t && j != i {
                    tile_max = max(tile_max, s);
                }
                if j == mine {
                    pos[r] = s;
                }
            }
            if tile_max > NEG_BIG {
                let m = max(run_max[r], tile_max);
                var sum = 0.0;
                for (var c = 0u; c < CB; c++) {
                    let j = col0 + c;
                    if j < t && j != i {
                        sum += exp(acc[r * 4u + c / 4u][c % 4u] * p.inv_tau - m);
                    }
                }
                run_sum[r] = run_sum[r] * exp(run_max[r] - m) + sum;
                run_max[r] = m;
            }
        }
    }
    for (var r = 0u; r < RB; r++) {
        let i = row0 + r;
        if i < t {
            let v = run_max[r] + log(run_sum[r]);
            lse[i] = v;
            row_loss[i] = v - pos[r];
        }
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = rows_total();
    let row0 = gid.x * RB;
    if row0 >= t {
        return;
    }
    let last = t - 1u;
    var row_lse: array<f32, 8>;
    for (var r = 0u; r < RB; r++) {
        row_lse[r] = lse[min(row0 + r, last)];
    }
    let d4 = p.d & ~3u;
    for (var col0 = 0u; col0 < t; col0 += CB) {
        var w: array<vec4<f32>, 32>;
        sim_block(row0, col0, &w);
        // Turn the block of dot products into weights in place. Rows past
        // the end get weight 0, so their (clamped) updates add nothing.
        var col_base: array<u32, 16>;
        for (var c = 0u; c < CB; c++) {
            let j = col0 + c;
            let jc = min(j, last);
            col_base[c] = jc * p.d;
            let col_lse = lse[jc];
            for (var r = 0u; r < RB; r++) {
                let i = row0 + r;
                let s = w[r * 4u + c / 4u][c % 4u] * p.inv_tau;
                let both = exp(s - row_lse[r]) + exp(s - col_lse);
                w[r * 4u + c / 4u][c % 4u] = select(0.0, both, j < t && j != i && i < t);
            }
        }
        for (var dd = 0u; dd < d4; dd += 4u) {
            var uc: array<vec4<f32>, 16>;
            for (var c = 0u; c < CB; c++) {
                let i = col_base[c] + dd;
                uc[c] = vec4<f32>(u[i], u[i + 1u], u[i + 2u], u[i + 3u]);
            }
            for (var r = 0u; r < RB; r++) {
                let base = min(row0 + r, last) * p.d + dd;
                var v = vec4<f32>(du[base], du[base + 1u], du[base + 2u], du[base + 3u]);
                for (var q = 0u; q < 4u; q++) {
                    let wq = w[r * 4u + q];
                    v += wq.x * uc[4u * q] + wq.y * uc[4u * q + 1u]
                       + wq.z * uc[4u * q + 2u] + wq.w * uc[4u * q + 3u];
                }
                du[base] = v.x;
                du[base + 1u] = v.y;
                du[base + 2u] = v.z;
                du[base + 3u] = v.w;
            }
        }
        for (var dd = d4; dd < p.d; dd++) {
            for (var r = 0u; r < RB; r++) {
                let base = min(row0 + r, last) * p.d + dd;
                var v = du[base];
                for (var c = 0u; c < CB; c++) {
                    v += w[r * 4u + c / 4u][c % 4u] * u[col_base[c] + dd];
                }
                du[base] = v;
            }
        }
    }
}

@compute @workgroup_size(64)
fn finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= rows_total() {
        return;
    }
    let c = p.coef * g[0];
    let row = i * p.d;
    let pair = partner(i) * p.d;
    var dot_u = 0.0;
    for (var k = 0u; k < p.d; k++) {
        dot_u += u[row + k] * c * (du[row + k] - 2.0 * u[pair + k]);
    }
    let inv_norm = 1.0 / norms[i];
    for (var k = 0u; k < p.d; k++) {
        let v = c * (du[row + k] - 2.0 * u[pair + k]);
        let dz = (v - u[row + k] * dot_u) * inv_norm;
        if i < p.n {
            dza[row + k] = dz;
        } else {
            dzb[row - p.n * p.d + k] = dz;
        }
    }
}
