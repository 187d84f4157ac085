//! What a training step optimises: the objective as a type.
//!
//! An [`ObjectiveConfig`] is data (one variant per method, carrying that
//! method's own hyper-parameters; serialised into `config.json` and
//! checkpoints). [`ObjectiveConfig::build`] turns it into an
//! [`Objective`]: behaviour, the way an [`Arch`] builds a module. An
//! objective says
//!
//! - which input a step needs ([`InputSpec`]): two augmented views of each
//!   image for the joint-embedding methods;
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
mod joint;
mod simsiam;

use serde::{Deserialize, Serialize};

use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::named::named_enum;
use crate::nn::{Arch, Encoder, Module};
use crate::tensor::Tensor;

pub use byol::Byol;
pub use joint::JointEmbedding;
pub use simsiam::SimSiam;

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
    }
}

/// A method and its own hyper-parameters. `projector` and `predictor` are
/// layer widths after their input (the representation, and the
/// projection), as `--projector 512-512-512` gives them.
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
}

/// The input a step of an objective needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSpec {
    /// This many augmented views of every image of the batch.
    Views(usize),
}

/// The input of one step, as [`InputSpec`] describes it.
pub enum StepInput {
    /// Augmented views of the batch, each `[B, C, H, W]`, normalised.
    Views(Vec<Tensor>),
}

impl StepInput {
    /// The two views of a two-view input.
    pub fn pair(&self) -> Result<[&Tensor; 2]> {
        match self {
            StepInput::Views(v) if v.len() == 2 => Ok([&v[0], &v[1]]),
            StepInput::Views(v) => Err(Error::invalid(
                "objective",
                format!("expected two views, got {}", v.len()),
            )),
        }
    }
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
}

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

impl ObjectiveConfig {
    /// The method this configuration is for.
    pub fn method(&self) -> Method {
        match self {
            ObjectiveConfig::Vicreg { .. } => Method::Vicreg,
            ObjectiveConfig::Simclr { .. } => Method::Simclr,
            ObjectiveConfig::Barlow { .. } => Method::Barlow,
            ObjectiveConfig::Byol { .. } => Method::Byol,
            ObjectiveConfig::Simsiam { .. } => Method::Simsiam,
        }
    }

    /// The projector's widths after the representation.
    pub fn projector(&self) -> &[usize] {
        match self {
            ObjectiveConfig::Vicreg { projector, .. }
            | ObjectiveConfig::Simclr { projector, .. }
            | ObjectiveConfig::Barlow { projector, .. }
            | ObjectiveConfig::Byol { projector, .. }
            | ObjectiveConfig::Simsiam { projector, .. } => projector,
        }
    }

    /// The input a step needs.
    pub fn input(&self) -> InputSpec {
        InputSpec::Views(2)
    }

    /// Checks every hyper-parameter, naming the flag that sets it.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid("train", reason));
        check_widths("--projector", self.projector())?;
        match self {
            ObjectiveConfig::Vicreg { coefficients, .. } => {
                if coefficients.iter().any(|c| !(c.is_finite() && *c >= 0.0)) {
                    return bad(format!(
                        "--vicreg-coefficients must be finite and >= 0, got {coefficients:?}"
                    ));
                }
            }
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
        }
        Ok(())
    }

    /// The method's settings on one line, printed at the start of a run.
    pub fn describe(&self, representation: usize) -> String {
        let mut s = format!(
            "method {} | projector {representation}-{}",
            self.method(),
            dashed(self.projector())
        );
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
        }
        s
    }

    /// A fresh objective on `gpu` with an encoder of architecture `encoder`;
    /// the encoder is initialised from `seed`, the projector from `seed +
    /// 1`, a predictor from `seed + 2`. An EMA target starts as a copy of
    /// the part it follows.
    pub fn build(&self, gpu: &Gpu, encoder: &Arch, seed: u64) -> Result<Box<dyn Objective>> {
        self.validate()?;
        let enc = encoder.build_encoder(gpu, seed)?;
        let projector_arch = |output_norm| {
            let mut dims = vec![enc.dim()];
            dims.extend(self.projector());
            Arch::Projector { dims, output_norm }
        };
        let predictor_arch = |widths: &[usize]| {
            let mut dims = vec![self.projector()[self.projector().len() - 1]];
            dims.extend(widths);
            Arch::Projector {
                dims,
                output_norm: false,
            }
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
        })
    }
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
