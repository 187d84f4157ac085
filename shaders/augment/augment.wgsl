// Two augmented views of a batch of u8 images, as normalised f32 NCHW tensors.
//
// The host draws every random parameter of a view (crop box, flip, angle,
// jitter factors and order, blur weights, noise key) from a generator keyed by
// (seed, step, image, view) and uploads one small `View` record per view;
// this file only applies them. The CPU reference (src/augment/cpu.rs) is fed
// the same records and computes the same formulas in the same order, so the
// two agree to f32 rounding.
//
// Per view, in torchvision's order: inverse affine map of crop + flip +
// rotation with bilinear sampling, colour jitter (brightness, contrast,
// saturation, hue in the view's random order), greyscale, Gaussian blur,
// solarisation, additive Gaussian noise (clipped to [0, 1]), normalisation.
//
// One workgroup per (image, view): workgroup_id = (image, view, 0). Each
// invocation computes all channels of every WG-th pixel of the view.
//   colour    samples and colours the view. Views without contrast or blur
//             are finished here and written to out0 / out1.
//   contrast  contrast blends every pixel with the view's mean grey level, a
//             reduction over the view: `colour` stops before contrast,
//             leaves [0, 1] pixels in `pre` and one partial sum per
//             invocation in `partials`; this pass adds the WG partials and
//             runs the rest of the jitter.
//   blur_h    horizontal Gaussian pass, pre -> tmp, blurred views only.
//   blur_v    vertical Gaussian pass, tmp -> finish -> out0 / out1.
//
// Why the reduction goes through memory and a second dispatch rather than
// a workgroup barrier: lavapipe runs a workgroup as a loop over 8-wide SIMD
// chunks and turns a shader with a barrier into coroutines, which cost a
// third of this pipeline's time on a 2-core machine. Every kernel here is
// barrier-free, every branch on a view's parameters is uniform across the
// workgroup, and the branches on pixel values are selects.

override CHANNELS: u32 = 3u;
// Invocations per workgroup, set by the host per device class: 64 on GPUs;
// 16 on CPU drivers, where every invocation pays to load its view's record
// and the contrast partials, and fewer invocations per view amortise that
// over more pixels each (1.3x on lavapipe against 64).
override WG: u32 = 64u;
const LUMA = vec3<f32>(0.299, 0.587, 0.114);

struct Params {
    batch: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    mean: vec4<f32>,
    deviation: vec4<f32>,
}

