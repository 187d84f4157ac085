//! The random parameters of one view, drawn on the host.
//!
//! Every view's parameters come from streams keyed by `(seed, step, image,
//! view, transform)`, so a batch can be replayed exactly and turning one
//! transform on or off does not change what the others draw. They are drawn
//! here rather than in WGSL because RandomResizedCrop's rejection loop is
//! per view, not per pixel, and because the CPU reference then consumes the
//! very same numbers: tests compare formulas, not two copies of a generator.
//! A view costs a few dozen floats, far less than its pixels.
//!
//! The one per-pixel random quantity, the additive noise, is a hash of a
//! per-view key and the pixel's index ([`gaussian`]), written identically
//! here and in `shaders/augment/augment.wgsl`.

use std::f32::consts::TAU;

use super::config::{Crop, CropSampling, ViewConfig};
use crate::data::rng::{CounterRng, permutation};

/// Keeps augmentation streams apart from every other keyed stream.
const STREAM_TAG: u64 = 0x4155_474d_454e_5421; // "AUGMENT!"

/// What the transforms draw from, one stream each.
#[derive(Clone, Copy)]
enum Draw {
    Crop = 1,
    Flip,
    Rotation,
    Jitter,
    Grayscale,
    Blur,
    Solarize,
    Noise,
}

/// The colour jitter of one view. A factor equal to the identity (1, or 0
/// for hue) means that adjustment is off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JitterParams {
    /// Multiplies every pixel.
    pub brightness: f32,
    /// Blends with the mean grey level: `c x + (1 - c) mean`.
    pub contrast: f32,
    /// Blends with the pixel's grey level.
    pub saturation: f32,
    /// Shift of the HSV hue, in turns.
    pub hue: f32,
    /// The order of the four adjustments (0 brightness, 1 contrast, 2
    /// saturation, 3 hue): a random permutation as in torchvision, or that
    /// order where [`Jitter::random_order`](super::Jitter) is off.
    pub order: [u8; 4],
}

impl JitterParams {
    /// Every adjustment off.
    pub const IDENTITY: JitterParams = JitterParams {
        brightness: 1.0,
        contrast: 1.0,
        saturation: 1.0,
        hue: 0.0,
        order: [0, 1, 2, 3],
    };
}

/// Everything random about one view, plus the affine map derived from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewParams {
    /// The crop box in source pixels: left, top, width, height (whole
    /// pixels unless the crop samples continuously).
    pub crop: [f32; 4],
    pub flip: bool,
    /// Rotation in degrees; positive turns the content counter-clockwise.
    pub rotation: f32,
    pub jitter: JitterParams,
    pub grayscale: bool,
    /// Blur sigma in output pixels (0: no blur).
    pub blur_sigma: f32,
    /// Blur radius in output pixels: `ceil(3 sigma)`, below the view's
    /// shorter side (0: no blur).
    pub blur_radius: u32,
    pub solarize: bool,
    /// Noise standard deviation in `[0, 1]` pixel units (0: no noise).
    pub noise_std: f32,
    /// Key of the view's per-pixel noise.
    pub noise_key: u32,
    /// Output pixel centre `(px, py)` -> source pixel-centre coordinates
    /// `(a[0] px + a[1] py + a[4], a[2] px + a[3] py + a[5])`: crop, flip and
    /// rotation in one inverse map.
    pub affine: [f32; 6],
}

