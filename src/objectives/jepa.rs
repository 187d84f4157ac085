//! Video prediction in latent space (the JEPA family): the encoder maps
//! every frame to its spatial feature map, and the latent predictor steps
//! the maps of the two context frames forward, each step reading the map
//! it predicted last. The loss compares each predicted map with the
//! encoder's map of the true frame (mean squared error), plus VICReg's
//! variance and covariance terms on the per-position features of the true
//! frames' maps (every position of every frame is a sample of the
//! channels), which keep the maps from collapsing to a constant that would
//! be trivially predictable.
//!
//! With an EMA momentum the targets come from a copy of the encoder that
//! follows it as an exponential moving average and receives no gradient;
//! without one they come from the encoder itself, and the gradient flows
//! through both sides, as in VICReg-regularised latent video predictors.
//!
//! A decoder learns alongside to draw a map as a frame, from maps detached
//! from the tape: it never changes what the encoder learns, and it is
//! there only to show (and score in pixels) what the predictor predicts.

use super::{Objective, Part, Recorded, Role, StepInput, mse};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::loss::{self, LossVariant, VicregConfig};
use crate::nn::{Decoder, Encoder, LatentPredictor, Module};
use crate::optim::ema;
use crate::tensor::Tensor;

/// Encoder, latent predictor, optional EMA target encoder, and the
/// decoder that draws maps.
pub struct LatentPrediction {
    pub(super) encoder: Box<dyn Encoder>,
    pub(super) predictor: Box<LatentPredictor>,
    pub(super) target_encoder: Option<Box<dyn Encoder>>,
    pub(super) decoder: Box<Decoder>,
    pub(super) rollout: usize,
    /// Prediction, variance and covariance weights.
    pub(super) coefficients: [f32; 3],
    pub(super) ema_momentum: Option<f32>,
}

/// `[N, C, h, w]` as `[N h w, C]`: one row per position.
pub fn positions(tape: &mut Tape, z: Var) -> Result<Var> {
    let s = tape.shape(z)?.to_vec();
    let [n, c, h, w] = <[usize; 4]>::try_from(s.as_slice())
        .map_err(|_| Error::shape("positions", &[&s], "expected a [N, C, h, w] map"))?;
    let flat = tape.reshape(z, &[n, c, h * w])?;
    let t = tape.transpose(flat)?;
    tape.reshape(t, &[n * h * w, c])
}

/// The rows of [`positions`], each layer-normalised (no affine part).
fn normalised_positions(tape: &mut Tape, z: Var) -> Result<Var> {
    let rows = positions(tape, z)?;
    let c = tape.shape(rows)?[1];
    let gpu = tape.gpu().clone();
    let gamma = tape.constant(&Tensor::full(&gpu, &[c], 1.0)?)?;
    let beta = tape.constant(&Tensor::zeros(&gpu, &[c])?)?;
    tape.layer_norm(rows, gamma, beta, 1e-5)
}

impl LatentPrediction {
    /// The maps of `frames`, from the target encoder when there is one
    /// (constants on `tape`), else from the encoder (on `tape`).
    fn targets(&mut self, tape: &mut Tape, frames: &[Tensor], train: bool) -> Result<Vec<Var>> {
        let mut out = Vec::with_capacity(frames.len());
        match self.target_encoder.as_mut() {
            Some(target) => {
                let mut side = tape.detached();
                for f in frames {
                    let x = side.constant(f)?;
                    let z = target.feature_map(&mut side, x, train)?;
                    let value = side.value(z)?.clone();
                    out.push(tape.constant(&value)?);
                }
            }
            None => {
                for f in frames {
                    let x = tape.constant(f)?;
                    out.push(self.encoder.feature_map(tape, x, train)?);
                }
            }
        }
        Ok(out)
    }

    /// The predicted maps of `steps` frames after `z0`, `z1`.
    fn roll(
        &mut self,
        tape: &mut Tape,
        z0: Var,
        z1: Var,
        steps: usize,
        train: bool,
    ) -> Result<Vec<Var>> {
        let (mut prev, mut cur) = (z0, z1);
        let mut out = Vec::with_capacity(steps);
        for _ in 0..steps {
            let next = self.predictor.predict(tape, prev, cur, train)?;
            out.push(next);
            (prev, cur) = (cur, next);
        }
        Ok(out)
    }

    /// The maps of the two context frames by the encoder.
    fn context(&mut self, tape: &mut Tape, context: [&Tensor; 2], train: bool) -> Result<[Var; 2]> {
        super::context_maps(self.encoder.as_mut(), tape, context, train)
    }
}

