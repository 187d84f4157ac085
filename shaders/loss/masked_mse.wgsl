// The masked autoencoder's loss: the mean squared error between a
// reconstruction and its target over the masked patches only, the target
// optionally normalised per patch (MAE's norm-pix: each patch's pixels, all
// channels, minus their mean, over their unbiased std + 1e-6).
//
// `stats`     one invocation per patch: the target's mean and 1 / std over
//             the patch (0 and 1 without NORM_PIX), kept for the backward,
//             and the patch's mean squared error if it is masked (0 if
//             not). The host sums the patches and divides by their count.
// `backward`  one invocation per pixel and channel: 2 (pred - target') g /
//             (count * patch elements) where the pixel's patch is masked,
//             exactly 0 where it is visible.
// `normalize` one invocation per element: the normalised target itself (for
//             the unfused reference and for pictures).
// A patch is side x side pixels of every channel; masks are [n, gh, gw]
// of 1 (masked) or 0. Loops per patch are short (C side^2), so no workgroup
// reduction and no barrier.

override NORM_PIX: bool = true;

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    side: u32,
    gh: u32,
    gw: u32,
    // 1 / (masked patches * C side^2): the loss's scale, for the backward.
    inv_total: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> target_px: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> patch_loss: array<f32>;

// The first element of patch q's row `row` of channel `ch`.
fn base(q: u32, ch: u32, row: u32) -> u32 {
    let n = q / (p.gh * p.gw);
    let py = (q / p.gw) % p.gh;
    let px = q % p.gw;
    return ((n * p.c + ch) * p.h + py * p.side + row) * p.w + px * p.side;
}

@compute @workgroup_size(64)
fn stats_main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let q = gid.y * nwg.x * 64u + gid.x;
    if q >= p.n * p.gh * p.gw {
        return;
    }
    let count = f32(p.c * p.side * p.side);
    var mean = 0.0;
    var inv_std = 1.0;
    if NORM_PIX {
        var s = 0.0;
        var s2 = 0.0;
        for (var ch = 0u; ch < p.c; ch++) {
            for (var r = 0u; r < p.side; r++) {
                let b = base(q, ch, r);
                for (var x = 0u; x < p.side; x++) {
                    let v = target_px[b + x];
                    s += v;
                    s2 += v * v;
                }
            }
        }
        mean = s / count;
        let var_unbiased = max(s2 - s * mean, 0.0) / max(count - 1.0, 1.0);
        inv_std = 1.0 / sqrt(var_unbiased + 1e-6);
    }
    stats[q] = vec2<f32>(mean, inv_std);
    var err = 0.0;
    if mask[q] > 0.5 {
        for (var ch = 0u; ch < p.c; ch++) {
            for (var r = 0u; r < p.side; r++) {
                let b = base(q, ch, r);
                for (var x = 0u; x < p.side; x++) {
                    let d = pred[b + x] - (target_px[b + x] - mean) * inv_std;
                    err += d * d;
                }
            }
        }
    }
    patch_loss[q] = err / count;
}

@group(0) @binding(1) var<storage, read> bpred: array<f32>;
@group(0) @binding(2) var<storage, read> btarget: array<f32>;
@group(0) @binding(3) var<storage, read> bmask: array<f32>;
@group(0) @binding(4) var<storage, read> bstats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

// The patch of element i of an [n, c, h, w] tensor.
fn patch_of(i: u32) -> u32 {
    let x = i % p.w;
    let y = (i / p.w) % p.h;
    let n = i / (p.w * p.h * p.c);
    return (n * p.gh + y / p.side) * p.gw + x / p.side;
}

@compute @workgroup_size(64)
fn backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if i >= p.n * p.c * p.h * p.w {
        return;
    }
    let q = patch_of(i);
    let s = bstats[q];
    let d = bpred[i] - (btarget[i] - s.x) * s.y;
    out[i] = select(0.0, 2.0 * d * g[0] * p.inv_total, bmask[q] > 0.5);
}

@compute @workgroup_size(64)
fn normalize(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if i >= p.n * p.c * p.h * p.w {
        return;
    }
    let s = bstats[patch_of(i)];
    out[i] = (btarget[i] - s.x) * s.y;
}
