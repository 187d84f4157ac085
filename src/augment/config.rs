//! What an augmentation pipeline does: per-view ranges and probabilities,
//! the output size, the normalisation, and the named presets.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// RandomResizedCrop's ranges, as in torchvision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crop {
    /// Range of the crop's area as a fraction of the image's area.
    pub scale: (f32, f32),
    /// Range of the crop's aspect ratio (width / height), drawn log-uniformly.
    pub ratio: (f32, f32),
    /// How a box is drawn from these ranges.
    pub sampling: CropSampling,
}

/// How [`Crop`] turns its ranges into a box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropSampling {
    /// torchvision's `RandomResizedCrop.get_params`: sides rounded to whole
    /// pixels, up to ten draws until the box fits, then a centre crop.
    WholePixels,
    /// One draw of area and aspect ratio, each side clamped to the image's,
    /// the box placed uniformly at sub-pixel positions. The bilinear sampler
    /// needs no whole pixels, and on small images rounding leaves few sizes:
    /// a 28-pixel side at scale 0.3-1 takes only 13 widths.
    Continuous,
}

/// ColorJitter's strengths, as in torchvision: brightness, contrast and
/// saturation factors are uniform in `[max(0, 1 - x), 1 + x]`, the hue shift
/// is uniform in `[-hue, hue]` (a fraction of a turn). A strength of 0 turns
/// that adjustment off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
    /// Probability that the jitter is applied at all.
    pub p: f32,
    /// Apply the adjustments in a random order per view, as torchvision
    /// does; otherwise always brightness, contrast, saturation, hue.
    pub random_order: bool,
}

impl Jitter {
    /// No colour jitter.
    pub const OFF: Jitter = Jitter {
        brightness: 0.0,
        contrast: 0.0,
        saturation: 0.0,
        hue: 0.0,
        p: 0.0,
        random_order: true,
    };
}

/// The random transforms of one view. Probabilities are in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewConfig {
    /// Random resized crop; `None` keeps the whole image (resized to the
    /// output size), which preserves positions.
    pub crop: Option<Crop>,
    /// Probability of a horizontal flip.
    pub flip: f32,
    /// Rotation uniform in `[-rotation, rotation]` degrees about the view's
    /// centre; corners that come from outside the image are black.
    pub rotation: f32,
    pub jitter: Jitter,
    /// Probability of converting to grey (ITU-R 601-2 luma).
    pub grayscale: f32,
    /// Probability of a Gaussian blur.
    pub blur: f32,
    /// Range of the blur's sigma in pixels of a 224-pixel view (the papers'
    /// numbers); it is scaled by the view's shorter side / 224, so a blur
    /// hides the same fraction of the image at every resolution.
    pub blur_sigma: (f32, f32),
    /// Probability of solarisation: pixels `>= 0.5` become `1 - pixel`.
    pub solarize: f32,
    /// Probability of additive Gaussian noise (the noisy pixels clipped to
    /// `[0, 1]`, as torchvision's `GaussianNoise` does).
    pub noise: f32,
    /// Standard deviation of the noise, in units of the `[0, 1]` pixel range.
    pub noise_std: f32,
}

impl ViewConfig {
    /// No augmentation: the whole image, resized to the output size.
    pub const IDENTITY: ViewConfig = ViewConfig {
        crop: None,
        flip: 0.0,
        rotation: 0.0,
        jitter: Jitter::OFF,
        grayscale: 0.0,
        blur: 0.0,
        blur_sigma: (0.1, 2.0),
        solarize: 0.0,
        noise: 0.0,
        noise_std: 0.0,
    };
}

