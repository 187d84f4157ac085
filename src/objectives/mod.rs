//! What a training step optimises: the objective as a type.
//!
//! An [`ObjectiveConfig`] is data (one variant per method, carrying that
//! method's own hyper-parameters; serialised into `config.json` and
//! checkpoints). [`ObjectiveConfig::build`] turns it into an
//! [`Objective`]: behaviour, the way an [`Arch`](crate::nn::Arch) builds a
//! module. An objective says
//!
//! - which input a step needs ([`InputSpec`]): two augmented views of each
//!   image for the joint-embedding methods, one view and a patch mask for
//!   masked image modelling, a view and a corrupted copy for denoising;
//! - its named parts and their [`Role`]s: trained by the optimiser, or an
//!   exponential moving average of another part (BYOL's target). The
//!   optimiser, the checkpoint and `eval`/`embed` read these instead of a
//!   fixed list;
//! - how it records its loss and its named loss terms on a tape
//!   ([`Objective::record`]);
//! - what happens after the optimiser update ([`Objective::after_update`]:
//!   the EMA).
//!
//! The training step (`train::step`) is then one generic function: build
//! the input, record, backward, update the trained parts, `after_update`,
//! submit once.

mod byol;
mod config;
mod jepa;
mod joint;
mod predict;
mod reconstruct;
mod simsiam;

use crate::augment::{Corruption, PatchMask};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::nn::{Encoder, Module};
use crate::tensor::Tensor;

pub use byol::Byol;
pub use config::{CONTEXT_FRAMES, Method, ObjectiveConfig};
pub use jepa::{LatentPrediction, positions as jepa_positions};
pub use joint::JointEmbedding;
pub use predict::PixelPrediction;
pub use reconstruct::{Denoise, MaskedAutoencoder, VicregMae};
pub use simsiam::SimSiam;

/// The input a step of an objective needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputSpec {
    /// This many augmented views of every image of the batch.
    Views(usize),
    /// One augmented view and a patch mask: `ratio` of the patches of side
    /// `patch` masked in every image.
    Masked { patch: usize, ratio: f32 },
    /// Two augmented views and a patch mask for the first (VICReg with a
    /// masked reconstruction term).
    ViewsMasked { patch: usize, ratio: f32 },
    /// One augmented view and a corrupted copy of it.
    Corrupted(Corruption),
    /// Consecutive frames of each clip: `context` to read, then `rollout`
    /// to predict.
    Clip { context: usize, rollout: usize },
}

/// The input of one step, as [`InputSpec`] describes it.
pub struct StepInput {
    /// Augmented views of the batch, each `[B, C, H, W]`, normalised.
    pub views: Vec<Tensor>,
    /// The patch mask of the first view, for masked modelling.
    pub mask: Option<PatchMask>,
    /// The first view corrupted, for denoising.
    pub corrupted: Option<Tensor>,
    /// Consecutive frames of a batch of clips, one `[N, C, H, W]` tensor
    /// per time step, for video prediction.
    pub frames: Vec<Tensor>,
}

impl StepInput {
    /// Augmented views alone.
    pub fn views(views: Vec<Tensor>) -> StepInput {
        StepInput {
            views,
            mask: None,
            corrupted: None,
            frames: Vec::new(),
        }
    }

    /// Frames of clips alone.
    pub fn frames(frames: Vec<Tensor>) -> StepInput {
        StepInput {
            views: Vec::new(),
            mask: None,
            corrupted: None,
            frames,
        }
    }

    /// The two views of a two-view input.
    pub fn pair(&self) -> Result<[&Tensor; 2]> {
        match self.views.as_slice() {
            [a, b] => Ok([a, b]),
            v => Err(Error::invalid(
                "objective",
                format!("expected two views, got {}", v.len()),
            )),
        }
    }

    /// The first view.
    pub fn first(&self) -> Result<&Tensor> {
        self.views
            .first()
            .ok_or_else(|| Error::invalid("objective", "no view in the input"))
    }

    /// The frames of a video step that reads the context frames and
    /// predicts `rollout` more.
    pub fn clip(&self, rollout: usize) -> Result<&[Tensor]> {
        let want = CONTEXT_FRAMES + rollout;
        if self.frames.len() != want {
            return Err(Error::invalid(
                "objective",
                format!(
                    "a rollout of {rollout} needs {CONTEXT_FRAMES} context frames and {rollout} to predict, got {} frames",
                    self.frames.len()
                ),
            ));
        }
        Ok(&self.frames)
    }

