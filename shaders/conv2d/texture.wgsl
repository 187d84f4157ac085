// conv2d, variant 4 of 4: implicit GEMM reading its operands through
// textures (the CPU variant), forward, input gradient and weight gradient.
//
// Changes from implicit_gemm: the input and the weights are first packed
// into rgba32float textures (`pack_input`, `pack_weights`), and each
// invocation computes a 16 x 16 block (16 output pixels x 16 output
// channels) from texel fetches, with the inner loop of
// shaders/matmul/texture.wgsl: per 4 channels of a tap, 16 fetches of the
// input (one per pixel), 16 of the weights and 256 vec4 FMAs.
//
// Why textures: llvmpipe runs 8 invocations as the lanes of one SIMD loop,
// and a storage-buffer load whose address differs per lane becomes a loop
// over the lanes with a bounds test per lane and per component, which is
// what kept implicit_gemm at 1.5-15 GFLOP/s. A texel fetch compiles to
// straight-line vector loads whatever the address, as it did for the
// matmul.
//
// The input texture holds each image with its zero padding and its
// channels in groups of four: texel (page * wp * c4 + xp * c4 + g,
// (n % per_page) * hp + yp) holds channels 4g .. 4g + 4 of padded pixel
// (yp, xp) of image n, pages side by side when the images do not fit one
// texture column. So the receptive field of any output pixel lies inside
// the texture, and no fetch needs a bounds test. The weight texture holds
// row k = (tap, c) of the GEMM's B, 4 output channels per texel, the
// channels padded to whole groups and blocks with zeros.
//
// `input` (the input gradient, which is also the forward of a transposed
// convolution): dx[n, c, iy, ix] = sum over taps and o of dy[n, o, oy, ox]
// w[o, c, ky, kx] where iy + pad = oy * stride + ky. With stride s only the
// taps ky = (iy + pad) mod s reach a row, so the input pixels are split into
// s * s phases (workgroup_id.z), each a stride-1 convolution of dy with its
// own taps: all rows of a block share a phase and loop over its taps only.
// dy is packed like x (its padding covers the reach of the taps), and the
// weights as rows (tap, o) of 4 input channels per texel.
//
// Lanes take consecutive pixel blocks and the channel block comes from
// workgroup_id.y, so every lane fetches the same weight texels. Stores
// are guarded; the module runs without bounds checks.

override HAS_BIAS: bool = false;
// `forward` and `input`: each lane computes 16 pixels x 16 BLOCKS output
// channels (BLOCKS 16-channel blocks from the same input fetches): 1, 2 or
// 4. More than one in texture_subgroup, where the weight panels are shared
// and the input fetches are what is left to amortise.
override BLOCKS: u32 = 1u;

struct Params {
    // The input of the GEMM (x for `forward`, dy for `input`).
    n: u32, c: u32, h: u32, w: u32,
    // The output (y for `forward`, dx for `input`).
    o: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32,
    // Texel groups of 4 input channels.
    c4: u32,
    // The padded image in the texture, and images per texture page.
    hp: u32, wp: u32, per_page: u32,
    // Rows and columns of zeros around each packed image (x: the
    // convolution's padding; dy: enough for the reach of every tap).
    margin: u32,
    // `weight` only: dy's texel groups of 4 output channels and images per
    // texture page, output rows (n, oy) summed per invocation, the number
    // of such ranges, and the zeros around each packed dy image (`input`'s
    // margin where both gradients share one packing, else 0).
    o4: u32, dy_per_page: u32, rows: u32, ranges: u32,
    dy_margin: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// ---- packing ----

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

// `pack_input`: channels 4g .. 4g + 4 of padded pixel (yp, xp) of image n
// of the [n, c, h, w] tensor in `src`; zero in the padding (p.margin wide)
// and past the channels or the batch.
//
// One invocation writes one texture row segment: channel group g of row ty
// of one page, all p.wp padded pixels. So the divisions that locate a texel
// (by uniforms: llvmpipe divides lane by lane there) run once per segment,
// and the loop over the pixels only adds.
@compute @workgroup_size(64)
fn pack_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let size = textureDimensions(dst);
    let column = p.wp * p.c4;
    let pages = size.x / column;
    let segment = (wid.y * nwg.x + wid.x) * 64u + lid;
    if segment >= pages * p.c4 * size.y {
        return;
    }
    let ty = segment % size.y;
    let g = (segment / size.y) % p.c4;
    let page = segment / (size.y * p.c4);
    let n = page * p.per_page + ty / p.hp;
    let y = i32(ty % p.hp) - i32(p.margin);
    let hw = p.h * p.w;
    let row = n < p.n && y >= 0 && y < i32(p.h);
    // Element (n, 4g, y, 0) and how many of the group's channels exist.
    let base = (n * p.c + g * 4u) * hw + u32(max(y, 0)) * p.w;
    let channels = min(4u, p.c - min(p.c, g * 4u));
    let x0 = page * column + g;
    for (var xp = 0u; xp < p.wp; xp++) {
        var v = vec4<f32>();
        let x = i32(xp) - i32(p.margin);
        if row && x >= 0 && x < i32(p.w) {
            let e = base + u32(x);
            v.x = src[e];
            if channels > 1u {
                v.y = src[e + hw];
            }
            if channels > 2u {
                v.z = src[e + 2u * hw];
            }
            if channels > 3u {
                v.w = src[e + 3u * hw];
            }
        }
        textureStore(dst, vec2<u32>(x0 + xp * p.c4, ty), v);
    }
}

