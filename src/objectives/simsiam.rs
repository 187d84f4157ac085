//! SimSiam (Chen and He 2021): one encoder and projector (its output batch
//! normalised), a bottleneck predictor, and a stop-gradient on the other
//! branch instead of BYOL's EMA target:
//! `L = -(cos(p_1, sg(z_2)) + cos(p_2, sg(z_1))) / 2`.

use super::{Objective, Part, Recorded, Role, StepInput};
use crate::autograd::Tape;
use crate::error::Result;
use crate::loss::{self, LossVariant};
use crate::nn::{Encoder, Module};

/// SimSiam's parts.
pub struct SimSiam {
    pub(super) encoder: Box<dyn Encoder>,
    pub(super) projector: Box<dyn Module>,
    pub(super) predictor: Box<dyn Module>,
}

impl Objective for SimSiam {
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
        ]
    }

    fn encoder(&mut self) -> &mut dyn Encoder {
        self.encoder.as_mut()
    }

    fn record(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Recorded> {
        let mut z = Vec::with_capacity(2);
        let mut p = Vec::with_capacity(2);
        for v in input.pair()? {
            let x = tape.constant(v)?;
            let h = self.encoder.forward(tape, x, true)?;
            let zi = self.projector.forward(tape, h, true)?;
            p.push(self.predictor.forward(tape, zi, true)?);
            z.push(zi);
        }
        let (z1, z2) = (tape.detach(z[0])?, tape.detach(z[1])?);
        let c12 = loss::cosine_similarity(tape, p[0], z2, LossVariant::Fused)?;
        let c21 = loss::cosine_similarity(tape, p[1], z1, LossVariant::Fused)?;
        let both = tape.add(c12, c21)?;
        let loss = tape.scale(both, -0.5)?;
        Ok(Recorded {
            loss,
            terms: vec![],
        })
    }
}
