//! Video prediction in pixels: the encoder reads the two context frames,
//! the latent predictor steps their feature maps forward one frame at a
//! time (each step reading the map it predicted last), and the decoder
//! draws every predicted map as a frame. Recurrent-free in SimVP's sense:
//! no hidden state runs through time besides the two maps. The loss is the
//! mean squared error of the drawn frames over the whole rollout, so the
//! model is trained on the autoregressive predictions it is evaluated on.

use super::{Objective, Part, Recorded, Role, StepInput};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::nn::{Decoder, Encoder, LatentPredictor, Module};
use crate::tensor::Tensor;

/// The names of the per-horizon loss terms logged (the first eight).
const HORIZONS: [&str; 8] = ["t+1", "t+2", "t+3", "t+4", "t+5", "t+6", "t+7", "t+8"];

/// Encoder, latent predictor and decoder, trained together.
pub struct PixelPrediction {
    pub(super) encoder: Box<dyn Encoder>,
    pub(super) predictor: Box<LatentPredictor>,
    pub(super) decoder: Box<Decoder>,
    pub(super) rollout: usize,
}

impl PixelPrediction {
    /// The maps of `steps` frames after the two context frames, each
    /// predicted from the two maps before it.
    fn maps(
        &mut self,
        tape: &mut Tape,
        context: [&Tensor; 2],
        steps: usize,
        train: bool,
    ) -> Result<Vec<Var>> {
        let [mut prev, mut cur] = super::context_maps(self.encoder.as_mut(), tape, context, train)?;
        let mut maps = Vec::with_capacity(steps);
        for _ in 0..steps {
            let next = self.predictor.predict(tape, prev, cur, train)?;
            maps.push(next);
            (prev, cur) = (cur, next);
        }
        Ok(maps)
    }

    /// [`Self::maps`], each drawn as a frame.
    fn roll(
        &mut self,
        tape: &mut Tape,
        context: [&Tensor; 2],
        steps: usize,
        train: bool,
    ) -> Result<Vec<Var>> {
        let maps = self.maps(tape, context, steps, train)?;
        let mut frames = Vec::with_capacity(steps);
        for z in maps {
            frames.push(self.decoder.forward(tape, z, train)?);
        }
        Ok(frames)
    }
}

impl Objective for PixelPrediction {
    fn parts(&self) -> Vec<Part<'_>> {
        vec![
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
        ]
    }

    fn encoder(&mut self) -> &mut dyn Encoder {
        self.encoder.as_mut()
    }

    /// The mean over the rollout of each frame's mean squared error.
    fn record(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Recorded> {
        let frames = input.clip(self.rollout)?;
        let predicted = self.roll(tape, [&frames[0], &frames[1]], self.rollout, true)?;
        let mut total: Option<Var> = None;
        let mut terms = Vec::new();
        for (k, (&p, truth)) in predicted.iter().zip(&frames[2..]).enumerate() {
            let t = tape.constant(truth)?;
            let mse = super::mse(tape, p, t)?;
            if let Some(name) = HORIZONS.get(k) {
                terms.push((*name, tape.value(mse)?.clone()));
            }
            total = Some(match total {
                Some(acc) => tape.add(acc, mse)?,
                None => mse,
            });
        }
        let total = total.ok_or_else(|| Error::invalid("pixel", "a rollout of no frames"))?;
        let loss = tape.scale(total, 1.0 / self.rollout as f32)?;
        Ok(Recorded { loss, terms })
    }

    fn rollout(
        &mut self,
        tape: &mut Tape,
        context: [&Tensor; 2],
        steps: usize,
    ) -> Result<Option<Vec<Var>>> {
        self.roll(tape, context, steps, false).map(Some)
    }

    fn latent_rollout(
        &mut self,
        tape: &mut Tape,
        context: [&Tensor; 2],
        steps: usize,
    ) -> Result<Option<Vec<Var>>> {
        self.maps(tape, context, steps, false).map(Some)
    }
}