// `pack_weights`: texel (t, k) of the B matrix with k = (tap, r) and 4
// columns per texel: w[col, r, tap] (`forward`: r = c, col = o) or
// w[r, col, tap] (`input`: r = o, col = c, TRANSPOSED), zero past the rows
// (padded to groups of 4) and the columns (padded to 16).
override TRANSPOSED: bool = false;

@compute @workgroup_size(8, 8)
fn pack_weights(@builtin(global_invocation_id) gid: vec3<u32>) {
    let size = textureDimensions(dst);
    if gid.x >= size.x || gid.y >= size.y {
        return;
    }
    let taps = p.kh * p.kw;
    // Rows of one tap: the GEMM input's channels, in whole groups.
    let per_tap = p.c4 * 4u;
    let tap = gid.y / per_tap;
    let r = gid.y % per_tap;
    // `forward`: r < c (x's channels), columns o; `input`: r < o (dy's
    // channels, here p.c), columns the input's (here p.o).
    var v = vec4<f32>();
    if r < p.c {
        for (var j = 0u; j < 4u; j++) {
            let col = gid.x * 4u + j;
            if col < p.o {
                if TRANSPOSED {
                    v[j] = src[(r * p.o + col) * taps + tap];
                } else {
                    v[j] = src[(col * p.c + r) * taps + tap];
                }
            }
        }
    }
    textureStore(dst, gid.xy, v);
}

// ---- the GEMM ----

@group(0) @binding(1) var tx: texture_2d<f32>;
@group(0) @binding(2) var tw: texture_2d<f32>;
// Without a bias the host binds the weights here; they are never read.
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// One pixel of the block: 16 output channels.
struct Row {
    c0: vec4<f32>,
    c1: vec4<f32>,
    c2: vec4<f32>,
    c3: vec4<f32>,
}

// B[k .. k + 4, the block's 16 columns]: bt holds row k + t.
struct Panel {
    b0: Row,
    b1: Row,
    b2: Row,
    b3: Row,
}

fn b_row(x: u32, y: u32) -> Row {
    return Row(
        textureLoad(tw, vec2<u32>(x, y), 0),
        textureLoad(tw, vec2<u32>(x + 1u, y), 0),
        textureLoad(tw, vec2<u32>(x + 2u, y), 0),
        textureLoad(tw, vec2<u32>(x + 3u, y), 0),
    );
}

// panel:begin (texture_subgroup.wgsl replaces these two functions)
// B[k .. k + 4, the 16 columns from texel wx]: 16 fetches by every lane.
// `lane` (the subgroup invocation id) serves the subgroup version only.
fn panel(wx: u32, k: u32, lane: u32) -> Panel {
    return Panel(b_row(wx, k), b_row(wx, k + 1u), b_row(wx, k + 2u), b_row(wx, k + 3u));
}

// `weight`: dy's 4 texels (16 output channels) of the pixel at texel dd,
// from texel group og (clamped to the last), fetched by every lane.
fn dy_texels(dd: vec2<u32>, og: u32, lane: u32) -> Quad {
    return Quad(
        textureLoad(tdy, dd + vec2<u32>(min(og + 0u, p.o4 - 1u), 0u), 0),
        textureLoad(tdy, dd + vec2<u32>(min(og + 1u, p.o4 - 1u), 0u), 0),
        textureLoad(tdy, dd + vec2<u32>(min(og + 2u, p.o4 - 1u), 0u), 0),
        textureLoad(tdy, dd + vec2<u32>(min(og + 3u, p.o4 - 1u), 0u), 0),
    );
}
// panel:end

// acc += a[k .. k + 4] . panel, for one pixel of the block.
fn update(acc: Row, a: vec4<f32>, q: Panel) -> Row {
    let ax = vec4<f32>(a.x);
    let ay = vec4<f32>(a.y);
    let az = vec4<f32>(a.z);
    let aw = vec4<f32>(a.w);
    return Row(
        fma(aw, q.b3.c0, fma(az, q.b2.c0, fma(ay, q.b1.c0, fma(ax, q.b0.c0, acc.c0)))),
        fma(aw, q.b3.c1, fma(az, q.b2.c1, fma(ay, q.b1.c1, fma(ax, q.b0.c1, acc.c1)))),
        fma(aw, q.b3.c2, fma(az, q.b2.c2, fma(ay, q.b1.c2, fma(ax, q.b0.c2, acc.c2)))),
        fma(aw, q.b3.c3, fma(az, q.b2.c3, fma(ay, q.b1.c3, fma(ax, q.b0.c3, acc.c3)))),
    );
}

