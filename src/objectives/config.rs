//! The data side of objectives: each method's hyper-parameters, their
//! checks, their one-line description, and how they build an objective.

use serde::{Deserialize, Serialize};

use super::{
    Byol, Denoise, InputSpec, JointEmbedding, LatentPrediction, MaskedAutoencoder, Objective,
    PixelPrediction, SimSiam, VicregMae,
};
use crate::augment::{Corruption, check_mask};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::named::named_enum;
use crate::nn::Arch;

named_enum! {
    /// The self-supervised method, as `--method` names it.
    pub enum Method("method") {
        /// Variance-invariance-covariance (Bardes, Ponce, LeCun 2022).
        Vicreg = "vicreg",
        /// NT-Xent over two views (Chen et al. 2020).
        Simclr = "simclr",
        /// Cross-correlation towards the identity (Zbontar et al. 2021).
        Barlow = "barlow",
        /// A predictor regressing an EMA target's projection (Grill et al. 2020).
        Byol = "byol",
        /// BYOL without the EMA: a stop-gradient on the other branch
        /// (Chen and He 2021).
        Simsiam = "simsiam",
        /// Masked autoencoder on convolutions: fill in masked patches
        /// (He et al. 2022; SparK's sparse-convolution emulation).
        Mae = "mae",
        /// Denoising autoencoder: undo a pixel corruption (Vincent et al. 2008).
        Denoise = "denoise",
        /// VICReg plus a masked-reconstruction term on one view.
        VicregMae = "vicreg+mae",
        /// Video: predict the next frames in pixels from the two before,
        /// rolled out autoregressively (recurrent-free, SimVP-style).
        Pixel = "pixel",
        /// Video: predict the next frames' feature maps from the two before
        /// (the JEPA family), VICReg's variance and covariance keeping the
        /// maps from collapsing.
        Jepa = "jepa",
    }
}

/// A method and its own hyper-parameters. `projector` and `predictor` are
/// layer widths after their input (the representation, and the
/// projection), as `--projector 512-512-512` gives them; `decoder` the
/// channels of each upsampling stage (empty: half the representation's
/// width, then half again, one stage per doubling the image needs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ObjectiveConfig {
    Vicreg {
        projector: Vec<usize>,
        /// Invariance, variance and covariance weights.
        coefficients: [f32; 3],
    },
    Simclr {
        projector: Vec<usize>,
        temperature: f32,
    },
    Barlow {
        projector: Vec<usize>,
        /// The off-diagonal weight.
        lambda: f32,
    },
    Byol {
        projector: Vec<usize>,
        predictor: Vec<usize>,
        /// The target's momentum at the first step (`tau_base`); it rises
        /// to 1 on a cosine over the run.
        ema_momentum: f32,
    },
    Simsiam {
        projector: Vec<usize>,
        predictor: Vec<usize>,
    },
    Mae {
        /// The side of a square patch, in pixels.
        patch: usize,
        mask_ratio: f32,
        /// The target normalised per patch (MAE's norm-pix).
        norm_pix: bool,
        decoder: Vec<usize>,
    },
    Denoise {
        corruption: Corruption,
        decoder: Vec<usize>,
    },
    VicregMae {
        projector: Vec<usize>,
        coefficients: [f32; 3],
        patch: usize,
        mask_ratio: f32,
        norm_pix: bool,
        decoder: Vec<usize>,
        /// The weight of the masked-reconstruction term.
        reconstruction_weight: f32,
    },
    Pixel {
        /// Frames predicted from each pair of context frames in a training
        /// step, each from the prediction before it.
        rollout: usize,
        /// The predictor's hidden channels.
        hidden: usize,
        decoder: Vec<usize>,
    },
    Jepa {
        rollout: usize,
        hidden: usize,
        /// Latent prediction, variance and covariance weights.
        coefficients: [f32; 3],
        /// Targets from an EMA copy of the encoder with this momentum;
        /// `None`: from the encoder itself.
        ema_momentum: Option<f32>,
        /// The decoder that draws maps (trained on detached maps).
        decoder: Vec<usize>,
    },
}

impl Method {
    /// Whether the method trains on clips.
    pub fn is_video(self) -> bool {
        matches!(self, Method::Pixel | Method::Jepa)
    }
}

/// Frames a video predictor reads to predict the next one.
pub const CONTEXT_FRAMES: usize = 2;

fn check_widths(flag: &str, widths: &[usize]) -> Result<()> {
    if widths.is_empty() || widths.contains(&0) {
        return Err(Error::invalid(
            "train",
            format!("{flag} needs one or more positive widths, got {widths:?}"),
        ));
    }
    Ok(())
}

