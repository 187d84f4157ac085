//! The reconstruction family: a masked autoencoder on convolutions, a
//! denoising autoencoder, and VICReg with a masked-reconstruction term.
//!
//! Masked modelling on a ConvNet follows SparK: masked pixels are zeroed
//! (in normalised units, so they read as the data set's mean), and the
//! mask, brought to each encoder stage's resolution, is applied again to
//! that stage's output, so a visible position never sees masked content
//! through the receptive fields of later stages. At the decoder's input a
//! learned mask token fills the masked positions of the feature map; the
//! loss is the mean squared error over the masked patches only, against
//! per-patch normalised pixels by default.

use std::collections::HashMap;

use super::{Objective, Part, Recorded, Role, StepInput};
use crate::augment::PatchMask;
use crate::autograd::{Tape, Var};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::loss::{self, LossVariant, VicregConfig};
use crate::nn::{Decoder, Encoder, Module};
use crate::tensor::Tensor;

/// The mask at every resolution it is asked for, uploaded once per step.
struct Keeps<'a> {
    gpu: Gpu,
    mask: &'a PatchMask,
    at: HashMap<(usize, usize), Tensor>,
}

impl Keeps<'_> {
    /// `[N, 1, h, w]`, 1 where visible, as a constant on `tape`.
    fn var(&mut self, tape: &mut Tape, h: usize, w: usize) -> Result<Var> {
        let t = match self.at.get(&(h, w)) {
            Some(t) => t.clone(),
            None => {
                let t = self.mask.keep(&self.gpu, h, w)?;
                self.at.insert((h, w), t.clone());
                t
            }
        };
        tape.constant(&t)
    }
}

/// The masked view through the encoder (the mask applied to its input and
/// after every stage) and the decoder (the mask token in the holes): the
/// reconstruction, `[N, C, H, W]`.
fn masked_forward(
    tape: &mut Tape,
    encoder: &mut dyn Encoder,
    decoder: &mut Decoder,
    image: &Tensor,
    mask: &PatchMask,
    train: bool,
) -> Result<Var> {
    let mut keeps = Keeps {
        gpu: tape.gpu().clone(),
        mask,
        at: HashMap::new(),
    };
    let x = tape.constant(image)?;
    let k = keeps.var(tape, mask.height, mask.width)?;
    let masked = tape.mul(x, k)?;
    let mut hook = |tape: &mut Tape, v: Var| -> Result<Var> {
        let s = tape.shape(v)?.to_vec();
        let k = keeps.var(tape, s[2], s[3])?;
        tape.mul(v, k)
    };
    let z = encoder.feature_map_with(tape, masked, train, &mut hook)?;
    let s = tape.shape(z)?.to_vec();
    let kz = keeps.var(tape, s[2], s[3])?;
    decoder.forward_masked(tape, z, kz, train)
}

/// The masked-reconstruction loss of `pred` against the view it came from.
fn masked_loss(
    tape: &mut Tape,
    pred: Var,
    image: &Tensor,
    mask: &PatchMask,
    norm_pix: bool,
) -> Result<Var> {
    let patches = mask.patches(tape.gpu())?;
    loss::masked_mse(
        tape,
        pred,
        image,
        &patches,
        mask.count(),
        mask.patch,
        norm_pix,
        LossVariant::Fused,
    )
}

/// The masked autoencoder: encoder and decoder.
pub struct MaskedAutoencoder {
    pub(super) encoder: Box<dyn Encoder>,
    pub(super) decoder: Box<Decoder>,
    pub(super) norm_pix: bool,
}