// Writes one pixel's 16 channels at element `base` (channel stride
// `plane`), skipping channels past p.o; `valid` is false past the last
// pixel.
fn store_row(valid: bool, base: u32, plane: u32, col0: u32, r: Row) {
    if !valid {
        return;
    }
    let v = array<vec4<f32>, 4>(r.c0, r.c1, r.c2, r.c3);
    for (var j = 0u; j < 16u; j++) {
        let o = col0 + j;
        if o < p.o {
            var s = v[j / 4u][j % 4u];
            if HAS_BIAS {
                s += bias[o];
            }
            out[base + o * plane] = s;
        }
    }
}

// A pixel's BLOCKS rows of 16 channels.
struct Rows {
    r0: Row,
    r1: Row,
    r2: Row,
    r3: Row,
}

// The BLOCKS weight panels of one k step.
struct Panels {
    q0: Panel,
    q1: Panel,
    q2: Panel,
    q3: Panel,
}

fn panels(wx: u32, k: u32, lane: u32) -> Panels {
    var q = Panels();
    q.q0 = panel(wx, k, lane);
    if BLOCKS > 1u {
        q.q1 = panel(wx + 4u, k, lane);
    }
    if BLOCKS > 2u {
        q.q2 = panel(wx + 8u, k, lane);
        q.q3 = panel(wx + 12u, k, lane);
    }
    return q;
}

// One pixel of a block: its BLOCKS x 16 channels, all from input texel a.
fn step(r: ptr<function, Rows>, a: vec4<f32>, q: Panels) {
    (*r).r0 = update((*r).r0, a, q.q0);
    if BLOCKS > 1u {
        (*r).r1 = update((*r).r1, a, q.q1);
    }
    if BLOCKS > 2u {
        (*r).r2 = update((*r).r2, a, q.q2);
        (*r).r3 = update((*r).r3, a, q.q3);
    }
}

// Writes one pixel's BLOCKS x 16 channels from col0.
fn store_pair(valid: bool, base: u32, plane: u32, col0: u32, r: Rows) {
    store_row(valid, base, plane, col0, r.r0);
    if BLOCKS > 1u {
        store_row(valid, base, plane, col0 + 16u, r.r1);
    }
    if BLOCKS > 2u {
        store_row(valid, base, plane, col0 + 32u, r.r2);
        store_row(valid, base, plane, col0 + 48u, r.r3);
    }
}

// The texel of image n's padded pixel (yp, xp), channel group 0.
fn texel(n: u32, yp: u32, xp: u32) -> vec2<u32> {
    return vec2<u32>((n / p.per_page) * p.wp * p.c4 + xp * p.c4, (n % p.per_page) * p.hp + yp);
}

@compute @workgroup_size(64)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    forward_block(gid, wid, 0u);
}

