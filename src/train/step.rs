//! One training step: augment, forward both views, loss, backward, update —
//! recorded into one batch and submitted once. The loss terms and the
//! gradient norm come back asynchronously and are read a step later.

use crate::augment::{self, AugmentConfig, U8Batch};
use crate::autograd::Tape;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Readback};
use crate::kernels::{elementwise as ew, reduce};
use crate::loss::{self, BarlowConfig, InfoNceConfig, LossVariant, VicregConfig};
use crate::nn::Module;
use crate::optim::{Optimizer, Param};
use crate::tensor::Tensor;

use super::config::{Method, TrainConfig};

/// The losses of a step once they are on the CPU.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepLosses {
    pub step: u64,
    pub loss: f32,
    /// Named unweighted terms (VICReg: invariance, variance, covariance).
    pub terms: Vec<(&'static str, f32)>,
    /// The L2 norm of the whole gradient.
    pub grad_norm: f32,
    pub lr: f32,
}

/// Values of a step on their way back to the CPU.
pub struct PendingLosses {
    step: u64,
    lr: f32,
    loss: Readback,
    terms: Vec<(&'static str, Readback)>,
    grad_norm2: Readback,
}

impl PendingLosses {
    /// Waits for the values (by now usually there) and checks they are finite.
    pub fn wait(self) -> Result<StepLosses> {
        let scalar =
            |r: Readback| -> Result<f32> { Ok(r.wait()?.first().copied().unwrap_or(f32::NAN)) };
        let loss = scalar(self.loss)?;
        let mut terms = Vec::new();
        for (name, r) in self.terms {
            terms.push((name, scalar(r)?));
        }
        let grad_norm = scalar(self.grad_norm2)?.sqrt();
        let out = StepLosses {
            step: self.step,
            loss,
            terms,
            grad_norm,
            lr: self.lr,
        };
        if !loss.is_finite()
            || !grad_norm.is_finite()
            || out.terms.iter().any(|(_, v)| !v.is_finite())
        {
            let terms: Vec<String> = out.terms.iter().map(|(n, v)| format!("{n} {v}")).collect();
            return Err(Error::invalid(
                "train",
                format!(
                    "training diverged at step {}: loss {loss}, gradient norm {grad_norm}{}{} (try a lower --lr)",
                    out.step,
                    if terms.is_empty() { "" } else { ", " },
                    terms.join(", ")
                ),
            ));
        }
        Ok(out)
    }
}

/// Everything a step needs besides the batch.
pub struct StepContext<'a> {
    pub gpu: &'a Gpu,
    pub config: &'a TrainConfig,
    pub augment: &'a AugmentConfig,
    pub encoder: &'a mut dyn Module,
    pub projector: &'a mut dyn Module,
    pub optimizer: &'a mut Optimizer,
}

/// True for parameters that LARS and weight decay skip: biases and the
/// affine parameters of normalisation layers (every 1-D parameter).
fn excluded(t: &Tensor) -> bool {
    t.rank() <= 1
}

/// Records one step and returns the readbacks of its losses.
pub fn train_step(
    ctx: &mut StepContext<'_>,
    batch: &Batch,
    step: u64,
    lr: f32,
) -> Result<PendingLosses> {
    let images = U8Batch::from_batch(ctx.gpu, batch)?;
    let [view_a, view_b] = augment::views(&images, ctx.augment, ctx.config.seed, step)?;
    let mut tape = Tape::new(ctx.gpu);
    let xa = tape.constant(&view_a)?;
    let xb = tape.constant(&view_b)?;
    let ha = ctx.encoder.forward(&mut tape, xa, true)?;
    let za = ctx.projector.forward(&mut tape, ha, true)?;
    let hb = ctx.encoder.forward(&mut tape, xb, true)?;
    let zb = ctx.projector.forward(&mut tape, hb, true)?;

    let c = ctx.config;
    let (loss, terms): (_, Vec<(&'static str, Tensor)>) = match c.method {
        Method::Vicreg => {
            let cfg = VicregConfig {
                invariance_weight: c.vicreg_coefficients[0],
                variance_weight: c.vicreg_coefficients[1],
                covariance_weight: c.vicreg_coefficients[2],
                ..VicregConfig::default()
            };
            let out = loss::vicreg(&mut tape, za, zb, &cfg, LossVariant::Fused)?;
            (
                out.loss,
                vec![
                    ("invariance", out.invariance),
                    ("variance", out.variance),
                    ("covariance", out.covariance),
                ],
            )
        }
        Method::Simclr => {
            let cfg = InfoNceConfig {
                temperature: c.temperature,
            };
            (
                loss::infonce(&mut tape, za, zb, &cfg, LossVariant::Fused)?,
                vec![],
            )
        }
        Method::Barlow => {
            let cfg = BarlowConfig {
                lambda: c.barlow_lambda,
                ..BarlowConfig::default()
            };
            (
                loss::barlow_twins(&mut tape, za, zb, &cfg, LossVariant::Fused)?,
                vec![],
            )
        }
    };
    let loss_value = tape.value(loss)?.clone();
    let grads = tape.backward(loss)?;

    let mut names = Vec::new();
    let mut values = Vec::new();
    let mut gradients = Vec::new();
    for (prefix, module) in [("encoder", &*ctx.encoder), ("projector", &*ctx.projector)] {
        for (name, p) in module.parameters() {
            let var = p
                .var()
                .ok_or_else(|| Error::invalid("train", format!("{prefix}.{name} was not used")))?;
            let g = grads.get(var).ok_or_else(|| {
                Error::invalid("train", format!("no gradient for {prefix}.{name}"))
            })?;
            names.push(format!("{prefix}.{name}"));
            values.push(p.tensor.clone());
            gradients.push(g.clone());
        }
    }
    // The squared gradient norm, summed on the device: one scalar comes back.
    let mut norm2: Option<Tensor> = None;
    for g in &gradients {
        let s = reduce::sum_squares_all(g)?;
        norm2 = Some(match norm2 {
            Some(acc) => ew::binary(&acc, &s, ew::BinaryOp::Add)?,
            None => s,
        });
    }
    let params: Vec<Param<'_>> = names
        .iter()
        .zip(&values)
        .zip(&gradients)
        .map(|((name, value), grad)| Param {
            name,
            value,
            grad,
            exclude: excluded(value),
        })
        .collect();
    ctx.optimizer.step(&params, lr)?;

    let pending = PendingLosses {
        step,
        lr,
        loss: loss_value.read_async(),
        terms: terms.iter().map(|(n, t)| (*n, t.read_async())).collect(),
        grad_norm2: norm2
            .ok_or_else(|| Error::invalid("train", "the model has no parameters"))?
            .read_async(),
    };
    // One submit for the whole step.
    ctx.gpu.submit();
    Ok(pending)
}
