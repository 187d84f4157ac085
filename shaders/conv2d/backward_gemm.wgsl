// conv2d backward as implicit GEMMs, register-blocked and barrier-free like
// implicit_gemm.wgsl (8 x 16 blocks in 32 vec4 accumulators, no workgroup
// memory, every load index clamped or zeroed, every store guarded).
//
// `input` (changes from backward_direct `input`): dx[m, c] = sum_k A[m, k] * B[k, c]
// with m = (n, iy, ix) an input pixel, k = (ky, kx, o) and
// A[m, k] = dy[n, o, oy, ox] for the output pixel that reads (iy, ix) through
// tap (ky, kx), zero if none does; B[k, c] = w[o, c, ky, kx]. The tap loop is
// outside, so which output pixel a row reads (and whether any) is worked out
// once per tap and reused for every output channel o.
//
// `weight` (changes from backward_direct `weight`): dw[o, j] = sum_k B[k, j] * A[k, o]
// with j = (c, ky, kx) a row of the block, k = (n, oy, ox) and
// A = dy, B = the im2col of x. The batch is split over workgroup_id.z into
// chunks of p.chunk images, each writing its own partial sum (the host adds
// them), so small layers still give every core work.

const RB: u32 = 8u;
const CB: u32 = 16u;

struct Params {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, chunk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// `input`: dy and w. `weight`: x and dy.
@group(0) @binding(1) var<storage, read> src_a: array<f32>;
@group(0) @binding(2) var<storage, read> src_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

const LANES = vec4<u32>(0u, 1u, 2u, 3u);

@compute @workgroup_size(64)
fn input(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let hw = p.h * p.w;
    let ohw = p.oh * p.ow;
    let taps = p.kh * p.kw;
    let rows_total = p.n * hw;
    let row0 = gid.x * RB;
    let col0 = wid.y * CB;
    if row0 >= rows_total {
        return;
    }

    var img: array<u32, 8>;
    var py: array<i32, 8>;
    var px: array<i32, 8>;
    for (var r = 0u; r < RB; r++) {
        let m = min(row0 + r, rows_total - 1u);
        let pix = m % hw;
        img[r] = (m / hw) * p.o * ohw;
        py[r] = i32(pix / p.w + p.pad);
        px[r] = i32(pix % p.w + p.pad);
    }
    // w[o, c, ky, kx] for the block's input channels c, at o = 0, tap 0.
    var wcol: array<vec4<u32>, 4>;
    for (var q = 0u; q < 4u; q++) {
        wcol[q] = min(vec4<u32>(col0 + 4u * q) + LANES, vec4<u32>(p.c - 1u)) * taps;
    }
    let s = i32(p.stride);

    var acc: array<vec4<f32>, 32>;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            var at: array<u32, 8>;
            var ok: array<bool, 8>;
            for (var r = 0u; r < RB; r++) {
                let ty = py[r] - i32(ky);
                let tx = px[r] - i32(kx);
                ok[r] = ty >= 0 && tx >= 0 && ty % s == 0 && tx % s == 0
                     && ty / s < i32(p.oh) && tx / s < i32(p.ow);
                at[r] = select(0u, img[r] + u32(ty / s) * p.ow + u32(tx / s), ok[r]);
            }
            let tap = ky * p.kw + kx;
            for (var o = 0u; o < p.o; o++) {
                let k = o * p.c * taps + tap;
                var bv: array<vec4<f32>, 4>;
                for (var q = 0u; q < 4u; q++) {
                    let i = wcol[q] + k;
                    bv[q] = vec4<f32>(src_b[i.x], src_b[i.y], src_b[i.z], src_b[i.w]);
                }
                let plane = o * ohw;
                for (var r = 0u; r < RB; r++) {
                    let av = select(0.0, src_a[at[r] + plane], ok[r]);
                    for (var q = 0u; q < 4u; q++) {
                        acc[r * 4u + q] += av * bv[q];
                    }
                }
            }
        }
    }

    for (var r = 0u; r < RB; r++) {
        let m = row0 + r;
        if m >= rows_total {
            break;
        }
        let base = (m / hw) * p.c * hw + m % hw;
        for (var q = 0u; q < 4u; q++) {
            for (var j = 0u; j < 4u; j++) {
                let c = col0 + 4u * q + j;
                if c < p.c {
                    dst[base + c * hw] = acc[r * 4u + q][j];
                }
            }
        }
    }
}

@compute @workgroup_size(64)
fn weight(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let hw = p.h * p.w;
    let ohw = p.oh * p.ow;
    let taps = p.kh * p.kw;
    let rows_total = p.c * taps;
    let row0 = gid.x * RB;
    let col0 = wid.y * CB;
    if row0 >= rows_total {
        return;
    }

    // Per row j = (c, ky, kx): the channel plane and the tap offsets.
    var plane: array<u32, 8>;
    var ty: array<i32, 8>;
    var tx: array<i32, 8>;
    for (var r = 0u; r < RB; r++) {
        let j = min(row0 + r, rows_total - 1u);
        let tap = j % taps;
        plane[r] = (j / taps) * hw;
        ty[r] = i32(tap / p.kw) - i32(p.pad);
        tx[r] = i32(tap % p.kw) - i32(p.pad);
    }
    // dy[n, o, ., .] for the block's output channels, at n = 0.
    var ocol: array<vec4<u32>, 4>;
    for (var q = 0u; q < 4u; q++) {
        ocol[q] = min(vec4<u32>(col0 + 4u * q) + LANES, vec4<u32>(p.o - 1u)) * ohw;
    }

    var acc: array<vec4<f32>, 32>; // acc[r * 4 + q] = dw[col0 + 4q .. 4q + 4, row0 + r]
    let n_end = min(p.n, (wid.z + 1u) * p.chunk);
    for (var n = wid.z * p.chunk; n < n_end; n++) {
        let ximg = n * p.c * hw;
        let dyimg = n * p.o * ohw;
        for (var oy = 0u; oy < p.oh; oy++) {
            var rowy: array<u32, 8>;
            var oky: array<bool, 8>;
            for (var r = 0u; r < RB; r++) {
                let iy = i32(oy * p.stride) + ty[r];
                oky[r] = iy >= 0 && iy < i32(p.h);
                rowy[r] = select(0u, ximg + plane[r] + u32(iy) * p.w, oky[r]);
            }
            for (var ox = 0u; ox < p.ow; ox++) {
                let k = dyimg + oy * p.ow + ox;
                var bv: array<vec4<f32>, 4>;
                for (var q = 0u; q < 4u; q++) {
                    let i = ocol[q] + k;
                    bv[q] = vec4<f32>(src_b[i.x], src_b[i.y], src_b[i.z], src_b[i.w]);
                }
                for (var r = 0u; r < RB; r++) {
                    let ix = i32(ox * p.stride) + tx[r];
                    let ok = oky[r] && ix >= 0 && ix < i32(p.w);
                    let av = select(0.0, src_a[select(0u, rowy[r] + u32(ix), ok)], ok);
                    for (var q = 0u; q < 4u; q++) {
                        acc[r * 4u + q] += av * bv[q];
                    }
                }
            }
        }
    }

    let part = wid.z * p.o * rows_total;
    for (var r = 0u; r < RB; r++) {
        let j = row0 + r;
        if j >= rows_total {
            break;
        }
        for (var q = 0u; q < 4u; q++) {
            for (var l = 0u; l < 4u; l++) {
                let o = col0 + 4u * q + l;
                if o < p.o {
                    dst[part + o * rows_total + j] = acc[r * 4u + q][l];
                }
            }
        }
    }
}