impl Objective for MaskedAutoencoder {
    fn parts(&self) -> Vec<Part<'_>> {
        vec![
            Part {
                name: "encoder",
                module: self.encoder.as_ref(),
                role: Role::Trained,
            },
            Part {
                name: "decoder",
                module: self.decoder.as_ref(),
                role: Role::Trained,
            },
        ]
    }

    fn encoder(&mut self) -> &mut dyn Encoder {
        self.encoder.as_mut()
    }

    fn record(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Recorded> {
        let (image, mask) = (input.first()?, input.patch_mask()?);
        let pred = masked_forward(
            tape,
            self.encoder.as_mut(),
            &mut self.decoder,
            image,
            mask,
            true,
        )?;
        let loss = masked_loss(tape, pred, image, mask, self.norm_pix)?;
        Ok(Recorded {
            loss,
            terms: vec![],
        })
    }

    fn reconstruct(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Option<Var>> {
        let (image, mask) = (input.first()?, input.patch_mask()?);
        masked_forward(
            tape,
            self.encoder.as_mut(),
            &mut self.decoder,
            image,
            mask,
            false,
        )
        .map(Some)
    }
}

/// The denoising autoencoder: encoder and decoder.
pub struct Denoise {
    pub(super) encoder: Box<dyn Encoder>,
    pub(super) decoder: Box<Decoder>,
}

impl Denoise {
    fn forward(&mut self, tape: &mut Tape, input: &StepInput, train: bool) -> Result<Var> {
        let corrupted = input
            .corrupted
            .as_ref()
            .ok_or_else(|| crate::Error::invalid("denoise", "the input has no corrupted view"))?;
        let x = tape.constant(corrupted)?;
        let z = self.encoder.feature_map(tape, x, train)?;
        self.decoder.forward(tape, z, train)
    }
}

impl Objective for Denoise {
    fn parts(&self) -> Vec<Part<'_>> {
        vec![
            Part {
                name: "encoder",
                module: self.encoder.as_ref(),
                role: Role::Trained,
            },
            Part {
                name: "decoder",
                module: self.decoder.as_ref(),
                role: Role::Trained,
            },
        ]
    }

    fn encoder(&mut self) -> &mut dyn Encoder {
        self.encoder.as_mut()
    }

    /// The mean squared error to the clean view, over every pixel.
    fn record(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Recorded> {
        let pred = self.forward(tape, input, true)?;
        let clean = tape.constant(input.first()?)?;
        let loss = super::mse(tape, pred, clean)?;
        Ok(Recorded {
            loss,
            terms: vec![],
        })
    }

    fn reconstruct(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Option<Var>> {
        self.forward(tape, input, false).map(Some)
    }
}

/// VICReg on two views plus `weight` times the masked-reconstruction loss
/// of the first view, masked, through the same encoder and a decoder.
pub struct VicregMae {
    pub(super) encoder: Box<dyn Encoder>,
    pub(super) projector: Box<dyn Module>,
    pub(super) decoder: Box<Decoder>,
    pub(super) coefficients: [f32; 3],
    pub(super) norm_pix: bool,
    pub(super) weight: f32,
}

impl Objective for VicregMae {
    fn parts(&self) -> Vec<Part<'_>> {
        vec![
            Part {
                name: "encoder",
                module: self.encoder.as_ref(),
                role: Role::Trained,
            },
            Part {
                name: "projector",
                module: self.projector.as_ref(),
                role: Role::Trained,
            },
            Part {
                name: "decoder",
                module: self.decoder.as_ref(),
                role: Role::Trained,
            },
        ]
    }

    fn encoder(&mut self) -> &mut dyn Encoder {
        self.encoder.as_mut()
    }

    fn record(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Recorded> {
        let [a, b] = input.pair()?;
        let mut z = Vec::with_capacity(2);
        for v in [a, b] {
            let x = tape.constant(v)?;
            let h = self.encoder.forward(tape, x, true)?;
            let p = self.projector.forward(tape, h, true)?;
            // Across ranks VICReg sees the global batch.
            z.push(tape.gather_rows(p)?);
        }
        let cfg = VicregConfig {
            invariance_weight: self.coefficients[0],
            variance_weight: self.coefficients[1],
            covariance_weight: self.coefficients[2],
            ..VicregConfig::default()
        };
        let v = loss::vicreg(tape, z[0], z[1], &cfg, LossVariant::Fused)?;
        let mask = input.patch_mask()?;
        let pred = masked_forward(
            tape,
            self.encoder.as_mut(),
            &mut self.decoder,
            a,
            mask,
            true,
        )?;
        let recon = masked_loss(tape, pred, a, mask, self.norm_pix)?;
        let weighted = tape.scale(recon, self.weight)?;
        let total = tape.add(v.loss, weighted)?;
        Ok(Recorded {
            loss: total,
            terms: vec![
                ("invariance", v.invariance),
                ("variance", v.variance),
                ("covariance", v.covariance),
                ("reconstruction", tape.value(recon)?.clone()),
            ],
        })
    }

    fn reconstruct(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Option<Var>> {
        let (image, mask) = (input.first()?, input.patch_mask()?);
        masked_forward(
            tape,
            self.encoder.as_mut(),
            &mut self.decoder,
            image,
            mask,
            false,
        )
        .map(Some)
    }
}
