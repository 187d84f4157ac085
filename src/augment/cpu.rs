//! The CPU implementation of the augmentation pipeline: the reference the
//! GPU kernels are tested against, and the baseline `benches/augment.rs`
//! measures them against.
//!
//! It follows `shaders/augment/augment.wgsl` formula for formula and in the
//! same order, in f32, so that fed the same [`ViewParams`] the two agree to
//! rounding. Read the shader's header for the pipeline; the comments here
//! only note where the code differs in shape (whole-view passes instead of
//! one invocation per pixel).

use super::config::AugmentConfig;
use super::params::{BlurKernel, JitterParams, ViewParams, gaussian};
use super::{check, luma};
use crate::error::Result;

type Rgb = [f32; 3];

/// Both views of every image of a batch of `shape` = `[B, H, W, C]` bytes,
/// as `B x C x H' x W'` f32 arrays (NCHW), with `params[image][view]`.
pub fn views(
    images: &[u8],
    shape: [usize; 4],
    config: &AugmentConfig,
    params: &[[ViewParams; 2]],
) -> Result<[Vec<f32>; 2]> {
    check(images.len(), shape, config, params)?;
    let [b, h, w, c] = shape;
    let (oh, ow) = config.output_size(h, w);
    let (mean, std) = config.normalize.for_channels(c);
    let plane = oh * ow;
    let mut out = [vec![0.0; b * c * plane], vec![0.0; b * c * plane]];
    let mut scratch = Scratch::default();
    for (img, pair) in params.iter().enumerate() {
        let src = Source {
            bytes: &images[img * h * w * c..(img + 1) * h * w * c],
            height: h,
            width: w,
            channels: c,
        };
        for (view, p) in pair.iter().enumerate() {
            let dst = &mut out[view][img * c * plane..(img + 1) * c * plane];
            let finish = Finish {
                params: p,
                mean,
                std,
                plane,
            };
            one_view(&src, (oh, ow), p, &finish, &mut scratch, dst);
        }
    }
    Ok(out)
}

/// One image's bytes, `H x W x C`.
struct Source<'a> {
    bytes: &'a [u8],
    height: usize,
    width: usize,
    channels: usize,
}

impl Source<'_> {
    fn texel(&self, x: usize, y: usize) -> Rgb {
        let base = (y * self.width + x) * self.channels;
        if self.channels == 1 {
            [self.bytes[base] as f32; 3]
        } else {
            [0, 1, 2].map(|k| self.bytes[base + k] as f32)
        }
    }

    /// The shader's `sample`: bilinear, edges replicated, fading to black
    /// over one pixel outside the image.
    fn sample(&self, x: f32, y: f32) -> Rgb {
        let (w, h) = (self.width as f32, self.height as f32);
        let cover = (x + 1.5).clamp(0.0, 1.0)
            * (w + 0.5 - x).clamp(0.0, 1.0)
            * (y + 1.5).clamp(0.0, 1.0)
            * (h + 0.5 - y).clamp(0.0, 1.0);
        if cover == 0.0 {
            return [0.0; 3];
        }
        let (fx, fy) = (x.floor(), y.floor());
        let (ax, ay) = (x - fx, y - fy);
        let (last_x, last_y) = (self.width as i32 - 1, self.height as i32 - 1);
        let x0 = (fx as i32).clamp(0, last_x) as usize;
        let x1 = (fx as i32 + 1).clamp(0, last_x) as usize;
        let y0 = (fy as i32).clamp(0, last_y) as usize;
        let y1 = (fy as i32 + 1).clamp(0, last_y) as usize;
        let (t00, t10) = (self.texel(x0, y0), self.texel(x1, y0));
        let (t01, t11) = (self.texel(x0, y1), self.texel(x1, y1));
        let scale = cover / 255.0;
        [0, 1, 2].map(|k| {
            let top = t00[k] * (1.0 - ax) + t10[k] * ax;
            let bottom = t01[k] * (1.0 - ax) + t11[k] * ax;
            (top * (1.0 - ay) + bottom * ay) * scale
        })
    }
}

fn grey(c: Rgb, channels: usize) -> f32 {
    if channels == 1 {
        c[0]
    } else {
        luma(c[0], c[1], c[2])
    }
}

fn blend(a: Rgb, b: Rgb, ratio: f32) -> Rgb {
    [0, 1, 2].map(|k| (ratio * a[k] + (1.0 - ratio) * b[k]).clamp(0.0, 1.0))
}