impl ViewParams {
    /// Draws the parameters of `view` (0 or 1) of image `image` of the batch
    /// of training step `step`, for inputs of `input` (height, width) and
    /// views of `output` (height, width).
    pub fn sample(
        config: &ViewConfig,
        seed: u64,
        step: u64,
        image: usize,
        view: usize,
        input: (usize, usize),
        output: (usize, usize),
    ) -> ViewParams {
        let rng = |draw: Draw| {
            CounterRng::keyed(&[
                STREAM_TAG,
                seed,
                step,
                image as u64,
                view as u64,
                draw as u64,
            ])
        };
        let chance = |draw: Draw, p: f32| rng(draw).next_f32() < p;

        let crop = match &config.crop {
            Some(c) => {
                let r = &mut rng(Draw::Crop);
                match c.sampling {
                    CropSampling::WholePixels => random_resized_crop(c, input, r).map(|v| v as f32),
                    CropSampling::Continuous => continuous_crop(c, input, r),
                }
            }
            None => [0.0, 0.0, input.1 as f32, input.0 as f32],
        };
        let flip = chance(Draw::Flip, config.flip);
        let rotation = rng(Draw::Rotation).range(-config.rotation, config.rotation);

        let j = &config.jitter;
        let jitter = {
            let mut r = rng(Draw::Jitter);
            if r.next_f32() < j.p {
                // Drawn either way, so that the factors do not depend on it.
                let drawn = permutation(4, &mut r);
                let order = if j.random_order {
                    drawn
                } else {
                    vec![0, 1, 2, 3]
                };
                let mut factor = |x: f32| r.range((1.0 - x).max(0.0), 1.0 + x);
                JitterParams {
                    brightness: factor(j.brightness),
                    contrast: factor(j.contrast),
                    saturation: factor(j.saturation),
                    hue: r.range(-j.hue, j.hue),
                    order: [0, 1, 2, 3].map(|k| order[k] as u8),
                }
            } else {
                JitterParams::IDENTITY
            }
        };
        let grayscale = chance(Draw::Grayscale, config.grayscale);

        let (blur_sigma, blur_radius) = {
            let mut r = rng(Draw::Blur);
            if r.next_f32() < config.blur {
                let shorter = output.0.min(output.1);
                let (lo, hi) = config.blur_sigma;
                let sigma = r.range(lo, hi) * shorter as f32 / 224.0;
                let radius = ((3.0 * sigma).ceil() as u32).min((shorter as u32).saturating_sub(1));
                if radius > 0 {
                    (sigma, radius)
                } else {
                    (0.0, 0)
                }
            } else {
                (0.0, 0)
            }
        };
        let solarize = chance(Draw::Solarize, config.solarize);
        let (noise_std, noise_key) = {
            let mut r = rng(Draw::Noise);
            let on = r.next_f32() < config.noise && config.noise_std > 0.0;
            let key = r.next_u64() as u32;
            if on {
                (config.noise_std, key)
            } else {
                (0.0, 0)
            }
        };
        ViewParams {
            crop,
            flip,
            rotation,
            jitter,
            grayscale,
            blur_sigma,
            blur_radius,
            solarize,
            noise_std,
            noise_key,
            affine: affine(crop, flip, rotation, output),
        }
    }
}

