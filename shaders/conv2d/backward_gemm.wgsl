// conv2d backward as implicit GEMMs, register-blocked and barrier-free like
// implicit_gemm.wgsl: 8 x 16 blocks in 32 named vec4 accumulators with
// explicit fma, no workgroup memory, every load index clamped or zeroed and
// every store guarded (the host compiles this module without bounds checks).
//
// `input` (changes from backward_direct `input`): the transposed convolution
// dx[m, c] = sum_k A[m, k] * B[k, c] with m = (n, iy, ix) an input pixel,
// k = (ky, kx, o), A[m, k] = dy[n, o, oy, ox] for the output pixel that reads
// (iy, ix) through tap (ky, kx) (zero if none does) and B[k, c] = w[o, c, ky, kx],
// packed by pack_weights.wgsl as wp[(ky, kx, o), c] with c padded to 16 so that
// the block's 16 weights for one k are four contiguous vec4 read at the same
// address by every lane. With stride s only the taps ky = (iy + pad) mod s
// (mod s) reach an input row, so the pixels are split into s * s phases by
// (iy + pad) mod s and (ix + pad) mod s (workgroup_id.z): all rows of a block
// share a phase and loop over that phase's taps only, instead of testing all
// kh * kw taps and keeping one in s * s.
//
// `weight` (changes from backward_direct `weight`): dw[o, j] = sum_k B[k, j] * A[k, o]
// with j = (c, ky, kx) a row of the block (8 per invocation, consecutive
// across lanes), o a column (16 per workgroup_id.y, so every lane reads the
// same dy addresses), k = (n, oy, ox), A = dy and B = the im2col of x. The
// batch is split over workgroup_id.z into chunks of p.chunk images, each
// writing its own partial sum (the host adds them), so small layers still
// give every core work. The ox range where no tap leaves the input is walked
// without the horizontal bounds test.