// The forward's block. No lane returns early, so that every lane of a
// subgroup takes part in `panel`'s broadcasts: past the last pixel the
// block repeats it, and the stores skip it.
fn forward_block(gid: vec3<u32>, wid: vec3<u32>, lane: u32) {
    let ohw = p.oh * p.ow;
    let total = p.n * ohw;
    let first = gid.x * 16u;
    let col0 = wid.y * 16u * BLOCKS;
    let wx = wid.y * 4u * BLOCKS;
    // Each pixel's receptive field corner in the texture (pixels past the
    // end repeat the last one; their stores are skipped).
    let m0 = min(first + 0u, total - 1u); let q0 = m0 % ohw; let t0 = texel(m0 / ohw, (q0 / p.ow) * p.stride, (q0 % p.ow) * p.stride);
    let m1 = min(first + 1u, total - 1u); let q1 = m1 % ohw; let t1 = texel(m1 / ohw, (q1 / p.ow) * p.stride, (q1 % p.ow) * p.stride);
    let m2 = min(first + 2u, total - 1u); let q2 = m2 % ohw; let t2 = texel(m2 / ohw, (q2 / p.ow) * p.stride, (q2 % p.ow) * p.stride);
    let m3 = min(first + 3u, total - 1u); let q3 = m3 % ohw; let t3 = texel(m3 / ohw, (q3 / p.ow) * p.stride, (q3 % p.ow) * p.stride);
    let m4 = min(first + 4u, total - 1u); let q4 = m4 % ohw; let t4 = texel(m4 / ohw, (q4 / p.ow) * p.stride, (q4 % p.ow) * p.stride);
    let m5 = min(first + 5u, total - 1u); let q5 = m5 % ohw; let t5 = texel(m5 / ohw, (q5 / p.ow) * p.stride, (q5 % p.ow) * p.stride);
    let m6 = min(first + 6u, total - 1u); let q6 = m6 % ohw; let t6 = texel(m6 / ohw, (q6 / p.ow) * p.stride, (q6 % p.ow) * p.stride);
    let m7 = min(first + 7u, total - 1u); let q7 = m7 % ohw; let t7 = texel(m7 / ohw, (q7 / p.ow) * p.stride, (q7 % p.ow) * p.stride);
    let m8 = min(first + 8u, total - 1u); let q8 = m8 % ohw; let t8 = texel(m8 / ohw, (q8 / p.ow) * p.stride, (q8 % p.ow) * p.stride);
    let m9 = min(first + 9u, total - 1u); let q9 = m9 % ohw; let t9 = texel(m9 / ohw, (q9 / p.ow) * p.stride, (q9 % p.ow) * p.stride);
    let m10 = min(first + 10u, total - 1u); let q10 = m10 % ohw; let t10 = texel(m10 / ohw, (q10 / p.ow) * p.stride, (q10 % p.ow) * p.stride);
    let m11 = min(first + 11u, total - 1u); let q11 = m11 % ohw; let t11 = texel(m11 / ohw, (q11 / p.ow) * p.stride, (q11 % p.ow) * p.stride);
    let m12 = min(first + 12u, total - 1u); let q12 = m12 % ohw; let t12 = texel(m12 / ohw, (q12 / p.ow) * p.stride, (q12 % p.ow) * p.stride);
    let m13 = min(first + 13u, total - 1u); let q13 = m13 % ohw; let t13 = texel(m13 / ohw, (q13 / p.ow) * p.stride, (q13 % p.ow) * p.stride);
    let m14 = min(first + 14u, total - 1u); let q14 = m14 % ohw; let t14 = texel(m14 / ohw, (q14 / p.ow) * p.stride, (q14 % p.ow) * p.stride);
    let m15 = min(first + 15u, total - 1u); let q15 = m15 % ohw; let t15 = texel(m15 / ohw, (q15 / p.ow) * p.stride, (q15 % p.ow) * p.stride);

    var r0 = Rows(); var r1 = Rows(); var r2 = Rows(); var r3 = Rows(); var r4 = Rows(); var r5 = Rows(); var r6 = Rows(); var r7 = Rows();
    var r8 = Rows(); var r9 = Rows(); var r10 = Rows(); var r11 = Rows(); var r12 = Rows(); var r13 = Rows(); var r14 = Rows(); var r15 = Rows();
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let d = vec2<u32>(kx * p.c4, ky);
            let krow = (ky * p.kw + kx) * p.c4 * 4u;
            for (var g = 0u; g < p.c4; g++) {
                let k = krow + g * 4u;
                let q = panels(wx, k, lane);
                let e = d + vec2<u32>(g, 0u);
                step(&r0, textureLoad(tx, t0 + e, 0), q);
                step(&r1, textureLoad(tx, t1 + e, 0), q);
                step(&r2, textureLoad(tx, t2 + e, 0), q);
                step(&r3, textureLoad(tx, t3 + e, 0), q);
                step(&r4, textureLoad(tx, t4 + e, 0), q);
                step(&r5, textureLoad(tx, t5 + e, 0), q);
                step(&r6, textureLoad(tx, t6 + e, 0), q);
                step(&r7, textureLoad(tx, t7 + e, 0), q);
                step(&r8, textureLoad(tx, t8 + e, 0), q);
                step(&r9, textureLoad(tx, t9 + e, 0), q);
                step(&r10, textureLoad(tx, t10 + e, 0), q);
                step(&r11, textureLoad(tx, t11 + e, 0), q);
                step(&r12, textureLoad(tx, t12 + e, 0), q);
                step(&r13, textureLoad(tx, t13 + e, 0), q);
                step(&r14, textureLoad(tx, t14 + e, 0), q);
                step(&r15, textureLoad(tx, t15 + e, 0), q);
            }
        }
    }

    store_pair(first + 0u < total, (m0 / ohw) * p.o * ohw + q0, ohw, col0, r0);
    store_pair(first + 1u < total, (m1 / ohw) * p.o * ohw + q1, ohw, col0, r1);
    store_pair(first + 2u < total, (m2 / ohw) * p.o * ohw + q2, ohw, col0, r2);
    store_pair(first + 3u < total, (m3 / ohw) * p.o * ohw + q3, ohw, col0, r3);
    store_pair(first + 4u < total, (m4 / ohw) * p.o * ohw + q4, ohw, col0, r4);
    store_pair(first + 5u < total, (m5 / ohw) * p.o * ohw + q5, ohw, col0, r5);
    store_pair(first + 6u < total, (m6 / ohw) * p.o * ohw + q6, ohw, col0, r6);
    store_pair(first + 7u < total, (m7 / ohw) * p.o * ohw + q7, ohw, col0, r7);
    store_pair(first + 8u < total, (m8 / ohw) * p.o * ohw + q8, ohw, col0, r8);
    store_pair(first + 9u < total, (m9 / ohw) * p.o * ohw + q9, ohw, col0, r9);
    store_pair(first + 10u < total, (m10 / ohw) * p.o * ohw + q10, ohw, col0, r10);
    store_pair(first + 11u < total, (m11 / ohw) * p.o * ohw + q11, ohw, col0, r11);
    store_pair(first + 12u < total, (m12 / ohw) * p.o * ohw + q12, ohw, col0, r12);
    store_pair(first + 13u < total, (m13 / ohw) * p.o * ohw + q13, ohw, col0, r13);
    store_pair(first + 14u < total, (m14 / ohw) * p.o * ohw + q14, ohw, col0, r14);
    store_pair(first + 15u < total, (m15 / ohw) * p.o * ohw + q15, ohw, col0, r15);
}