impl Objective for LatentPrediction {
    fn parts(&self) -> Vec<Part<'_>> {
        let mut parts = vec![
            Part {
                name: "encoder",
                module: self.encoder.as_ref(),
                role: Role::Trained,
            },
            Part {
                name: "predictor",
                module: self.predictor.as_ref(),
                role: Role::Trained,
            },
            Part {
                name: "decoder",
                module: self.decoder.as_ref(),
                role: Role::Trained,
            },
        ];
        if let Some(t) = &self.target_encoder {
            parts.push(Part {
                name: "target_encoder",
                module: t.as_ref(),
                role: Role::Ema { of: "encoder" },
            });
        }
        parts
    }

    fn encoder(&mut self) -> &mut dyn Encoder {
        self.encoder.as_mut()
    }

    fn record(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Recorded> {
        let frames = input.clip(self.rollout)?;
        let [w_pred, w_var, w_cov] = self.coefficients;
        // The context through the encoder; the targets of the rollout
        // through the encoder or its EMA copy.
        let [z0, z1] = self.context(tape, [&frames[0], &frames[1]], true)?;
        let targets = self.targets(tape, &frames[2..], true)?;
        let predicted = self.roll(tape, z0, z1, self.rollout, true)?;
        let mut prediction: Option<Var> = None;
        for (&p, &t) in predicted.iter().zip(&targets) {
            let e = mse(tape, p, t)?;
            prediction = Some(match prediction {
                Some(acc) => tape.add(acc, e)?,
                None => e,
            });
        }
        let prediction =
            prediction.ok_or_else(|| Error::invalid("jepa", "a rollout of no frames"))?;
        let prediction = tape.scale(prediction, 1.0 / self.rollout as f32)?;

        // Variance and covariance over the positions of the context maps
        // (the encoder's, whatever the targets): a pair of branches, as
        // VICReg has. Its covariance term sums the two branches, so half
        // the weight on each gives `w_cov` per map. The weight counts as
        // latent video predictors count it, on the mean of the squared
        // off-diagonal entries (over D (D - 1) of them), where VICReg's
        // term divides their sum by D only: hence the 1 / (D - 1).
        let (ra, rb) = (positions(tape, z0)?, positions(tape, z1)?);
        let per_entry = 1.0 / (2.0 * tape.shape(ra)?[1].saturating_sub(1).max(1) as f32);
        let cfg = VicregConfig {
            invariance_weight: 0.0,
            variance_weight: w_var,
            covariance_weight: w_cov * per_entry,
            ..VicregConfig::default()
        };
        let vc = loss::vicreg(tape, ra, rb, &cfg, LossVariant::Fused)?;
        // The covariance as it is weighted: the mean over both maps.
        let covariance = tape.constant(&vc.covariance)?;
        let covariance = tape.scale(covariance, per_entry)?;
        let weighted = tape.scale(prediction, w_pred)?;
        let jepa = tape.add(weighted, vc.loss)?;

        // The decoder learns to draw the context maps, detached.
        let mut drawing: Option<Var> = None;
        for (z, f) in [(z0, &frames[0]), (z1, &frames[1])] {
            let d = tape.detach(z)?;
            let y = self.decoder.forward(tape, d, true)?;
            let truth = tape.constant(f)?;
            let e = mse(tape, y, truth)?;
            drawing = Some(match drawing {
                Some(acc) => tape.add(acc, e)?,
                None => e,
            });
        }
        let drawing = drawing.ok_or_else(|| Error::invalid("jepa", "no frame to draw"))?;
        let drawing = tape.scale(drawing, 0.5)?;
        let loss = tape.add(jepa, drawing)?;
        Ok(Recorded {
            loss,
            terms: vec![
                ("prediction", tape.value(prediction)?.clone()),
                ("variance", vc.variance),
                ("covariance", tape.value(covariance)?.clone()),
                ("decoder", tape.value(drawing)?.clone()),
            ],
        })
    }

    fn after_update(&mut self, _step: u64, _total_steps: u64) -> Result<()> {
        match (&self.target_encoder, self.ema_momentum) {
            (Some(t), Some(m)) => ema::update_module(t.as_ref(), self.encoder.as_ref(), m),
            _ => Ok(()),
        }
    }

    /// The predicted maps drawn by the decoder.
    fn rollout(
        &mut self,
        tape: &mut Tape,
        context: [&Tensor; 2],
        steps: usize,
    ) -> Result<Option<Vec<Var>>> {
        let [z0, z1] = self.context(tape, context, false)?;
        let maps = self.roll(tape, z0, z1, steps, false)?;
        let mut frames = Vec::with_capacity(steps);
        for z in maps {
            frames.push(self.decoder.forward(tape, z, false)?);
        }
        Ok(Some(frames))
    }

    /// The squared error of the predicted map against the encoder's map
    /// of the true next frame, both layer-normalised at every position,
    /// summed per clip. Normalised, each position is compared by the
    /// pattern of its features rather than their size: a predictor
    /// trained on the mean squared error predicts a faded object where it
    /// is unsure, and a faded object is nearer in size to an empty
    /// position than to the object itself, so raw errors would find an
    /// object that vanishes less surprising than one that moves on.
    fn surprise(
        &mut self,
        tape: &mut Tape,
        context: [&Tensor; 2],
        next: &Tensor,
    ) -> Result<Option<Var>> {
        let [z0, z1] = self.context(tape, context, false)?;
        let p = self.predictor.predict(tape, z0, z1, false)?;
        let x = tape.constant(next)?;
        let t = self.encoder.feature_map(tape, x, false)?;
        let n = tape.shape(p)?[0];
        let (p, t) = (
            normalised_positions(tape, p)?,
            normalised_positions(tape, t)?,
        );
        let d = tape.sub(p, t)?;
        let sq = tape.square(d)?;
        let per_clip = tape.reshape(sq, &[n, tape.shape(sq)?.iter().product::<usize>() / n])?;
        tape.sum(per_clip, 1).map(Some)
    }

    /// The predicted maps after the two context frames.
    fn latent_rollout(
        &mut self,
        tape: &mut Tape,
        context: [&Tensor; 2],
        steps: usize,
    ) -> Result<Option<Vec<Var>>> {
        let [z0, z1] = self.context(tape, context, false)?;
        self.roll(tape, z0, z1, steps, false).map(Some)
    }
}