/// torchvision's `RandomResizedCrop.get_params`: ten tries at a box of
/// random area and log-uniform aspect ratio, then a centre crop of the
/// clamped aspect ratio. Returns left, top, width, height.
fn random_resized_crop(c: &Crop, (height, width): (usize, usize), r: &mut CounterRng) -> [u32; 4] {
    let area = (height * width) as f64;
    let (log_lo, log_hi) = (c.ratio.0.ln(), c.ratio.1.ln());
    for _ in 0..10 {
        let target = area * r.range(c.scale.0, c.scale.1) as f64;
        let aspect = r.range(log_lo, log_hi).exp() as f64;
        // Python's round() rounds half to even.
        let w = (target * aspect).sqrt().round_ties_even() as usize;
        let h = (target / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = r.below((height - h + 1) as u64) as u32;
            let left = r.below((width - w + 1) as u64) as u32;
            return [left, top, w as u32, h as u32];
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < c.ratio.0 as f64 {
        let h = (width as f64 / c.ratio.0 as f64).round_ties_even() as usize;
        (width, h.clamp(1, height))
    } else if in_ratio > c.ratio.1 as f64 {
        let w = (height as f64 * c.ratio.1 as f64).round_ties_even() as usize;
        (w.clamp(1, width), height)
    } else {
        (width, height)
    };
    [
        ((width - w) / 2) as u32,
        ((height - h) / 2) as u32,
        w as u32,
        h as u32,
    ]
}

/// [`CropSampling::Continuous`]: one area and one log-uniform aspect ratio,
/// each side clamped to the image's, the box placed uniformly. Returns
/// left, top, width, height in (fractional) pixels.
fn continuous_crop(c: &Crop, (height, width): (usize, usize), r: &mut CounterRng) -> [f32; 4] {
    let (height, width) = (height as f32, width as f32);
    let target = height * width * r.range(c.scale.0, c.scale.1);
    let aspect = r.range(c.ratio.0.ln(), c.ratio.1.ln()).exp();
    let w = (target * aspect).sqrt().min(width);
    let h = (target / aspect).sqrt().min(height);
    let left = r.range(0.0, width - w);
    let top = r.range(0.0, height - h);
    [left, top, w, h]
}

/// The inverse map of crop -> resize -> flip -> rotate: from an output
/// pixel centre to source pixel-centre coordinates. Rotation and flip act
/// about the view's centre, in output pixels, as torchvision's `rotate` and
/// `hflip` do on the resized crop.
fn affine(crop: [f32; 4], flip: bool, degrees: f32, (out_h, out_w): (usize, usize)) -> [f32; 6] {
    let [left, top, w, h] = crop;
    let (sx, sy) = (w / out_w as f32, h / out_h as f32);
    let fx = if flip { -sx } else { sx };
    let (sin, cos) = (degrees * (TAU / 360.0)).sin_cos();
    // Undo a counter-clockwise turn (y points down): (x, y) -> (x cos - y sin,
    // x sin + y cos); then undo the flip and the resize.
    let m = [fx * cos, -fx * sin, sy * sin, sy * cos];
    let (cx, cy) = (out_w as f32 / 2.0, out_h as f32 / 2.0);
    // Crop centre in pixel-centre coordinates (pixel k spans [k, k + 1)).
    let (ox, oy) = (left + w / 2.0 - 0.5, top + h / 2.0 - 0.5);
    [
        m[0],
        m[1],
        m[2],
        m[3],
        ox - (m[0] * cx + m[1] * cy),
        oy - (m[2] * cx + m[3] * cy),
    ]
}

/// A blur's normalised Gaussian weights as a recurrence that both
/// implementations run in f32: `w(0) = first`, `w(k + 1) = w(k) b(k)`,
/// `b(0) = step`, `b(k + 1) = b(k) ratio`, which makes
/// `w(k) = first exp(-k^2 / (2 sigma^2))` from multiplications alone. On CPU
/// drivers a per-tap exponential or a per-tap table load costs more than
/// the tap itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlurKernel {
    pub first: f32,
    pub step: f32,
    pub ratio: f32,
}

impl BlurKernel {
    /// The kernel of `sigma` truncated at `radius` (the identity for radius 0).
    pub fn new(sigma: f32, radius: u32) -> BlurKernel {
        if radius == 0 || sigma <= 0.0 {
            return BlurKernel {
                first: 1.0,
                step: 0.0,
                ratio: 0.0,
            };
        }
        let a = 1.0 / (2.0 * f64::from(sigma).powi(2));
        let step = (-a).exp() as f32;
        let ratio = (-2.0 * a).exp() as f32;
        // The normalisation, from the recurrence the kernels run.
        let (mut w, mut b, mut total) = (1.0f32, step, 1.0f32);
        for _ in 0..radius {
            w *= b;
            b *= ratio;
            total += 2.0 * w;
        }
        BlurKernel {
            first: 1.0 / total,
            step,
            ratio,
        }
    }
}

/// PCG hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020),
/// as `pcg` in the shader.
pub fn pcg(x: u32) -> u32 {
    let state = x.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// A standard normal draw for element `index` of a view with noise key
/// `key` (Box-Muller on two hashed uniforms), as `gaussian` in the shader.
pub fn gaussian(key: u32, index: u32) -> f32 {
    let h1 = pcg(key.wrapping_add(pcg(index.wrapping_mul(2))));
    let h2 = pcg(key.wrapping_add(pcg(index.wrapping_mul(2).wrapping_add(1))));
    let u1 = ((h1 >> 8) as f32 + 1.0) * (1.0 / 16_777_216.0);
    let u2 = (h2 >> 8) as f32 * (1.0 / 16_777_216.0);
    (-2.0 * u1.ln()).sqrt() * (6.283_185_5 * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_of_the_whole_image_is_the_resize() {
        // 8 wide -> 4 wide: output centre 0.5 reads source centre 1.5.
        let a = affine([0.0, 0.0, 8.0, 6.0], false, 0.0, (3, 4));
        assert_eq!(a, [2.0, 0.0, 0.0, 2.0, -0.5, -0.5]);
        let f = affine([0.0, 0.0, 8.0, 6.0], true, 0.0, (3, 4));
        // Flipped, output pixel 0 covers source pixels 6 and 7: centre 6.5.
        assert_eq!(f[0] * 0.5 + f[4], 6.5);
    }

    #[test]
    fn blur_recurrence_gives_normalised_gaussian_weights() {
        let (sigma, radius) = (1.3f32, 4);
        let k = BlurKernel::new(sigma, radius);
        let (mut w, mut b, mut total) = (k.first, k.step, k.first);
        for d in 1..=radius {
            w *= b;
            b *= k.ratio;
            total += 2.0 * w;
            let want = k.first * (-((d * d) as f32) / (2.0 * sigma * sigma)).exp();
            assert!((w - want).abs() < 1e-6, "offset {d}: {w} vs {want}");
        }
        assert!((total - 1.0).abs() < 1e-6, "sum {total}");
        assert_eq!(BlurKernel::new(1.0, 0).first, 1.0);
    }

    #[test]
    fn centre_crop_fallback_clamps_the_ratio() {
        let c = Crop {
            scale: (2.0, 2.0), // impossible: every try fails
            ratio: (1.0, 1.0),
            sampling: CropSampling::WholePixels,
        };
        let mut r = CounterRng::keyed(&[1]);
        assert_eq!(random_resized_crop(&c, (10, 20), &mut r), [5, 0, 10, 10]);
        assert_eq!(random_resized_crop(&c, (20, 10), &mut r), [0, 5, 10, 10]);
    }
}