// `input`: one phase (fy, fx) = workgroup_id.z of the input pixels; block
// rows are consecutive pixels (n, i, j) of that phase, i.e. input pixels
// (fy + i * s, fx + j * s). Tap ky reaches them iff (fy + pad - ky) is a
// multiple of s, from dy row i + (fy + pad - ky) / s; packed dy has
// p.margin rows and columns of zeros on each side, so that row is always
// inside the texture.
@compute @workgroup_size(64)
fn input(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    input_block(gid, wid, 0u);
}

// The input gradient's block; as `forward_block`, no lane returns early
// unless its whole workgroup does (an empty phase).
fn input_block(gid: vec3<u32>, wid: vec3<u32>, lane: u32) {
    let s = p.stride;
    let fy = wid.z / s;
    let fx = wid.z % s;
    // Input pixels of this phase per image: rows fy, fy + s, ... < oh
    // (here p.oh, p.ow are the input's height and width).
    let ph = (p.oh + s - 1u - fy) / s;
    let pw = (p.ow + s - 1u - fx) / s;
    let per_image = ph * pw;
    let total = p.n * per_image;
    let first = gid.x * 16u;
    if ph == 0u || pw == 0u {
        return;
    }
    let col0 = wid.y * 16u * BLOCKS;
    let wx = wid.y * 4u * BLOCKS;
    let ohw = p.oh * p.ow;
    let m0 = min(first + 0u, total - 1u); let q0 = m0 % per_image; let n0 = m0 / per_image; let t0 = texel(n0, q0 / pw + p.margin, q0 % pw + p.margin);
    let m1 = min(first + 1u, total - 1u); let q1 = m1 % per_image; let n1 = m1 / per_image; let t1 = texel(n1, q1 / pw + p.margin, q1 % pw + p.margin);
    let m2 = min(first + 2u, total - 1u); let q2 = m2 % per_image; let n2 = m2 / per_image; let t2 = texel(n2, q2 / pw + p.margin, q2 % pw + p.margin);
    let m3 = min(first + 3u, total - 1u); let q3 = m3 % per_image; let n3 = m3 / per_image; let t3 = texel(n3, q3 / pw + p.margin, q3 % pw + p.margin);
    let m4 = min(first + 4u, total - 1u); let q4 = m4 % per_image; let n4 = m4 / per_image; let t4 = texel(n4, q4 / pw + p.margin, q4 % pw + p.margin);
    let m5 = min(first + 5u, total - 1u); let q5 = m5 % per_image; let n5 = m5 / per_image; let t5 = texel(n5, q5 / pw + p.margin, q5 % pw + p.margin);
    let m6 = min(first + 6u, total - 1u); let q6 = m6 % per_image; let n6 = m6 / per_image; let t6 = texel(n6, q6 / pw + p.margin, q6 % pw + p.margin);
    let m7 = min(first + 7u, total - 1u); let q7 = m7 % per_image; let n7 = m7 / per_image; let t7 = texel(n7, q7 / pw + p.margin, q7 % pw + p.margin);
    let m8 = min(first + 8u, total - 1u); let q8 = m8 % per_image; let n8 = m8 / per_image; let t8 = texel(n8, q8 / pw + p.margin, q8 % pw + p.margin);
    let m9 = min(first + 9u, total - 1u); let q9 = m9 % per_image; let n9 = m9 / per_image; let t9 = texel(n9, q9 / pw + p.margin, q9 % pw + p.margin);
    let m10 = min(first + 10u, total - 1u); let q10 = m10 % per_image; let n10 = m10 / per_image; let t10 = texel(n10, q10 / pw + p.margin, q10 % pw + p.margin);
    let m11 = min(first + 11u, total - 1u); let q11 = m11 % per_image; let n11 = m11 / per_image; let t11 = texel(n11, q11 / pw + p.margin, q11 % pw + p.margin);
    let m12 = min(first + 12u, total - 1u); let q12 = m12 % per_image; let n12 = m12 / per_image; let t12 = texel(n12, q12 / pw + p.margin, q12 % pw + p.margin);
    let m13 = min(first + 13u, total - 1u); let q13 = m13 % per_image; let n13 = m13 / per_image; let t13 = texel(n13, q13 / pw + p.margin, q13 % pw + p.margin);
    let m14 = min(first + 14u, total - 1u); let q14 = m14 % per_image; let n14 = m14 / per_image; let t14 = texel(n14, q14 / pw + p.margin, q14 % pw + p.margin);
    let m15 = min(first + 15u, total - 1u); let q15 = m15 % per_image; let n15 = m15 / per_image; let t15 = texel(n15, q15 / pw + p.margin, q15 % pw + p.margin);

    var r0 = Rows(); var r1 = Rows(); var r2 = Rows(); var r3 = Rows(); var r4 = Rows(); var r5 = Rows(); var r6 = Rows(); var r7 = Rows();
    var r8 = Rows(); var r9 = Rows(); var r10 = Rows(); var r11 = Rows(); var r12 = Rows(); var r13 = Rows(); var r14 = Rows(); var r15 = Rows();
    // The first tap of the phase: ky = (fy + pad) mod s.
    for (var ky = (fy + p.pad) % s; ky < p.kh; ky += s) {
        // The dy row offset (fy + pad - ky) / s, exact, possibly negative
        // (u32 addition wraps, so adding its bit pattern subtracts).
        let oy = u32((i32(fy + p.pad) - i32(ky)) / i32(s));
        for (var kx = (fx + p.pad) % s; kx < p.kw; kx += s) {
            let ox = u32((i32(fx + p.pad) - i32(kx)) / i32(s));
            let d = vec2<u32>(ox * p.c4, oy);
            let krow = (ky * p.kw + kx) * p.c4 * 4u;
            for (var g = 0u; g < p.c4; g++) {
                let k = krow + g * 4u;
                let q = panels(wx, k, lane);
                let e = d + vec2<u32>(g, 0u);
                step(&r0, textureLoad(tx, t0 + e, 0), q);
                step(&r1, textureLoad(tx, t1 + e, 0), q);
                step(&r2, textureLoad(tx, t2 + e, 0), q);
                step(&r3, textureLoad(tx, t3 + e, 0), q);
                step(&r4, textureLoad(tx, t4 + e, 0), q);
                step(&r5, textureLoad(tx, t5 + e, 0), q);
                step(&r6, textureLoad(tx, t6 + e, 0), q);
                step(&r7, textureLoad(tx, t7 + e, 0), q);
                step(&r8, textureLoad(tx, t8 + e, 0), q);
                step(&r9, textureLoad(tx, t9 + e, 0), q);
                step(&r10, textureLoad(tx, t10 + e, 0), q);
                step(&r11, textureLoad(tx, t11 + e, 0), q);
                step(&r12, textureLoad(tx, t12 + e, 0), q);
                step(&r13, textureLoad(tx, t13 + e, 0), q);
                step(&r14, textureLoad(tx, t14 + e, 0), q);
                step(&r15, textureLoad(tx, t15 + e, 0), q);
            }
        }
    }

    store_pair(first + 0u < total, n0 * p.o * ohw + (fy + (q0 / pw) * s) * p.ow + fx + (q0 % pw) * s, ohw, col0, r0);
    store_pair(first + 1u < total, n1 * p.o * ohw + (fy + (q1 / pw) * s) * p.ow + fx + (q1 % pw) * s, ohw, col0, r1);
    store_pair(first + 2u < total, n2 * p.o * ohw + (fy + (q2 / pw) * s) * p.ow + fx + (q2 % pw) * s, ohw, col0, r2);
    store_pair(first + 3u < total, n3 * p.o * ohw + (fy + (q3 / pw) * s) * p.ow + fx + (q3 % pw) * s, ohw, col0, r3);
    store_pair(first + 4u < total, n4 * p.o * ohw + (fy + (q4 / pw) * s) * p.ow + fx + (q4 % pw) * s, ohw, col0, r4);
    store_pair(first + 5u < total, n5 * p.o * ohw + (fy + (q5 / pw) * s) * p.ow + fx + (q5 % pw) * s, ohw, col0, r5);
    store_pair(first + 6u < total, n6 * p.o * ohw + (fy + (q6 / pw) * s) * p.ow + fx + (q6 % pw) * s, ohw, col0, r6);
    store_pair(first + 7u < total, n7 * p.o * ohw + (fy + (q7 / pw) * s) * p.ow + fx + (q7 % pw) * s, ohw, col0, r7);
    store_pair(first + 8u < total, n8 * p.o * ohw + (fy + (q8 / pw) * s) * p.ow + fx + (q8 % pw) * s, ohw, col0, r8);
    store_pair(first + 9u < total, n9 * p.o * ohw + (fy + (q9 / pw) * s) * p.ow + fx + (q9 % pw) * s, ohw, col0, r9);
    store_pair(first + 10u < total, n10 * p.o * ohw + (fy + (q10 / pw) * s) * p.ow + fx + (q10 % pw) * s, ohw, col0, r10);
    store_pair(first + 11u < total, n11 * p.o * ohw + (fy + (q11 / pw) * s) * p.ow + fx + (q11 % pw) * s, ohw, col0, r11);
    store_pair(first + 12u < total, n12 * p.o * ohw + (fy + (q12 / pw) * s) * p.ow + fx + (q12 % pw) * s, ohw, col0, r12);
    store_pair(first + 13u < total, n13 * p.o * ohw + (fy + (q13 / pw) * s) * p.ow + fx + (q13 % pw) * s, ohw, col0, r13);
    store_pair(first + 14u < total, n14 * p.o * ohw + (fy + (q14 / pw) * s) * p.ow + fx + (q14 % pw) * s, ohw, col0, r14);
    store_pair(first + 15u < total, n15 * p.o * ohw + (fy + (q15 / pw) * s) * p.ow + fx + (q15 % pw) * s, ohw, col0, r15);
}

