//! How well a reconstruction method fills in: on a fixed set of test
//! images, with a fixed mask (or corruption), the PSNR and MSE of its
//! reconstruction in pixel units ([0, 1]) — over the masked patches for
//! masked modelling, over the whole image for denoising — next to
//! baselines computed the same way: filling the masked pixels with the
//! mean of the visible ones, and a classical inpainting (iterated
//! diffusion of the visible pixels into the holes); for denoising, the
//! corrupted input itself. And the picture: rows of original | masked or
//! corrupted input | reconstruction.
//!
//! A norm-pix reconstruction predicts each patch normalised by its own
//! mean and std; it is brought back to pixels with the true patch's
//! statistics, as MAE's pictures do. That hands it two numbers per patch
//! the baselines do not get, so compare methods on `--norm-pix off` runs
//! where the difference matters.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::augment::{self, AugmentConfig, Normalize, PatchMask, Preset, U8Batch};
use crate::autograd::Tape;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{BinaryOp, elementwise as ew};
use crate::objectives::{InputSpec, Objective, StepInput};

/// Test images the measurement uses (the first of the test split).
pub const IMAGES: usize = 256;
/// The mask and corruption of the measurement, the same every epoch.
const SEED: u64 = 0x0dec0de;

/// The reconstruction's quality and its baselines, in dB and MSE.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub recon_psnr: f32,
    pub recon_mse: f32,
    /// Masked modelling: the masked pixels filled with the visible mean.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fill_mean_psnr: Option<f32>,
    /// Masked modelling: iterated diffusion from the visible pixels.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inpaint_psnr: Option<f32>,
    /// Denoising: the corrupted input against the clean image.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub corrupted_psnr: Option<f32>,
}

fn psnr(mse: f64) -> f32 {
    (10.0 * (1.0 / mse.max(1e-12)).log10()) as f32
}

/// The test images, their input as the objective sees it, and the
/// reconstruction, all `[n, c, h, w]` in pixel units; plus the mask.
pub struct Sample {
    pub clean: Vec<f32>,
    pub input: Vec<f32>,
    pub output: Vec<f32>,
    pub mask: Option<PatchMask>,
    pub shape: [usize; 4],
}

/// Runs the objective's reconstruction on the first `count` images of
/// `data` (`norm_pix`: it predicts normalised patches); `None` for an
/// objective that does not reconstruct.
pub fn sample(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    spec: InputSpec,
    norm_pix: bool,
    data: &Arc<dyn Dataset>,
    normalize: Normalize,
    count: usize,
) -> Result<Option<Sample>> {
    let n = count.min(data.len());
    if n == 0 {
        return Err(Error::invalid("reconstruction", "no test images"));
    }
    let (h, w, c) = (data.height(), data.width(), data.channels());
    let images: Vec<u8> = (0..n).flat_map(|i| data.image(i)).collect();
    let batch = U8Batch::upload(gpu, &images, [n, h, w, c])?;
    let mut config = AugmentConfig::preset(Preset::None);
    config.normalize = normalize;
    let [view, _] = augment::views(&batch, &config, 0, 0)?;
    let input = match spec {
        InputSpec::Masked { patch, ratio } | InputSpec::ViewsMasked { patch, ratio } => StepInput {
            views: vec![view.clone(), view.clone()],
            mask: Some(PatchMask::draw(SEED, 0, n, h, w, patch, ratio)?),
            corrupted: None,
            frames: Vec::new(),
        },
        InputSpec::Corrupted(corruption) => {
            let (scale, shift) = corruption.draw(gpu, [n, c, h, w], &normalize, SEED, 0, 0)?;
            let scaled = ew::binary(&view, &scale, BinaryOp::Mul)?;
            let corrupted = ew::binary(&scaled, &shift, BinaryOp::Add)?;
            StepInput {
                views: vec![view.clone()],
                mask: None,
                corrupted: Some(corrupted),
                frames: Vec::new(),
            }
        }
        InputSpec::Views(_) | InputSpec::Clip { .. } => return Ok(None),
    };
    let mut tape = Tape::no_grad(gpu);
    let Some(y) = objective.reconstruct(&mut tape, &input)? else {
        return Ok(None);
    };
    let (mean, std) = normalize.for_channels(c);
    let pixels = |v: Vec<f32>| -> Vec<f32> {
        v.iter()
            .enumerate()
            .map(|(i, x)| x * std[(i / (h * w)) % c] + mean[(i / (h * w)) % c])
            .collect()
    };
    let clean = pixels(view.to_vec()?);
    let mut output = tape.value(y)?.to_vec()?;
    let seen = match (&input.corrupted, &input.mask) {
        (Some(t), _) => pixels(t.to_vec()?),
        (None, Some(m)) => {
            let keep = m.keep(gpu, h, w)?.to_vec()?;
            clean
                .iter()
                .enumerate()
                .map(|(i, v)| v * keep[(i / (c * h * w)) * h * w + i % (h * w)])
                .collect()
        }
        (None, None) => clean.clone(),
    };
    if let (Some(m), true) = (&input.mask, norm_pix) {
        denormalize_patches(&mut output, &view.to_vec()?, m, [n, c, h, w]);
    }
    Ok(Some(Sample {
        clean,
        input: seen,
        output: pixels(output),
        mask: input.mask,
        shape: [n, c, h, w],
    }))
}