/// Per-channel normalisation `(x - mean) / std`, applied last.
///
/// Given for RGB; a grey image is the luma of a colour one, so grey images
/// use the ITU-R 601-2 luma of the three means and of the three deviations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    /// ImageNet statistics, as the VICReg and SimCLR recipes use.
    pub const IMAGENET: Normalize = Normalize {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// Fashion-MNIST training-set statistics.
    pub const FASHION_MNIST: Normalize = Normalize {
        mean: [0.2860; 3],
        std: [0.3530; 3],
    };
    /// Leave pixels in `[0, 1]`.
    pub const UNIT: Normalize = Normalize {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    /// Mean and deviation of each of `channels` channels (1 or 3).
    pub(crate) fn for_channels(&self, channels: usize) -> ([f32; 3], [f32; 3]) {
        if channels == 1 {
            let luma = |v: [f32; 3]| [super::luma(v[0], v[1], v[2]); 3];
            (luma(self.mean), luma(self.std))
        } else {
            (self.mean, self.std)
        }
    }
}

/// The named recipes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// VICReg (Bardes et al. 2022): crop 0.08-1, flip 0.5, jitter
    /// 0.4/0.4/0.2/0.1 at p 0.8, grey 0.2, blur 1.0 / 0.1, solarise 0 / 0.2.
    Vicreg,
    /// SimCLR (Chen et al. 2020): crop 0.08-1, flip 0.5, jitter
    /// 0.8/0.8/0.8/0.2 at p 0.8, grey 0.2, blur 0.5 on both views.
    Simclr,
    /// For small grey images (28x28): crop 0.3-1 (continuous), flip 0.5,
    /// brightness then contrast 0.8 on every view, noise 0.05 at p 0.5.
    Light,
    /// Resize and normalise only.
    None,
    /// Colour, blur and noise, but no crop, flip or rotation, so a pixel of
    /// a view sits where it sat in the image (for localisation experiments).
    PositionPreserving,
}

impl Preset {
    /// Every preset, in the order `--help` lists them.
    pub const ALL: [Preset; 5] = [
        Preset::Vicreg,
        Preset::Simclr,
        Preset::Light,
        Preset::None,
        Preset::PositionPreserving,
    ];

    /// The name the command line uses.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Vicreg => "vicreg",
            Preset::Simclr => "simclr",
            Preset::Light => "light",
            Preset::None => "none",
            Preset::PositionPreserving => "position-preserving",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                Error::invalid(
                    "augment",
                    format!("unknown preset '{s}' (expected {})", names.join(", ")),
                )
            })
    }
}

/// A two-view augmentation pipeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentConfig {
    /// The transforms of the first and second view.
    pub views: [ViewConfig; 2],
    /// Output height and width; `None` keeps the input's size.
    pub output: Option<(usize, usize)>,
    pub normalize: Normalize,
}

const CROP: Crop = Crop {
    scale: (0.08, 1.0),
    ratio: (3.0 / 4.0, 4.0 / 3.0),
    sampling: CropSampling::WholePixels,
};

