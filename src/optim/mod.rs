//! Optimisers — SGD with momentum, AdamW and LARS — each a fused in-place
//! WGSL update per parameter tensor, the warm-up + cosine schedule, and the
//! exponential moving average of EMA target networks ([`ema`]).
//!
//! Every update is recorded into the current batch like any kernel, so a
//! training step (forward, backward, update) is still one submit. The state
//! (momentum buffers, moment estimates) lives on the GPU next to the
//! parameters and is exposed by name for checkpoints.

pub mod ema;
mod schedule;

pub use schedule::WarmupCosine;

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::kernels::reduce;
use crate::tensor::Tensor;

const SGD: Kernel = Kernel::new(
    "optim/sgd",
    include_str!("../../shaders/optim/sgd.wgsl"),
    "main",
);
const ADAMW: Kernel = Kernel::new(
    "optim/adamw",
    include_str!("../../shaders/optim/adamw.wgsl"),
    "main",
);
const LARS_SOURCE: &str = include_str!("../../shaders/optim/lars.wgsl");
const LARS_PREPARE: Kernel = Kernel::new("optim/lars", LARS_SOURCE, "prepare");
const LARS_UPDATE: Kernel = Kernel::new("optim/lars", LARS_SOURCE, "update");

/// Which update rule, with its own hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// SGD with (heavy-ball) momentum.
    Sgd { momentum: f32 },
    /// AdamW with decoupled weight decay.
    AdamW { beta1: f32, beta2: f32, eps: f32 },
    /// LARS with momentum; `eta` is the trust coefficient (0.001 in the
    /// VICReg and Barlow Twins references).
    Lars { momentum: f32, eta: f32 },
}

impl Rule {
    /// The name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Sgd { .. } => "sgd",
            Rule::AdamW { .. } => "adamw",
            Rule::Lars { .. } => "lars",
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = Error;

    /// The rule with its usual defaults, by name.
    fn from_str(name: &str) -> Result<Rule> {
        match name {
            "sgd" => Ok(Rule::Sgd { momentum: 0.9 }),
            "adamw" => Ok(Rule::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            }),
            "lars" => Ok(Rule::Lars {
                momentum: 0.9,
                eta: 0.001,
            }),
            other => Err(Error::invalid(
                "optimizer",
                format!("unknown optimizer '{other}' (expected lars, adamw or sgd)"),
            )),
        }
    }
}

/// A parameter handed to [`Optimizer::step`].
pub struct Param<'a> {
    pub name: &'a str,
    pub value: &'a Tensor,
    pub grad: &'a Tensor,
    /// Biases and normalisation parameters: no weight decay and, for LARS,
    /// no trust-ratio adaptation (as the SSL references do).
    pub exclude: bool,
}

/// An optimiser and its per-parameter state.
pub struct Optimizer {
    rule: Rule,
    weight_decay: f32,
    steps: u64,
    /// name -> state tensors (momentum, or first and second moments).
    state: Vec<(String, Vec<Tensor>)>,
    /// LARS: a one-element tensor bound in place of the norms for the
    /// parameters it does not adapt, made once.
    placeholder: Option<Tensor>,
}

uniform! {
    pub(crate) struct SgdParams {
        n: u32,
        lr: f32,
        weight_decay: f32,
        momentum: f32,
    }
}

uniform! {
    pub(crate) struct AdamParams {
        n: u32,
        lr: f32,
        weight_decay: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        bias_correction1: f32,
        bias_correction2_sqrt: f32,
    }
}