    /// The patch mask, for an objective that needs one.
    pub fn patch_mask(&self) -> Result<&PatchMask> {
        self.mask
            .as_ref()
            .ok_or_else(|| Error::invalid("objective", "the input has no patch mask"))
    }
}

/// The feature maps of the two context frames of a video step.
pub(crate) fn context_maps(
    encoder: &mut dyn Encoder,
    tape: &mut Tape,
    context: [&Tensor; 2],
    train: bool,
) -> Result<[Var; 2]> {
    let a = tape.constant(context[0])?;
    let b = tape.constant(context[1])?;
    let z0 = encoder.feature_map(tape, a, train)?;
    let z1 = encoder.feature_map(tape, b, train)?;
    Ok([z0, z1])
}

/// The mean squared difference of `a` and `b` on the tape.
pub(crate) fn mse(tape: &mut Tape, a: Var, b: Var) -> Result<Var> {
    let d = tape.sub(a, b)?;
    let sq = tape.square(d)?;
    tape.mean_all(sq)
}

/// How a part is updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// By the optimiser, from its gradient.
    Trained,
    /// After each update, as an exponential moving average of the part
    /// named `of`; it never receives a gradient.
    Ema { of: &'static str },
}

/// A named part of an objective: the name is its prefix in checkpoints
/// (`encoder.conv1.weight`) and in the optimiser's state.
pub struct Part<'a> {
    pub name: &'static str,
    pub module: &'a dyn Module,
    pub role: Role,
}

/// A step's loss on the tape, and its named unweighted terms for logging.
pub struct Recorded {
    pub loss: Var,
    pub terms: Vec<(&'static str, Tensor)>,
}

/// The behaviour of a method. See the module documentation.
pub trait Objective {
    /// Every part, the encoder first, in the order the optimiser, the
    /// checkpoint and the gradient norm visit them.
    fn parts(&self) -> Vec<Part<'_>>;

    /// The encoder whose representation evaluation and `embed` read.
    fn encoder(&mut self) -> &mut dyn Encoder;

    /// Records the forward and the loss of one step on `tape`.
    fn record(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Recorded>;

    /// Called after the optimiser has updated the trained parts at step
    /// `step` (0-based) of `total_steps`.
    fn after_update(&mut self, _step: u64, _total_steps: u64) -> Result<()> {
        Ok(())
    }

    /// The reconstruction of `input` (the decoder's output from the
    /// masked or corrupted view, in evaluation mode), for the methods that
    /// reconstruct; `None` for the others.
    fn reconstruct(&mut self, _tape: &mut Tape, _input: &StepInput) -> Result<Option<Var>> {
        Ok(None)
    }

    /// For the video predictors: `steps` frames after the two `context`
    /// frames (each `[N, C, H, W]`), each predicted from the ones before
    /// it, in evaluation mode; `None` for the image methods.
    fn rollout(
        &mut self,
        _tape: &mut Tape,
        _context: [&Tensor; 2],
        _steps: usize,
    ) -> Result<Option<Vec<Var>>> {
        Ok(None)
    }

    /// For the video predictors: the squared error, summed per clip
    /// (`[N]`), of predicting `next` from the two `context` frames, in the
    /// space the method predicts in; `None`: in pixels, from
    /// [`Objective::rollout`].
    fn surprise(
        &mut self,
        _tape: &mut Tape,
        _context: [&Tensor; 2],
        _next: &Tensor,
    ) -> Result<Option<Var>> {
        Ok(None)
    }

    /// The encoder's feature maps of `frames` (`[N, C, H, W]`), in
    /// evaluation mode: what the probes read.
    fn latents(&mut self, tape: &mut Tape, frames: &Tensor) -> Result<Var> {
        let x = tape.constant(frames)?;
        self.encoder().feature_map(tape, x, false)
    }

    /// For the video predictors: the predicted feature maps of `steps`
    /// frames after the two `context` frames, in evaluation mode.
    fn latent_rollout(
        &mut self,
        _tape: &mut Tape,
        _context: [&Tensor; 2],
        _steps: usize,
    ) -> Result<Option<Vec<Var>>> {
        Ok(None)
    }
}
