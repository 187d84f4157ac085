// conv2d backward, direct: one gradient element per invocation (the
// reference for backward_gemm.wgsl and the baseline of the benches).
//
// `input`:  dx[n, c, iy, ix] = sum over o, ky, kx of dy[n, o, oy, ox] * w[o, c, ky, kx]
//           where oy * stride - pad + ky = iy (likewise x): a transposed
//           convolution, gathering every output that read this input.
// `weight`: dw[o, c, ky, kx] = sum over n, oy, ox of
//           dy[n, o, oy, ox] * x[n, c, oy * stride - pad + ky, ox * stride - pad + kx].
// Gathering instead of scattering keeps every write owned by one invocation,
// so no atomics are needed.

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

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
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

@compute @workgroup_size(256)
fn input(
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
            for (var o = 0u; o < p.o; o++) {
                acc += src_a[((n * p.o + o) * p.oh + u32(oy)) * p.ow + u32(ox)]
                     * src_b[((o * p.c + c) * p.kh + ky) * p.kw + kx];
            }
        }
    }
    dst[i] = acc;
}

// `weight` sums a range of `p.chunk` output pixels (flattened over the
// batch and the output plane) per invocation and writes one partial sum per
// range, `dst[range, o, c, ky, kx]`, which the host then adds up. One long
// loop over the whole batch would be simpler, but llvmpipe (Mesa 22.3.6)
// ends a loop after 65 535 iterations in total per invocation, silently: a
// 256-image batch of 16x16 outputs already lost its last image's products.
@compute @workgroup_size(256)
fn weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let taps = p.o * p.c * p.kh * p.kw;
    let pixels = p.n * p.oh * p.ow;
    let ranges = (pixels + p.chunk - 1u) / p.chunk;
    let i = linear_index(wid, nwg, lid);
    if i >= taps * ranges {
        return;
    }
    let range = i / taps;
    let t = i % taps;
    let kx = t % p.kw;
    let ky = (t / p.kw) % p.kh;
    let c = (t / (p.kw * p.kh)) % p.c;
    let o = t / (p.kw * p.kh * p.c);
    let end = min(pixels, (range + 1u) * p.chunk);
    var acc = 0.0;
    for (var j = range * p.chunk; j < end; j++) {
        let ox = j % p.ow;
        let oy = (j / p.ow) % p.oh;
        let n = j / (p.ow * p.oh);
        let iy = i32(oy * p.stride + ky) - i32(p.pad);
        let ix = i32(ox * p.stride + kx) - i32(p.pad);
        if iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w) {
            continue;
        }
        acc += src_b[((n * p.o + o) * p.oh + oy) * p.ow + ox]
             * src_a[((n * p.c + c) * p.h + u32(iy)) * p.w + u32(ix)];
    }
    dst[i] = acc;
}
