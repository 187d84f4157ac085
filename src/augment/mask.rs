//! Corruptions for the reconstruction methods, drawn on the host from
//! keyed streams like the augmentation's parameters, so a batch replays
//! exactly: patch masks for masked image modelling (a fixed number of
//! patches per image, `(seed, step, image)`-keyed) and pixel corruptions
//! for denoising.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Normalize;
use crate::data::rng::CounterRng;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// Keeps mask streams apart from every other keyed stream.
const MASK_TAG: u64 = 0x4d41_534b_5041_5443; // "MASKPATC"
const NOISE_TAG: u64 = 0x4e4f_4953_4550_4958; // "NOISEPIX"

/// Which patches of each image of a batch are masked.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchMask {
    pub n: usize,
    pub height: usize,
    pub width: usize,
    /// The side of a square patch, in pixels.
    pub patch: usize,
    /// Per image, row-major over the `height / patch` x `width / patch`
    /// grid: true where masked.
    pub masked: Vec<bool>,
}

/// Checks a patch size and a mask ratio against images of `height` x
/// `width`, naming the flag that set each.
pub fn check_mask(height: usize, width: usize, patch: usize, ratio: f32) -> Result<()> {
    if patch == 0 || !height.is_multiple_of(patch) || !width.is_multiple_of(patch) {
        return Err(Error::invalid(
            "train",
            format!("--patch {patch} does not divide the {height}x{width} images"),
        ));
    }
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(Error::invalid(
            "train",
            format!("--mask-ratio must be in (0, 1), got {ratio}"),
        ));
    }
    if (height / patch) * (width / patch) < 2 {
        return Err(Error::invalid(
            "train",
            format!(
                "--patch {patch} leaves a single patch of the {height}x{width} images: nothing to fill in from"
            ),
        ));
    }
    Ok(())
}

impl PatchMask {
    /// `round(ratio * patches)` patches of each of `n` images (at least one,
    /// and one short of all), chosen uniformly from the stream keyed by
    /// `(seed, step, image)`.
    pub fn draw(
        seed: u64,
        step: u64,
        n: usize,
        height: usize,
        width: usize,
        patch: usize,
        ratio: f32,
    ) -> Result<PatchMask> {
        PatchMask::draw_at(seed, step, 0, n, height, width, patch, ratio)
    }

    /// [`PatchMask::draw`] for images `first..first + n` of the step's
    /// global batch (a rank's shard of it).
    #[allow(clippy::too_many_arguments)]
    pub fn draw_at(
        seed: u64,
        step: u64,
        first: usize,
        n: usize,
        height: usize,
        width: usize,
        patch: usize,
        ratio: f32,
    ) -> Result<PatchMask> {
        check_mask(height, width, patch, ratio)?;
        let per = (height / patch) * (width / patch);
        let count = ((ratio as f64 * per as f64).round() as usize).clamp(1, per - 1);
        let mut masked = vec![false; n * per];
        for i in 0..n {
            let mut rng = CounterRng::keyed(&[MASK_TAG, seed, step, (first + i) as u64]);
            let order = crate::data::rng::permutation(per, &mut rng);
            for &q in &order[..count] {
                masked[i * per + q] = true;
            }
        }
        Ok(PatchMask {
            n,
            height,
            width,
            patch,
            masked,
        })
    }

    /// Masked patches in the whole batch.
    pub fn count(&self) -> usize {
        self.masked.iter().filter(|&&m| m).count()
    }

    /// The grid's rows and columns.
    pub fn grid(&self) -> (usize, usize) {
        (self.height / self.patch, self.width / self.patch)
    }

    /// `[n, rows, columns]`: 1 where masked.
    pub fn patches(&self, gpu: &Gpu) -> Result<Tensor> {
        let (gh, gw) = self.grid();
        let v: Vec<f32> = self.masked.iter().map(|&m| m as u32 as f32).collect();
        Tensor::from_slice(gpu, &v, &[self.n, gh, gw])
    }

    /// Whether pixel `(y, x)` of image `i` at a resolution of `h` x `w`
    /// sees only visible patches (a pixel covering several patches, below
    /// the patch resolution, must see no masked one).
    fn visible(&self, i: usize, y: usize, x: usize, h: usize, w: usize) -> bool {
        let (gh, gw) = self.grid();
        let (y0, y1) = (y * self.height / h, ((y + 1) * self.height).div_ceil(h));
        let (x0, x1) = (x * self.width / w, ((x + 1) * self.width).div_ceil(w));
        (y0 / self.patch..=(y1 - 1) / self.patch).all(|py| {
            (x0 / self.patch..=(x1 - 1) / self.patch)
                .all(|px| py >= gh || px >= gw || !self.masked[(i * gh + py) * gw + px])
        })
    }