/// Brings norm-pix predictions back to the target's units: each patch times
/// the true patch's std plus its mean (unbiased std + 1e-6, as the loss).
fn denormalize_patches(out: &mut [f32], target: &[f32], m: &PatchMask, [n, c, h, w]: [usize; 4]) {
    let (gh, gw) = m.grid();
    let p = m.patch;
    for i in 0..n {
        for py in 0..gh {
            for px in 0..gw {
                let idx: Vec<usize> = (0..c)
                    .flat_map(|ch| {
                        (0..p).flat_map(move |y| {
                            (0..p).map(move |x| ((i * c + ch) * h + py * p + y) * w + px * p + x)
                        })
                    })
                    .collect();
                let k = idx.len() as f32;
                let mean = idx.iter().map(|&j| target[j]).sum::<f32>() / k;
                let var = idx.iter().map(|&j| (target[j] - mean).powi(2)).sum::<f32>()
                    / (k - 1.0).max(1.0);
                let std = (var + 1e-6).sqrt();
                for &j in &idx {
                    out[j] = out[j] * std + mean;
                }
            }
        }
    }
}

/// Whether element `i` of a `[n, c, h, w]` batch is under the mask.
fn masked_at(m: &PatchMask, [_, c, h, w]: [usize; 4], i: usize) -> bool {
    let (gh, gw) = m.grid();
    let (n, y, x) = (i / (c * h * w), (i / w) % h, i % w);
    m.masked[(n * gh + y / m.patch) * gw + x / m.patch]
}

/// Mean squared error of `a` against `b` over the elements `pick` selects.
fn mse(a: &[f32], b: &[f32], pick: impl Fn(usize) -> bool) -> f64 {
    let (mut s, mut k) = (0.0f64, 0usize);
    for i in 0..a.len() {
        if pick(i) {
            s += (a[i].clamp(0.0, 1.0) as f64 - b[i] as f64).powi(2);
            k += 1;
        }
    }
    s / k.max(1) as f64
}

/// The baselines' fills of the masked pixels: each image's visible mean
/// per channel, and iterated diffusion (Jacobi averaging of the four
/// neighbours, visible pixels fixed, started from that mean).
fn baselines(s: &Sample, m: &PatchMask) -> (Vec<f32>, Vec<f32>) {
    let [n, c, h, w] = s.shape;
    let mut mean_fill = s.clean.clone();
    for i in 0..n {
        for ch in 0..c {
            let plane = (i * c + ch) * h * w;
            let visible: Vec<f32> = (0..h * w)
                .filter(|&q| !masked_at(m, s.shape, plane + q))
                .map(|q| s.clean[plane + q])
                .collect();
            let mean = visible.iter().sum::<f32>() / visible.len().max(1) as f32;
            for q in 0..h * w {
                if masked_at(m, s.shape, plane + q) {
                    mean_fill[plane + q] = mean;
                }
            }
        }
    }
    let mut diffused = mean_fill.clone();
    for _ in 0..200 {
        let prev = diffused.clone();
        for i in 0..n * c {
            let plane = i * h * w;
            for y in 0..h {
                for x in 0..w {
                    let at = plane + y * w + x;
                    if !masked_at(m, s.shape, at) {
                        continue;
                    }
                    let mut sum = 0.0;
                    let mut k = 0.0;
                    for (dy, dx) in [(-1i32, 0i32), (1, 0), (0, -1), (0, 1)] {
                        let (yy, xx) = (y as i32 + dy, x as i32 + dx);
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                            sum += prev[plane + yy as usize * w + xx as usize];
                            k += 1.0;
                        }
                    }
                    diffused[at] = sum / k;
                }
            }
        }
    }
    (mean_fill, diffused)
}