// ---- the weight gradient ----
//
// `weight`: dw[o, c, ky, kx] = sum over n, oy, ox of dy[n, o, oy, ox]
// x[n, c, oy * s + ky - pad, ox * s + kx - pad], a GEMM whose reduction runs
// over every output pixel of the batch. Both operands come through
// textures, 4 channels per texel: x packed as for `forward` (its padding
// makes every tap's fetch land inside the texture), dy packed as for
// `input` (so one packing serves both gradients) or without margin. A
// column t of the GEMM is one texel of x: tap t / c4, channel group t % c4.
//
// Each invocation sums the products of one range of p.rows output rows
// (n, oy) for a block of 16 output channels (4 dy texels, workgroup_id.y)
// by 16 (tap, channel) columns (4 x texels): per output
// pixel 8 texel fetches and 64 vec4 FMAs, each the outer product of 4
// output channels with the 4 channels of one x texel. It writes its sums
// to parts[range, o, c, ky, kx], which the host adds up over the ranges.
// Lanes take the column blocks of one range first (global_invocation_id.x
// = range * column blocks + block), so neighbouring lanes fetch the same dy
// texels and neighbouring x texels, and never share a write; lanes over
// ranges instead, each streaming through its own images, ran 1.2-2.3x
// slower on the ConvNet's layers. A range holds at most 16 384 pixels:
// llvmpipe ends a loop after 65 535 iterations per invocation.
//
// This is the layout the first layer needs: with 1 to 4 input channels and
// 9 taps the whole (tap, channel) axis is 3 blocks, where the `im2col`
// GEMM gets 2 blocks of 16 x 16 outputs for its 200 704-long reduction.