    /// `[n, 1, h, w]`: 1 where a pixel at that resolution (the input's, or
    /// a feature map's) sees only visible patches, 0 elsewhere.
    pub fn keep(&self, gpu: &Gpu, h: usize, w: usize) -> Result<Tensor> {
        if h == 0 || w == 0 || !self.height.is_multiple_of(h) || !self.width.is_multiple_of(w) {
            return Err(Error::invalid(
                "mask",
                format!(
                    "a {h}x{w} map is not a reduction of the {}x{} images",
                    self.height, self.width
                ),
            ));
        }
        let v: Vec<f32> = (0..self.n * h * w)
            .map(|k| {
                let (i, y, x) = (k / (h * w), (k / w) % h, k % w);
                self.visible(i, y, x, h, w) as u32 as f32
            })
            .collect();
        Tensor::from_slice(gpu, &v, &[self.n, 1, h, w])
    }
}

/// A pixel corruption for denoising, as `--corruption` names it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Corruption {
    /// Additive Gaussian noise of this std, in pixel units ([0, 1]).
    Gaussian(f32),
    /// Each pixel (all channels) set to black with this probability.
    Mask(f32),
    /// Each pixel set to black or white, equally likely, with this
    /// probability.
    SaltPepper(f32),
}

impl FromStr for Corruption {
    type Err = Error;

    fn from_str(s: &str) -> Result<Corruption> {
        let bad = |why: &str| {
            Error::invalid(
                "train",
                format!(
                    "--corruption '{s}': {why} (expected gaussian:STD, mask:P or salt-pepper:P)"
                ),
            )
        };
        let (kind, amount) = s.split_once(':').ok_or_else(|| bad("no amount"))?;
        let amount: f32 = amount
            .trim()
            .parse()
            .map_err(|_| bad("the amount is not a number"))?;
        let c = match kind.trim() {
            "gaussian" => Corruption::Gaussian(amount),
            "mask" => Corruption::Mask(amount),
            "salt-pepper" => Corruption::SaltPepper(amount),
            _ => return Err(bad("unknown kind")),
        };
        let ok = match c {
            Corruption::Gaussian(s) => s.is_finite() && s > 0.0,
            Corruption::Mask(p) | Corruption::SaltPepper(p) => p > 0.0 && p < 1.0,
        };
        if !ok {
            return Err(bad("a std must be positive, a probability in (0, 1)"));
        }
        Ok(c)
    }
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corruption::Gaussian(s) => write!(f, "gaussian:{s}"),
            Corruption::Mask(p) => write!(f, "mask:{p}"),
            Corruption::SaltPepper(p) => write!(f, "salt-pepper:{p}"),
        }
    }
}

impl TryFrom<String> for Corruption {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Corruption, String> {
        s.parse().map_err(|e: Error| e.to_string())
    }
}

impl From<Corruption> for String {
    fn from(c: Corruption) -> String {
        c.to_string()
    }
}

impl Corruption {
    /// `scale` and `shift` `[n, c, h, w]` such that `view * scale + shift`
    /// is the corrupted view of a normalised batch (`normalize` undoes and
    /// redoes the pixel units), drawn from the stream keyed by `(seed,
    /// step, image)`, the images numbered from `first` (where a rank's
    /// shard starts in the global batch).
    #[allow(clippy::too_many_arguments)]
    pub fn draw(
        &self,
        gpu: &Gpu,
        shape: [usize; 4],
        normalize: &Normalize,
        seed: u64,
        step: u64,
        first: usize,
    ) -> Result<(Tensor, Tensor)> {
        let [n, c, h, w] = shape;
        let mut scale = vec![1.0f32; n * c * h * w];
        let mut shift = vec![0.0f32; n * c * h * w];
        for i in 0..n {
            let mut rng = CounterRng::keyed(&[NOISE_TAG, seed, step, (first + i) as u64]);
            for p in 0..h * w {
                // One draw per pixel: masking and salt-and-pepper hit every channel.
                let (u, v) = (rng.next_f32(), rng.next_f32());
                for ch in 0..c {
                    let k = ((i * c + ch) * h * w) + p;
                    let (mean, std) = (normalize.mean[ch.min(2)], normalize.std[ch.min(2)]);
                    let set = |value: f32| (value - mean) / std;
                    match *self {
                        Corruption::Gaussian(s) => {
                            // Box-Muller from this pixel's and channel's draws.
                            let (a, b) = if ch == 0 {
                                (u, v)
                            } else {
                                (rng.next_f32(), rng.next_f32())
                            };
                            let z = (-2.0 * a.max(1e-7).ln()).sqrt()
                                * (std::f32::consts::TAU * b).cos();
                            shift[k] = s * z / std;
                        }
                        Corruption::Mask(q) if u < q => {
                            scale[k] = 0.0;
                            shift[k] = set(0.0);
                        }
                        Corruption::SaltPepper(q) if u < q => {
                            scale[k] = 0.0;
                            shift[k] = set(if v < 0.5 { 0.0 } else { 1.0 });
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok((
            Tensor::from_slice(gpu, &scale, &shape)?,
            Tensor::from_slice(gpu, &shift, &shape)?,
        ))
    }
}