// Mirrors `GpuView` in src/augment/gpu.rs. An adjustment whose factor is the
// identity (1, or 0 for hue) is skipped, as torchvision skips a strength of 0.
struct View {
    // Source pixel-centre coordinates of output pixel centre (px, py):
    // (m00 px + m01 py + tx, m10 px + m11 py + ty).
    m00: f32,
    m01: f32,
    m10: f32,
    m11: f32,
    tx: f32,
    ty: f32,
    brightness: f32,
    contrast: f32,
    saturation: f32,
    hue: f32,
    // Jitter step k applies op (order >> 2k) & 3: 0 brightness, 1 contrast,
    // 2 saturation, 3 hue.
    order: u32,
    gray: u32,
    blur_radius: u32,
    solarize: u32,
    noise_std: f32,
    noise_key: u32,
    // Gaussian weights by recurrence (see `BlurKernel` in params.rs):
    // w(0) = blur_first, w(k + 1) = w(k) b(k), b(0) = blur_step,
    // b(k + 1) = b(k) blur_ratio.
    blur_first: f32,
    blur_step: f32,
    blur_ratio: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The batch's bytes, B x H x W x C, four to a word (little-endian).
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> views: array<View>;
@group(0) @binding(3) var<storage, read_write> out0: array<f32>;
@group(0) @binding(4) var<storage, read_write> out1: array<f32>;
// [2, B, C, out_h, out_w] staging: pixels waiting for the contrast mean or
// for the blur. Planar, so a grey pixel is one load, not four.
@group(0) @binding(5) var<storage, read_write> pre: array<f32>;
@group(0) @binding(6) var<storage, read_write> tmp: array<f32>;
// [B, 2, WG] partial sums of grey levels, for the contrast mean.
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;

// Byte `bit / 8` of the 96-bit little-endian window (w0, w1, w2).
fn window_byte(w0: u32, w1: u32, w2: u32, bit: u32) -> f32 {
    let word = select(select(w2, w1, bit < 64u), w0, bit < 32u);
    return f32((word >> (bit & 31u)) & 0xffu);
}

// The texel whose first byte is at `bit` in the window.
fn window_texel(w0: u32, w1: u32, w2: u32, bit: u32) -> vec3<f32> {
    if CHANNELS == 1u {
        return vec3<f32>(window_byte(w0, w1, w2, bit));
    }
    return vec3<f32>(
        window_byte(w0, w1, w2, bit),
        window_byte(w0, w1, w2, bit + 8u),
        window_byte(w0, w1, w2, bit + 16u),
    );
}

// The texels at x0 and x1 (x0 or x0 + 1) of row y. Storage loads are the
// expensive part of this shader on CPU drivers (one scalar load per lane),
// and the pair's bytes lie in three consecutive words (the host pads the
// batch by two words), so a pair costs three loads instead of six.
struct Pair {
    a: vec3<f32>,
    b: vec3<f32>,
}

fn texel_pair(img: u32, x0: i32, x1: i32, y: i32) -> Pair {
    let first = ((img * p.in_h + u32(y)) * p.in_w + u32(x0)) * CHANNELS;
    let w = first >> 2u;
    let w0 = src[w];
    let w1 = src[w + 1u];
    var w2 = 0u;
    if CHANNELS == 3u {
        w2 = src[w + 2u];
    }
    let a = (first & 3u) * 8u;
    let b = a + u32(x1 - x0) * CHANNELS * 8u;
    return Pair(window_texel(w0, w1, w2, a), window_texel(w0, w1, w2, b));
}

// Bilinear sample at pixel-centre coordinates (x, y), in [0, 1]. Inside the
// image the edge pixels are replicated (a crop never reaches further than
// half a pixel past them); past that the image fades to black over one
// pixel, so rotated corners are black and the sample stays a continuous
// function of (x, y) (a hard cut would let rounding flip a pixel from image
// to black between two implementations).
fn sample(img: u32, x: f32, y: f32) -> vec3<f32> {
    let w = f32(p.in_w);
    let h = f32(p.in_h);
    let cover = clamp(x + 1.5, 0.0, 1.0) * clamp(w + 0.5 - x, 0.0, 1.0)
        * clamp(y + 1.5, 0.0, 1.0) * clamp(h + 0.5 - y, 0.0, 1.0);
    if cover == 0.0 {
        return vec3<f32>(0.0);
    }
    let fx = floor(x);
    let fy = floor(y);
    let ax = x - fx;
    let ay = y - fy;
    let last_x = i32(p.in_w) - 1;
    let last_y = i32(p.in_h) - 1;
    let x0 = clamp(i32(fx), 0, last_x);
    let x1 = clamp(i32(fx) + 1, 0, last_x);
    let y0 = clamp(i32(fy), 0, last_y);
    let y1 = clamp(i32(fy) + 1, 0, last_y);
    let t0 = texel_pair(img, x0, x1, y0);
    let t1 = texel_pair(img, x0, x1, y1);
    let top = t0.a * (1.0 - ax) + t0.b * ax;
    let bottom = t1.a * (1.0 - ax) + t1.b * ax;
    return (top * (1.0 - ay) + bottom * ay) * (cover / 255.0);
}

fn grey(c: vec3<f32>) -> f32 {
    if CHANNELS == 1u {
        return c.x;
    }
    return dot(c, LUMA);
}

// torchvision's _blend: ratio * a + (1 - ratio) * b, clamped to [0, 1].
fn blend(a: vec3<f32>, b: vec3<f32>, ratio: f32) -> vec3<f32> {
    return clamp(ratio * a + (1.0 - ratio) * b, vec3<f32>(0.0), vec3<f32>(1.0));
}

// torchvision's _rgb2hsv, hue shift, _hsv2rgb.
fn shift_hue(c: vec3<f32>, shift: f32) -> vec3<f32> {
    let maxc = max(c.x, max(c.y, c.z));
    let minc = min(c.x, min(c.y, c.z));
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / select(maxc, 1.0, eqc);
    let crd = select(cr, 1.0, eqc);
    let rc = (maxc - c.x) / crd;
    let gc = (maxc - c.y) / crd;
    let bc = (maxc - c.z) / crd;
    // torchvision's three cases (red, else green, else blue is the maximum).
    var h = select(select(4.0 + gc - rc, 2.0 + rc - bc, maxc == c.y), bc - gc, maxc == c.x);
    h = h / 6.0 + 1.0;
    h = h - floor(h);
    h = h + shift;
    h = h - floor(h);
    let v = maxc;
    let i6 = floor(h * 6.0);
    let f = h * 6.0 - i6;
    let pp = clamp(v * (1.0 - s), 0.0, 1.0);
    let q = clamp(v * (1.0 - s * f), 0.0, 1.0);
    let t = clamp(v * (1.0 - s * (1.0 - f)), 0.0, 1.0);
    // Sectors 0..5 give (v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v),
    // (v, p, q), chosen with selects: lanes of a SIMD chunk differ in sector.
    let sector = u32(i6) % 6u;
    var rgb = vec3<f32>(v, pp, q);
    rgb = select(rgb, vec3<f32>(t, pp, v), sector == 4u);
    rgb = select(rgb, vec3<f32>(pp, q, v), sector == 3u);
    rgb = select(rgb, vec3<f32>(pp, v, t), sector == 2u);
    rgb = select(rgb, vec3<f32>(q, v, pp), sector == 1u);
    return select(rgb, vec3<f32>(v, t, pp), sector == 0u);
}

// Jitter op `op` (see View.order). Saturation and hue leave grey images
// alone, as in torchvision.
fn adjust(op: u32, c: vec3<f32>, v: View, mean: f32) -> vec3<f32> {
    switch op {
        case 0u: {
            if v.brightness != 1.0 {
                return clamp(v.brightness * c, vec3<f32>(0.0), vec3<f32>(1.0));
            }
        }
        case 1u: {
            if v.contrast != 1.0 {
                return blend(c, vec3<f32>(mean), v.contrast);
            }
        }
        case 2u: {
            if CHANNELS == 3u && v.saturation != 1.0 {
                return blend(c, vec3<f32>(grey(c)), v.saturation);
            }
        }
        default: {
            if CHANNELS == 3u && v.hue != 0.0 {
                return shift_hue(c, v.hue);
            }
        }
    }
    return c;
}

fn jitter_op(v: View, step: u32) -> u32 {
    return (v.order >> (2u * step)) & 3u;
}

// Counter-based hash (PCG, Jarzynski & Olano 2020), as `pcg` in params.rs.
fn pcg(x: u32) -> u32 {
    let state = x * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// A standard normal draw for element `index` of a view (Box-Muller), as
// `gaussian` in params.rs.
fn gaussian(key: u32, index: u32) -> f32 {
    let h1 = pcg(key + pcg(2u * index));
    let h2 = pcg(key + pcg(2u * index + 1u));
    let u1 = (f32(h1 >> 8u) + 1.0) * (1.0 / 16777216.0);
    let u2 = f32(h2 >> 8u) * (1.0 / 16777216.0);
    return sqrt(-2.0 * log(u1)) * cos(6.2831855 * u2);
}

// Solarise, add noise, normalise: channel `ch` of output pixel `i`, whose
// normalisation is (mean, deviation).
fn finish(v: View, i: u32, ch: u32, x: f32, mean: f32, deviation: f32) -> f32 {
    var y = x;
    if v.solarize != 0u && y >= 0.5 {
        y = 1.0 - y;
    }
    // Noisy pixels stay in [0, 1], as torchvision's GaussianNoise clips
    // them: unclipped noise on black backgrounds cost the Fashion-MNIST kNN
    // 0.35 points after one epoch.
    if v.noise_std > 0.0 {
        let noisy = y + v.noise_std * gaussian(v.noise_key, ch * p.out_h * p.out_w + i);
        y = clamp(noisy, 0.0, 1.0);
    }
    return (y - mean) / deviation;
}

// Pixels lid, lid + WG, lid + 2 WG, ... of a view, as index and
// coordinates, stepped without a division per pixel (CPU drivers scalarise
// integer division).
struct Walk {
    i: u32,
    x: u32,
    y: u32,
}

fn walk(lid: u32) -> Walk {
    return Walk(lid, lid % p.out_w, lid / p.out_w);
}

fn advance(w: Walk) -> Walk {
    let x = w.x + WG % p.out_w;
    let wrap = x >= p.out_w;
    return Walk(w.i + WG, select(x, x - p.out_w, wrap), w.y + WG / p.out_w + u32(wrap));
}

// Channel 0 of pixel `i` of (image, view) in `pre` / `tmp`; channel c is
// c planes further.
fn staged(img: u32, view: u32, i: u32) -> u32 {
    return (view * p.batch + img) * CHANNELS * p.out_h * p.out_w + i;
}

fn store_pre(j: u32, c: vec3<f32>) {
    let n = p.out_h * p.out_w;
    pre[j] = c.x;
    if CHANNELS == 3u {
        pre[j + n] = c.y;
        pre[j + 2u * n] = c.z;
    }
}

fn load_pre(j: u32) -> vec3<f32> {
    let n = p.out_h * p.out_w;
    if CHANNELS == 1u {
        return vec3<f32>(pre[j]);
    }
    return vec3<f32>(pre[j], pre[j + n], pre[j + 2u * n]);
}

fn store_tmp(j: u32, c: vec3<f32>) {
    let n = p.out_h * p.out_w;
    tmp[j] = c.x;
    if CHANNELS == 3u {
        tmp[j + n] = c.y;
        tmp[j + 2u * n] = c.z;
    }
}

fn load_tmp(j: u32) -> vec3<f32> {
    let n = p.out_h * p.out_w;
    if CHANNELS == 1u {
        return vec3<f32>(tmp[j]);
    }
    return vec3<f32>(tmp[j], tmp[j + n], tmp[j + 2u * n]);
}

fn put_out(view: u32, index: u32, x: f32) {
    if view == 0u {
        out0[index] = x;
    } else {
        out1[index] = x;
    }
}

// Finishes output pixel `i` of (image, view) and writes its channels,
// spelled out rather than picked by a loop index so that no vector needs
// dynamic indexing.
fn write_out(img: u32, view: u32, v: View, i: u32, c: vec3<f32>) {
    let n = p.out_h * p.out_w;
    let base = img * CHANNELS * n + i;
    put_out(view, base, finish(v, i, 0u, c.x, p.mean.x, p.deviation.x));
    if CHANNELS == 3u {
        put_out(view, base + n, finish(v, i, 1u, c.y, p.mean.y, p.deviation.y));
        put_out(view, base + 2u * n, finish(v, i, 2u, c.z, p.mean.z, p.deviation.z));
    }
}

// Greyscale, then either stage for the blur or finish and write.
fn emit(img: u32, view: u32, v: View, i: u32, c: vec3<f32>) {
    var col = c;
    if CHANNELS == 3u && v.gray != 0u {
        col = vec3<f32>(grey(col));
    }
    if v.blur_radius > 0u {
        store_pre(staged(img, view, i), col);
    } else {
        write_out(img, view, v, i, col);
    }
}

// The jitter step at which contrast runs, or 4 when contrast is off.
fn contrast_step(v: View) -> u32 {
    var step = 4u;
    if v.contrast != 1.0 {
        for (var k = 0u; k < 4u; k++) {
            if jitter_op(v, k) == 1u {
                step = k;
            }
        }
    }
    return step;
}

@compute @workgroup_size(WG)
fn colour(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let img = wid.x;
    let view = wid.y;
    let v = views[img * 2u + view];
    let n = p.out_h * p.out_w;
    let split = contrast_step(v);
    var sum = 0.0;
    for (var w = walk(lid); w.i < n; w = advance(w)) {
        let i = w.i;
        let px = f32(w.x) + 0.5;
        let py = f32(w.y) + 0.5;
        var c = sample(img, v.m00 * px + v.m01 * py + v.tx, v.m10 * px + v.m11 * py + v.ty);
        for (var k = 0u; k < split; k++) {
            c = adjust(jitter_op(v, k), c, v, 0.0);
        }
        if split < 4u {
            sum += grey(c);
            store_pre(staged(img, view, i), c);
        } else {
            emit(img, view, v, i, c);
        }
    }
    if split < 4u {
        partials[(img * 2u + view) * WG + lid] = sum;
    }
}

@compute @workgroup_size(WG)
fn contrast(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let img = wid.x;
    let view = wid.y;
    let v = views[img * 2u + view];
    let split = contrast_step(v);
    if split == 4u {
        return;
    }
    let n = p.out_h * p.out_w;
    var total = 0.0;
    for (var j = 0u; j < WG; j++) {
        total += partials[(img * 2u + view) * WG + j];
    }
    let mean = total / f32(n);
    for (var i = lid; i < n; i += WG) {
        var c = load_pre(staged(img, view, i));
        for (var k = split; k < 4u; k++) {
            c = adjust(jitter_op(v, k), c, v, mean);
        }
        emit(img, view, v, i, c);
    }
}

// Mirror-reflects index i into [0, n) without repeating the edge, as
// torchvision's reflect padding; the host keeps the radius below n.
fn mirror(i: i32, n: i32) -> i32 {
    var j = abs(i);
    if j >= n {
        j = 2 * n - 2 - j;
    }
    return j;
}

@compute @workgroup_size(WG)
fn blur_h(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let img = wid.x;
    let view = wid.y;
    let v = views[img * 2u + view];
    let r = i32(v.blur_radius);
    if r == 0 {
        return;
    }
    let width = i32(p.out_w);
    let first = staged(img, view, 0u);
    for (var w = walk(lid); w.i < p.out_h * p.out_w; w = advance(w)) {
        let x = i32(w.x);
        let row = first + w.i - w.x;
        var acc = v.blur_first * load_pre(first + w.i);
        var weight = v.blur_first;
        var step = v.blur_step;
        for (var k = 1; k <= r; k++) {
            weight *= step;
            step *= v.blur_ratio;
            let left = load_pre(row + u32(mirror(x - k, width)));
            let right = load_pre(row + u32(mirror(x + k, width)));
            acc += weight * (left + right);
        }
        store_tmp(first + w.i, acc);
    }
}

@compute @workgroup_size(WG)
fn blur_v(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let img = wid.x;
    let view = wid.y;
    let v = views[img * 2u + view];
    let r = i32(v.blur_radius);
    if r == 0 {
        return;
    }
    let height = i32(p.out_h);
    let first = staged(img, view, 0u);
    for (var w = walk(lid); w.i < p.out_h * p.out_w; w = advance(w)) {
        let y = i32(w.y);
        var acc = v.blur_first * load_tmp(first + w.i);
        var weight = v.blur_first;
        var step = v.blur_step;
        for (var k = 1; k <= r; k++) {
            weight *= step;
            step *= v.blur_ratio;
            let up = load_tmp(first + u32(mirror(y - k, height)) * p.out_w + w.x);
            let down = load_tmp(first + u32(mirror(y + k, height)) * p.out_w + w.x);
            acc += weight * (up + down);
        }
        write_out(img, view, v, w.i, acc);
    }
}