@group(0) @binding(5) var tdy: texture_2d<f32>;
@group(0) @binding(6) var<storage, read_write> parts: array<f32>;

// Four output channels (a vec4) for each of the 4 channels of one x texel.
struct Quad {
    x: vec4<f32>,
    y: vec4<f32>,
    z: vec4<f32>,
    w: vec4<f32>,
}

// acc + d (x) v: field j gains d * v[j].
fn outer(acc: Quad, d: vec4<f32>, v: vec4<f32>) -> Quad {
    return Quad(
        fma(d, vec4<f32>(v.x), acc.x),
        fma(d, vec4<f32>(v.y), acc.y),
        fma(d, vec4<f32>(v.z), acc.z),
        fma(d, vec4<f32>(v.w), acc.w),
    );
}

// The offset in the x texture of column t from a pixel's tap (0, 0)
// texel: (kx * c4 + group, ky).
fn column(t: u32) -> vec2<u32> {
    let tap = t / p.c4;
    return vec2<u32>((tap % p.kw) * p.c4 + t % p.c4, tap / p.kw);
}

// Writes the sums of 4 output channels from o0 for column t (past the
// last column, channel or output channel nothing is written).
fn store_quad(range: u32, o0: u32, t: u32, q: Quad) {
    let taps = p.kh * p.kw;
    if t >= taps * p.c4 {
        return;
    }
    let tap = t / p.c4;
    let v = array<vec4<f32>, 4>(q.x, q.y, q.z, q.w);
    for (var j = 0u; j < 4u; j++) {
        let c = (t % p.c4) * 4u + j;
        for (var k = 0u; k < 4u; k++) {
            let o = o0 + k;
            if c < p.c && o < p.o {
                parts[((range * p.o + o) * p.c + c) * taps + tap] = v[j][k];
            }
        }
    }
}

// Column blocks per range are rounded up to a multiple of this: 8 in
// texture_subgroup, so that a subgroup's lanes share one range (and so
// dy's texels) and any early return is the whole subgroup's.
override BLOCK_ALIGN: u32 = 1u;

// 32 output channels per lane instead of 16 (two groups of 4 dy texels),
// from the same x fetches. Set in texture_subgroup, where dy's texels are
// shared by the subgroup.
override DW_WIDE: bool = false;

@compute @workgroup_size(8)
fn weight(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    weight_block(gid, wid, 0u);
}

