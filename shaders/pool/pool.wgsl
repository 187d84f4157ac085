// 2-D max and average pooling over (planes = N * C, H, W), square windows of
// `k` with stride and zero padding, as PyTorch's max_pool2d and avg_pool2d
// (average divides by k * k, padding included; no ceil mode).
//
// Forward: one invocation per output. Max pooling also records which input
// of the plane won (its index y * W + x, as f32: exact below 2^24).
// Backward: one invocation per input, gathering the outputs whose window
// holds it (at most ceil(k / stride)^2), so every write has one owner and no
// atomics are needed.

struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    k: u32,
    stride: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

// The first and one-past-last output coordinates whose window covers input `i`.
fn covering(i: u32, size: u32) -> vec2<i32> {
    let t = i32(i + p.pad);
    let s = i32(p.stride);
    let lo = max(t - i32(p.k) + s, 0) / s; // ceil((t - k + 1) / s), clamped at 0
    let hi = min(t / s + 1, i32(size));
    return vec2<i32>(lo, hi);
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<f32>;

@compute @workgroup_size(256)
fn max_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i >= p.planes * p.oh * p.ow {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh) * p.h * p.w;
    var best = -3.4028235e38;
    var best_at = 0u;
    for (var ky = 0u; ky < p.k; ky++) {
        let iy = i32(oy * p.stride + ky) - i32(p.pad);
        if iy < 0 || iy >= i32(p.h) {
            continue;
        }
        for (var kx = 0u; kx < p.k; kx++) {
            let ix = i32(ox * p.stride + kx) - i32(p.pad);
            if ix < 0 || ix >= i32(p.w) {
                continue;
            }
            let at = u32(iy) * p.w + u32(ix);
            let v = x[plane + at];
            if v > best {
                best = v;
                best_at = at;
            }
        }
    }
    y[i] = best;
    argmax[i] = f32(best_at);
}

@group(0) @binding(1) var<storage, read> ax: array<f32>;
@group(0) @binding(2) var<storage, read_write> ay: array<f32>;

@compute @workgroup_size(256)
fn avg_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i >= p.planes * p.oh * p.ow {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh) * p.h * p.w;
    var s = 0.0;
    for (var ky = 0u; ky < p.k; ky++) {
        let iy = i32(oy * p.stride + ky) - i32(p.pad);
        if iy < 0 || iy >= i32(p.h) {
            continue;
        }
        for (var kx = 0u; kx < p.k; kx++) {
            let ix = i32(ox * p.stride + kx) - i32(p.pad);
            if ix >= 0 && ix < i32(p.w) {
                s += ax[plane + u32(iy) * p.w + u32(ix)];
            }
        }
    }
    ay[i] = s / f32(p.k * p.k);
}

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> won: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn max_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i >= p.planes * p.h * p.w {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h) * p.oh * p.ow;
    let me = f32(iy * p.w + ix);
    let ry = covering(iy, p.oh);
    let rx = covering(ix, p.ow);
    var g = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        for (var ox = rx.x; ox < rx.y; ox++) {
            let o = plane + u32(oy) * p.ow + u32(ox);
            if won[o] == me {
                g += dy[o];
            }
        }
    }
    dx[i] = g;
}

@group(0) @binding(1) var<storage, read> ady: array<f32>;
@group(0) @binding(2) var<storage, read_write> adx: array<f32>;

@compute @workgroup_size(256)
fn avg_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i >= p.planes * p.h * p.w {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h) * p.oh * p.ow;
    let ry = covering(iy, p.oh);
    let rx = covering(ix, p.ow);
    var g = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        for (var ox = rx.x; ox < rx.y; ox++) {
            g += ady[plane + u32(oy) * p.ow + u32(ox)];
        }
    }
    adx[i] = g / f32(p.k * p.k);
}