struct Params {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, chunk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// `input`: dy and the packed weights. `weight`: x and dy.
@group(0) @binding(1) var<storage, read> src_a: array<f32>;
@group(0) @binding(2) var<storage, read> src_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> wp: array<vec4<f32>>;

// `input`: four input channels of one input pixel of phase (fy, fx).
fn store_dx(m: u32, rows: u32, hp: u32, wp_: u32, fy: u32, fx: u32, col: u32, v: vec4<f32>) {
    if m >= rows {
        return;
    }
    let hw = p.h * p.w;
    let j = m % (hp * wp_);
    let pix = (fy + (j / wp_) * p.stride) * p.w + fx + (j % wp_) * p.stride;
    let base = (m / (hp * wp_)) * p.c * hw + pix;
    for (var l = 0u; l < 4u; l++) {
        if col + l < p.c {
            dst[base + (col + l) * hw] = v[l];
        }
    }
}

@compute @workgroup_size(64)
fn input(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let s = p.stride;
    let ohw = p.oh * p.ow;
    // The phase: input rows with (iy + pad) % s == py start at fy, one in s.
    let py = wid.z / s;
    let px = wid.z % s;
    let fy = (py + s - p.pad % s) % s;
    let fx = (px + s - p.pad % s) % s;
    if fy >= p.h || fx >= p.w {
        return;
    }
    let hp = (p.h - fy + s - 1u) / s;
    let wp_ = (p.w - fx + s - 1u) / s;
    let rows = p.n * hp * wp_;
    let row0 = gid.x * 8u;
    let col0 = wid.y * 16u;
    let c4 = (p.c + 15u) / 16u * 4u;
    let wcol = wid.y * 4u;
    let oh = i32(p.oh);
    let ow = i32(p.ow);
    // Per row: dy's image offset and the output pixel tap (py, px) reads;
    // tap (py + s ty, px + s tx) reads (qy - ty, qx - tx).
    let m0 = min(row0 + 0u, rows - 1u); let j0 = m0 % (hp * wp_);
    let img0 = (m0 / (hp * wp_)) * p.o * ohw; let qy0 = i32((fy + (j0 / wp_) * s + p.pad - py) / s); let qx0 = i32((fx + (j0 % wp_) * s + p.pad - px) / s);
    let m1 = min(row0 + 1u, rows - 1u); let j1 = m1 % (hp * wp_);
    let img1 = (m1 / (hp * wp_)) * p.o * ohw; let qy1 = i32((fy + (j1 / wp_) * s + p.pad - py) / s); let qx1 = i32((fx + (j1 % wp_) * s + p.pad - px) / s);
    let m2 = min(row0 + 2u, rows - 1u); let j2 = m2 % (hp * wp_);
    let img2 = (m2 / (hp * wp_)) * p.o * ohw; let qy2 = i32((fy + (j2 / wp_) * s + p.pad - py) / s); let qx2 = i32((fx + (j2 % wp_) * s + p.pad - px) / s);
    let m3 = min(row0 + 3u, rows - 1u); let j3 = m3 % (hp * wp_);
    let img3 = (m3 / (hp * wp_)) * p.o * ohw; let qy3 = i32((fy + (j3 / wp_) * s + p.pad - py) / s); let qx3 = i32((fx + (j3 % wp_) * s + p.pad - px) / s);
    let m4 = min(row0 + 4u, rows - 1u); let j4 = m4 % (hp * wp_);
    let img4 = (m4 / (hp * wp_)) * p.o * ohw; let qy4 = i32((fy + (j4 / wp_) * s + p.pad - py) / s); let qx4 = i32((fx + (j4 % wp_) * s + p.pad - px) / s);
    let m5 = min(row0 + 5u, rows - 1u); let j5 = m5 % (hp * wp_);
    let img5 = (m5 / (hp * wp_)) * p.o * ohw; let qy5 = i32((fy + (j5 / wp_) * s + p.pad - py) / s); let qx5 = i32((fx + (j5 % wp_) * s + p.pad - px) / s);
    let m6 = min(row0 + 6u, rows - 1u); let j6 = m6 % (hp * wp_);
    let img6 = (m6 / (hp * wp_)) * p.o * ohw; let qy6 = i32((fy + (j6 / wp_) * s + p.pad - py) / s); let qx6 = i32((fx + (j6 % wp_) * s + p.pad - px) / s);
    let m7 = min(row0 + 7u, rows - 1u); let j7 = m7 % (hp * wp_);
    let img7 = (m7 / (hp * wp_)) * p.o * ohw; let qy7 = i32((fy + (j7 / wp_) * s + p.pad - py) / s); let qx7 = i32((fx + (j7 % wp_) * s + p.pad - px) / s);

    var c00 = vec4<f32>(); var c01 = vec4<f32>(); var c02 = vec4<f32>(); var c03 = vec4<f32>();
    var c10 = vec4<f32>(); var c11 = vec4<f32>(); var c12 = vec4<f32>(); var c13 = vec4<f32>();
    var c20 = vec4<f32>(); var c21 = vec4<f32>(); var c22 = vec4<f32>(); var c23 = vec4<f32>();
    var c30 = vec4<f32>(); var c31 = vec4<f32>(); var c32 = vec4<f32>(); var c33 = vec4<f32>();
    var c40 = vec4<f32>(); var c41 = vec4<f32>(); var c42 = vec4<f32>(); var c43 = vec4<f32>();
    var c50 = vec4<f32>(); var c51 = vec4<f32>(); var c52 = vec4<f32>(); var c53 = vec4<f32>();
    var c60 = vec4<f32>(); var c61 = vec4<f32>(); var c62 = vec4<f32>(); var c63 = vec4<f32>();
    var c70 = vec4<f32>(); var c71 = vec4<f32>(); var c72 = vec4<f32>(); var c73 = vec4<f32>();
    var ty = 0;
    for (var ky = py; ky < p.kh; ky += s) {
        var tx = 0;
        for (var kx = px; kx < p.kw; kx += s) {
            let oy0 = qy0 - ty; let ox0 = qx0 - tx;
            let ok0 = oy0 >= 0 && oy0 < oh && ox0 >= 0 && ox0 < ow;
            let a0 = select(0u, img0 + u32(oy0 * ow + ox0), ok0);
            let oy1 = qy1 - ty; let ox1 = qx1 - tx;
            let ok1 = oy1 >= 0 && oy1 < oh && ox1 >= 0 && ox1 < ow;
            let a1 = select(0u, img1 + u32(oy1 * ow + ox1), ok1);
            let oy2 = qy2 - ty; let ox2 = qx2 - tx;
            let ok2 = oy2 >= 0 && oy2 < oh && ox2 >= 0 && ox2 < ow;
            let a2 = select(0u, img2 + u32(oy2 * ow + ox2), ok2);
            let oy3 = qy3 - ty; let ox3 = qx3 - tx;
            let ok3 = oy3 >= 0 && oy3 < oh && ox3 >= 0 && ox3 < ow;
            let a3 = select(0u, img3 + u32(oy3 * ow + ox3), ok3);
            let oy4 = qy4 - ty; let ox4 = qx4 - tx;
            let ok4 = oy4 >= 0 && oy4 < oh && ox4 >= 0 && ox4 < ow;
            let a4 = select(0u, img4 + u32(oy4 * ow + ox4), ok4);
            let oy5 = qy5 - ty; let ox5 = qx5 - tx;
            let ok5 = oy5 >= 0 && oy5 < oh && ox5 >= 0 && ox5 < ow;
            let a5 = select(0u, img5 + u32(oy5 * ow + ox5), ok5);
            let oy6 = qy6 - ty; let ox6 = qx6 - tx;
            let ok6 = oy6 >= 0 && oy6 < oh && ox6 >= 0 && ox6 < ow;
            let a6 = select(0u, img6 + u32(oy6 * ow + ox6), ok6);
            let oy7 = qy7 - ty; let ox7 = qx7 - tx;
            let ok7 = oy7 >= 0 && oy7 < oh && ox7 >= 0 && ox7 < ow;
            let a7 = select(0u, img7 + u32(oy7 * ow + ox7), ok7);
            var wi = (ky * p.kw + kx) * p.o * c4 + wcol;
            var plane = 0u;
            for (var o = 0u; o < p.o; o++) {
                let b0 = wp[wi]; let b1 = wp[wi + 1u]; let b2 = wp[wi + 2u]; let b3 = wp[wi + 3u];
                let v0 = select(0.0, src_a[a0 + plane], ok0);
                c00 = fma(vec4<f32>(v0), b0, c00); c01 = fma(vec4<f32>(v0), b1, c01); c02 = fma(vec4<f32>(v0), b2, c02); c03 = fma(vec4<f32>(v0), b3, c03);
                let v1 = select(0.0, src_a[a1 + plane], ok1);
                c10 = fma(vec4<f32>(v1), b0, c10); c11 = fma(vec4<f32>(v1), b1, c11); c12 = fma(vec4<f32>(v1), b2, c12); c13 = fma(vec4<f32>(v1), b3, c13);
                let v2 = select(0.0, src_a[a2 + plane], ok2);
                c20 = fma(vec4<f32>(v2), b0, c20); c21 = fma(vec4<f32>(v2), b1, c21); c22 = fma(vec4<f32>(v2), b2, c22); c23 = fma(vec4<f32>(v2), b3, c23);
                let v3 = select(0.0, src_a[a3 + plane], ok3);
                c30 = fma(vec4<f32>(v3), b0, c30); c31 = fma(vec4<f32>(v3), b1, c31); c32 = fma(vec4<f32>(v3), b2, c32); c33 = fma(vec4<f32>(v3), b3, c33);
                let v4 = select(0.0, src_a[a4 + plane], ok4);
                c40 = fma(vec4<f32>(v4), b0, c40); c41 = fma(vec4<f32>(v4), b1, c41); c42 = fma(vec4<f32>(v4), b2, c42); c43 = fma(vec4<f32>(v4), b3, c43);
                let v5 = select(0.0, src_a[a5 + plane], ok5);
                c50 = fma(vec4<f32>(v5), b0, c50); c51 = fma(vec4<f32>(v5), b1, c51); c52 = fma(vec4<f32>(v5), b2, c52); c53 = fma(vec4<f32>(v5), b3, c53);
                let v6 = select(0.0, src_a[a6 + plane], ok6);
                c60 = fma(vec4<f32>(v6), b0, c60); c61 = fma(vec4<f32>(v6), b1, c61); c62 = fma(vec4<f32>(v6), b2, c62); c63 = fma(vec4<f32>(v6), b3, c63);
                let v7 = select(0.0, src_a[a7 + plane], ok7);
                c70 = fma(vec4<f32>(v7), b0, c70); c71 = fma(vec4<f32>(v7), b1, c71); c72 = fma(vec4<f32>(v7), b2, c72); c73 = fma(vec4<f32>(v7), b3, c73);
                wi += c4;
                plane += ohw;
            }
            tx += 1;
        }
        ty += 1;
    }

    store_dx(row0 + 0u, rows, hp, wp_, fy, fx, col0 + 0u, c00); store_dx(row0 + 0u, rows, hp, wp_, fy, fx, col0 + 4u, c01); store_dx(row0 + 0u, rows, hp, wp_, fy, fx, col0 + 8u, c02); store_dx(row0 + 0u, rows, hp, wp_, fy, fx, col0 + 12u, c03);
    store_dx(row0 + 1u, rows, hp, wp_, fy, fx, col0 + 0u, c10); store_dx(row0 + 1u, rows, hp, wp_, fy, fx, col0 + 4u, c11); store_dx(row0 + 1u, rows, hp, wp_, fy, fx, col0 + 8u, c12); store_dx(row0 + 1u, rows, hp, wp_, fy, fx, col0 + 12u, c13);
    store_dx(row0 + 2u, rows, hp, wp_, fy, fx, col0 + 0u, c20); store_dx(row0 + 2u, rows, hp, wp_, fy, fx, col0 + 4u, c21); store_dx(row0 + 2u, rows, hp, wp_, fy, fx, col0 + 8u, c22); store_dx(row0 + 2u, rows, hp, wp_, fy, fx, col0 + 12u, c23);
    store_dx(row0 + 3u, rows, hp, wp_, fy, fx, col0 + 0u, c30); store_dx(row0 + 3u, rows, hp, wp_, fy, fx, col0 + 4u, c31); store_dx(row0 + 3u, rows, hp, wp_, fy, fx, col0 + 8u, c32); store_dx(row0 + 3u, rows, hp, wp_, fy, fx, col0 + 12u, c33);
    store_dx(row0 + 4u, rows, hp, wp_, fy, fx, col0 + 0u, c40); store_dx(row0 + 4u, rows, hp, wp_, fy, fx, col0 + 4u, c41); store_dx(row0 + 4u, rows, hp, wp_, fy, fx, col0 + 8u, c42); store_dx(row0 + 4u, rows, hp, wp_, fy, fx, col0 + 12u, c43);
    store_dx(row0 + 5u, rows, hp, wp_, fy, fx, col0 + 0u, c50); store_dx(row0 + 5u, rows, hp, wp_, fy, fx, col0 + 4u, c51); store_dx(row0 + 5u, rows, hp, wp_, fy, fx, col0 + 8u, c52); store_dx(row0 + 5u, rows, hp, wp_, fy, fx, col0 + 12u, c53);
    store_dx(row0 + 6u, rows, hp, wp_, fy, fx, col0 + 0u, c60); store_dx(row0 + 6u, rows, hp, wp_, fy, fx, col0 + 4u, c61); store_dx(row0 + 6u, rows, hp, wp_, fy, fx, col0 + 8u, c62); store_dx(row0 + 6u, rows, hp, wp_, fy, fx, col0 + 12u, c63);
    store_dx(row0 + 7u, rows, hp, wp_, fy, fx, col0 + 0u, c70); store_dx(row0 + 7u, rows, hp, wp_, fy, fx, col0 + 4u, c71); store_dx(row0 + 7u, rows, hp, wp_, fy, fx, col0 + 8u, c72); store_dx(row0 + 7u, rows, hp, wp_, fy, fx, col0 + 12u, c73);
}

// `weight`: dw[o .. o + 4, j] of one row j into partial sum `part`.
fn store_dw(part: u32, j: u32, col: u32, v: vec4<f32>) {
    let rows = p.c * p.kh * p.kw;
    if j >= rows {
        return;
    }
    for (var l = 0u; l < 4u; l++) {
        if col + l < p.o {
            dst[part + (col + l) * rows + j] = v[l];
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
    let rows = p.c * taps;
    let row0 = gid.x * 8u;
    let col0 = wid.y * 16u;
    let h = i32(p.h);
    let w = i32(p.w);
    let s = p.stride;
    // Per row j = (c, ky, kx): the channel plane and the tap's offsets.
    let j0 = min(row0 + 0u, rows - 1u); let t0 = j0 % taps;
    let pl0 = (j0 / taps) * hw; let dy0 = i32(t0 / p.kw) - i32(p.pad); let dx0 = i32(t0 % p.kw) - i32(p.pad);
    let j1 = min(row0 + 1u, rows - 1u); let t1 = j1 % taps;
    let pl1 = (j1 / taps) * hw; let dy1 = i32(t1 / p.kw) - i32(p.pad); let dx1 = i32(t1 % p.kw) - i32(p.pad);
    let j2 = min(row0 + 2u, rows - 1u); let t2 = j2 % taps;
    let pl2 = (j2 / taps) * hw; let dy2 = i32(t2 / p.kw) - i32(p.pad); let dx2 = i32(t2 % p.kw) - i32(p.pad);
    let j3 = min(row0 + 3u, rows - 1u); let t3 = j3 % taps;
    let pl3 = (j3 / taps) * hw; let dy3 = i32(t3 / p.kw) - i32(p.pad); let dx3 = i32(t3 % p.kw) - i32(p.pad);
    let j4 = min(row0 + 4u, rows - 1u); let t4 = j4 % taps;
    let pl4 = (j4 / taps) * hw; let dy4 = i32(t4 / p.kw) - i32(p.pad); let dx4 = i32(t4 % p.kw) - i32(p.pad);
    let j5 = min(row0 + 5u, rows - 1u); let t5 = j5 % taps;
    let pl5 = (j5 / taps) * hw; let dy5 = i32(t5 / p.kw) - i32(p.pad); let dx5 = i32(t5 % p.kw) - i32(p.pad);
    let j6 = min(row0 + 6u, rows - 1u); let t6 = j6 % taps;
    let pl6 = (j6 / taps) * hw; let dy6 = i32(t6 / p.kw) - i32(p.pad); let dx6 = i32(t6 % p.kw) - i32(p.pad);
    let j7 = min(row0 + 7u, rows - 1u); let t7 = j7 % taps;
    let pl7 = (j7 / taps) * hw; let dy7 = i32(t7 / p.kw) - i32(p.pad); let dx7 = i32(t7 % p.kw) - i32(p.pad);
    // dy[n, o, ., .] for the block's 16 output channels, at n = 0.
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    let last_o = vec4<u32>(p.o - 1u);
    let o0 = min(vec4<u32>(col0) + lanes, last_o) * ohw;
    let o1 = min(vec4<u32>(col0 + 4u) + lanes, last_o) * ohw;
    let o2 = min(vec4<u32>(col0 + 8u) + lanes, last_o) * ohw;
    let o3 = min(vec4<u32>(col0 + 12u) + lanes, last_o) * ohw;
    // Output columns [lo, hi) read inside the input at every horizontal tap.
    let lo = min((p.pad + s - 1u) / s, p.ow);
    let span = w + i32(p.pad) - i32(p.kw);
    let hi = max(lo, min(select(0u, u32(span) / s + 1u, span >= 0), p.ow));
    // The checked loop starts at 0 unless that column is interior.
    let first = select(0u, hi, lo == 0u);

    var c00 = vec4<f32>(); var c01 = vec4<f32>(); var c02 = vec4<f32>(); var c03 = vec4<f32>();
    var c10 = vec4<f32>(); var c11 = vec4<f32>(); var c12 = vec4<f32>(); var c13 = vec4<f32>();
    var c20 = vec4<f32>(); var c21 = vec4<f32>(); var c22 = vec4<f32>(); var c23 = vec4<f32>();
    var c30 = vec4<f32>(); var c31 = vec4<f32>(); var c32 = vec4<f32>(); var c33 = vec4<f32>();
    var c40 = vec4<f32>(); var c41 = vec4<f32>(); var c42 = vec4<f32>(); var c43 = vec4<f32>();
    var c50 = vec4<f32>(); var c51 = vec4<f32>(); var c52 = vec4<f32>(); var c53 = vec4<f32>();
    var c60 = vec4<f32>(); var c61 = vec4<f32>(); var c62 = vec4<f32>(); var c63 = vec4<f32>();
    var c70 = vec4<f32>(); var c71 = vec4<f32>(); var c72 = vec4<f32>(); var c73 = vec4<f32>();
    let n_end = min(p.n, (wid.z + 1u) * p.chunk);
    for (var n = wid.z * p.chunk; n < n_end; n++) {
        let ximg = n * p.c * hw;
        for (var oy = 0u; oy < p.oh; oy++) {
            let iy = i32(oy * s);
            let k0 = n * p.o * ohw + oy * p.ow;
            let iy0 = iy + dy0; let oky0 = iy0 >= 0 && iy0 < h;
            let rb0 = i32(ximg + pl0) + select(0, iy0, oky0) * w + dx0;
            let iy1 = iy + dy1; let oky1 = iy1 >= 0 && iy1 < h;
            let rb1 = i32(ximg + pl1) + select(0, iy1, oky1) * w + dx1;
            let iy2 = iy + dy2; let oky2 = iy2 >= 0 && iy2 < h;
            let rb2 = i32(ximg + pl2) + select(0, iy2, oky2) * w + dx2;
            let iy3 = iy + dy3; let oky3 = iy3 >= 0 && iy3 < h;
            let rb3 = i32(ximg + pl3) + select(0, iy3, oky3) * w + dx3;
            let iy4 = iy + dy4; let oky4 = iy4 >= 0 && iy4 < h;
            let rb4 = i32(ximg + pl4) + select(0, iy4, oky4) * w + dx4;
            let iy5 = iy + dy5; let oky5 = iy5 >= 0 && iy5 < h;
            let rb5 = i32(ximg + pl5) + select(0, iy5, oky5) * w + dx5;
            let iy6 = iy + dy6; let oky6 = iy6 >= 0 && iy6 < h;
            let rb6 = i32(ximg + pl6) + select(0, iy6, oky6) * w + dx6;
            let iy7 = iy + dy7; let oky7 = iy7 >= 0 && iy7 < h;
            let rb7 = i32(ximg + pl7) + select(0, iy7, oky7) * w + dx7;
            // The columns where some tap leaves the input: [0, lo) and [hi, ow).
            for (var ox = first; ox < p.ow; ox = select(ox + 1u, hi, ox + 1u == lo)) {
                let k = k0 + ox;
                let b0 = vec4<f32>(src_b[o0.x + k], src_b[o0.y + k], src_b[o0.z + k], src_b[o0.w + k]);
                let b1 = vec4<f32>(src_b[o1.x + k], src_b[o1.y + k], src_b[o1.z + k], src_b[o1.w + k]);
                let b2 = vec4<f32>(src_b[o2.x + k], src_b[o2.y + k], src_b[o2.z + k], src_b[o2.w + k]);
                let b3 = vec4<f32>(src_b[o3.x + k], src_b[o3.y + k], src_b[o3.z + k], src_b[o3.w + k]);
                let ix = i32(ox * s);
                let ix0 = ix + dx0; let ok0 = oky0 && ix0 >= 0 && ix0 < w;
                let v0 = select(0.0, src_a[select(0u, u32(rb0 + ix), ok0)], ok0);
                c00 = fma(vec4<f32>(v0), b0, c00); c01 = fma(vec4<f32>(v0), b1, c01); c02 = fma(vec4<f32>(v0), b2, c02); c03 = fma(vec4<f32>(v0), b3, c03);
                let ix1 = ix + dx1; let ok1 = oky1 && ix1 >= 0 && ix1 < w;
                let v1 = select(0.0, src_a[select(0u, u32(rb1 + ix), ok1)], ok1);
                c10 = fma(vec4<f32>(v1), b0, c10); c11 = fma(vec4<f32>(v1), b1, c11); c12 = fma(vec4<f32>(v1), b2, c12); c13 = fma(vec4<f32>(v1), b3, c13);
                let ix2 = ix + dx2; let ok2 = oky2 && ix2 >= 0 && ix2 < w;
                let v2 = select(0.0, src_a[select(0u, u32(rb2 + ix), ok2)], ok2);
                c20 = fma(vec4<f32>(v2), b0, c20); c21 = fma(vec4<f32>(v2), b1, c21); c22 = fma(vec4<f32>(v2), b2, c22); c23 = fma(vec4<f32>(v2), b3, c23);
                let ix3 = ix + dx3; let ok3 = oky3 && ix3 >= 0 && ix3 < w;
                let v3 = select(0.0, src_a[select(0u, u32(rb3 + ix), ok3)], ok3);
                c30 = fma(vec4<f32>(v3), b0, c30); c31 = fma(vec4<f32>(v3), b1, c31); c32 = fma(vec4<f32>(v3), b2, c32); c33 = fma(vec4<f32>(v3), b3, c33);
                let ix4 = ix + dx4; let ok4 = oky4 && ix4 >= 0 && ix4 < w;
                let v4 = select(0.0, src_a[select(0u, u32(rb4 + ix), ok4)], ok4);
                c40 = fma(vec4<f32>(v4), b0, c40); c41 = fma(vec4<f32>(v4), b1, c41); c42 = fma(vec4<f32>(v4), b2, c42); c43 = fma(vec4<f32>(v4), b3, c43);
                let ix5 = ix + dx5; let ok5 = oky5 && ix5 >= 0 && ix5 < w;
                let v5 = select(0.0, src_a[select(0u, u32(rb5 + ix), ok5)], ok5);
                c50 = fma(vec4<f32>(v5), b0, c50); c51 = fma(vec4<f32>(v5), b1, c51); c52 = fma(vec4<f32>(v5), b2, c52); c53 = fma(vec4<f32>(v5), b3, c53);
                let ix6 = ix + dx6; let ok6 = oky6 && ix6 >= 0 && ix6 < w;
                let v6 = select(0.0, src_a[select(0u, u32(rb6 + ix), ok6)], ok6);
                c60 = fma(vec4<f32>(v6), b0, c60); c61 = fma(vec4<f32>(v6), b1, c61); c62 = fma(vec4<f32>(v6), b2, c62); c63 = fma(vec4<f32>(v6), b3, c63);
                let ix7 = ix + dx7; let ok7 = oky7 && ix7 >= 0 && ix7 < w;
                let v7 = select(0.0, src_a[select(0u, u32(rb7 + ix), ok7)], ok7);
                c70 = fma(vec4<f32>(v7), b0, c70); c71 = fma(vec4<f32>(v7), b1, c71); c72 = fma(vec4<f32>(v7), b2, c72); c73 = fma(vec4<f32>(v7), b3, c73);
            }
            for (var ox = lo; ox < hi; ox++) {
                let k = k0 + ox;
                let b0 = vec4<f32>(src_b[o0.x + k], src_b[o0.y + k], src_b[o0.z + k], src_b[o0.w + k]);
                let b1 = vec4<f32>(src_b[o1.x + k], src_b[o1.y + k], src_b[o1.z + k], src_b[o1.w + k]);
                let b2 = vec4<f32>(src_b[o2.x + k], src_b[o2.y + k], src_b[o2.z + k], src_b[o2.w + k]);
                let b3 = vec4<f32>(src_b[o3.x + k], src_b[o3.y + k], src_b[o3.z + k], src_b[o3.w + k]);
                let ix = i32(ox * s);
                let v0 = select(0.0, src_a[u32(rb0 + ix)], oky0);
                c00 = fma(vec4<f32>(v0), b0, c00); c01 = fma(vec4<f32>(v0), b1, c01); c02 = fma(vec4<f32>(v0), b2, c02); c03 = fma(vec4<f32>(v0), b3, c03);
                let v1 = select(0.0, src_a[u32(rb1 + ix)], oky1);
                c10 = fma(vec4<f32>(v1), b0, c10); c11 = fma(vec4<f32>(v1), b1, c11); c12 = fma(vec4<f32>(v1), b2, c12); c13 = fma(vec4<f32>(v1), b3, c13);
                let v2 = select(0.0, src_a[u32(rb2 + ix)], oky2);
                c20 = fma(vec4<f32>(v2), b0, c20); c21 = fma(vec4<f32>(v2), b1, c21); c22 = fma(vec4<f32>(v2), b2, c22); c23 = fma(vec4<f32>(v2), b3, c23);
                let v3 = select(0.0, src_a[u32(rb3 + ix)], oky3);
                c30 = fma(vec4<f32>(v3), b0, c30); c31 = fma(vec4<f32>(v3), b1, c31); c32 = fma(vec4<f32>(v3), b2, c32); c33 = fma(vec4<f32>(v3), b3, c33);
                let v4 = select(0.0, src_a[u32(rb4 + ix)], oky4);
                c40 = fma(vec4<f32>(v4), b0, c40); c41 = fma(vec4<f32>(v4), b1, c41); c42 = fma(vec4<f32>(v4), b2, c42); c43 = fma(vec4<f32>(v4), b3, c43);
                let v5 = select(0.0, src_a[u32(rb5 + ix)], oky5);
                c50 = fma(vec4<f32>(v5), b0, c50); c51 = fma(vec4<f32>(v5), b1, c51); c52 = fma(vec4<f32>(v5), b2, c52); c53 = fma(vec4<f32>(v5), b3, c53);
                let v6 = select(0.0, src_a[u32(rb6 + ix)], oky6);
                c60 = fma(vec4<f32>(v6), b0, c60); c61 = fma(vec4<f32>(v6), b1, c61); c62 = fma(vec4<f32>(v6), b2, c62); c63 = fma(vec4<f32>(v6), b3, c63);
                let v7 = select(0.0, src_a[u32(rb7 + ix)], oky7);
                c70 = fma(vec4<f32>(v7), b0, c70); c71 = fma(vec4<f32>(v7), b1, c71); c72 = fma(vec4<f32>(v7), b2, c72); c73 = fma(vec4<f32>(v7), b3, c73);
            }
        }
    }

    let part = wid.z * p.o * rows;
    store_dw(part, row0 + 0u, col0 + 0u, c00); store_dw(part, row0 + 0u, col0 + 4u, c01); store_dw(part, row0 + 0u, col0 + 8u, c02); store_dw(part, row0 + 0u, col0 + 12u, c03);
    store_dw(part, row0 + 1u, col0 + 0u, c10); store_dw(part, row0 + 1u, col0 + 4u, c11); store_dw(part, row0 + 1u, col0 + 8u, c12); store_dw(part, row0 + 1u, col0 + 12u, c13);
    store_dw(part, row0 + 2u, col0 + 0u, c20); store_dw(part, row0 + 2u, col0 + 4u, c21); store_dw(part, row0 + 2u, col0 + 8u, c22); store_dw(part, row0 + 2u, col0 + 12u, c23);
    store_dw(part, row0 + 3u, col0 + 0u, c30); store_dw(part, row0 + 3u, col0 + 4u, c31); store_dw(part, row0 + 3u, col0 + 8u, c32); store_dw(part, row0 + 3u, col0 + 12u, c33);
    store_dw(part, row0 + 4u, col0 + 0u, c40); store_dw(part, row0 + 4u, col0 + 4u, c41); store_dw(part, row0 + 4u, col0 + 8u, c42); store_dw(part, row0 + 4u, col0 + 12u, c43);
    store_dw(part, row0 + 5u, col0 + 0u, c50); store_dw(part, row0 + 5u, col0 + 4u, c51); store_dw(part, row0 + 5u, col0 + 8u, c52); store_dw(part, row0 + 5u, col0 + 12u, c53);
    store_dw(part, row0 + 6u, col0 + 0u, c60); store_dw(part, row0 + 6u, col0 + 4u, c61); store_dw(part, row0 + 6u, col0 + 8u, c62); store_dw(part, row0 + 6u, col0 + 12u, c63);
    store_dw(part, row0 + 7u, col0 + 0u, c70); store_dw(part, row0 + 7u, col0 + 4u, c71); store_dw(part, row0 + 7u, col0 + 8u, c72); store_dw(part, row0 + 7u, col0 + 12u, c73);
}