fn dashed(widths: &[usize]) -> String {
    let w: Vec<String> = widths.iter().map(|d| d.to_string()).collect();
    w.join("-")
}

fn check_coefficients(c: &[f32; 3]) -> Result<()> {
    if c.iter().any(|c| !(c.is_finite() && *c >= 0.0)) {
        return Err(Error::invalid(
            "train",
            format!("--vicreg-coefficients must be finite and >= 0, got {c:?}"),
        ));
    }
    Ok(())
}

/// How far an encoder shrinks an image: its feature map is `1 / factor`
/// of the input on each side.
fn reduction(encoder: &Arch) -> usize {
    match encoder {
        Arch::ConvNet { .. } => 4,
        Arch::ResNet18 { .. } => 8,
        Arch::Projector { .. } | Arch::Decoder { .. } | Arch::LatentPredictor { .. } => 1,
    }
}

impl ObjectiveConfig {
    /// The method this configuration is for.
    pub fn method(&self) -> Method {
        match self {
            ObjectiveConfig::Vicreg { .. } => Method::Vicreg,
            ObjectiveConfig::Simclr { .. } => Method::Simclr,
            ObjectiveConfig::Barlow { .. } => Method::Barlow,
            ObjectiveConfig::Byol { .. } => Method::Byol,
            ObjectiveConfig::Simsiam { .. } => Method::Simsiam,
            ObjectiveConfig::Mae { .. } => Method::Mae,
            ObjectiveConfig::Denoise { .. } => Method::Denoise,
            ObjectiveConfig::VicregMae { .. } => Method::VicregMae,
            ObjectiveConfig::Pixel { .. } => Method::Pixel,
            ObjectiveConfig::Jepa { .. } => Method::Jepa,
        }
    }

    /// The projector's widths after the representation, for the methods
    /// that have one.
    pub fn projector(&self) -> Option<&[usize]> {
        match self {
            ObjectiveConfig::Vicreg { projector, .. }
            | ObjectiveConfig::Simclr { projector, .. }
            | ObjectiveConfig::Barlow { projector, .. }
            | ObjectiveConfig::Byol { projector, .. }
            | ObjectiveConfig::Simsiam { projector, .. }
            | ObjectiveConfig::VicregMae { projector, .. } => Some(projector),
            ObjectiveConfig::Mae { .. }
            | ObjectiveConfig::Denoise { .. }
            | ObjectiveConfig::Pixel { .. }
            | ObjectiveConfig::Jepa { .. } => None,
        }
    }

    /// The decoder's stage widths, for the methods that reconstruct.
    pub fn decoder(&self) -> Option<&[usize]> {
        match self {
            ObjectiveConfig::Mae { decoder, .. }
            | ObjectiveConfig::Denoise { decoder, .. }
            | ObjectiveConfig::VicregMae { decoder, .. }
            | ObjectiveConfig::Pixel { decoder, .. }
            | ObjectiveConfig::Jepa { decoder, .. } => Some(decoder),
            _ => None,
        }
    }

    /// Whether a reconstruction predicts patches normalised by their own
    /// statistics (MAE's norm-pix).
    pub fn norm_pix(&self) -> bool {
        matches!(
            self,
            ObjectiveConfig::Mae { norm_pix: true, .. }
                | ObjectiveConfig::VicregMae { norm_pix: true, .. }
        )
    }

    /// The input a step needs.
    pub fn input(&self) -> InputSpec {
        match *self {
            ObjectiveConfig::Mae {
                patch, mask_ratio, ..
            } => InputSpec::Masked {
                patch,
                ratio: mask_ratio,
            },
            ObjectiveConfig::VicregMae {
                patch, mask_ratio, ..
            } => InputSpec::ViewsMasked {
                patch,
                ratio: mask_ratio,
            },
            ObjectiveConfig::Denoise { corruption, .. } => InputSpec::Corrupted(corruption),
            ObjectiveConfig::Pixel { rollout, .. } | ObjectiveConfig::Jepa { rollout, .. } => {
                InputSpec::Clip {
                    context: CONTEXT_FRAMES,
                    rollout,
                }
            }
            _ => InputSpec::Views(2),
        }
    }

