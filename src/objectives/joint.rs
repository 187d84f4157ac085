//! VICReg, SimCLR and Barlow Twins: two views through one encoder and one
//! projector, and a fused loss between the two projections.

use super::{Objective, ObjectiveConfig, Part, Recorded, Role, StepInput};
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::loss::{self, BarlowConfig, InfoNceConfig, LossVariant, VicregConfig};
use crate::nn::{Encoder, Module};

enum Loss {
    Vicreg(VicregConfig),
    Simclr(InfoNceConfig),
    Barlow(BarlowConfig),
}

/// A joint-embedding method with a symmetric loss on two projections.
pub struct JointEmbedding {
    loss: Loss,
    encoder: Box<dyn Encoder>,
    projector: Box<dyn Module>,
}

impl JointEmbedding {
    pub fn new(
        config: &ObjectiveConfig,
        encoder: Box<dyn Encoder>,
        projector: Box<dyn Module>,
    ) -> Result<JointEmbedding> {
        let loss = match *config {
            ObjectiveConfig::Vicreg { coefficients, .. } => Loss::Vicreg(VicregConfig {
                invariance_weight: coefficients[0],
                variance_weight: coefficients[1],
                covariance_weight: coefficients[2],
                ..VicregConfig::default()
            }),
            ObjectiveConfig::Simclr { temperature, .. } => {
                Loss::Simclr(InfoNceConfig { temperature })
            }
            ObjectiveConfig::Barlow { lambda, .. } => Loss::Barlow(BarlowConfig {
                lambda,
                ..BarlowConfig::default()
            }),
            _ => {
                return Err(Error::invalid(
                    "JointEmbedding",
                    format!("{} is not a two-projection loss", config.method()),
                ));
            }
        };
        Ok(JointEmbedding {
            loss,
            encoder,
            projector,
        })
    }
}

impl Objective for JointEmbedding {
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
        ]
    }

    fn encoder(&mut self) -> &mut dyn Encoder {
        self.encoder.as_mut()
    }

    fn record(&mut self, tape: &mut Tape, input: &StepInput) -> Result<Recorded> {
        let [a, b] = input.pair()?;
        let xa = tape.constant(a)?;
        let xb = tape.constant(b)?;
        let ha = self.encoder.forward(tape, xa, true)?;
        let za = self.projector.forward(tape, ha, true)?;
        let hb = self.encoder.forward(tape, xb, true)?;
        let zb = self.projector.forward(tape, hb, true)?;
        // Across ranks the losses see the global batch.
        let za = tape.gather_rows(za)?;
        let zb = tape.gather_rows(zb)?;
        Ok(match &self.loss {
            Loss::Vicreg(cfg) => {
                let out = loss::vicreg(tape, za, zb, cfg, LossVariant::Fused)?;
                Recorded {
                    loss: out.loss,
                    terms: vec![
                        ("invariance", out.invariance),
                        ("variance", out.variance),
                        ("covariance", out.covariance),
                    ],
                }
            }
            Loss::Simclr(cfg) => Recorded {
                loss: loss::infonce(tape, za, zb, cfg, LossVariant::Fused)?,
                terms: vec![],
            },
            Loss::Barlow(cfg) => Recorded {
                loss: loss::barlow_twins(tape, za, zb, cfg, LossVariant::Fused)?,
                terms: vec![],
            },
        })
    }
}