impl AugmentConfig {
    /// The recipe `preset` names, at the input's size.
    pub fn preset(preset: Preset) -> AugmentConfig {
        let vicreg = ViewConfig {
            crop: Some(CROP),
            flip: 0.5,
            jitter: Jitter {
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.2,
                hue: 0.1,
                p: 0.8,
                random_order: true,
            },
            grayscale: 0.2,
            blur: 1.0,
            ..ViewConfig::IDENTITY
        };
        let (views, normalize) = match preset {
            Preset::Vicreg => (
                [
                    vicreg,
                    ViewConfig {
                        blur: 0.1,
                        solarize: 0.2,
                        ..vicreg
                    },
                ],
                Normalize::IMAGENET,
            ),
            Preset::Simclr => {
                let v = ViewConfig {
                    jitter: Jitter {
                        brightness: 0.8,
                        contrast: 0.8,
                        saturation: 0.8,
                        hue: 0.2,
                        p: 0.8,
                        random_order: true,
                    },
                    blur: 0.5,
                    ..vicreg
                };
                ([v, v], Normalize::IMAGENET)
            }
            Preset::Light => {
                let v = ViewConfig {
                    crop: Some(Crop {
                        scale: (0.3, 1.0),
                        sampling: CropSampling::Continuous,
                        ..CROP
                    }),
                    flip: 0.5,
                    // Strong brightness and contrast changes are what
                    // grey images have for colour: with 0.4 the Fashion-MNIST
                    // kNN after one epoch was a point lower, and with no
                    // photometric changes at all six points lower. Brightness
                    // before contrast: at these strengths torchvision's
                    // random order (contrast first half the time, so the
                    // brightness factor then scales the contrast's mean grey)
                    // cost 0.3 points in the PyTorch replica. Every view
                    // is jittered (its factors may still be near 1).
                    jitter: Jitter {
                        brightness: 0.8,
                        contrast: 0.8,
                        p: 1.0,
                        random_order: false,
                        ..Jitter::OFF
                    },
                    noise: 0.5,
                    noise_std: 0.05,
                    ..ViewConfig::IDENTITY
                };
                ([v, v], Normalize::FASHION_MNIST)
            }
            Preset::None => ([ViewConfig::IDENTITY; 2], Normalize::IMAGENET),
            Preset::PositionPreserving => {
                let v = ViewConfig {
                    crop: None,
                    flip: 0.0,
                    blur: 0.5,
                    noise: 0.5,
                    noise_std: 0.05,
                    ..vicreg
                };
                ([v, v], Normalize::IMAGENET)
            }
        };
        AugmentConfig {
            views,
            output: None,
            normalize,
        }
    }

    /// The same pipeline with views of `height x width`.
    pub fn with_output(mut self, height: usize, width: usize) -> AugmentConfig {
        self.output = Some((height, width));
        self
    }

    /// Output height and width for inputs of `height x width`.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        self.output.unwrap_or((height, width))
    }

    /// Checks every range and probability; the message names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::invalid("augment config", what));
        if let Some((h, w)) = self.output
            && (h == 0 || w == 0)
        {
            return bad(format!("output size {h}x{w} is empty"));
        }
        let n = &self.normalize;
        if n.std.iter().any(|&s| !(s > 0.0 && s.is_finite()))
            || n.mean.iter().any(|m| !m.is_finite())
        {
            return bad(format!(
                "normalisation {n:?} needs finite means and positive deviations"
            ));
        }
        for (i, v) in self.views.iter().enumerate() {
            let j = &v.jitter;
            let probabilities = [
                ("flip", v.flip),
                ("jitter.p", j.p),
                ("grayscale", v.grayscale),
                ("blur", v.blur),
                ("solarize", v.solarize),
                ("noise", v.noise),
            ];
            for (name, p) in probabilities {
                if !(0.0..=1.0).contains(&p) {
                    return bad(format!(
                        "view {i}: probability {name} = {p} is outside [0, 1]"
                    ));
                }
            }
            if let Some(c) = v.crop {
                let (lo, hi) = c.scale;
                if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
                    return bad(format!(
                        "view {i}: crop scale {:?} is not within (0, 1]",
                        c.scale
                    ));
                }
                let (lo, hi) = c.ratio;
                if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                    return bad(format!(
                        "view {i}: crop ratio {:?} is not a positive range",
                        c.ratio
                    ));
                }
            }
            let strengths = [
                ("rotation", v.rotation, 180.0),
                ("jitter.brightness", j.brightness, f32::MAX),
                ("jitter.contrast", j.contrast, f32::MAX),
                ("jitter.saturation", j.saturation, f32::MAX),
                ("jitter.hue", j.hue, 0.5),
                ("noise_std", v.noise_std, f32::MAX),
            ];
            for (name, x, max) in strengths {
                if !(0.0..=max).contains(&x) {
                    return bad(format!("view {i}: {name} = {x} is outside [0, {max}]"));
                }
            }
            let (lo, hi) = v.blur_sigma;
            if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                return bad(format!(
                    "view {i}: blur sigma {:?} is not a positive range",
                    v.blur_sigma
                ));
            }
        }
        Ok(())
    }
}