    /// Checks every hyper-parameter, naming the flag that sets it.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid("train", reason));
        if let Some(p) = self.projector() {
            check_widths("--projector", p)?;
        }
        if let Some(d) = self.decoder()
            && d.contains(&0)
        {
            return bad(format!("--decoder widths must be positive, got {d:?}"));
        }
        match self {
            ObjectiveConfig::Vicreg { coefficients, .. } => check_coefficients(coefficients)?,
            ObjectiveConfig::Simclr { temperature, .. } => {
                if !(temperature.is_finite() && *temperature > 0.0) {
                    return bad(format!("--temperature must be positive, got {temperature}"));
                }
            }
            ObjectiveConfig::Barlow { lambda, .. } => {
                if !(lambda.is_finite() && *lambda >= 0.0) {
                    return bad(format!("--barlow-lambda must be >= 0, got {lambda}"));
                }
            }
            ObjectiveConfig::Byol {
                projector,
                predictor,
                ema_momentum,
            } => {
                if !(0.0..1.0).contains(ema_momentum) {
                    return bad(format!(
                        "--ema-momentum must be in [0, 1), got {ema_momentum}"
                    ));
                }
                check_predictor(projector, predictor)?;
            }
            ObjectiveConfig::Simsiam {
                projector,
                predictor,
            } => check_predictor(projector, predictor)?,
            ObjectiveConfig::Mae { mask_ratio, .. } => check_ratio(*mask_ratio)?,
            ObjectiveConfig::Denoise { .. } => {}
            ObjectiveConfig::Pixel {
                rollout, hidden, ..
            }
            | ObjectiveConfig::Jepa {
                rollout, hidden, ..
            } => {
                if let ObjectiveConfig::Jepa {
                    coefficients,
                    ema_momentum,
                    ..
                } = self
                {
                    check_coefficients(coefficients)?;
                    if let Some(m) = ema_momentum
                        && !(0.0..1.0).contains(m)
                    {
                        return bad(format!("--ema-momentum must be in [0, 1), got {m}"));
                    }
                }
                if !(1..=64).contains(rollout) {
                    return bad(format!("--rollout must be 1 to 64 frames, got {rollout}"));
                }
                if *hidden == 0 {
                    return bad("--predictor needs a positive width".to_string());
                }
            }
            ObjectiveConfig::VicregMae {
                coefficients,
                mask_ratio,
                reconstruction_weight,
                ..
            } => {
                check_coefficients(coefficients)?;
                check_ratio(*mask_ratio)?;
                if !(reconstruction_weight.is_finite() && *reconstruction_weight >= 0.0) {
                    return bad(format!(
                        "--reconstruction-weight must be finite and >= 0, got {reconstruction_weight}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks what depends on the images and fills in what follows from
    /// them: the patch must divide them, and the decoder's stages must
    /// bring the encoder's feature map back to their size; decoder widths
    /// left empty become half the representation's width, then half again.
    pub fn fit_images(&mut self, encoder: &Arch, height: usize, width: usize) -> Result<()> {
        if let Some(widths) = self.images_decoder(encoder, height, width)? {
            match self {
                ObjectiveConfig::Mae { decoder, .. }
                | ObjectiveConfig::Denoise { decoder, .. }
                | ObjectiveConfig::VicregMae { decoder, .. }
                | ObjectiveConfig::Pixel { decoder, .. }
                | ObjectiveConfig::Jepa { decoder, .. } => *decoder = widths,
                _ => {}
            }
        }
        Ok(())
    }

    fn images_decoder(
        &self,
        encoder: &Arch,
        height: usize,
        width: usize,
    ) -> Result<Option<Vec<usize>>> {
        if let ObjectiveConfig::Mae {
            patch, mask_ratio, ..
        }
        | ObjectiveConfig::VicregMae {
            patch, mask_ratio, ..
        } = self
        {
            check_mask(height, width, *patch, *mask_ratio)?;
        }
        let Some(widths) = self.decoder() else {
            return Ok(None);
        };
        let f = reduction(encoder);
        let stages = f.trailing_zeros() as usize;
        let fits = height.is_multiple_of(f) && width.is_multiple_of(f);
        if !fits || (!widths.is_empty() && widths.len() != stages) {
            let (fh, fw) = (height.div_ceil(f), width.div_ceil(f));
            let reached = |n: usize| (fh << n, fw << n);
            let n = if widths.is_empty() {
                stages
            } else {
                widths.len()
            };
            return Err(Error::invalid(
                "train",
                format!(
                    "a decoder of {n} doubling stages takes the encoder's {fh}x{fw} map of {height}x{width} images to {}x{}, not back to {height}x{width}{}",
                    reached(n).0,
                    reached(n).1,
                    if fits {
                        format!(": --decoder needs {stages} widths")
                    } else {
                        format!(": the image sides must be multiples of {f}")
                    }
                ),
            ));
        }
        let dim = match encoder {
            Arch::ConvNet { widths, .. } => widths.0[3],
            _ => crate::nn::ResNet18::DIM,
        };
        Ok(Some(if widths.is_empty() {
            (1..=stages).map(|i| (dim >> i).max(8)).collect()
        } else {
            widths.to_vec()
        }))
    }

    /// The method's settings on one line, printed at the start of a run.
    pub fn describe(&self, representation: usize) -> String {
        let mut s = format!("method {}", self.method());
        if let Some(p) = self.projector() {
            s += &format!(" | projector {representation}-{}", dashed(p));
        }
        match self {
            ObjectiveConfig::Vicreg { coefficients, .. } => {
                s += &format!(
                    " | coefficients invariance {} variance {} covariance {}",
                    coefficients[0], coefficients[1], coefficients[2]
                )
            }
            ObjectiveConfig::Simclr { temperature, .. } => {
                s += &format!(" | temperature {temperature}")
            }
            ObjectiveConfig::Barlow { lambda, .. } => s += &format!(" | lambda {lambda}"),
            ObjectiveConfig::Byol {
                projector,
                predictor,
                ema_momentum,
            } => {
                s += &format!(
                    " | predictor {}-{} | EMA momentum {ema_momentum} rising to 1 (cosine)",
                    projector[projector.len() - 1],
                    dashed(predictor)
                )
            }
            ObjectiveConfig::Simsiam {
                projector,
                predictor,
            } => {
                s += &format!(
                    " (batch-normalised output) | predictor {}-{}",
                    projector[projector.len() - 1],
                    dashed(predictor)
                )
            }
            ObjectiveConfig::Mae {
                patch,
                mask_ratio,
                norm_pix,
                decoder,
            } => {
                s += &format!(
                    " | patch {patch} | mask ratio {mask_ratio} | norm-pix {} | decoder {}",
                    if *norm_pix { "on" } else { "off" },
                    if decoder.is_empty() {
                        "auto".to_string()
                    } else {
                        dashed(decoder)
                    }
                )
            }
            ObjectiveConfig::Denoise {
                corruption,
                decoder,
            } => {
                s += &format!(
                    " | corruption {corruption} | decoder {}",
                    if decoder.is_empty() {
                        "auto".to_string()
                    } else {
                        dashed(decoder)
                    }
                )
            }
            ObjectiveConfig::VicregMae {
                coefficients,
                patch,
                mask_ratio,
                norm_pix,
                reconstruction_weight,
                ..
            } => {
                s += &format!(
                    " | coefficients {} {} {} | reconstruction weight {reconstruction_weight} (patch {patch}, mask ratio {mask_ratio}, norm-pix {})",
                    coefficients[0],
                    coefficients[1],
                    coefficients[2],
                    if *norm_pix { "on" } else { "off" }
                )
            }
            ObjectiveConfig::Pixel {
                rollout,
                hidden,
                decoder,
            } => {
                s += &format!(
                    " | context {CONTEXT_FRAMES} frames | rollout {rollout} | predictor hidden {hidden} | decoder {}",
                    if decoder.is_empty() {
                        "auto".to_string()
                    } else {
                        dashed(decoder)
                    }
                )
            }
            ObjectiveConfig::Jepa {
                rollout,
                hidden,
                coefficients,
                ema_momentum,
                decoder,
            } => {
                s += &format!(
                    " | context {CONTEXT_FRAMES} frames | rollout {rollout} | predictor hidden {hidden} | coefficients prediction {} variance {} covariance {} | targets {} | decoder {} (detached)",
                    coefficients[0],
                    coefficients[1],
                    coefficients[2],
                    match ema_momentum {
                        Some(m) => format!("EMA encoder (momentum {m})"),
                        None => "the encoder".to_string(),
                    },
                    if decoder.is_empty() {
                        "auto".to_string()
                    } else {
                        dashed(decoder)
                    }
                )
            }
        }
        s
    }

    /// A fresh objective on `gpu` with an encoder of architecture `encoder`:
    /// the encoder is initialised from `seed`, the projector (or the
    /// decoder) from `seed + 1`, a predictor (or VICReg+MAE's decoder) from
    /// `seed + 2`. An EMA target starts as a copy of the part it follows. A
    /// decoder's widths must have been filled in ([`Self::fit_images`]).
    pub fn build(&self, gpu: &Gpu, encoder: &Arch, seed: u64) -> Result<Box<dyn Objective>> {
        self.validate()?;
        if self.decoder().is_some_and(|d| d.is_empty()) {
            return Err(Error::invalid(
                "train",
                "the decoder's widths depend on the image size: fit the configuration to the images first",
            ));
        }
        let decoder_widths = self.decoder().map(|d| d.to_vec());
        let enc = encoder.build_encoder(gpu, seed)?;
        let channels = encoder.in_channels().unwrap_or(1);
        let projector_arch = |output_norm| {
            let mut dims = vec![enc.dim()];
            dims.extend(self.projector().unwrap_or_default());
            Arch::Projector { dims, output_norm }
        };
        let predictor_arch = |widths: &[usize]| {
            let p = self.projector().unwrap_or_default();
            let mut dims = vec![p[p.len() - 1]];
            dims.extend(widths);
            Arch::Projector {
                dims,
                output_norm: false,
            }
        };
        let decoder_arch = |mask_token| Arch::Decoder {
            in_channels: enc.dim(),
            widths: decoder_widths.clone().unwrap_or_default(),
            out_channels: channels,
            mask_token,
        };
        let s1 = seed.wrapping_add(1);
        let s2 = seed.wrapping_add(2);
        Ok(match self {
            ObjectiveConfig::Vicreg { .. }
            | ObjectiveConfig::Simclr { .. }
            | ObjectiveConfig::Barlow { .. } => {
                let projector = projector_arch(false).build(gpu, s1)?;
                Box::new(JointEmbedding::new(self, enc, projector)?)
            }
            ObjectiveConfig::Byol {
                predictor,
                ema_momentum,
                ..
            } => {
                let proj = projector_arch(false);
                Box::new(Byol {
                    projector: proj.build(gpu, s1)?,
                    predictor: predictor_arch(predictor).build(gpu, s2)?,
                    target_encoder: encoder.build_encoder(gpu, seed)?,
                    target_projector: proj.build(gpu, s1)?,
                    encoder: enc,
                    tau_base: *ema_momentum,
                })
            }
            ObjectiveConfig::Simsiam { predictor, .. } => Box::new(SimSiam {
                projector: projector_arch(true).build(gpu, s1)?,
                predictor: predictor_arch(predictor).build(gpu, s2)?,
                encoder: enc,
            }),
            ObjectiveConfig::Mae { norm_pix, .. } => Box::new(MaskedAutoencoder {
                decoder: decoder_arch(true).build_decoder(gpu, s1)?,
                encoder: enc,
                norm_pix: *norm_pix,
            }),
            ObjectiveConfig::Denoise { .. } => Box::new(Denoise {
                decoder: decoder_arch(false).build_decoder(gpu, s1)?,
                encoder: enc,
            }),
            ObjectiveConfig::VicregMae {
                coefficients,
                norm_pix,
                reconstruction_weight,
                ..
            } => Box::new(VicregMae {
                projector: projector_arch(false).build(gpu, s1)?,
                decoder: decoder_arch(true).build_decoder(gpu, s2)?,
                encoder: enc,
                coefficients: *coefficients,
                norm_pix: *norm_pix,
                weight: *reconstruction_weight,
            }),
            ObjectiveConfig::Pixel {
                rollout, hidden, ..
            } => Box::new(PixelPrediction {
                predictor: Arch::LatentPredictor {
                    channels: enc.dim(),
                    hidden: *hidden,
                }
                .build_predictor(gpu, s1)?,
                decoder: decoder_arch(false).build_decoder(gpu, s2)?,
                encoder: enc,
                rollout: *rollout,
            }),
            ObjectiveConfig::Jepa {
                rollout,
                hidden,
                coefficients,
                ema_momentum,
                ..
            } => Box::new(LatentPrediction {
                predictor: Arch::LatentPredictor {
                    channels: enc.dim(),
                    hidden: *hidden,
                }
                .build_predictor(gpu, s1)?,
                decoder: decoder_arch(false).build_decoder(gpu, s2)?,
                target_encoder: ema_momentum
                    .map(|_| encoder.build_encoder(gpu, seed))
                    .transpose()?,
                encoder: enc,
                rollout: *rollout,
                coefficients: *coefficients,
                ema_momentum: *ema_momentum,
            }),
        })
    }
}

fn check_ratio(ratio: f32) -> Result<()> {
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(Error::invalid(
            "train",
            format!("--mask-ratio must be in (0, 1), got {ratio}"),
        ));
    }
    Ok(())
}

/// The predictor maps a projection back to a vector of the same width.
fn check_predictor(projector: &[usize], predictor: &[usize]) -> Result<()> {
    check_widths("--predictor", predictor)?;
    let (z, p) = (
        projector[projector.len() - 1],
        predictor[predictor.len() - 1],
    );
    if z != p {
        return Err(Error::invalid(
            "train",
            format!(
                "--predictor must end at the projection's width {z} (the loss compares the two), got {}",
                dashed(predictor)
            ),
        ));
    }
    Ok(())
}
