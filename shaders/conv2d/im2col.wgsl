// conv2d, variant 3 of 3: the convolution lowered to matrix products.
//
// These two kernels only move data; the multiply-adds happen in the matmul
// family (shaders/matmul/), so the convolution runs at the speed of the
// best matrix product on the device. With P = OH * OW output pixels and
// K = C * KH * KW taps:
//
// `im2col`: cols[(n * P + oy * OW + ox) * K + (c * KH + ky) * KW + kx]
//               = x[n, c, oy * stride - pad + ky, ox * stride - pad + kx]
//           (zero outside the input). The forward is then
//           y = cols * w^T ([N * P, O], transposed to NCHW afterwards), and
//           the weight gradient dw = dy^T * cols.
// `col2im`: dx[n, c, iy, ix] = sum over the taps that read (iy, ix) of
//           dcols[(n * P + oy * OW + ox) * K + (c * KH + ky) * KW + kx],
//           where dcols = dy * w is the gradient of cols. Gathering instead
//           of scattering keeps every write owned by one invocation, so no
//           atomics are needed.
//
// The price is memory: cols holds every input pixel KH * KW / stride^2
// times. The host picks this variant only where that fits.

struct Params {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, chunk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// `im2col`: x. `col2im`: dcols.
@group(0) @binding(1) var<storage, read> src: array<f32>;
// `im2col`: cols. `col2im`: dx.
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

// One invocation per (output pixel, input channel): it writes that
// channel's KH * KW consecutive taps of the pixel's row of cols.
@compute @workgroup_size(256)
fn im2col(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    let pixels = p.oh * p.ow;
    if i >= p.n * pixels * p.c {
        return;
    }
    let c = i % p.c;
    let row = i / p.c;
    let ox = row % p.ow;
    let oy = (row / p.ow) % p.oh;
    let n = row / pixels;
    let taps = p.kh * p.kw;
    var out = i * taps;
    let plane = (n * p.c + c) * p.h;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(oy * p.stride + ky) - i32(p.pad);
        let row_inside = iy >= 0 && iy < i32(p.h);
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(ox * p.stride + kx) - i32(p.pad);
            var v = 0.0;
            if row_inside && ix >= 0 && ix < i32(p.w) {
                v = src[(plane + u32(iy)) * p.w + u32(ix)];
            }
            dst[out] = v;
            out++;
        }
    }
}

// The output coordinate that reads input coordinate `i` through tap `k`,
// or -1 if none does (between strides or outside the output).
fn source(i: u32, k: u32, size: u32) -> i32 {
    let t = i32(i + p.pad) - i32(k);
    if t < 0 || t % i32(p.stride) != 0 || t / i32(p.stride) >= i32(size) {
        return -1;
    }
    return t / i32(p.stride);
}

// One invocation per element of dx.
@compute @workgroup_size(256)
fn col2im(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i >= p.n * p.c * p.h * p.w {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let c = (i / (p.w * p.h)) % p.c;
    let n = i / (p.w * p.h * p.c);
    let k = p.c * p.kh * p.kw;
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let oy = source(iy, ky, p.oh);
        if oy < 0 {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ox = source(ix, kx, p.ow);
            if ox < 0 {
                continue;
            }
            let row = (n * p.oh + u32(oy)) * p.ow + u32(ox);
            acc += src[row * k + (c * p.kh + ky) * p.kw + kx];
        }
    }
    dst[i] = acc;
}
