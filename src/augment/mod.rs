//! GPU augmentation: two random views of every image of a `u8` batch, as
//! normalised f32 `[B, C, H', W']` tensors, in one to four dispatches.
//!
//! ```no_run
//! use darkmatter::Gpu;
//! use darkmatter::augment::{self, AugmentConfig, Preset, U8Batch};
//! # fn main() -> darkmatter::Result<()> {
//! let gpu = Gpu::new()?;
//! let images = vec![128u8; 8 * 32 * 32 * 3];
//! let batch = U8Batch::upload(&gpu, &images, [8, 32, 32, 3])?;
//! let config = AugmentConfig::preset(Preset::Vicreg);
//! let [a, b] = augment::views(&batch, &config, 0, 0)?;
//! assert_eq!(a.shape(), &[8, 3, 32, 32]);
//! # Ok(())
//! # }
//! ```
//!
//! Each view goes through, in this order (torchvision's, where torchvision
//! has the transform):
//!
//! 1. RandomResizedCrop (area scale range, log-uniform aspect ratio; whole
//!    pixels, ten tries then a centre crop, or one continuous draw: see
//!    [`CropSampling`]), horizontal flip and rotation, folded into
//!    one inverse affine map sampled bilinearly. Sampling reads the source
//!    image directly rather than a cropped copy, and does not antialias when
//!    it shrinks (torchvision's tensor path antialiases by default).
//! 2. ColorJitter at probability p: brightness, contrast, saturation and hue
//!    in a random order per view, as torchvision's `ColorJitter` draws it
//!    (or in that fixed order: [`Jitter::random_order`]).
//!    Saturation and hue leave grey images alone.
//! 3. Greyscale (ITU-R 601-2 luma 0.299 / 0.587 / 0.114).
//! 4. Gaussian blur, separable, reflect padding; sigma drawn in pixels of a
//!    224-pixel view and scaled to the view, radius `ceil(3 sigma)`.
//! 5. Solarisation: pixels `>= 0.5` become `1 - pixel`.
//! 6. Additive Gaussian noise (not clamped: it models sensor noise).
//! 7. Normalisation `(x - mean) / std` per channel.
//!
//! Random parameters are drawn on the host ([`ViewParams::sample`]), keyed
//! by `(seed, step, image, view)`, and uploaded with the batch (see
//! `params.rs` for why); [`cpu::views`] runs the same pipeline on the CPU
//! from the same parameters.

mod config;
pub mod cpu;
pub(crate) mod gpu;
pub mod mask;
mod params;
mod preview;

pub use config::{AugmentConfig, Crop, CropSampling, Jitter, Normalize, Preset, ViewConfig};
pub use gpu::{U8Batch, views, views_at, views_with};
pub use mask::{Corruption, PatchMask, check_mask};
pub use params::{BlurKernel, JitterParams, ViewParams, gaussian, pcg};
pub use preview::{preview_grid, save_png};

use crate::error::{Error, Result};

/// ITU-R 601-2 luma, as PIL and torchvision convert to grey.
pub(crate) fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// The parameters of both views of every image of the batch of training
/// step `step`, for images of `input` = (height, width).
pub fn sample_params(
    config: &AugmentConfig,
    seed: u64,
    step: u64,
    len: usize,
    input: (usize, usize),
) -> Vec<[ViewParams; 2]> {
    sample_params_at(config, seed, step, 0, len, input)
}

/// [`sample_params`] for images `first..first + len` of the step's global
/// batch (a rank's shard of it).
pub fn sample_params_at(
    config: &AugmentConfig,
    seed: u64,
    step: u64,
    first: usize,
    len: usize,
    input: (usize, usize),
) -> Vec<[ViewParams; 2]> {
    let output = config.output_size(input.0, input.1);
    (first..first + len)
        .map(|image| {
            [0, 1].map(|view| {
                let c = &config.views[view];
                ViewParams::sample(c, seed, step, image, view, input, output)
            })
        })
        .collect()
}

/// Checks a batch of `shape` = `[B, H, W, C]` holding `bytes` bytes, the
/// config, and one pair of parameters per image that the kernels can apply
/// without reading out of bounds.
pub(crate) fn check(
    bytes: usize,
    shape: [usize; 4],
    config: &AugmentConfig,
    params: &[[ViewParams; 2]],
) -> Result<()> {
    config.validate()?;
    let [b, h, w, c] = shape;
    let bad = |reason: String| Err(Error::invalid("augment", reason));
    if h == 0 || w == 0 || !(c == 1 || c == 3) {
        return bad(format!(
            "images of {h}x{w}x{c}: need a non-empty size and 1 or 3 channels"
        ));
    }
    let want = [b, h, w, c]
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d));
    if want != Some(bytes) {
        return bad(format!("a batch of shape {shape:?} but {bytes} bytes"));
    }
    if params.len() != b {
        return bad(format!("{} parameter pairs for {b} images", params.len()));
    }
    let (oh, ow) = config.output_size(h, w);
    let max_radius = oh.min(ow) as u32 - 1;
    for (i, p) in params.iter().flatten().enumerate() {
        let blur_ok = p.blur_radius == 0 || (p.blur_radius <= max_radius && p.blur_sigma > 0.0);
        let j = &p.jitter;
        let scalars = [
            j.brightness,
            j.contrast,
            j.saturation,
            j.hue,
            p.blur_sigma,
            p.noise_std,
        ];
        let finite = p.affine.iter().chain(&scalars).all(|v| v.is_finite());
        let mut order = j.order;
        order.sort_unstable();
        if !blur_ok || !finite || order != [0, 1, 2, 3] {
            return bad(format!(
                "parameters of image {} view {} are out of range: {p:?}",
                i / 2,
                i % 2
            ));
        }
    }
    Ok(())
}
