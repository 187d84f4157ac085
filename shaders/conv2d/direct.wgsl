// conv2d forward, variant 1 of 3: direct, one output per invocation.
//
// out[n, o, oy, ox] = bias[o] + sum over c, ky, kx of
//     x[n, c, oy * stride - pad + ky, ox * stride - pad + kx] * w[o, c, ky, kx]
// with taps outside the input reading zero. The readable reference and the
// baseline the benches compare against: every invocation re-reads its whole
// receptive field and the weights from memory, so nothing is reused.

override HAS_BIAS: bool = false;

struct Params {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, chunk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
// Without a bias the host binds the weights here; they are never read.
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    if i >= p.n * p.o * p.oh * p.ow {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let o = (i / (p.ow * p.oh)) % p.o;
    let n = i / (p.ow * p.oh * p.o);
    var acc = 0.0;
    if HAS_BIAS {
        acc = bias[o];
    }
    for (var c = 0u; c < p.c; c++) {
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(oy * p.stride + ky) - i32(p.pad);
            if iy < 0 || iy >= i32(p.h) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = i32(ox * p.stride + kx) - i32(p.pad);
                if ix < 0 || ix >= i32(p.w) {
                    continue;
                }
                acc += x[((n * p.c + c) * p.h + u32(iy)) * p.w + u32(ix)]
                     * wt[((o * p.c + c) * p.kh + ky) * p.kw + kx];
            }
        }
    }
    out[i] = acc;
}
