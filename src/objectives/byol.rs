//! BYOL (Grill et al. 2020): the online encoder, projector and predictor
//! regress the projection of the other view made by a target encoder and
//! projector, which receive no gradient and follow the online ones as an
//! exponential moving average.
//!
//! Loss, symmetric over the two view orders, with `q` the online
//! prediction and `z'` the target projection (both L2-normalised):
//! `(2 - 2 cos(q_1, z'_2)) + (2 - 2 cos(q_2, z'_1))`, each averaged over
//! the batch. After the optimiser step `k` of `K`, every target parameter
//! and running statistic moves to `tau t + (1 - tau) o` with
//! `tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2`: `tau_base` at the
//! first step, rising to 1.

use std::f64::consts::PI;

use super::{Objective, Part, Recorded, Role, StepInput};
use crate::autograd::Tape;
use crate::error::Result;
use crate::loss::{self, LossVariant};
use crate::nn::{Encoder, Module};
use crate::optim::ema;
use crate::tensor::Tensor;

/// BYOL's parts and its momentum schedule.
pub struct Byol {
    pub(super) encoder: Box<dyn Encoder>,
    pub(super) projector: Box<dyn Module>,
    pub(super) predictor: Box<dyn Module>,
    pub(super) target_encoder: Box<dyn Encoder>,
    pub(super) target_projector: Box<dyn Module>,
    pub(super) tau_base: f32,
}

impl Byol {
    /// The target's momentum after step `step` of `total_steps`.
    pub fn momentum(tau_base: f32, step: u64, total_steps: u64) -> f32 {
        let progress = step as f64 / total_steps.max(1) as f64;
        let tau = 1.0 - (1.0 - tau_base as f64) * ((PI * progress).cos() + 1.0) / 2.0;
        tau as f32
    }

    /// The target's projections of both views, on a tape that keeps
    /// nothing for a backward and is dropped at once (its activations go
    /// back to the pool before the online backward runs).
    fn target_projections(&mut self, online: &Tape, views: [&Tensor; 2]) -> Result<[Tensor; 2]> {
        let mut tape = online.detached();
        let mut out = Vec::with_capacity(2);
        for v in views {
            let x = tape.constant(v)?;
            let h = self.target_encoder.forward(&mut tape, x, true)?;
            let z = self.target_projector.forward(&mut tape, h, true)?;
            out.push(tape.value(z)?.clone());
        }
        let b = out.pop().expect("two projections");
        let a = out.pop().expect("two projections");
        Ok([a, b])
    }
}

impl Objective for Byol {
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
                name: "predictor",
                module: self.predictor.as_ref(),
                role: Role::Trained,
            },
            Part {
                name: "target_encoder",
                module: self.target_encoder.as_ref(),
                role: Role::Ema { of: "encoder" },
            },
            Part {
                name: "target_projector",
                module: self.target_projector.as_ref(),
                role: Role::Ema { of: "projector" },
            },
        ]
    }

    fn encoder(&mut self) -> &mut dyn Encoder {
        self.encoder.as_mut()
    }

    fn record(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Recorded> {
        let views = input.pair()?;
        let mut q = Vec::with_capacity(2);
        for v in views {
            let x = tape.constant(v)?;
            let h = self.encoder.forward(tape, x, true)?;
            let z = self.projector.forward(tape, h, true)?;
            q.push(self.predictor.forward(tape, z, true)?);
        }
        let [t1, t2] = self.target_projections(tape, views)?;
        let (z1, z2) = (tape.constant(&t1)?, tape.constant(&t2)?);
        let c12 = loss::cosine_similarity(tape, q[0], z2, LossVariant::Fused)?;
        let c21 = loss::cosine_similarity(tape, q[1], z1, LossVariant::Fused)?;
        let both = tape.add(c12, c21)?;
        // (2 - 2 c12) + (2 - 2 c21) = 4 - 2 (c12 + c21).
        let scaled = tape.scale(both, -2.0)?;
        let loss = tape.add_scalar(scaled, 4.0)?;
        let mean = tape.scale(both, 0.5)?;
        Ok(Recorded {
            loss,
            terms: vec![("cosine", tape.value(mean)?.clone())],
        })
    }

    fn after_update(&mut self, step: u64, total_steps: u64) -> Result<()> {
        let tau = Byol::momentum(self.tau_base, step, total_steps);
        ema::update_module(self.target_encoder.as_ref(), self.encoder.as_ref(), tau)?;
        ema::update_module(self.target_projector.as_ref(), self.projector.as_ref(), tau)
    }
}