/// The reconstruction quality of `objective` on the first test images, or
/// `None` for an objective that does not reconstruct.
pub fn measure(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    spec: InputSpec,
    norm_pix: bool,
    data: &Arc<dyn Dataset>,
    normalize: Normalize,
) -> Result<Option<(Quality, Sample)>> {
    let Some(s) = sample(gpu, objective, spec, norm_pix, data, normalize, IMAGES)? else {
        return Ok(None);
    };
    let q = match &s.mask {
        Some(m) => {
            let under = |i: usize| masked_at(m, s.shape, i);
            let (mean_fill, diffused) = baselines(&s, m);
            let e = mse(&s.output, &s.clean, under);
            Quality {
                recon_psnr: psnr(e),
                recon_mse: e as f32,
                fill_mean_psnr: Some(psnr(mse(&mean_fill, &s.clean, under))),
                inpaint_psnr: Some(psnr(mse(&diffused, &s.clean, under))),
                corrupted_psnr: None,
            }
        }
        None => {
            let e = mse(&s.output, &s.clean, |_| true);
            Quality {
                recon_psnr: psnr(e),
                recon_mse: e as f32,
                fill_mean_psnr: None,
                inpaint_psnr: None,
                corrupted_psnr: Some(psnr(mse(&s.input, &s.clean, |_| true))),
            }
        }
    };
    Ok(Some((q, s)))
}

/// Rows of original | masked or corrupted input | reconstruction for the
/// first `rows` images of a sample, zoomed `zoom` times. For masked
/// modelling the reconstruction column shows the visible patches as they
/// were and the masked ones as filled in (the loss trains only those).
pub fn picture(s: &Sample, rows: usize, zoom: usize) -> image::RgbImage {
    let [n, c, h, w] = s.shape;
    let rows = rows.min(n);
    let (cell_h, cell_w) = (h + 1, w + 1);
    let (gh, gw) = (rows * cell_h + 1, 3 * cell_w + 1);
    image::RgbImage::from_fn((gw * zoom) as u32, (gh * zoom) as u32, |x, y| {
        let (x, y) = (x as usize / zoom, y as usize / zoom);
        let (row, col) = (y / cell_h, x / cell_w);
        let (py, px) = (y % cell_h, x % cell_w);
        if y == 0 || x == 0 || py == 0 || px == 0 || row >= rows || col >= 3 {
            return image::Rgb([48, 48, 48]);
        }
        let (py, px) = (py - 1, px - 1);
        let masked = |i: usize| s.mask.as_ref().is_some_and(|m| masked_at(m, s.shape, i));
        let src = match col {
            0 => &s.clean,
            1 => &s.input,
            _ if s.mask.is_some() && !masked(((row * c) * h + py) * w + px) => &s.clean,
            _ => &s.output,
        };
        let value = |k: usize| {
            let i = ((row * c + k.min(c - 1)) * h + py) * w + px;
            (src[i].clamp(0.0, 1.0) * 255.0).round() as u8
        };
        // Masked patches of the input column are shown in dark red.
        if col == 1
            && let Some(m) = &s.mask
            && masked_at(m, s.shape, (row * c * h + py) * w + px)
        {
            return image::Rgb([96, 0, 0]);
        }
        image::Rgb([0, 1, 2].map(value))
    })
}