fn weight_block(gid: vec3<u32>, wid: vec3<u32>, lane: u32) {
    // Lanes take the column blocks of one range first, then the next range.
    let tblocks = ((p.kh * p.kw * p.c4 + 3u) / 4u + BLOCK_ALIGN - 1u) / BLOCK_ALIGN * BLOCK_ALIGN;
    let range = gid.x / tblocks;
    if range >= p.ranges {
        return;
    }
    let r0 = range * p.rows;
    let r1 = min(p.n * p.oh, r0 + p.rows);
    // The block's dy texel groups and x columns, clamped so that every
    // fetch stays inside the textures (the clamped ones are not stored).
    let og = wid.y * select(4u, 8u, DW_WIDE);
    let tb = (gid.x % tblocks) * 4u;
    let last = p.kh * p.kw * p.c4 - 1u;
    let e0 = column(min(tb + 0u, last));
    let e1 = column(min(tb + 1u, last));
    let e2 = column(min(tb + 2u, last));
    let e3 = column(min(tb + 3u, last));
    let xstep = p.stride * p.c4;

    var a00 = Quad(); var a01 = Quad(); var a02 = Quad(); var a03 = Quad();
    var a10 = Quad(); var a11 = Quad(); var a12 = Quad(); var a13 = Quad();
    var a20 = Quad(); var a21 = Quad(); var a22 = Quad(); var a23 = Quad();
    var a30 = Quad(); var a31 = Quad(); var a32 = Quad(); var a33 = Quad();
    // DW_WIDE: the next 16 output channels.
    var a40 = Quad(); var a41 = Quad(); var a42 = Quad(); var a43 = Quad();
    var a50 = Quad(); var a51 = Quad(); var a52 = Quad(); var a53 = Quad();
    var a60 = Quad(); var a61 = Quad(); var a62 = Quad(); var a63 = Quad();
    var a70 = Quad(); var a71 = Quad(); var a72 = Quad(); var a73 = Quad();
    for (var row = r0; row < r1; row++) {
        let n = row / p.oh;
        let oy = row % p.oh;
        // Tap (0, 0) of pixel (oy, 0) in x, and dy's pixel (oy, 0).
        let xb = vec2<u32>((n / p.per_page) * p.wp * p.c4, (n % p.per_page) * p.hp + oy * p.stride);
        let m = p.dy_margin;
        let db = vec2<u32>(
            ((n / p.dy_per_page) * (p.ow + 2u * m) + m) * p.o4,
            (n % p.dy_per_page) * (p.oh + 2u * m) + oy + m,
        );
        for (var ox = 0u; ox < p.ow; ox++) {
            let xo = xb + vec2<u32>(ox * xstep, 0u);
            let dd = db + vec2<u32>(ox * p.o4, 0u);
            let d = dy_texels(dd, og, lane);
            let d0 = d.x;
            let d1 = d.y;
            let d2 = d.z;
            let d3 = d.w;
            let x0 = textureLoad(tx, xo + e0, 0);
            let x1 = textureLoad(tx, xo + e1, 0);
            let x2 = textureLoad(tx, xo + e2, 0);
            let x3 = textureLoad(tx, xo + e3, 0);
            a00 = outer(a00, d0, x0); a01 = outer(a01, d0, x1); a02 = outer(a02, d0, x2); a03 = outer(a03, d0, x3);
            a10 = outer(a10, d1, x0); a11 = outer(a11, d1, x1); a12 = outer(a12, d1, x2); a13 = outer(a13, d1, x3);
            a20 = outer(a20, d2, x0); a21 = outer(a21, d2, x1); a22 = outer(a22, d2, x2); a23 = outer(a23, d2, x3);
            a30 = outer(a30, d3, x0); a31 = outer(a31, d3, x1); a32 = outer(a32, d3, x2); a33 = outer(a33, d3, x3);
            if DW_WIDE {
                let f = dy_texels(dd, og + 4u, lane);
                a40 = outer(a40, f.x, x0); a41 = outer(a41, f.x, x1); a42 = outer(a42, f.x, x2); a43 = outer(a43, f.x, x3);
                a50 = outer(a50, f.y, x0); a51 = outer(a51, f.y, x1); a52 = outer(a52, f.y, x2); a53 = outer(a53, f.y, x3);
                a60 = outer(a60, f.z, x0); a61 = outer(a61, f.z, x1); a62 = outer(a62, f.z, x2); a63 = outer(a63, f.z, x3);
                a70 = outer(a70, f.w, x0); a71 = outer(a71, f.w, x1); a72 = outer(a72, f.w, x2); a73 = outer(a73, f.w, x3);
            }
        }
    }

    let o0 = og * 4u;
    store_quad(range, o0, tb + 0u, a00); store_quad(range, o0, tb + 1u, a01);
    store_quad(range, o0, tb + 2u, a02); store_quad(range, o0, tb + 3u, a03);
    store_quad(range, o0 + 4u, tb + 0u, a10); store_quad(range, o0 + 4u, tb + 1u, a11);
    store_quad(range, o0 + 4u, tb + 2u, a12); store_quad(range, o0 + 4u, tb + 3u, a13);
    store_quad(range, o0 + 8u, tb + 0u, a20); store_quad(range, o0 + 8u, tb + 1u, a21);
    store_quad(range, o0 + 8u, tb + 2u, a22); store_quad(range, o0 + 8u, tb + 3u, a23);
    store_quad(range, o0 + 12u, tb + 0u, a30); store_quad(range, o0 + 12u, tb + 1u, a31);
    store_quad(range, o0 + 12u, tb + 2u, a32); store_quad(range, o0 + 12u, tb + 3u, a33);
    if DW_WIDE {
        store_quad(range, o0 + 16u, tb + 0u, a40); store_quad(range, o0 + 16u, tb + 1u, a41);
        store_quad(range, o0 + 16u, tb + 2u, a42); store_quad(range, o0 + 16u, tb + 3u, a43);
        store_quad(range, o0 + 20u, tb + 0u, a50); store_quad(range, o0 + 20u, tb + 1u, a51);
        store_quad(range, o0 + 20u, tb + 2u, a52); store_quad(range, o0 + 20u, tb + 3u, a53);
        store_quad(range, o0 + 24u, tb + 0u, a60); store_quad(range, o0 + 24u, tb + 1u, a61);
        store_quad(range, o0 + 24u, tb + 2u, a62); store_quad(range, o0 + 24u, tb + 3u, a63);
        store_quad(range, o0 + 28u, tb + 0u, a70); store_quad(range, o0 + 28u, tb + 1u, a71);
        store_quad(range, o0 + 28u, tb + 2u, a72); store_quad(range, o0 + 28u, tb + 3u, a73);
    }
}