uniform! {
    pub(crate) struct LarsParams {
        n: u32,
        lr: f32,
        weight_decay: f32,
        momentum: f32,
        eta: f32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

impl Optimizer {
    /// A fresh optimiser: state is created on the first step.
    pub fn new(rule: Rule, weight_decay: f32) -> Optimizer {
        Optimizer {
            rule,
            weight_decay,
            steps: 0,
            state: Vec::new(),
            placeholder: None,
        }
    }

    /// The update rule.
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// Whether the optimiser holds state for the parameter `name`.
    pub fn has_state(&self, name: &str) -> bool {
        self.state.iter().any(|(n, _)| n == name)
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn state_for(&mut self, name: &str, like: &Tensor) -> Result<Vec<Tensor>> {
        if let Some((_, s)) = self.state.iter().find(|(n, _)| n == name) {
            if s[0].shape() != like.shape() {
                return Err(Error::shape(
                    "optimizer",
                    &[s[0].shape(), like.shape()],
                    format!("state of '{name}' has another shape than the parameter"),
                ));
            }
            return Ok(s.clone());
        }
        let count = if let Rule::AdamW { .. } = self.rule {
            2
        } else {
            1
        };
        let fresh = (0..count)
            .map(|_| Tensor::zeros(like.gpu(), like.shape()))
            .collect::<Result<Vec<_>>>()?;
        self.state.push((name.to_string(), fresh.clone()));
        Ok(fresh)
    }

    /// Applies one update to every parameter, in place, at learning rate `lr`.
    pub fn step(&mut self, params: &[Param<'_>], lr: f32) -> Result<()> {
        self.steps += 1;
        for p in params {
            if p.value.shape() != p.grad.shape() {
                return Err(Error::shape(
                    "optimizer",
                    &[p.value.shape(), p.grad.shape()],
                    format!(
                        "gradient of '{}' has another shape than the parameter",
                        p.name
                    ),
                ));
            }
            let state = self.state_for(p.name, p.value)?;
            let wd = if p.exclude { 0.0 } else { self.weight_decay };
            let n = p.value.numel();
            let gpu = p.value.gpu();
            let grid = gpu.grid((n as u64).div_ceil(256))?;
            match self.rule {
                Rule::Sgd { momentum } => {
                    let params = SgdParams {
                        n: n as u32,
                        lr,
                        weight_decay: wd,
                        momentum,
                    };
                    let b = [p.value.binding(1), p.grad.binding(2), state[0].binding(3)];
                    dispatch(gpu, &SGD, &[], &params, &b, grid)?;
                }
                Rule::AdamW { beta1, beta2, eps } => {
                    let t = self.steps as i32;
                    let params = AdamParams {
                        n: n as u32,
                        lr,
                        weight_decay: wd,
                        beta1,
                        beta2,
                        eps,
                        bias_correction1: 1.0 - beta1.powi(t),
                        bias_correction2_sqrt: (1.0 - beta2.powi(t)).sqrt(),
                    };
                    let b = [
                        p.value.binding(1),
                        p.grad.binding(2),
                        state[0].binding(3),
                        state[1].binding(4),
                    ];
                    dispatch(gpu, &ADAMW, &[], &params, &b, grid)?;
                }
                Rule::Lars { momentum, eta } => {
                    let params = LarsParams {
                        n: n as u32,
                        lr,
                        weight_decay: wd,
                        momentum,
                        eta,
                        _pad0: 0,
                        _pad1: 0,
                        _pad2: 0,
                    };
                    if p.exclude {
                        // d = g and q = 1: the update reads the gradient
                        // directly. The norm bindings stay in the pipeline's
                        // layout (overrides do not remove bindings), so a
                        // one-element placeholder fills them.
                        let unused = match &self.placeholder {
                            Some(t) => t.clone(),
                            None => {
                                let t = Tensor::zeros(gpu, &[1])?;
                                self.placeholder = Some(t.clone());
                                t
                            }
                        };
                        let b = [
                            p.value.binding(1),
                            p.grad.binding(3),
                            state[0].binding(4),
                            unused.binding(5),
                            unused.binding(6),
                        ];
                        dispatch(gpu, &LARS_UPDATE, &[("ADAPT", 0.0)], &params, &b, grid)?;
                    } else {
                        let d = Tensor::uninit(gpu, p.value.shape())?;
                        let b = [p.value.binding(1), p.grad.binding(2), d.binding(3)];
                        dispatch(gpu, &LARS_PREPARE, &[], &params, &b, grid)?;
                        let w2 = reduce::sum_squares_all(p.value)?;
                        let d2 = reduce::sum_squares_all(&d)?;
                        let b = [
                            p.value.binding(1),
                            d.binding(3),
                            state[0].binding(4),
                            w2.binding(5),
                            d2.binding(6),
                        ];
                        dispatch(gpu, &LARS_UPDATE, &[("ADAPT", 1.0)], &params, &b, grid)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The optimiser state by name, for checkpoints: `<param>.momentum_buffer`
    /// (SGD, LARS) or `<param>.exp_avg` and `<param>.exp_avg_sq` (AdamW), as
    /// PyTorch calls them.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let names: &[&str] = match self.rule {
            Rule::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
            _ => &["momentum_buffer"],
        };
        self.state
            .iter()
            .flat_map(|(p, ts)| {
                ts.iter()
                    .zip(names)
                    .map(move |(t, n)| (format!("{p}.{n}"), t.clone()))
            })
            .collect()
    }

    /// Restores state saved by [`Optimizer::state_tensors`] and the step count.
    pub fn load_state(&mut self, steps: u64, tensors: Vec<(String, Tensor)>) -> Result<()> {
        let names: &[&str] = match self.rule {
            Rule::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
            _ => &["momentum_buffer"],
        };
        let mut state: Vec<(String, Vec<Tensor>)> = Vec::new();
        for (full, t) in tensors {
            let Some((param, kind)) = full.rsplit_once('.') else {
                return Err(Error::invalid(
                    "optimizer",
                    format!("bad state name '{full}'"),
                ));
            };
            let Some(slot) = names.iter().position(|n| *n == kind) else {
                return Err(Error::invalid(
                    "optimizer",
                    format!("state '{full}' does not belong to {}", self.rule.name()),
                ));
            };
            let entry = match state.iter_mut().position(|(n, _)| n == param) {
                Some(i) => &mut state[i].1,
                None => {
                    state.push((param.to_string(), Vec::new()));
                    &mut state.last_mut().expect("just pushed").1
                }
            };
            if entry.len() != slot {
                return Err(Error::invalid(
                    "optimizer",
                    format!("state '{full}' is out of order"),
                ));
            }
            entry.push(t);
        }
        if let Some((n, _)) = state.iter().find(|(_, s)| s.len() != names.len()) {
            return Err(Error::invalid(
                "optimizer",
                format!("incomplete state for '{n}'"),
            ));
        }
        self.state = state;
        self.steps = steps;
        Ok(())
    }
}