/// torchvision's `_rgb2hsv`, hue shift, `_hsv2rgb`.
fn shift_hue(c: Rgb, shift: f32) -> Rgb {
    let maxc = c[0].max(c[1].max(c[2]));
    let minc = c[0].min(c[1].min(c[2]));
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let crd = if eqc { 1.0 } else { cr };
    let rc = (maxc - c[0]) / crd;
    let gc = (maxc - c[1]) / crd;
    let bc = (maxc - c[2]) / crd;
    let mut h = if maxc == c[0] {
        bc - gc
    } else if maxc == c[1] {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    h = h / 6.0 + 1.0;
    h -= h.floor();
    h += shift;
    h -= h.floor();
    let v = maxc;
    let i6 = (h * 6.0).floor();
    let f = h * 6.0 - i6;
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match i6 as u32 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Jitter op `op`: 0 brightness, 1 contrast, 2 saturation, 3 hue.
fn adjust(op: u8, c: Rgb, j: &JitterParams, mean: f32, channels: usize) -> Rgb {
    match op {
        0 if j.brightness != 1.0 => c.map(|x| (j.brightness * x).clamp(0.0, 1.0)),
        1 if j.contrast != 1.0 => blend(c, [mean; 3], j.contrast),
        2 if channels == 3 && j.saturation != 1.0 => blend(c, [grey(c, 3); 3], j.saturation),
        3 if channels == 3 && j.hue != 0.0 => shift_hue(c, j.hue),
        _ => c,
    }
}

/// Solarise, noise and normalisation: the shader's `finish`.
struct Finish<'a> {
    params: &'a ViewParams,
    mean: [f32; 3],
    std: [f32; 3],
    plane: usize,
}

impl Finish<'_> {
    fn apply(&self, i: usize, ch: usize, x: f32) -> f32 {
        let p = self.params;
        let mut y = x;
        if p.solarize && y >= 0.5 {
            y = 1.0 - y;
        }
        if p.noise_std > 0.0 {
            let noise = p.noise_std * gaussian(p.noise_key, (ch * self.plane + i) as u32);
            y = (y + noise).clamp(0.0, 1.0);
        }
        (y - self.mean[ch]) / self.std[ch]
    }
}

/// Buffers reused from view to view.
#[derive(Default)]
struct Scratch {
    pixels: Vec<Rgb>,
    blurred: Vec<Rgb>,
}

fn one_view(
    src: &Source,
    (oh, ow): (usize, usize),
    p: &ViewParams,
    finish: &Finish,
    scratch: &mut Scratch,
    dst: &mut [f32],
) {
    let c = src.channels;
    let j = &p.jitter;
    let n = oh * ow;
    let split = if j.contrast != 1.0 {
        j.order.iter().position(|&op| op == 1).unwrap_or(4)
    } else {
        4
    };
    let [m00, m01, m10, m11, tx, ty] = p.affine;
    let pixels = &mut scratch.pixels;
    pixels.clear();
    let mut sum = 0.0f32;
    for i in 0..n {
        let px = (i % ow) as f32 + 0.5;
        let py = (i / ow) as f32 + 0.5;
        let mut col = src.sample(m00 * px + m01 * py + tx, m10 * px + m11 * py + ty);
        for &op in &j.order[..split] {
            col = adjust(op, col, j, 0.0, c);
        }
        if split < 4 {
            sum += grey(col, c);
        }
        pixels.push(col);
    }
    if split < 4 {
        let mean = sum / n as f32;
        for col in pixels.iter_mut() {
            for &op in &j.order[split..] {
                *col = adjust(op, *col, j, mean, c);
            }
        }
    }
    if c == 3 && p.grayscale {
        for col in pixels.iter_mut() {
            *col = [grey(*col, 3); 3];
        }
    }
    if p.blur_radius > 0 {
        blur(pixels, &mut scratch.blurred, (oh, ow), p);
    }
    for (i, col) in pixels.iter().enumerate() {
        for ch in 0..c {
            dst[ch * n + i] = finish.apply(i, ch, col[ch]);
        }
    }
}

/// Mirror-reflects `i` into `[0, n)` without repeating the edge.
fn mirror(i: i32, n: i32) -> usize {
    let j = i.abs();
    (if j >= n { 2 * n - 2 - j } else { j }) as usize
}

/// Separable Gaussian blur of `pixels` in place (through `tmp`), the
/// shader's `blur_h` then `blur_v`, with the same weight recurrence.
fn blur(pixels: &mut [Rgb], tmp: &mut Vec<Rgb>, (oh, ow): (usize, usize), p: &ViewParams) {
    let r = p.blur_radius as i32;
    let kernel = BlurKernel::new(p.blur_sigma, p.blur_radius);
    let pass = |from: &[Rgb], to: &mut [Rgb], horizontal: bool| {
        for (i, out) in to.iter_mut().enumerate() {
            let (x, y) = ((i % ow) as i32, (i / ow) as i32);
            let at = |k: i32| {
                if horizontal {
                    from[i - x as usize + mirror(x + k, ow as i32)]
                } else {
                    from[mirror(y + k, oh as i32) * ow + x as usize]
                }
            };
            let mut acc = from[i].map(|v| kernel.first * v);
            let (mut weight, mut step) = (kernel.first, kernel.step);
            for k in 1..=r {
                weight *= step;
                step *= kernel.ratio;
                let (a, b) = (at(-k), at(k));
                for ch in 0..3 {
                    acc[ch] += weight * (a[ch] + b[ch]);
                }
            }
            *out = acc;
        }
    };
    tmp.clear();
    tmp.resize(pixels.len(), [0.0; 3]);
    pass(pixels, tmp, true);
    pass(tmp, pixels, false);
}
